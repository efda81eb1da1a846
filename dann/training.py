"""The training engine behind main.py: the task's data, a run's setup, and what surrounds the loop
(dann/stepping.py's train_steps): its run folder, checks, console, curves, evaluation and saving.
No command line here: main.py turns flags into a `config.Config` and calls train(); bench.py and the
tests build the same step with setup().

Both training sets live on the training device as uint8 and batches are gathered there by
index: no DataLoader and no per-sample Python in the loop. The whole step (gather, optional
augmentation, schedule, the method's loss, backward, SGD update) reads and writes only device
tensors, so on a GPU it is captured once as a CUDA graph and replayed. Target labels are used
only to report target accuracy (and, in target-only, to train, which is what that method means).
"""
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from dann import datasets, outputs, runs, trust
from dann.checkpoints import restore, save_resumable
from dann.common import UserError
from dann.config import pick_device
from dann.curves import Curves
from dann.domains import SPLITS, is_folder, source_parts
from dann.evaluation import evaluate, shown
from dann.methods import METHODS
from dann.pretrained import start_from
from dann.scores import label_free_report
from dann.stepping import (Run, drawn_sizes, epoch_length, frozen_copy, make_step, model_and_optimizer,
                           train_steps)
from dann.stopping import stop_requests

def load_data(cfg, device, skipped=None):
    """The task's datasets.TaskData: training and test sets of both domains on the device (as uint8;
    evaluation reads the test sets there too); the labels of an unlabelled target folder are None.
    Several sources are joined one after another, each cut to --limit. Pictures of a folder that
    could not be read are appended to `skipped`."""
    source_classes = check_classes(cfg)
    parts = source_parts(cfg.source)
    loaded = datasets.load_datasets(dict.fromkeys([*parts, cfg.target]), SPLITS, cfg.data_dir,
                                    not cfg.no_download, skipped)
    sets = datasets.TaskData(classes=tuple(source_classes))
    for split in SPLITS:
        pieces = [training_cut(loaded[part, split], split, cfg) for part in parts]
        target = training_cut(loaded[cfg.target, split], split, cfg)
        if cfg.target_imbalance != 1:
            target = datasets.imbalanced(*target, cfg.target_imbalance, len(source_classes), cfg.target)
        for name, (x, _) in [*zip(parts, pieces), (cfg.target, target)]:
            if len(x) == 0:
                raise UserError(f"the {split} split of {name} holds no picture that could be read")
        setattr(sets, "source_parts" if split == "train" else "source_test_parts", tuple(len(x) for x, _ in pieces))
        for domain, (x, y) in (("source", datasets.joined(pieces)), ("target", target)):
            setattr(sets, f"{domain}_{split}", (x.to(device), y if y is None else y.to(device)))
    return sets


def training_cut(pictures, split, cfg):
    """A domain's pictures of one split, its training ones cut to --limit."""
    x, y = pictures
    if split != "train" or not cfg.limit:
        return x, y
    return x[:cfg.limit], y if y is None else y[:cfg.limit]


def check_classes(cfg):
    """Every source must be labelled with the same classes, and a labelled target must name them
    too; returns them."""
    parts = source_parts(cfg.source)
    for part in parts:
        if datasets.class_names(part) is None:
            raise UserError(f"--source {part} has no class subfolders; the source must be labelled")
    source, target = datasets.class_names(parts[0]), datasets.class_names(cfg.target)
    for part in parts[1:]:
        check_same_classes(source, datasets.class_names(part), f"the sources {parts[0]} and {part}", parts[0], part,
                           "every source")
    if target is None and METHODS[cfg.method].labelled == "target":
        raise UserError(f"--method {cfg.method} trains on target labels, and {cfg.target} has none")
    if target is not None:
        check_same_classes(source, target, "--source and --target", "the source", "the target", "both")
    return source


def check_same_classes(first, second, which, first_name, second_name, fix):
    if tuple(first) != tuple(second):
        only_first, only_second = sorted(set(first) - set(second)), sorted(set(second) - set(first))
        raise UserError(f"{which} name different classes: only in {first_name} {only_first or 'none'}, only in "
                        f"{second_name} {only_second or 'none'}; give {fix} the same class folders")


# Memory one step takes per labelled + unlabelled pair of pictures, with room to spare: measured on
# the CPU at batch sizes 256 and 1024 (mnist network .54 MB with dann, .82 with vada; svhn 1.2 and 2.1;
# mnist-bn .81 with dann and self-ensemble, 1.43 with vada).
STEP_BYTES_PER_PAIR = {"mnist": 1 << 20, "svhn": 5 << 19, "mnist-bn": 3 << 19}


