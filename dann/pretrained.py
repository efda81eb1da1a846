"""The bundled models (pretrained/: small final models, each listed in registry.json with its sha256,
settings and test accuracies), and what a model named on a command line means: `--checkpoint` and
`--init` take a bundled model's name, a checkpoint file, a run folder or a URL."""
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

from dann import runs
from dann.checkpoints import class_names, load_checkpoint
from dann.common import UserError, restore_hint, shipped
from dann.download import download, matches
from dann.models import Ensemble

PRETRAINED_DIR = shipped("pretrained")
REGISTRY = PRETRAINED_DIR / "registry.json"


def bundled_models():
    """pretrained/registry.json -> {"default": name, "models": {name: entry}}."""
    try:
        registry = json.loads(REGISTRY.read_text())
        assert isinstance(registry["models"], dict) and registry["default"] in registry["models"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"{REGISTRY} is missing or damaged; restore it with: {restore_hint(PRETRAINED_DIR)}") from None
    return registry


def bundled_checkpoint(name):
    """The file of the bundled model `name`, after checking it against its registered sha256:
    a damaged or altered copy must not quietly give other numbers."""
    entry = bundled_models()["models"][name]
    path = PRETRAINED_DIR / entry["file"]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise UserError(f"bundled model {name}: {path} is missing or does not match its sha256 in "
                        f"{REGISTRY.name}; restore it with: {restore_hint(PRETRAINED_DIR)}")
    return path


def bundled_model(name, device="cpu"):
    """The bundled model `name`, verified, in eval mode (what hubconf.py returns)."""
    return load_checkpoint(bundled_checkpoint(name), device)[0]


def format_bundled(runs_dir="runs"):
    """The bundled models as a table, for --list, and the model a command without --checkpoint uses now."""
    registry = bundled_models()
    tasks = {name: f"{e['source']} -> {e['target']}" for name, e in registry["models"].items()}
    wide, task_wide = max(map(len, ["name", *tasks])), max(map(len, ["task", *tasks.values()]))
    lines = [f"{'name':<{wide}} {'task':<{task_wide}} {'method':<13} {'epochs':>6} {'seed':>4} {'source acc':>10} "
             f"{'target acc':>10} {'not sure':>8} {'sure acc':>8}"]
    for name, e in registry["models"].items():
        not_sure = e.get("target_not_sure")
        sure_acc = e.get("trust", {}).get(e["target"], {}).get("sure_accuracy")
        lines.append(f"{name:<{wide}} {tasks[name]:<{task_wide}} {e['method']:<13} {e['epochs']:>6} "
                     f"{e['seed']:>4} {e['source_test_acc']:>10.4f} {e['target_test_acc']:>10.4f} "
                     f"{'-' if not_sure is None else format(not_sure, '.4f'):>8} "
                     f"{'-' if sure_acc is None else format(sure_acc, '.4f'):>8}")
    doubtful = [f"{name} ({e['target_not_sure']:.0%} of {e['target']})" for name, e in registry["models"].items()
                if (e.get("target_not_sure") or 0) > 0.5]
    if doubtful:
        lines.append("marks most of its own target's test digits \"not sure\": " + ", ".join(doubtful))
    latest = runs.latest_finished(runs_dir)
    now = (f"without --checkpoint: {latest} (the latest finished run under {runs_dir}/; the bundled default is "
           f"{registry['default']})" if latest else f"without --checkpoint: the bundled default, {registry['default']}")
    return "\n".join(lines + ["(test-set accuracies measured by valid.py; not sure: the share of the target's test "
                               "digits image_annotate.py marks so; sure acc: the accuracy of the others; details in "
                               "pretrained/README.md)", now])


# ---------------------------------------------------------------- --checkpoint

