"""Training throughput, the engine behind bench.py: this project's step against the usual
DataLoader pipeline, on each device, and the check that the fast step computes what the plain
eager step computes (bench.py's --help says what is timed)."""
import itertools
import json
import platform
import subprocess
import time

import torch
import torchvision.transforms.v2 as T

from dann import datasets, outputs, stepping, training
from dann.common import REPO, UserError
from dann.config import Config
from dann.datasets import load_domain, missing_files
from dann.methods import METHODS, Batch
from dann.models import DANN

TASKS = {  # name: (source, target, source train size, target train size, arch)
    "svhn-mnist": ("svhn", "mnist", 73_257, 60_000, "svhn"),
    "mnist-mnist_m": ("mnist", "mnist_m", 60_000, 59_001, "mnist"),
    "mnist-mnist_m-bn": ("mnist", "mnist_m", 60_000, 59_001, "mnist-bn"),  # French et al.'s network
}
BATCH = 128
EPOCHS = 100  # the paper's schedule, for the projection
PLAIN = Config()  # what the plain step computes: the paper's recipe, in fp32
CHECK_STEPS = 5  # enough for the CUDA graph to be captured and replayed (3 eager warm-up calls)


def fake_domain(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g)


def task_data(task, real):
    source, target, n_s, n_t, _ = TASKS[task]
    if not real:
        return fake_domain(n_s, 0), fake_domain(n_t, 1)
    for name in (source, target):
        if missing_files(name, splits=["train"]):
            raise UserError(f"{name} is not downloaded; run: python download_data.py --datasets {name}")
    return load_domain(source, "train"), load_domain(target, "train")


def config(arch, **changes):
    """The default DANN recipe on this network (batch size BATCH, EPOCHS epochs)."""
    return Config(**{"arch": arch, "batch_size": BATCH, "epochs": EPOCHS, **changes})


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def project_run(cfg, source, target, device, compile_model=False, first_step=0):
    """The run train() would build (training.setup: cfg.method's model, optimizer, companions and
    step) on these tensors, from first_step of the 100-epoch schedule on, its first epoch's batches
    loaded. A teacher's method is timed from fresh weights: the same cost."""
    torch.manual_seed(0)
    sets = datasets.TaskData(source_train=tuple(t.to(device) for t in source),
                             target_train=tuple(t.to(device) for t in target))
    run, _ = training.setup(cfg, sets, device, first_step=first_step, read_init=False)
    if compile_model:  # the whole training forward pass: standardize, both heads, the reversal layer
        run.model.adversarial = torch.compile(run.model.adversarial)
    run.start_epoch(0)
    return run


def plain_model(arch, device):
    torch.manual_seed(0)
    model = DANN(arch).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)


def plain_step(model, opt, images, labels, unlabelled, step, total_steps):
    """One DANN step the usual way: the learning rate set from Python, then the method's loss."""
    p = torch.tensor(step / total_steps, dtype=torch.float64)
    for group in opt.param_groups:
        group["lr"] = stepping.learning_rate(p, 0.01, 10, 0.75).item()
    return stepping.sgd_step(model, opt, METHODS["dann"], Batch(images, labels, unlabelled), p.to(images.device),
                             PLAIN)


def timed(run, device, steps, warmup):
    for _ in range(warmup):
        run()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        run()
    sync(device)
    return (time.perf_counter() - started) / steps


