"""Choose a method without target labels, the engine behind choose.py: train candidate methods on
one task, score each final model on unlabelled target training pictures (scores.py), and pick one
by a rule fixed before any sweep was measured (RULE, below). Target labels, where a target has
them, are read only to report accuracy beside the choice.

Each candidate run is an ordinary main.py run folder, <out>/<candidate>/seed<S>/, trained by a
main.py process of its own, several side by side, on this machine or as tasks of a Ray cluster
(dann/launchers.py). A finished run is never trained again and a
stopped one is resumed, so the same command continues a stopped sweep; a candidate that refines
another (DIRT-T) starts from that candidate's run of the same seed, which it shares.
"""
import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from dann import outputs, trust
from dann import runs as run_folder
from dann.checkpoints import ensemble_of, load_checkpoint, weights_only
from dann.common import UserError
from dann.config import Config
from dann.methods import METHODS
from dann.evaluation import accuracy, predictions
from dann.scores import (ALL_SCORES, ensemble_agreement, estimated_class_mix, evidence, label_free_report,
                         label_free_scores, seed_agreement)
from dann.stopping import stop_requests

# Class shift ranked 25 short MNIST -> MNIST-M runs best of the label-free scores (Spearman .50 with
# target accuracy, against .37 for entropy; RESULTS.md, 'Label-free scores'), so it decides; entropy,
# the next best, breaks a tie. It assumes the target's class mix is the source's.
RULE_SCORES = ("class_shift", "entropy")
RULE = "the final model with the lowest class shift; a tie goes to the lower entropy"


def rank_key(scores):
    """Smaller is better: RULE_SCORES in turn, each made "higher is better" by its orientation, negated."""
    return tuple(-ALL_SCORES[name].oriented(scores[name]) for name in RULE_SCORES)


@dataclass(frozen=True)
class Candidate:
    method: str
    after: Optional[str] = None  # the candidate whose run of the same seed this one refines (--init)
    epochs_share: float = 1.0  # of --epochs: DIRT-T refines for half as long, as in the README's recipe


CANDIDATES = {
    "source-only": Candidate("source-only"),
    "dann": Candidate("dann"),
    "dann-im": Candidate("dann-im"),
    "vada": Candidate("vada"),
    "dirt-t": Candidate("dirt-t", after="dann", epochs_share=0.5),
    "self-ensemble": Candidate("self-ensemble"),
    "adamatch": Candidate("adamatch"),
}
# source-only as the floor, the recommended recipe of MNIST -> MNIST-M at full size, and the two methods
# that beat every other on all five tasks of the short schedule (RESULTS.md, 'Carry-over')
DEFAULT_CANDIDATES = ("source-only", "dirt-t", "self-ensemble", "adamatch")


@dataclass
class CandidateRun:
    """One candidate and seed: its configuration, its run folder, and how far it got."""
    candidate: str
    seed: int
    cfg: Config
    folder: Path
    after: Optional["CandidateRun"]
    status: str = "to train"  # to train, to resume, running, done, failed, skipped, stopped
    note: str = ""  # why it failed or was skipped
    metrics: Optional[dict] = None
    log: Optional[Path] = None  # where its main.py process writes
    eligible: bool = True  # False for a run trained only because a candidate refines it: never chosen
    scores: Optional[dict] = None  # of its final model, by score_all: SCORES and the ensemble agreement
    class_mix: Optional[list] = None  # the target class mix its final model estimates

    @property
    def name(self):
        return f"{self.candidate}/seed{self.seed}"