def check_batch_fits(cfg, device):
    """Refuse, before anything is loaded, a --batch-size whose step needs more memory than is free
    (otherwise the process grows until the system kills it, with no word)."""
    free = free_memory(device)
    need = cfg.batch_size * STEP_BYTES_PER_PAIR[cfg.arch]
    if free is not None and need > free:
        raise UserError(f"--batch-size {cfg.batch_size} needs about {need / 2**30:,.1f} GiB for one step of the "
                        f"{cfg.arch} network, more than the {free / 2**30:,.1f} GiB free on {device}; give a "
                        f"smaller --batch-size (the paper's: 128)")


def free_memory(device):
    """Bytes free for a run on `device`, or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


# ---------------------------------------------------------------- results

def write_metrics(out, cfg, progress, final, device):
    metrics = {"config": cfg.as_dict(), **final,
               **{k: progress["history"][-1][k] for k in ("label_free", "target_class_mix")},
               "temperature": progress["temperature"], "unsure_below": progress["unsure_below"],
               "history": progress["history"], "wall_time_s": round(progress["wall_time_s"], 1),
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
               "versions": {"python": platform.python_version(), "torch": torch.__version__},
               "note": "accuracies of the final model; main.py selects no epoch or setting by target accuracy"}
    runs.write_metrics(out, metrics)
    return metrics


def seed_summary(finished, row):
    """Mean and sample standard deviation of several runs' final accuracies (one row of a table);
    row: the Config the row's runs were made from."""
    seeds = [m["config"]["seed"] for m in finished]
    command = f"{row.command()} --seeds {' '.join(map(str, seeds))}"
    summary = {"seeds": seeds, "command": command}
    for key in ("target_test_acc", "source_test_acc"):
        values = [m[key] for m in finished]
        summary[key] = None if None in values else {
            "mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": values}
    t, s = summary["target_test_acc"], summary["source_test_acc"]
    target = f"target test {t['mean']:.4f} +- {t['std']:.4f}, " if t else "target test: none (an unlabelled target), "
    reported = t or s
    summary["line"] = (f"{target}source test {s['mean']:.4f} +- {s['std']:.4f} (mean +- sample std of {len(finished)} "
                       f"seeds: {', '.join(f'{v:.4f}' for v in reported['runs'])})")
    return summary


# ---------------------------------------------------------------- setup

