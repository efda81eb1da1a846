"""Train DANN (Ganin & Lempitsky 2015) on a labelled source and an unlabelled target domain.

    python main.py                                        # SVHN -> MNIST, the paper's recipe
    python main.py --source mnist --target mnist_m        # MNIST -> MNIST-M
    python main.py --mode source-only                     # the paper's lower bound
    python main.py --resume runs/svhn-mnist-dann-...      # continue an interrupted run

Both training sets live on the training device as uint8 and batches are gathered there by
index: no DataLoader and no per-sample Python in the loop. The whole step (gather, optional
augmentation, schedule, forward, backward, SGD update) reads and writes only device tensors,
so on a GPU it is captured once as a CUDA graph and replayed. Target labels are used only to
report target accuracy (and, in target-only mode, to train, which is what that mode means).
"""
import argparse
import contextlib
import json
import math
import platform
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import download_data
from checkpoints import restore, save_resumable
from data import DOMAINS, SPLITS, UserError, augment, make_folder, run_script, save_atomic
from models import ARCHS, DEFAULT_ARCH, DANN, add_device_flag, pick_device

MODES = ("dann", "source-only", "target-only")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument_group("task")
    a.add_argument("--source", choices=DOMAINS, default="svhn", help="labelled domain (default: svhn)")
    a.add_argument("--target", choices=DOMAINS, default="mnist", help="unlabelled domain (default: mnist)")
    a.add_argument("--mode", choices=MODES, default="dann",
                   help="dann: adapt; source-only: ignore the target (lower bound); "
                        "target-only: train on target labels (upper bound) (default: dann)")
    a.add_argument("--arch", choices=ARCHS, default=None,
                   help="network; default: the paper's for the source (svhn for svhn, mnist otherwise)")
    a.add_argument("--dropout", type=float, default=0.0, help="dropout in the classifiers' hidden layers (default: 0)")
    a.add_argument("--augment", action="store_true",
                   help="shift every training image by up to 4 pixels and vary its brightness, contrast and saturation "
                        "by up to 40%%, drawn per image, in batches on the device; not in the paper's recipe (default: off)")
    o = p.add_argument_group("optimisation (defaults: the paper's recipe)")
    o.add_argument("--epochs", type=int, default=100, help="epochs; one epoch = the smaller training set once (default: 100)")
    o.add_argument("--batch-size", type=int, default=128, help="images per domain per step (default: 128)")
    o.add_argument("--lr", type=float, default=0.01, help="mu_0, the initial learning rate (default: 0.01)")
    o.add_argument("--lr-alpha", type=float, default=10.0, help="alpha in mu_p = mu_0 / (1 + alpha p)^beta (default: 10)")
    o.add_argument("--lr-beta", type=float, default=0.75, help="beta in the learning-rate schedule (default: 0.75)")
    o.add_argument("--gamma", type=float, default=10.0, help="gamma in lambda_p = 2 / (1 + exp(-gamma p)) - 1 (default: 10)")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    o.add_argument("--weight-decay", type=float, default=1e-5, help="L2 weight decay (default: 1e-5)")
    r = p.add_argument_group("run")
    add_device_flag(r)
    r.add_argument("--bf16", action="store_true",
                   help="forward pass and losses in bfloat16 autocast; weights, gradients and the SGD update stay "
                        "float32. About 2x faster on CPUs with AVX512-BF16 or AMX (slower on CPUs without); see README, "
                        "'Speed' (default: off)")
    r.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                   help="on a GPU, launch every step's kernels from Python instead of replaying one captured "
                        "CUDA graph: slower, but easier to profile or debug (default: graph on)")
    r.add_argument("--seed", type=int, default=0, help="random seed; the same seed on the CPU gives the same numbers (default: 0)")
    r.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<source>-<target>-<mode>-<time>)")
    r.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    r.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N training images per domain (quick trials)")
    r.add_argument("--eval-every", type=int, default=5, metavar="K", help="test accuracies every K epochs and at the end (default: 5)")
    r.add_argument("--save-every", type=int, default=10, metavar="K", help="checkpoint every K epochs and at the end (default: 10)")
    download_data.add_data_flags(r)
    args = p.parse_args(argv)
    if problem := flag_problem(vars(args)):
        p.error(problem)
    return args