def plan(base, candidates, seeds, out):
    """The runs of a sweep, those a candidate refines added first; each run's status read from its
    folder. base: the task's Config (its method, seed and --init are each run's own)."""
    names = []
    for name in candidates:
        needed = CANDIDATES[name].after
        names += [n for n in (needed, name) if n and n not in names]
    runs = {}
    for seed in seeds:
        for name in names:
            c, first = CANDIDATES[name], runs.get((CANDIDATES[name].after, seed))
            try:
                cfg = dataclasses.replace(base, method=c.method, seed=seed, init=first and str(first.folder),
                                          epochs=max(1, round(base.epochs * c.epochs_share)))
            except ValueError as e:
                raise UserError(f"candidate {name}: {e}") from None
            run = CandidateRun(name, seed, cfg, out / name / f"seed{seed}", first, eligible=name in candidates)
            runs[name, seed] = read_status(run)
    return list(runs.values())


def read_status(run):
    """A run folder as the sweep finds it: finished (metrics.json), stopped (a checkpoint), or new.
    A folder that holds a run of other settings is refused: its results would answer another question."""
    if (run.folder / run_folder.CONFIG).is_file():
        saved = run_folder.read_config(run.folder)
        if not saved.same_model(run.cfg):
            raise UserError(f"{run.folder} holds a run with other settings ({saved.command()}); "
                            "give the sweep another --out, or the settings of that run")
    found = run_folder.status(run.folder)
    if found == "finished":
        run.status, run.metrics = "done", run_folder.read_metrics(run.folder)
    elif found == "stopped":
        run.status = "to resume"
    return run


def command(run):
    """The command line that trains (or continues) `run`: main.py's, through the package (dann/train.py),
    so that a sweep runs wherever the package is installed."""
    main = [sys.executable, "-m", "dann.train"]
    if run.status == "to resume":
        return main + ["--resume", str(run.folder), "--device", run.cfg.device]
    return main + [*run.cfg.flags(everything=True), "--out", str(run.folder)]


# ---------------------------------------------------------------- running them

def run_all(runs, launcher, log_dir):
    """Train the runs not done yet through `launcher` (dann/launchers.py: on this machine, or on a Ray
    cluster), as many side by side as it allows, a run that refines another once that one is done.
    Each run's output goes to log_dir/<candidate>-seed<S>.log. Ctrl-C or SIGTERM stops every running
    run (each saves) and returns False; True when no run is left to start."""
    refined = {r.after.name for r in runs if r.after}
    # a run others refine first, so that they can start early; a refinement once its run is done
    waiting = sorted((r for r in runs if r.status in ("to train", "to resume")),
                     key=lambda r: (r.after is not None, r.name not in refined))
    running = {}
    if waiting:
        launcher.open()
    with stop_requests(forward=lambda sig: launcher.stop(list(running), sig)) as stop, \
            tqdm(total=len(waiting), unit="run", desc="runs", dynamic_ncols=True, disable=not waiting) as bar:
        while (waiting or running) and not (stop["now"] and not running):
            for run in list(waiting):
                if stop["now"] or len(running) >= launcher.slots:
                    break
                if run.after and run.after.status in ("failed", "skipped", "stopped"):
                    run.status, run.note = "skipped", f"the run it refines, {run.after.name}, did not finish"
                    waiting.remove(run)
                    bar.update()
                elif run.after is None or run.after.status == "done":
                    running[start(run, launcher, log_dir)] = run
                    waiting.remove(run)
            time.sleep(0.2)
            for handle, run in list(running.items()):
                if launcher.ended(handle):
                    del running[handle]
                    finished(run, stop["now"], bar, launcher.failure(handle))
    return not waiting


def train_copies(configs, out, launcher):
    """main.py --seeds through a launcher: each seed's run ({seed: Config}) trained in out/seed<S> as a
    process of its own, side by side or on a cluster, one that finished already not trained again, one
    stopped continued. -> their metrics, or None (each run saved) when one did not finish."""
    runs = [read_status(CandidateRun(cfg.method, seed, cfg, out / f"seed{seed}", None)) for seed, cfg in configs.items()]
    outputs.refuse_foreign([log_path(out / "logs", r) for r in runs], "choose another --out")
    with contextlib.closing(launcher):
        if any(r.status != "done" for r in runs):
            launcher.open()  # a cluster that does not answer, or cannot hold a run, is refused before the folder is made
        outputs.claim_folder(out, "row")  # so that the same command continues it
        run_all(runs, launcher, out / "logs")
    unfinished = [r for r in runs if r.status != "done"]
    for r in unfinished:
        print(f"not finished: {r.name} ({r.status}{': ' + r.note if r.note else ''}); the same command continues it",
              file=sys.stderr)
    return None if unfinished else [r.metrics for r in runs]