def add_checkpoint_flags(parser):
    """The flags valid.py and image_annotate.py share to choose a model."""
    parser.add_argument("--checkpoint", default=None, metavar="NAME|PATH|URL",
                        help="a bundled model's name (see --list), a checkpoint file, a run folder, or an http(s) URL "
                             "(downloaded once into checkpoints/); default: the latest runs/*/checkpoint.pt, "
                             "or the bundled default model when there is no run yet")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of a --checkpoint URL's file")
    parser.add_argument("--list", action="store_true", help="print the bundled models with their accuracies and exit")


def resolve_checkpoint(spec=None, sha256=None, runs_dir="runs", cache_dir="checkpoints"):
    """--checkpoint as given on a command line -> (a local file, why that one, in a few words).
    Absent: the latest run, else the bundled default; a URL: downloaded once into cache_dir
    (verified, resumable); a file: as it is; a bundled model's name: its verified file."""
    if spec is None:
        latest = runs.latest_finished(runs_dir)
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
    name = Path(urlparse(url).path).name or "checkpoint.pt"
    dest = Path(cache_dir) / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"
    checksums = (f"sha256:{sha256.lower()}",) if sha256 else ()
    if dest.is_file() and matches(dest, checksums):
        return dest
    return download([url], dest, checksums,
                                  by_hand="download the file yourself and pass it as --checkpoint PATH")


def bundled_entry(path):
    """The registry's entry for a bundled model's file, or None for any other file."""
    path = Path(path)
    if path.resolve().parent != PRETRAINED_DIR.resolve():
        return None
    return next((e for e in bundled_models()["models"].values() if e["file"] == path.name), None)


def start_from(model, spec, classes):
    """--init: copy into model the weights another model is evaluated with (a run folder, a
    checkpoint file or URL, or a bundled model's name), if it knows the same `classes` in the same
    order (the class names of the task). Returns unfinished()'s note on it."""
    path = resolve_checkpoint(spec)[0]
    if not path.is_file():
        raise UserError(f"--init {spec}: no run folder, checkpoint file or bundled model by that name "
                        "(python valid.py --list shows the bundled ones)")
    trained, ckpt = load_checkpoint(path)
    if isinstance(trained, Ensemble):
        raise UserError(f"--init {spec} is an ensemble of {len(trained.members)} models, not one network; "
                        "start from one of its members' run folders")
    if trained.arch != model.arch:
        raise UserError(f"--init {spec} holds a '{trained.arch}' network; add --arch {trained.arch}")
    if trained.input_norm != model.input_norm:
        raise UserError(f"--init {spec} was trained on pictures made '{trained.input_norm}'; "
                        f"add --input-norm {trained.input_norm}")
    known = class_names(ckpt)
    if tuple(known) != tuple(classes):
        raise UserError(f"--init {spec} knows the classes {shown_classes(known)}, and this task has "
                        f"{shown_classes(classes)}; name the class folders as the model does, or train without --init")
    model.load_state_dict(trained.state_dict())
    return runs.unfinished(ckpt, path)


def shown_classes(names, most=6):
    """Class names for a message: their count, and the first few."""
    return f"{len(names)} ({', '.join(names[:most])}{', ...' if len(names) > most else ''})"


def model_trust(ckpt, path):
    """{"temperature", "unsure_below"} of a model (dann/trust.py): a bundled model's from the registry,
    where `dann.bundle --remeasure` keeps them, else the checkpoint's (a finished run stores them);
    a model from before calibration reads its raw probabilities (temperature 1) against its own
    threshold, or none."""
    entry = bundled_entry(path) or {}
    found = entry if "temperature" in entry else ckpt if "unsure_below" in ckpt else entry
    return {"temperature": found.get("temperature", 1.0), "unsure_below": found.get("unsure_below")}


def evaluation_folder(path):
    """Where an evaluation of checkpoint `path` writes by default: figures/<name>/, a name of its
    own for each checkpoint, so that it never lands in pretrained/ or beside another run's files."""
    if path.parent == PRETRAINED_DIR:
        return Path("figures") / path.stem
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:  # outside the current folder: its absolute path names it
        shown = path.resolve()
    return Path("figures") / "-".join(part for part in shown.with_suffix("").parts if part not in ("/", ".."))