def flag_problem(cfg):
    """What is wrong with these settings (flags, or a resumed run's config), in one line; None if nothing."""
    for flag in ("epochs", "batch_size", "eval_every", "save_every"):
        if cfg[flag] < 1:
            return f"--{flag.replace('_', '-')} must be at least 1"
    if not 0 <= cfg["dropout"] < 1:
        return "--dropout must be in [0, 1)"
    if cfg["lr"] <= 0:
        return "--lr must be positive"
    if cfg["limit"] is not None and cfg["limit"] < 1:
        return "--limit must be at least 1"
    if cfg["source"] == cfg["target"] and cfg["mode"] == "dann":
        return "--source and --target are the same domain: there is nothing to adapt"
    return None


# ---------------------------------------------------------------- schedules (JMLR 2016, section 5.2)

# Both take p (training progress, 0 -> 1) as a tensor, so that the step computes them on the
# device, inside a captured CUDA graph, from the step counter it carries.

def learning_rate(p, mu0, alpha, beta):
    return mu0 / (1 + alpha * p) ** beta


def adaptation_weight(p, gamma):
    return 2 / (1 + torch.exp(-gamma * p)) - 1


# ---------------------------------------------------------------- data

def load_data(cfg, device):
    """Train and test sets of both domains, on the device, as uint8 / int64 tensors."""
    loaded = download_data.load_datasets(dict.fromkeys([cfg["source"], cfg["target"]]), SPLITS, cfg["data_dir"],
                                         not cfg["no_download"])
    sets = {}
    for role in ("source", "target"):
        for split in SPLITS:
            x, y = loaded[cfg[role], split]
            if split == "train" and cfg["limit"]:
                x, y = x[:cfg["limit"]], y[:cfg["limit"]]
            sets[f"{role}_{split}"] = (x.to(device), y.to(device))
    return sets


def epoch_length(n_labelled, n_unlabelled, batch_size):
    """Steps in an epoch: one pass over the smaller training set."""
    return math.ceil(min(n_labelled, n_unlabelled) / batch_size)


def epoch_batch_pairs(n_labelled, n_unlabelled, steps, batch_size, seed, epoch, device):
    """steps x 2 x batch_size indices: each step's labelled and unlabelled batch for this epoch."""
    return torch.stack([epoch_batches(n_labelled, steps, batch_size, seed, 2 * epoch, device),
                        epoch_batches(n_unlabelled, steps, batch_size, seed, 2 * epoch + 1, device)], 1)


def epoch_batches(n, steps, batch_size, seed, epoch, device):
    """steps x batch_size indices into a set of n: a fresh permutation per epoch, wrapped
    around when the set is smaller. A pure function of (seed, epoch), so a resumed run
    draws exactly the batches the uninterrupted one would."""
    g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g, device=device)
    return perm[torch.arange(steps * batch_size, device=device) % n].view(steps, batch_size)


# ---------------------------------------------------------------- train / evaluate

def train_step(model, opt, xs, ys, xt, mode, bf16=False):
    """One SGD step on one batch; returns [class loss, domain loss, domain accuracy] as a tensor."""
    # cache_enabled=False: autocast's weight cache would outlive a CUDA graph capture.
    with torch.autocast(xs.device.type, torch.bfloat16, cache_enabled=False) if bf16 else contextlib.nullcontext():
        if mode == "dann":
            logits, domain_logits = model.adversarial(xs, xt)
            domains = (torch.arange(len(xs) + len(xt), device=xs.device) >= len(xs)).long()  # 0 source, 1 target
            domain_loss = F.cross_entropy(domain_logits.float(), domains)
            domain_acc = (domain_logits.argmax(1) == domains).float().mean()
        else:
            logits = model(xs)
            domain_loss = domain_acc = torch.zeros((), device=xs.device)
        class_loss = F.cross_entropy(logits.float(), ys)
    opt.zero_grad(set_to_none=True)
    (class_loss + domain_loss).backward()  # lambda acts inside the reversal layer
    opt.step()
    return torch.stack([class_loss, domain_loss, domain_acc]).detach()