def log_path(log_dir, run):
    return log_dir / f"{run.candidate}-seed{run.seed}.log"


SHARED = ("chosen", "ensemble")  # the sweep's two offers, each a model folder of its own
CHOICE = "choice.json"


def check_out(out, runs, no_train):
    """Before anything is trained or written: `out` is new, empty or a sweep of choose.py's, and no
    file of the user's stands where the sweep writes (its record, its offers, its runs' logs)."""
    outputs.check_folder(out, "sweep", "--out")
    if no_train and not (out / CHOICE).is_file() and not any(r.status == "done" for r in runs):
        raise UserError(f"--no-train: {out} holds no finished run of this sweep; train them first (the same "
                        "command without --no-train)")
    for name in SHARED:
        outputs.check_folder(out / name, "model", "--out")
    outputs.refuse_foreign([out / CHOICE, *(out / name / f for name in SHARED for f in (run_folder.CHECKPOINT,
                            run_folder.METRICS)), *(log_path(out / "logs", r) for r in runs)],
                           "choose another --out")


def start(run, launcher, log_dir):
    run.log = log_path(log_dir, run)
    tqdm.write(f"{'continuing' if run.status == 'to resume' else 'training'} {run.name}: {run.cfg.command()} "
               f"(output: {run.log})", file=sys.stderr)
    argv = command(run)
    run.status = "running"
    return launcher.start(argv, run.log)


def finished(run, stopping, bar, failure=None):
    """Read what a run left in its folder: its metrics, or why it did not finish (`failure`: what the
    launcher knows beyond the log, such as a Ray worker that died)."""
    if run_folder.status(run.folder) == "finished":
        read_status(run)
        bar.update()
        tqdm.write(f"done {run.name}: class shift {run.metrics['label_free']['class_shift']:.4f}, "
                   f"{run.metrics['wall_time_s']:.0f} s", file=sys.stderr)
    elif stopping:
        run.status = "stopped"
    else:
        run.status, run.note = "failed", "; ".join(filter(None, (failure, last_line(run.log))))
        bar.update()
        tqdm.write(f"failed {run.name}: {run.note}", file=sys.stderr)


