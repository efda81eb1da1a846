"""Checkpoints: the one file format main.py writes, loading it safely, and the bundled models.

A checkpoint is a dict marked CHECKPOINT_FORMAT with the network's configuration, its weights,
the run's configuration and its step; main.py's also carry the optimizer, RNG state and history
needed to resume (save_resumable, restore). A run with --ema also carries the averaged weights
("ema"): those are the model that is evaluated and shared, while "model" holds the weights SGD
trains. A dirt-t run also carries its teacher ("teacher"). The bundled models in pretrained/ are
the same format with the weights only, listed with their checksums and test accuracies in
pretrained/registry.json.
"""
import hashlib
import json
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch

from common import UserError, save_atomic
from config import in_current_words
from data import DIGITS
from models import ARCHS, DANN

CHECKPOINT_FORMAT = "dann-checkpoint-1"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
REGISTRY = PRETRAINED_DIR / "registry.json"


def model_config(model):
    return {"arch": model.arch, "dropout": model.dropout, "classes": model.classes}


def checkpoint_state(model, cfg, step, **rest):
    """A checkpoint dict: the model and what describes it; `rest` adds what a resume needs."""
    return {"format": CHECKPOINT_FORMAT, "model_config": model_config(model), "model": model.state_dict(),
            "config": cfg, "step": step, **rest}


def class_names(ckpt):
    """The names of a checkpoint's classes (the digits for a model of the built-in domains)."""
    return tuple(ckpt.get("class_names") or DIGITS)


def resumable(model, opt, cfg, progress, companions):
    """A checkpoint with all a resume needs: optimizer, RNG state, progress, and the models that
    train beside the trained one (companions: {"ema": averaged copy, "teacher": ...}, None when absent)."""
    copies = {name: m.state_dict() for name, m in companions.items() if m is not None}
    return checkpoint_state(model, cfg, **progress, **copies, optimizer=opt.state_dict(),
                            rng={"cpu": torch.get_rng_state(),
                                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []})


def save_resumable(model, opt, cfg, progress, out, companions):
    """Write run folder `out`'s checkpoint.pt; a failed write says how to go on."""
    saved_before = (out / "checkpoint.pt").is_file()
    try:
        save_atomic(resumable(model, opt, cfg, progress, companions), out / "checkpoint.pt")
    except UserError as e:
        then = ("Once it can be written, continue from the last saved checkpoint with" if saved_before
                else "Nothing of this run was saved yet; once it can be written, start it again with")
        raise UserError(f"{e}. {then}: python main.py --resume {out}") from None