def model_and_optimizer(cfg, device):
    model = DANN(cfg["arch"], cfg["dropout"]).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # 3x faster convolutions on the CPU
    torch.backends.cudnn.benchmark = True  # every step has the same shapes: time the algorithms once
    lr = torch.tensor(cfg["lr"], device=device)  # a tensor, so that the step itself can set it
    # fused on a GPU: one kernel updates every parameter (the update is memory-bound there). On
    # the CPU it gains nothing, and it misreads a momentum buffer whose layout differs from its
    # parameter's (torch 2.14), which a checkpoint from another device can bring.
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                          fused=device.type == "cuda")
    return model, opt


def make_step(model, opt, xl, yl, xu, cfg, total_steps, first_step):
    """The whole training step (batch gather, augmentation, schedule, forward, backward, update)
    as a function of tensors on the training device only: the step counter, this epoch's batch
    indices and the running sums live in the returned state, so that on a GPU the step is
    captured once in a CUDA graph and replayed with no host round trip (unless cfg turns the
    graph off). The caller fills state["batches"] at the start of each epoch.
    Returns (step, state): step() runs one training step."""
    device = xl.device
    steps_per_epoch = total_steps // cfg["epochs"]
    lr = opt.param_groups[0]["lr"]
    state = {"step": torch.tensor(first_step, device=device), "lr": lr,
             "batches": torch.zeros(steps_per_epoch, 2, cfg["batch_size"], dtype=torch.long, device=device),
             "sums": torch.zeros(3, device=device), "last": torch.zeros(3, device=device)}

    def step():
        il, iu = state["batches"].index_select(0, (state["step"] % steps_per_epoch).view(1))[0]
        p = state["step"].double() / total_steps
        lr.copy_(learning_rate(p, cfg["lr"], cfg["lr_alpha"], cfg["lr_beta"]))
        model.grl.set_lambda(adaptation_weight(p, cfg["gamma"]))
        xs, xt = xl.index_select(0, il), xu.index_select(0, iu)
        if cfg["augment"]:
            xs, xt = augment(xs), augment(xt)
        stats = train_step(model, opt, xs, yl.index_select(0, il), xt, cfg["mode"], cfg["bf16"])
        state["last"].copy_(stats)
        state["sums"].add_(stats)
        state["step"].add_(1)

    if device.type == "cuda" and cfg["cuda_graph"]:
        return CapturedStep(step), state
    return step, state


class CapturedStep:
    """step() on a GPU as one CUDA graph. The first calls run eagerly on a side stream (capture
    needs that, and the optimizer creates its momentum buffers there); the next call captures
    the step and replays it; every later call replays it. Each call is one real training step.
    If capture fails (a torch version or driver whose fused SGD or graph support differs), the
    run goes on with the eager step and says so once."""

    def __init__(self, step, warmup=3):
        self.step, self.warmup, self.graph, self.eager = step, warmup, None, False

    def __call__(self):
        if self.graph is not None:
            self.graph.replay()
        elif self.eager:
            self.step()
        elif self.warmup > 0:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step()
            torch.cuda.current_stream().wait_stream(side)
            self.warmup -= 1
        else:
            self.capture()

    def capture(self):
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step()  # recorded, not run
        except Exception as e:  # whatever capture raises, the eager step still trains correctly
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"CUDA graph capture failed ({reason}); going on with the eager step, as --no-cuda-graph does",
                  file=sys.stderr)
            self.eager = True
            self.step()
            return
        self.graph = graph
        graph.replay()


def accuracy(model, images, labels):
    return (model.predict_proba(images).argmax(1) == labels).float().mean().item()


def evaluate(model, sets):
    return {f"{role}_test_acc": accuracy(model, *sets[f"{role}_test"]) for role in ("source", "target")}