class TransformedDigits(torch.utils.data.Dataset):
    """The usual per-sample pipeline: one image at a time through torchvision transforms."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.transform = T.Compose([T.RandomCrop(28, padding=4), T.ColorJitter(0.4, 0.4, 0.4),
                                    T.ToDtype(torch.float32, scale=True)])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]) * 255, self.labels[i]  # DANN.forward takes 0..255


def time_baseline(arch, source, target, device, steps, warmup, workers, total_steps):
    model, opt = plain_model(arch, device)
    loader = lambda x, y: torch.utils.data.DataLoader(  # noqa: E731
        TransformedDigits(x, y), batch_size=BATCH, shuffle=True, drop_last=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    source, target = iter(loader(*source)), iter(loader(*target))
    counter = itertools.count()

    def run():
        (bx, by), (tx, _) = next(source), next(target)
        plain_step(model, opt, bx.to(device, non_blocking=True), by.to(device, non_blocking=True),
                   tx.to(device, non_blocking=True), next(counter), total_steps)
    return timed(run, device, steps, warmup)


def check_same_steps(arch, device, bf16, **changes):
    """CHECK_STEPS calls of the fast step (graph on a GPU, channels_last on the CPU, schedule on
    the device) against the plain eager step on the same batches, started each time from the
    fast model's weights and momentum: each step's losses, and the update of all parameters
    together as ||fast - plain|| / ||plain||. Restarting from the same point keeps the check
    sharp: on random data two fp32 trajectories drift apart within a few steps. `changes` alter
    the fast step's configuration only (the tests use it to see the check fail)."""
    source, target = fake_domain(CHECK_STEPS * BATCH, 1), fake_domain(CHECK_STEPS * BATCH, 2)
    total = EPOCHS * CHECK_STEPS
    first = total // 2  # mid-schedule, where lambda is near 1 and the reversed gradient counts
    run = project_run(config(arch, bf16=bf16, **changes), source, target, device, first_step=first)
    fast, fast_opt = run.model, run.opt
    with torch.no_grad():  # a new model's output layers are zero: no gradient would reach the reversal layer
        for head in (fast.label_classifier[-1], fast.domain_classifier[-1]):
            torch.nn.init.xavier_uniform_(head.weight)
    plain, opt = plain_model(arch, device)
    (xs, ys), (xt, _) = source, target
    xs, ys, xt = xs.to(device), ys.to(device), xt.to(device)
    worst_loss = worst_update = 0.0
    for i in range(CHECK_STEPS):
        with torch.no_grad():
            for p, q in zip(fast.parameters(), plain.parameters()):
                q.copy_(p)
                if "momentum_buffer" in fast_opt.state[p]:
                    opt.state[q]["momentum_buffer"] = fast_opt.state[p]["momentum_buffer"].clone(
                        memory_format=torch.contiguous_format)
        before = [p.detach().clone() for p in plain.parameters()]
        torch.manual_seed(i)  # a network with dropout (mnist-bn) draws the same masks in both steps
        run.step()
        il, iu = run.state.batches[(first + i) % CHECK_STEPS]
        torch.manual_seed(i)
        expected = plain_step(plain, opt, xs[il], ys[il], xt[iu], first + i, total)
        worst_loss = max(worst_loss, ((run.state.last[:2] - expected[:2]).abs() / expected[:2].abs()).max().item())
        diff = torch.stack([(a.detach() - b.detach()).norm() for a, b in zip(fast.parameters(), plain.parameters())])
        update = torch.stack([(b.detach() - b0).norm() for b, b0 in zip(plain.parameters(), before)])
        worst_update = max(worst_update, (diff.norm() / update.norm()).item())
    # fp32 paths differ in summation order, and now and then that flips a ReLU that sat at 0;
    # bf16 keeps 8 bits of mantissa in the forward pass and the gradients that flow back.
    loss_tol, update_tol = (1e-2, 0.15) if bf16 else (1e-4, 1e-2)
    return {"precision": "bf16" if bf16 else "fp32", "steps": CHECK_STEPS, "max_rel_loss_diff": worst_loss,
            "max_rel_update_diff": worst_update, "loss_tolerance": loss_tol, "update_tolerance": update_tol,
            "ok": worst_loss < loss_tol and worst_update < update_tol}


