"""Training throughput: this project's step against the usual DataLoader pipeline.

    python bench.py                       # both tasks, on the CPU and (when present) the GPU
    python bench.py --devices cpu --json bench.json

For each task it times (1) main.py's training step, data resident on the device as uint8
and batches gathered by index, and (2) a baseline the way the original repository trained:
a torch DataLoader with per-sample torchvision transforms (random crop with padding 4,
colour jitter 0.4) and an eager fp32 step. Both use tensors of the real dataset shapes, so
no dataset is needed. It also checks that the fast step computes the same loss and update
as a plain eager step on the same batch.
"""
import argparse
import copy
import json
import os
import platform
import time

import torch
import torchvision.transforms.v2 as T

import main
from models import DANN

TASKS = {  # name: (source train size, target train size, arch)
    "svhn->mnist": (73_257, 60_000, "svhn"),
    "mnist->mnist_m": (60_000, 59_001, "mnist"),
}
BATCH = 128


def fake_domain(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g)


def make_model(arch, device, channels_last):
    torch.manual_seed(0)
    model = DANN(arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_fast(arch, xs, ys, xt, device, steps, warmup):
    """main.py's loop body: resident data, batches by index, lr and lambda set every step."""
    model, opt = make_model(arch, device, channels_last=device.type == "cpu")
    xs, ys, xt = xs.to(device), ys.to(device), xt.to(device)
    total = steps + warmup
    idx_s = main.epoch_batches(len(xs), total, BATCH, 0, 0, device)
    idx_t = main.epoch_batches(len(xt), total, BATCH, 0, 1, device)
    for i in range(total):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        p = i / total
        for group in opt.param_groups:
            group["lr"] = main.learning_rate(p, 0.01, 10, 0.75)
        model.grl.set_lambda(main.adaptation_weight(p, 10))
        main.train_step(model, opt, xs[idx_s[i]], ys[idx_s[i]], xt[idx_t[i]], "dann")
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


def time_baseline(arch, xs, ys, xt, device, steps, warmup, workers):
    model, opt = make_model(arch, device, channels_last=False)
    loader = lambda x, y: torch.utils.data.DataLoader(  # noqa: E731
        TransformedDigits(x, y), batch_size=BATCH, shuffle=True, drop_last=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    source, target = iter(loader(xs, ys)), iter(loader(xt, torch.zeros(len(xt), dtype=torch.long)))
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        (bx, by), (tx, _) = next(source), next(target)
        main.train_step(model, opt, bx.to(device, non_blocking=True), by.to(device, non_blocking=True),
                        tx.to(device, non_blocking=True), "dann")
    sync(device)
    return (time.perf_counter() - started) / steps


def check_same_step(arch, device):
    """The fast step (channels_last on the CPU) against a plain NCHW eager step on one batch."""
    xs, ys = fake_domain(BATCH, 1)
    xt, _ = fake_domain(BATCH, 2)
    xs, ys, xt = xs.to(device), ys.to(device), xt.to(device)
    fast, fast_opt = make_model(arch, device, channels_last=device.type == "cpu")
    plain, plain_opt = make_model(arch, device, channels_last=False)
    for m in (fast, plain):
        m.grl.set_lambda(0.5)
    torch.manual_seed(3)
    loss_fast = main.train_step(fast, fast_opt, xs, ys, xt, "dann")[0].item()
    torch.manual_seed(3)
    loss_plain = main.train_step(plain, plain_opt, xs, ys, xt, "dann")[0].item()
    worst = max((a - b).abs().max().item() / (b.abs().max().item() + 1e-12)
                for a, b in zip(fast.parameters(), plain.parameters()))
    return {"loss_fast": loss_fast, "loss_plain": loss_plain, "max_rel_param_diff": worst,
            "ok": abs(loss_fast - loss_plain) < 1e-4 * max(1, abs(loss_plain)) and worst < 1e-4}


def main_bench(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                   help="where to measure (default: cpu, plus cuda when present)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="which configurations to time")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default: 200 on GPU, 10 on CPU)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader workers for the baseline (default: min(8, CPU count))")
    p.add_argument("--json", default="bench.json", help="where to write the results (default: bench.json)")
    args = p.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for dev in devices:
        device = torch.device(dev)
        steps = args.steps or (200 if dev == "cuda" else 10)
        for task in args.tasks:
            n_s, n_t, arch = TASKS[task]
            xs, ys = fake_domain(n_s, 0)
            xt, _ = fake_domain(n_t, 1)
            steps_per_epoch = -(-min(n_s, n_t) // BATCH)
            fast = time_fast(arch, xs, ys, xt, device, steps, warmup=3)
            base = time_baseline(arch, xs, ys, xt, device, steps, warmup=3, workers=args.workers)
            check = check_same_step(arch, device)
            for name, sec in (("baseline", base), ("this project", fast)):
                rows.append({"device": torch.cuda.get_device_name() if dev == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
                             "task": task, "arch": arch, "pipeline": name, "ms_per_step": sec * 1e3,
                             "pairs_per_s": BATCH / sec, "projected_100_epochs_s": 100 * steps_per_epoch * sec,
                             "speedup": base / sec, "same_step_check": check if name != "baseline" else None})
    print(f"{'device':<22} {'task':<15} {'pipeline':<13} {'ms/step':>9} {'pairs/s':>9} {'100 epochs':>11} {'speed-up':>9}")
    for r in rows:
        print(f"{r['device']:<22} {r['task']:<15} {r['pipeline']:<13} {r['ms_per_step']:>9.2f} {r['pairs_per_s']:>9.0f} "
              f"{r['projected_100_epochs_s'] / 60:>9.1f} m {r['speedup']:>8.2f}x")
    for r in rows:
        if r["same_step_check"]:
            c = r["same_step_check"]
            print(f"same-step check {r['device']} {r['task']}: loss {c['loss_fast']:.6f} vs {c['loss_plain']:.6f}, "
                  f"max relative parameter difference {c['max_rel_param_diff']:.2e}: {'OK' if c['ok'] else 'MISMATCH'}")
    with open(args.json, "w") as f:
        json.dump({"torch": torch.__version__, "machine": platform.machine(), "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main_bench()