def last_line(log):
    """The last line a failed main.py printed: its one-line error."""
    lines = [line.strip() for line in log.read_text(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    return f"{lines[-1] if lines else 'no output'} (all of it: {log})"


# ---------------------------------------------------------------- choosing

def score_all(runs, sets):
    """Score every finished run's final model on `sets` (training.load_data's) with the scores as they
    are now, so that a sweep made before a score existed gains it without training anything, and each
    candidate by its agreement with the ensemble of all of them (the mean of their predictions), and with
    its own other seeds (seed_agreement, None for a candidate of one seed)."""
    done = [r for r in runs if r.status == "done"]
    predictions = {}
    for r in done:
        e = evidence(load_checkpoint(r.folder / run_folder.CHECKPOINT)[0], sets)
        r.scores = label_free_scores(e, METHODS[r.cfg.method])
        r.class_mix = [round(share, 4) for share in estimated_class_mix(e).tolist()]
        predictions[r.name] = e.probs
    candidates = [r for r in done if r.eligible]
    for r, agreement in zip(candidates, ensemble_agreement([predictions[r.name] for r in candidates])):
        r.scores["agreement"] = agreement
    for name in {r.candidate for r in candidates}:
        copies = [r for r in candidates if r.candidate == name]
        for r, agreement in zip(copies, seed_agreement([predictions[r.name] for r in copies])):
            r.scores["seed_agreement"] = agreement


def choose(runs):
    """The finished candidate run RULE picks, or None when none finished."""
    done = [r for r in runs if r.status == "done" and r.eligible]
    return min(done, key=lambda r: rank_key(r.scores), default=None)


def estimated_accuracy(run):
    """A finished candidate's estimated target accuracy and how it was estimated: its agreement with its
    other seeds (GDE) where it has any, which erred by .033 on average against ATC's .088 over 11 runs of
    MNIST -> MNIST-M (RESULTS.md, 'How far to trust a reading'); else ATC."""
    gde = run.scores.get("seed_agreement")
    return (gde, "agreement with its other seeds") if gde is not None else (run.scores["estimated_accuracy"], "ATC")


def most_accurate(runs):
    """The finished candidate run with the best target test accuracy: known only with target labels,
    which the choice never reads; None for an unlabelled target."""
    done = [r for r in runs if r.status == "done" and r.eligible and r.metrics["target_test_acc"] is not None]
    return max(done, key=lambda r: r.metrics["target_test_acc"], default=None)


def share_chosen(chosen, folder):
    """Put the chosen model where valid.py and image_annotate.py find it: folder/checkpoint.pt (the
    weights it is evaluated with, as a shared model) beside a copy of its metrics.json. Written
    last, it is also the newest finished run under runs/, which both scripts take by default."""
    ckpt = load_checkpoint(chosen.folder / run_folder.CHECKPOINT)[1]
    outputs.claim_folder(folder, "model")
    run_folder.write_metrics(folder, chosen.metrics)
    outputs.save(weights_only(ckpt), folder / run_folder.CHECKPOINT)


def share_ensemble(runs, sets, folder):
    """The mean of every finished candidate's predictions, as one model in folder/ (checkpoint.pt and
    metrics.json) that valid.py and image_annotate.py read: choose.py's second offer, since over 20
    one-seed sweeps it beat the rule's choice on average and source-only every time (RESULTS.md,
    'Estimating target accuracy'). Returns its metrics, or None with fewer than two candidates."""
    done = [r for r in runs if r.status == "done" and r.eligible]
    if len(done) < 2:
        return None
    models, ckpts = zip(*(load_checkpoint(r.folder / run_folder.CHECKPOINT) for r in done))
    model, ckpt = ensemble_of(models, {**ckpts[0]["config"], "method": "ensemble"}, max(c["step"] for c in ckpts))
    (x, y), labelled = sets.source_test, sets.target_test
    metrics = {"members": [r.name for r in done], "source_test_acc": accuracy(predictions(model, x), y),
               "target_test_acc": None if labelled[1] is None else accuracy(predictions(model, labelled[0]), labelled[1]),
               **label_free_report(model, sets, None), **trust.decide(model, sets.source_test, sets.target_train[0])}
    outputs.claim_folder(folder, "model")
    run_folder.write_metrics(folder, metrics)
    outputs.save({**ckpt, **{k: metrics[k] for k in ("temperature", "unsure_below")}}, folder / run_folder.CHECKPOINT)
    return metrics


def report(runs, chosen, threads, ensemble=None):
    """choose.py's record of a sweep (choice.json): the rule, every run with its scores, the choice."""
    def row(r):
        m = r.metrics or {}
        return {"candidate": r.candidate, "seed": r.seed, "eligible": r.eligible, "folder": str(r.folder),
                "status": r.status,
                "note": r.note, "command": f"OMP_NUM_THREADS={threads} {r.cfg.command()}",
                "label_free": r.scores, "target_class_mix": r.class_mix, "target_test_acc": m.get("target_test_acc"),
                "source_test_acc": m.get("source_test_acc"), "wall_time_s": m.get("wall_time_s")}
    best = most_accurate(runs)
    return {"rule": RULE, "chosen": chosen and chosen.name, "most_accurate": best and best.name,
            "note": "target accuracies are reported, never read by the rule", "runs": [row(r) for r in runs],
            "ensemble": ensemble}