def setup(cfg, sets, device, resume_from=None, first_step=0, read_init=True):
    """The model, optimizer, companions and step of a run on `sets` (load_data's dict; the
    training sets are enough): what train() runs and bench.py times. resume_from: a run folder
    whose checkpoint is restored into all of them; read_init=False leaves --init unread (bench.py
    times a teacher's method from fresh weights). Returns (Run, progress)."""
    method = METHODS[cfg.method]
    images, labels = sets.of(method.labelled, "train") if method.labelled else (None, None)
    unlabelled = sets.target_train[0] if method.uses_unlabelled else None
    # every method of a task takes as many steps: one epoch is one pass over the smaller of the
    # two domains' training sets, whichever batches the method reads
    steps_per_epoch = epoch_length([len(sets.of(d, "train")[0]) for d in ("source", "target")], cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    class_names = sets.classes
    model, opt = model_and_optimizer(cfg, device, len(class_names))
    init_note = start_from(model, cfg.init, class_names) if cfg.init and resume_from is None and read_init else None
    teacher = frozen_copy(model).eval() if method.teacher else None  # the --init model (a resume restores it)
    if method.teacher:
        method.teacher.prepare_student(model)
    mean_teacher = method.teacher is not None and method.teacher.averages_student
    ema = teacher if mean_teacher else frozen_copy(model) if cfg.ema else None
    decay = cfg.teacher_ema if mean_teacher else cfg.ema
    progress = {"step": first_step, "history": [], "wall_time_s": 0.0}
    if resume_from is not None:
        progress = restore(resume_from, model, opt, {"ema": ema, "teacher": None if mean_teacher else teacher})
    step, state = make_step(model, opt, method, (images, labels, unlabelled), cfg, total_steps, progress["step"],
                            ema, teacher, decay)
    sizes = drawn_sizes((images, labels, unlabelled), sets.parts(method.labelled))
    return Run(cfg, method, model, opt, ema, teacher, step, state, sizes, steps_per_epoch, total_steps, class_names,
               init_note), progress


# ---------------------------------------------------------------- the loop

def train(cfg, out, resume=False):
    """Train (or, with resume, continue) the run in folder `out`: its data, its setup, the loop, its
    metrics; returns them, or None if Ctrl-C or SIGTERM stopped it (then it is saved and `python
    main.py --resume out` continues it)."""
    out = Path(out)
    device = pick_device(cfg.device)
    check_batch_fits(cfg, device)
    torch.manual_seed(cfg.seed)
    skipped = []
    sets = load_data(cfg, device, skipped)
    with runs.claimed(out):
        describe_folders(cfg, sets)
        report_skipped(skipped, out)
        saved = runs.status(out) != "new"
        if resume and not saved:
            print(f"{out} holds no checkpoint yet (its run stopped before the first save): starting it from step 0",
                  file=sys.stderr)
        if not resume:
            runs.check_new(out)  # again, now that the folder is ours
        run, progress = setup(cfg, sets, device, resume_from=out if resume and saved else None)
        if not (resume and saved):
            runs.write_config(out, cfg)
        announce(run, progress, out, device)
        curves = Curves(out)
        bar = tqdm(total=run.total_steps, initial=progress["step"], unit="step", dynamic_ncols=True)
        with stop_requests() as stop, closing(curves, bar):
            step = train_steps(run, progress["step"], Surroundings(run, sets, out, progress, device, stop, curves, bar))
        return finish(run, progress, out, device, step)


def announce(run, progress, out, device):
    """Refuse a finished run; else say what trains where, in one line."""
    cfg = run.cfg
    if progress["step"] >= run.total_steps:
        raise UserError(f"--resume {out}: that run already finished; its results are in {out}/metrics.json")
    # saved in each checkpoint: a reader can tell a finished model, and name its classes
    progress.update(total_steps=run.total_steps, class_names=list(run.class_names))
    init = f"; from --init {cfg.init}: {run.init_note}" if run.init_note else ""
    print(f"{cfg.source} -> {cfg.target}, {cfg.method}, arch {cfg.arch}, {cfg.epochs} epochs x "
          f"{run.steps_per_epoch} steps on {device}; run folder {out}{init}", file=sys.stderr)


def finish(run, progress, out, device, step):
    """After the loop: a stopped run says how to continue it (None); a finished one writes its metrics."""
    if step < run.total_steps:
        print(f"stopped at step {step}/{run.total_steps}; saved. Continue with: python main.py --resume {runs.shown(out)}",
              file=sys.stderr)
        return None
    final = {k: progress["history"][-1][k] for k in ("source_test_acc", "target_test_acc")}
    metrics = write_metrics(out, run.cfg, progress, final, device)
    print(f"final model: source test {shown(final['source_test_acc'])}, target test {shown(final['target_test_acc'])}; "
          f"{out}/metrics.json", file=sys.stderr)
    return metrics


class Surroundings:
    """What the loop (dann/stepping.py's train_steps) calls between steps, in the run folder `out`:
    the checks, the progress bar and curves, evaluation at an epoch's end, the calibration of the
    final model, and saving."""

    def __init__(self, run, sets, out, progress, device, stop, curves, bar):
        self.run, self.sets, self.out, self.progress, self.stop, self.curves, self.bar = (
            run, sets, out, progress, stop, curves, bar)
        self.check_every = 1 if device.type == "cpu" else 50  # a check reads values back, which stalls a GPU
        self.last_saved = progress["step"] if runs.status(out) != "new" else None
        self.started = time.time() - progress["wall_time_s"]

    def stop_requested(self):
        return self.stop["now"]

    def after_step(self, step):
        self.bar.update()
        if step % self.check_every == 0:
            check_finite(self.run, step, self.out, self.last_saved)
        if step % 50 == 0:  # reading values back syncs the GPU: do it rarely
            state = self.run.state
            log_step(self.bar, self.curves, step, dict(zip(self.run.method.stats, state.last.tolist())), state.lr.item())

    def end_of_steps(self, step, first):
        """At an epoch's end, or where a stop request ended the epoch early at `step` (it began at `first`)."""
        run, cfg, progress = self.run, self.run.cfg, self.progress
        check_finite(run, step, self.out, self.last_saved)
        epoch_done = step % run.steps_per_epoch == 0
        if epoch_done:
            means = dict(zip(run.method.stats, (run.state.sums / (run.steps_per_epoch - first)).tolist()))
            progress["history"].append(end_of_epoch(run.evaluated, self.sets, cfg, step // run.steps_per_epoch, means,
                                                    step == run.total_steps, self.curves, self.bar))
        if step == run.total_steps:
            labelled = run.method.labelled or "source"  # the domain whose labels it learnt, directly or not
            progress.update(trust.decide(run.evaluated, self.sets.of(labelled, "test"), self.sets.target_train[0]))
        progress.update(step=step, wall_time_s=time.time() - self.started)
        if self.stop["now"] or step == run.total_steps or (
                epoch_done and (step // run.steps_per_epoch) % cfg.save_every == 0):
            save_checkpoint(run, cfg, progress, self.out)
            self.last_saved = step


def save_checkpoint(run, cfg, progress, out):
    """The run's checkpoint.pt; a failed write says how to go on."""
    saved_before = (out / runs.CHECKPOINT).is_file()
    try:
        save_resumable(run.model, run.opt, cfg.as_dict(), progress, out / runs.CHECKPOINT, run.companions)
    except UserError as e:
        then = ("Once it can be written, continue from the last saved checkpoint with" if saved_before
                else "Nothing of this run was saved yet; once it can be written, start it again with")
        raise UserError(f"{e}. {then}: python main.py --resume {runs.shown(out)}") from None


def describe_folders(cfg, sets):
    """One line for a source or target that is a folder or several domains: how many pictures went
    to training and to testing."""
    for role, parts in (("source", source_parts(cfg.source)), ("target", (cfg.target,))):
        (images, labels), test = sets.of(role, "train"), sets.of(role, "test")[0]
        if len(parts) > 1 or is_folder(parts[0]):
            kind = "unlabelled" if labels is None else f"classes {', '.join(sets.classes)}"
            each = (f" ({', '.join(f'{n} {k}' for n, k in zip(parts, sets.source_parts))})"
                    if len(parts) > 1 else "")
            print(f"{role} {getattr(cfg, role)}: {len(images)} training{each} and {len(test)} test pictures ({kind})",
                  file=sys.stderr)


def report_skipped(skipped, out):
    """One line for the pictures of a folder domain that could not be read, the full list in the run folder."""
    if not skipped:
        return
    listing = "".join(f"{name}\t{split}\t{path}\t{why}\n" for name, split, path, why in skipped)
    outputs.save(listing, out / "skipped_pictures.tsv")
    print(f"{len(skipped)} pictures could not be read and were left out ({', '.join(p for _, _, p, _ in skipped[:3])}"
          f"{', ...' if len(skipped) > 3 else ''}); the list: {out}/skipped_pictures.tsv", file=sys.stderr)


def check_finite(run, step, out, last_saved):
    """Stop a run whose loss or weights became NaN or infinite, before anything of it is saved:
    the statistics summed since the epoch began cover every step since the last check."""
    weights = torch.stack([t.isfinite().all() for t in run.model.parameters()]).all()
    if bool(run.state.sums.isfinite().all() & weights):
        return
    saved = (f"the last good checkpoint is {out}/checkpoint.pt (step {last_saved})" if last_saved is not None
             else "nothing of the run was saved")
    raise UserError(f"the loss became NaN or infinite by step {step}; the run stopped there and {saved}. Lower "
                    "--lr (or the method's weights) and start again")


def log_step(bar, curves, step, stats, lr):
    """The last step's statistics on the progress bar and in TensorBoard (loss/class, lr, ...)."""
    shown = {("loss/" + name[:-5] if name.endswith("_loss") else name): v for name, v in stats.items()}
    shown["lr"] = lr
    bar.set_postfix({k.replace("loss/", "loss_"): f"{v:.4g}" for k, v in shown.items()})
    curves.add(shown, step)


def end_of_epoch(model, sets, cfg, epoch, means, last, curves, bar):
    """The epoch's record: the method's mean statistics, plus test accuracies and label-free scores
    every eval_every epochs and after the last one (reported, never used to steer training)."""
    record = {**means, "epoch": epoch}
    if epoch % cfg.eval_every == 0 or last:
        record.update(evaluate(model, sets))
        record.update(label_free_report(model, sets, METHODS[cfg.method]))
        curves.add({f"accuracy_by_epoch/{k}": record[k] for k in ("source_test_acc", "target_test_acc")
                    if record[k] is not None}, epoch)
        curves.add({f"label_free_by_epoch/{k}": v for k, v in record["label_free"].items() if v is not None}, epoch)
        bar.write(f"epoch {epoch}: source test {shown(record['source_test_acc'])}, "
                  f"target test {shown(record['target_test_acc'])}")
    return record


@contextlib.contextmanager
def closing(curves, bar):
    """Close the progress bar and the curves however the loop ends."""
    try:
        yield
    finally:
        bar.close()
        curves.close()
