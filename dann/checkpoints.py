"""Checkpoints: the one file format main.py writes, and loading it safely.

A checkpoint is a dict marked CHECKPOINT_FORMAT with the network's configuration, its weights,
the run's configuration and its step; main.py's also carry the optimizer, RNG state and history
needed to resume (save_resumable, restore). A run with --ema also carries the averaged weights
("ema"): those are the model that is evaluated and shared, while "model" holds the weights SGD
trains. A dirt-t run also carries its teacher ("teacher"). The bundled models in pretrained/ are
the same format with the weights only (pretrained.py).
"""
import pickle
from pathlib import Path

import torch

from dann import outputs
from dann.common import UserError
from dann.config import in_current_words
from dann.domains import DIGITS
from dann.models import ARCHS, DANN, INPUT_NORMS, Ensemble
from dann.runs import CHECKPOINT

CHECKPOINT_FORMAT = "dann-checkpoint-1"


def model_config(model):
    members = {"members": len(model.members)} if isinstance(model, Ensemble) else {}
    return {"arch": model.arch, "dropout": model.dropout, "classes": model.classes, "input_norm": model.input_norm,
            **members}


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


def save_resumable(model, opt, cfg, progress, path, companions):
    """Write a run's checkpoint to `path` (outputs.save: atomic, never over a file of the user's)."""
    outputs.save(resumable(model, opt, cfg, progress, companions), path)


def restore(run_dir, model, opt, companions):
    """Load run_dir's checkpoint into model, opt and the companions (as in resumable); return its
    progress (step, history, wall time)."""
    path = run_dir / CHECKPOINT
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


def weights_only(ckpt):
    """A run's checkpoint without what only a resume needs (optimizer, RNG, history): for sharing."""
    return {**{k: ckpt[k] for k in ("format", "model_config", "config", "step", "temperature", "unsure_below",
                                     "class_names")
               if k in ckpt},
            "model": {k: v.contiguous() for k, v in evaluated_weights(ckpt).items()}}


def ensemble_of(models, cfg, step):
    """One model and its checkpoint from trained DANNs of one network shape (at least two, as
    load_checkpoint returns them), read as the mean of their predictions; cfg: its configuration."""
    shapes = {tuple(sorted(model_config(m).items())) for m in models}
    if len(shapes) != 1 or len(models) < 2:
        raise ValueError("an ensemble needs two or more models of one network shape")
    ensemble = Ensemble(len(models), **model_config(models[0]))
    for member, model in zip(ensemble.members, models):
        member.load_state_dict(model.state_dict())
    return ensemble.eval(), checkpoint_state(ensemble, cfg, step)


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
    model = (Ensemble if "members" in ckpt["model_config"] else DANN)(**ckpt["model_config"]).to(device)
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
    return (isinstance(net, dict) and {"arch", "dropout"} <= set(net) <= {"arch", "dropout", "classes", "input_norm", "members"}
            and (type(net.get("members", 2)) is int and net.get("members", 2) >= 2)
            and net["arch"] in ARCHS and isinstance(net["dropout"], (int, float))
            and net.get("input_norm", INPUT_NORMS[0]) in INPUT_NORMS
            and isinstance(net.get("classes", 10), int) and isinstance(names, (list, tuple))
            and len(names) == net.get("classes", 10) and isinstance(ckpt.get("model"), dict)
            and isinstance(ckpt.get("ema", {}), dict)
            and isinstance(cfg, dict) and all(isinstance(cfg.get(k), str) for k in ("source", "target", "method"))
            and isinstance(ckpt.get("step"), int))