def restore(run_dir, model, opt, companions):
    """Load run_dir's checkpoint into model, opt and the companions (as in resumable); return its
    progress (step, history, wall time)."""
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no checkpoint.pt there; start a new run instead")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        for name, m in companions.items():
            if m is not None:
                m.load_state_dict(ckpt[name])
        lr = opt.param_groups[0]["lr"]
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # loading replaces the lr tensor that the step writes into
            group["lr"] = lr
        for p, s in opt.state.items():  # a checkpoint from another device has the other layout
            if "momentum_buffer" in s:
                s["momentum_buffer"] = torch.empty_like(p).copy_(s["momentum_buffer"])
        torch.set_rng_state(ckpt["rng"]["cpu"])
        if ckpt["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        # checkpoints from before wall time was recorded count it from the resume on
        return {"step": ckpt["step"], "history": ckpt["history"], "wall_time_s": ckpt.get("wall_time_s", 0.0)}
    # what torch.load raises for a damaged file, and load_state_dict or a missing entry for one of another setup
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as e:
        raise UserError(f"--resume {run_dir}: checkpoint.pt is unreadable or from another setup "
                        f"({type(e).__name__}); start a new run instead") from None


def start_from(model, spec):
    """--init: copy into model the weights another model is evaluated with (a run folder, a
    checkpoint file or URL, or a bundled model's name). Returns unfinished()'s note on it."""
    path = resolve_checkpoint(spec)[0]
    if not path.is_file():
        raise UserError(f"--init {spec}: no run folder, checkpoint file or bundled model by that name "
                        "(python valid.py --list shows the bundled ones)")
    trained, ckpt = load_checkpoint(path)
    if trained.arch != model.arch:
        raise UserError(f"--init {spec} holds a '{trained.arch}' network; add --arch {trained.arch}")
    model.load_state_dict(trained.state_dict())
    return unfinished(ckpt, path)


def unsure_below(ckpt, path):
    """The top probability under which image_annotate.py marks a reading "not sure" (a finished
    run's checkpoint holds it; a bundled model's is in the registry), or None if unknown."""
    if "unsure_below" in ckpt:
        return ckpt["unsure_below"]
    if Path(path).resolve().parent == PRETRAINED_DIR:
        return next((e.get("unsure_below") for e in bundled_models()["models"].values()
                     if e["file"] == Path(path).name), None)
    return None


def unfinished(ckpt, path):
    """None for a finished model; else "unfinished, step K of N" (a run stopped before its end).
    A weights-only file is a shared, finished model; a run's checkpoint says its total steps, and
    one from before it did is finished when its run folder holds metrics.json."""
    if "optimizer" not in ckpt:
        return None
    total = ckpt.get("total_steps")
    if total is None:
        return None if (Path(path).parent / "metrics.json").is_file() else f"unfinished, step {ckpt['step']}"
    return None if ckpt["step"] >= total else f"unfinished, step {ckpt['step']} of {total}"


def weights_only(ckpt):
    """A run's checkpoint without what only a resume needs (optimizer, RNG, history): for sharing."""
    return {**{k: ckpt[k] for k in ("format", "model_config", "config", "step", "unsure_below", "class_names")
               if k in ckpt},
            "model": {k: v.contiguous() for k, v in evaluated_weights(ckpt).items()}}


def evaluated_weights(ckpt):
    """The weights a checkpoint's model is evaluated with: the averaged ones when the run kept them."""
    return ckpt.get("ema", ckpt["model"])


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint written by main.py -> (model in eval mode, the checkpoint dict).

    weights_only=True: a checkpoint is data, and one that carries pickled code is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; train one with: python main.py, "
                        "or pass --checkpoint NAME|PATH|URL (--list shows the bundled models)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        if "allowed global" in str(e) or "Unsupported global" in str(e):  # torch's words for a pickled callable
            raise UserError(f"refusing to load {path}: it contains pickled Python objects that could run code, "
                            "not only weights; use a checkpoint written by main.py") from None
        raise UserError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                        "it may be truncated or not a PyTorch file: download or train it again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a DANN checkpoint written by main.py (no '{CHECKPOINT_FORMAT}' marker)")
    ckpt["config"] = in_current_words(ckpt.get("config"))
    if not _complete(ckpt):
        raise UserError(f"{path} has the DANN checkpoint marker but not the model, configuration and progress "
                        "main.py writes; the file was altered or comes from another program")
    model = DANN(**ckpt["model_config"]).to(device)
    try:
        model.load_state_dict(evaluated_weights(ckpt))
    except RuntimeError:
        raise UserError(f"{path}: its weights do not fit the '{ckpt['model_config'].get('arch')}' "
                        "architecture it names; the file was altered or comes from another program") from None
    return model.eval(), ckpt


def _complete(ckpt):
    """The parts of a checkpoint that valid.py and image_annotate.py read, with the right types."""
    net, cfg = ckpt.get("model_config"), ckpt.get("config")
    names = ckpt.get("class_names", DIGITS)
    return (isinstance(net, dict) and {"arch", "dropout"} <= set(net) <= {"arch", "dropout", "classes"}
            and net["arch"] in ARCHS and isinstance(net["dropout"], (int, float))
            and isinstance(net.get("classes", 10), int) and isinstance(names, (list, tuple))
            and len(names) == net.get("classes", 10) and isinstance(ckpt.get("model"), dict)
            and isinstance(ckpt.get("ema", {}), dict)
            and isinstance(cfg, dict) and all(isinstance(cfg.get(k), str) for k in ("source", "target", "method"))
            and isinstance(ckpt.get("step"), int))


# ---------------------------------------------------------------- bundled models