# ---------------------------------------------------------------- checkpoints and run folder

def run_config(args):
    """The run's configuration: from the flags, or from the run folder when resuming."""
    if args.resume:
        cfg_file = args.resume / "config.json"
        if not cfg_file.is_file():
            raise UserError(f"--resume {args.resume}: no config.json there; is it a run folder of main.py?")
        try:
            cfg = json.loads(cfg_file.read_text())
        except ValueError:
            raise UserError(f"--resume {args.resume}: config.json is not valid JSON; start a new run instead") from None
        flags = {k: v for k, v in vars(parse_args([])).items() if k not in ("out", "resume")}
        if not isinstance(cfg, dict) or not typed_like_flags({**flags, **cfg}, flags):
            raise UserError(f"--resume {args.resume}: config.json does not hold the settings main.py writes "
                            "(edited by hand?); restore it or start a new run")
        cfg = {**flags, **cfg}  # a run from before a flag existed gets the flag's default
        if problem := flag_problem(cfg):
            raise UserError(f"--resume {args.resume}: config.json says {problem}; restore it or start a new run")
        cfg["device"] = args.device  # the one thing a resumed run may change
        return cfg, args.resume
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "resume")}
    cfg["arch"] = args.arch or DEFAULT_ARCH[args.source]
    out = args.out or Path("runs") / f"{args.source}-{args.target}-{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for the run")
    if (out / "config.json").exists():
        raise UserError(f"--out {out} already holds a run; continue it with --resume {out}, or choose another --out")
    return cfg, out


def typed_like_flags(cfg, defaults):
    """Whether a resumed run's settings have the choices and types main.py's flags give them."""
    kinds = {bool: bool, int: int, float: (int, float), str: str}
    optional = {"limit": int, "data_dir": str}  # flags whose default is None (arch: a choice)
    return (all(cfg[k] in allowed for k, allowed in {"source": DOMAINS, "target": DOMAINS, "mode": MODES,
                                                      "arch": ARCHS}.items())
            and all(isinstance(cfg[k], kinds[type(v)]) for k, v in defaults.items() if v is not None)
            and all(cfg[k] is None or isinstance(cfg[k], kind) for k, kind in optional.items()))


def write_metrics(out, cfg, progress, final, device):
    metrics = {"config": cfg, **final, "history": progress["history"], "wall_time_s": round(progress["wall_time_s"], 1),
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
               "versions": {"python": platform.python_version(), "torch": torch.__version__},
               "note": "accuracies of the final model; main.py selects no epoch or setting by target accuracy"}
    save_atomic(json.dumps(metrics, indent=2), out / "metrics.json")
    return metrics


# ---------------------------------------------------------------- main

@contextlib.contextmanager
def closing_quietly(writer, bar):
    """Close the progress bar and the TensorBoard writer however the loop ends; a writer that
    cannot flush (a full disk) must not hide the message that says what happened."""
    try:
        yield
    finally:
        bar.close()
        try:
            writer.close()
        except OSError:
            pass


