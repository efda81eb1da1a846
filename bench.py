"""Training throughput: this project's step against the usual DataLoader pipeline.

    python bench.py                       # every task, on the CPU and (when present) the GPU
    python bench.py --devices cuda --tasks svhn-mnist --steps 2000
    python bench.py --real                # the real training sets, where downloaded

For each task it times, on each device:
  baseline      the usual pipeline of PyTorch DANN code: a torch DataLoader with per-sample
                torchvision transforms (random crop with padding 4, colour jitter 0.4), a
                plain NCHW fp32 model and torch's default SGD, stepped eagerly;
  this project  dann/training.py's step, as main.py runs it: data resident on the device as uint8,
                the whole step (batch gather, schedule, forward, backward, fused SGD) a function
                of device tensors, captured in one CUDA graph on a GPU; with --augment (the
                baseline's distortions, batched on the device) and with --bf16; with --ema,
                and the step of each other method (--method);
  on a GPU also the same step launched eagerly (no graph) and with the model torch.compile'd.
By default the images are random tensors of the real dataset shapes, so no dataset is needed.
It then checks that the fast step (fp32, bf16, and on a GPU the captured graph) gives the
same losses and parameter updates as the plain eager step on the same batches.
"""
from dann.cli import one_line_errors, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

import argparse
import os

import torch

from dann import benchmark
from dann.benchmark import TASKS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                   help="where to measure (default: cpu, plus cuda when present)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="which configurations to time")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per measurement (default: 300 on a GPU, 10 on the CPU)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader workers for the baseline (default: min(8, CPU count))")
    p.add_argument("--real", action="store_true", help="time on the real training sets (they must be downloaded)")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the same-step checks")
    p.add_argument("--json", default="bench.json", help="where to write the results (default: bench.json)")
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error("--steps must be at least 1")
    if args.workers < 0:
        p.error("--workers must be 0 or more")
    if "cuda" in (args.devices or ()) and not torch.cuda.is_available():
        p.error("--devices cuda: no CUDA device is visible")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        p.error(f"--json {args.json}: its folder does not exist")  # found now, not after minutes of timing
    return args


def main(argv=None):
    return benchmark.run(parse_args(argv))


if __name__ == "__main__":
    run_script(main)