def bundled_models():
    """pretrained/registry.json -> {"default": name, "models": {name: entry}}."""
    try:
        registry = json.loads(REGISTRY.read_text())
        assert isinstance(registry["models"], dict) and registry["default"] in registry["models"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"{REGISTRY} is missing or damaged; restore it with: git checkout -- pretrained/") from None
    return registry


def bundled_checkpoint(name):
    """The file of the bundled model `name`, after checking it against its registered sha256:
    a damaged or altered copy must not quietly give other numbers."""
    entry = bundled_models()["models"][name]
    path = PRETRAINED_DIR / entry["file"]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise UserError(f"bundled model {name}: {path} is missing or does not match its sha256 in "
                        f"{REGISTRY.name}; restore it with: git checkout -- pretrained/")
    return path


def bundled_model(name, device="cpu"):
    """The bundled model `name`, verified, in eval mode (what hubconf.py returns)."""
    return load_checkpoint(bundled_checkpoint(name), device)[0]


def format_bundled():
    """The bundled models as a table, for --list."""
    registry = bundled_models()
    lines = [f"{'name':<28} {'task':<16} {'method':<12} {'epochs':>6} {'seed':>4} {'source acc':>10} {'target acc':>10}"]
    for name, e in registry["models"].items():
        lines.append(f"{name:<28} {e['source'] + ' -> ' + e['target']:<16} {e['method']:<12} {e['epochs']:>6} "
                     f"{e['seed']:>4} {e['source_test_acc']:>10.4f} {e['target_test_acc']:>10.4f}")
    return "\n".join(lines + [f"(test-set accuracies measured by valid.py; default: {registry['default']}; "
                              f"details in pretrained/README.md)"])


# ---------------------------------------------------------------- --checkpoint

def add_checkpoint_flags(parser):
    """The flags valid.py and image_annotate.py share to choose a model."""
    parser.add_argument("--checkpoint", default=None, metavar="NAME|PATH|URL",
                        help="a bundled model's name (see --list), a checkpoint file, a run folder, or an http(s) URL "
                             "(downloaded once into checkpoints/); default: the latest runs/*/checkpoint.pt, "
                             "or the bundled default model when there is no run yet")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of a --checkpoint URL's file")
    parser.add_argument("--list", action="store_true", help="print the bundled models with their accuracies and exit")


def latest_checkpoint(runs_dir="runs"):
    """The newest finished run's checkpoint.pt under runs_dir (its folder holds metrics.json), a
    --seeds row's seed<S>/ folders included: an interrupted run is used only when named."""
    found = sorted((p for p in Path(runs_dir).glob("**/checkpoint.pt") if (p.parent / "metrics.json").is_file()),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def resolve_checkpoint(spec=None, sha256=None, runs_dir="runs", cache_dir="checkpoints"):
    """--checkpoint as given on a command line -> (a local file, why that one, in a few words).
    Absent: the latest run, else the bundled default; a URL: downloaded once into cache_dir
    (verified, resumable); a file: as it is; a bundled model's name: its verified file."""
    if spec is None:
        latest = latest_checkpoint(runs_dir)
        if latest is not None:
            return latest, f"the latest finished run under {runs_dir}/; --checkpoint chooses another"
        name = bundled_models()["default"]
        return bundled_checkpoint(name), f"bundled model {name}, since there is no finished run under {runs_dir}/ yet"
    if urlparse(spec).scheme in ("http", "https"):
        return _download_checkpoint(spec, sha256, cache_dir), f"downloaded from {spec}"
    if not Path(spec).exists() and spec in bundled_models()["models"]:
        return bundled_checkpoint(spec), f"bundled model {spec}"
    if Path(spec).is_dir():  # a run folder, or choose.py's chosen/
        return Path(spec) / "checkpoint.pt", "as given"
    return Path(spec), "as given"


def _download_checkpoint(url, sha256, cache_dir):
    import download_data
    name = Path(urlparse(url).path).name or "checkpoint.pt"
    dest = Path(cache_dir) / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"
    checksums = (f"sha256:{sha256.lower()}",) if sha256 else ()
    if dest.is_file() and download_data.matches(dest, checksums):
        return dest
    return download_data.download([url], dest, checksums,
                                  by_hand="download the file yourself and pass it as --checkpoint PATH")