@contextlib.contextmanager
def ctrl_c_requests_stop():
    """While active, Ctrl-C sets stop["now"]: the loop finishes its step, saves and returns."""
    stop = {"now": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def train(args):
    cfg, out = run_config(args)
    device = pick_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    sets = load_data(cfg, device)
    if not args.resume:  # only now: a run that cannot start leaves no folder behind
        make_folder(out)
        save_atomic(json.dumps(cfg, indent=2), out / "config.json")
    # source-only never looks at target images; target-only learns from target labels.
    labelled = "target" if cfg["mode"] == "target-only" else "source"
    unlabelled = "target" if cfg["mode"] == "dann" else labelled
    xl, yl = sets[f"{labelled}_train"]
    xu = sets[f"{unlabelled}_train"][0]
    steps_per_epoch = epoch_length(len(xl), len(xu), cfg["batch_size"])
    total_steps = cfg["epochs"] * steps_per_epoch

    model, opt = model_and_optimizer(cfg, device)
    progress = restore(out, model, opt) if args.resume else {"step": 0, "history": [], "wall_time_s": 0.0}
    if progress["step"] >= total_steps:
        raise UserError(f"--resume {out}: that run already finished; its results are in {out}/metrics.json")
    print(f"{cfg['source']} -> {cfg['target']}, {cfg['mode']}, arch {cfg['arch']}, {cfg['epochs']} epochs x "
          f"{steps_per_epoch} steps on {device}; run folder {out}", file=sys.stderr)
    run_step, state = make_step(model, opt, xl, yl, xu, cfg, total_steps, progress["step"])

    from tensorboardX import SummaryWriter
    writer = SummaryWriter(str(out))
    bar = tqdm(total=total_steps, initial=progress["step"], unit="step", dynamic_ncols=True)
    step, started = progress["step"], time.time() - progress["wall_time_s"]
    with ctrl_c_requests_stop() as stop, closing_quietly(writer, bar):
        while step < total_steps and not stop["now"]:
            epoch, first = divmod(step, steps_per_epoch)
            state["batches"].copy_(epoch_batch_pairs(len(xl), len(xu), steps_per_epoch, cfg["batch_size"],
                                                     cfg["seed"], epoch, device))
            state["sums"].zero_()
            for _ in range(first, steps_per_epoch):
                run_step()
                step += 1
                bar.update()
                if step % 50 == 0:  # reading values back syncs the GPU: do it rarely
                    log_step(bar, writer, step, state["last"].tolist(), model.grl.lambd.item(), state["lr"].item(),
                             cfg["mode"] == "dann")
                if stop["now"]:
                    break
            epoch_done = step % steps_per_epoch == 0
            if epoch_done:
                progress["history"].append(end_of_epoch(model, sets, cfg, step // steps_per_epoch,
                                                        (state["sums"] / (steps_per_epoch - first)).tolist(),
                                                        step == total_steps, writer, bar))
            progress.update(step=step, wall_time_s=time.time() - started)
            if stop["now"] or step == total_steps or (epoch_done and (step // steps_per_epoch) % cfg["save_every"] == 0):
                save_resumable(model, opt, cfg, progress, out)
    if step < total_steps:
        print(f"interrupted at step {step}/{total_steps}; saved. Continue with: python main.py --resume {out}",
              file=sys.stderr)
        return None
    final = {k: progress["history"][-1][k] for k in ("source_test_acc", "target_test_acc")}
    metrics = write_metrics(out, cfg, progress, final, device)
    print(f"final model: source test {final['source_test_acc']:.4f}, target test {final['target_test_acc']:.4f}; "
          f"{out}/metrics.json", file=sys.stderr)
    return metrics


def log_step(bar, writer, step, stats, lambd, lr, adversarial):
    c, d, a = stats
    shown = {"loss/class": c, "lr": lr}
    if adversarial:  # the baselines have no domain classifier to report on
        shown.update({"loss/domain": d, "domain_acc": a, "lambda": lambd})
    bar.set_postfix({k.replace("loss/", "loss_"): f"{v:.4g}" for k, v in shown.items()})
    for name, v in shown.items():
        writer.add_scalar(name, v, step)


def end_of_epoch(model, sets, cfg, epoch, means, last, writer, bar):
    """The epoch's record: mean training statistics, plus test accuracies every eval_every epochs
    and after the last one (reported, never used to steer training)."""
    record = dict(zip(("class_loss", "domain_loss", "domain_acc"), means), epoch=epoch)
    if epoch % cfg["eval_every"] == 0 or last:
        record.update(evaluate(model, sets))
        for k in ("source_test_acc", "target_test_acc"):
            writer.add_scalar(f"accuracy_by_epoch/{k}", record[k], epoch)
        bar.write(f"epoch {epoch}: source test {record['source_test_acc']:.4f}, target test {record['target_test_acc']:.4f}")
    return record


if __name__ == "__main__":
    run_script(lambda: train(parse_args()))  # Ctrl-C outside the loop (loading, evaluating): nothing to save