def variants(device):
    """(pipeline name, config changes, compile?) timed on this device."""
    found = [("this project", {}, False), ("+ --augment", {"augment": True}, False), ("+ --bf16", {"bf16": True}, False),
             ("+ --ema 0.998", {"ema": 0.998}, False), ("--method dann-im", {"method": "dann-im"}, False),
             ("--method vada", {"method": "vada"}, False),
             ("--method dirt-t", {"method": "dirt-t", "init": "unread"}, False),
             ("--method self-train --augment", {"method": "self-train", "init": "unread", "augment": True}, False),
             ("--method self-ensemble", {"method": "self-ensemble"}, False),
             ("--method adamatch", {"method": "adamatch"}, False)]
    if device.type == "cuda":
        found += [("no CUDA graph", {"cuda_graph": False}, False), ("+ torch.compile", {}, True),
                  ("+ compile + bf16", {"bf16": True}, True)]
    return found


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def measure(task, source, target, device, steps, workers):
    arch = TASKS[task][4]
    steps_per_epoch = stepping.epoch_length((len(source[0]), len(target[0])), BATCH)
    timings = {"baseline": time_baseline(arch, source, target, device, steps, 3, workers, EPOCHS * steps_per_epoch)}
    for name, changes, compile_model in variants(device):
        try:
            run = project_run(config(arch, **changes), source, target, device, compile_model)
            timings[name] = timed(run.step, device, steps, warmup=5)  # 5: past the graph capture
        except RuntimeError as e:  # torch's errors (compile, CUDA, memory): reported, and the others still run
            print(f"{task} {name} on {device_name(device)} failed: {type(e).__name__}: {str(e).splitlines()[0]}")
    return [{"device": device_name(device), "task": task, "arch": arch, "pipeline": name,
             "ms_per_step": sec * 1e3, "pairs_per_s": BATCH / sec, "epoch_s": steps_per_epoch * sec,
             "projected_100_epochs_s": EPOCHS * steps_per_epoch * sec, "speedup": timings["baseline"] / sec}
            for name, sec in timings.items()]


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO).stdout.strip() or None
    except OSError:
        return None


def print_table(rows, checks):
    w = max(len("pipeline"), *(len(r["pipeline"]) for r in rows))
    print(f"{'device':<24} {'task':<15} {'pipeline':<{w}} {'ms/step':>8} {'pairs/s':>8} {'1 epoch':>8} "
          f"{'100 epochs':>10} {'speed-up':>8}")
    for r in rows:
        print(f"{r['device']:<24} {r['task']:<15} {r['pipeline']:<{w}} {r['ms_per_step']:>8.2f} {r['pairs_per_s']:>8.0f} "
              f"{r['epoch_s']:>7.1f}s {r['projected_100_epochs_s'] / 60:>8.1f} m {r['speedup']:>7.2f}x")
    for c in checks:
        print(f"same-step check, {c['device']}, {c['arch']} net, {c['precision']}, {c['steps']} steps: losses within "
              f"{c['max_rel_loss_diff']:.1e} (tolerance {c['loss_tolerance']:g}), updates within "
              f"{c['max_rel_update_diff']:.1e} (tolerance {c['update_tolerance']:g}), relative to the plain step: "
              f"{'OK' if c['ok'] else 'MISMATCH'}")


def run(args):
    """The measurements bench.py's flags ask for: printed, and written to args.json."""
    devices = [torch.device(d) for d in args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])]
    rows, checks = [], []
    for task in args.tasks:
        source, target = task_data(task, args.real)
        for device in devices:
            rows += measure(task, source, target, device, args.steps or (300 if device.type == "cuda" else 10),
                            args.workers)
    if args.check:
        for device in devices:
            for arch in sorted({TASKS[t][4] for t in args.tasks}):
                for bf16 in (False, True):
                    checks.append({"device": device_name(device), "arch": arch, **check_same_steps(arch, device, bf16)})
    print_table(rows, checks)
    result = {"commit": commit(), "torch": torch.__version__, "machine": platform.machine(),
              "data": "real" if args.real else "random tensors of the real shapes", "rows": rows, "checks": checks}
    outputs.save(json.dumps(result, indent=2), args.json)
    return result
