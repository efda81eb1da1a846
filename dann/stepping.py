"""The training step, the core every method trains through: the learning-rate schedule, each
epoch's batches drawn by index from sets resident on the device, the model and its optimizer, and
the step itself (gather, augmentation, schedule, the method's loss, backward, update, the average
of the weights) as one function of device tensors, which on a GPU is captured once as a CUDA graph.
Then the loop that runs it, epoch by epoch, calling back what surrounds a run (dann/training.py: its
folder, console, evaluation, saving); bench.py and the tests build the step alone.
"""
import copy
import itertools
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from tqdm import tqdm

from dann.augment import augmented
from dann.methods import Batch, Method, bf16_autocast
from dann.models import DANN

# ---------------------------------------------------------------- schedule and batches

def learning_rate(p, mu0, alpha, beta):
    """mu_p = mu_0 / (1 + alpha p)^beta (JMLR 2016, section 5.2). p (training progress, 0 -> 1) is
    a tensor, so that the step computes it on the device, inside a captured CUDA graph."""
    return mu0 / (1 + alpha * p) ** beta


def epoch_length(sizes, batch_size):
    """Steps in an epoch: one pass over the smaller training set."""
    return math.ceil(min(sizes) / batch_size)


def drawn_sizes(train_sets, parts=None):
    """The sets a step draws its batches from, in make_step's order (labelled, unlabelled), each as
    the sizes of its parts: `parts` those of a labelled set joined from several sources."""
    images, _, unlabelled = train_sets
    labelled = [] if images is None else [tuple(parts or (len(images),))]
    return labelled + ([] if unlabelled is None else [(len(unlabelled),)])


def epoch_indices(sizes, steps, batch_size, seed, epoch, device):
    """steps x len(sizes) x batch_size indices: each step's labelled (and unlabelled) batch. sizes:
    the parts of each set (drawn_sizes)."""
    return torch.stack([balanced_batches(parts, steps, batch_size, seed, 2 * epoch + k, device)
                        for k, parts in enumerate(sizes)], 1)


PART_SEED = 7_919  # what tells the draws from a set's parts apart: part i draws with seed + i * PART_SEED


def balanced_batches(parts, steps, batch_size, seed, epoch, device):
    """steps x batch_size indices into a set joined from parts of these sizes, each part an equal
    share of every batch (the first parts one more picture where it does not divide), so that a
    small source weighs as much as a large one. With one part: epoch_batches."""
    shares = [batch_size // len(parts) + (i < batch_size % len(parts)) for i in range(len(parts))]
    starts = itertools.accumulate(parts, initial=0)
    return torch.cat([start + epoch_batches(n, steps, share, seed + i * PART_SEED, epoch, device)
                      for i, (n, share, start) in enumerate(zip(parts, shares, starts))], 1)


def epoch_batches(n, steps, batch_size, seed, epoch, device):
    """steps x batch_size indices into a set of n: a fresh permutation per epoch, wrapped
    around when the set is smaller. A pure function of (seed, epoch), so a resumed run
    draws exactly the batches the uninterrupted one would."""
    g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g, device=device)
    return perm[torch.arange(steps * batch_size, device=device) % n].view(steps, batch_size)


# ---------------------------------------------------------------- the step

def model_and_optimizer(cfg, device, classes=10):
    model = DANN(cfg.arch, cfg.dropout, classes, cfg.input_norm).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # 3x faster convolutions on the CPU
    torch.backends.cudnn.benchmark = True  # every step has the same shapes: time the algorithms once
    recipe, gpu = cfg.recipe, device.type == "cuda"
    lr = torch.tensor(recipe.lr, device=device)  # a tensor, so that the step itself can set it
    # fused on a GPU: one kernel updates every parameter (the update is memory-bound there). On
    # the CPU it gains nothing, and it misreads a momentum buffer whose layout differs from its
    # parameter's (torch 2.14), which a checkpoint from another device can bring.
    if recipe.optimizer == "adam":  # capturable: its step count stays on the GPU, inside a CUDA graph
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay,
                               fused=gpu or None, foreach=False if not gpu else None, capturable=gpu)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              fused=gpu)
    return model, opt


def sgd_step(model, opt, method, batch, p, cfg):
    """One SGD step on the method's loss; returns its statistics as one tensor (method.stats order)."""
    # the model's device: a method may have no labelled batch (dirt-t)
    with bf16_autocast(next(model.parameters()).device, cfg.bf16):
        loss, stats = method.loss(model, batch, p, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return torch.stack([stats[name] for name in method.stats]).detach()


def frozen_copy(model):
    """A copy of the model that no gradient reaches: the --ema average, which the step moves
    towards the trained weights, or a teacher (dirt-t, self-train)."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema


def averaged_tensors(model, weights_only=False):
    """What --ema averages: the weights and the batch-norm statistics (every floating-point
    tensor of the state dict), so that the averaged model's normalisation fits its weights. A mean
    teacher averages the weights only (French et al.): its statistics are its own (make_step)."""
    if weights_only:
        return list(model.parameters())
    return [t for t in model.state_dict().values() if t.is_floating_point()]


@dataclass
class StepState:
    """What the step reads and writes besides the weights: device tensors only, so that a captured
    CUDA graph replays on the same memory. The loop fills `batches` at the start of each epoch."""
    step: torch.Tensor  # the global step count
    lr: torch.Tensor  # the optimizer's learning rate, which the step sets from the schedule
    batches: torch.Tensor  # this epoch's indices: steps_per_epoch x (labelled, unlabelled) x batch_size
    sums: torch.Tensor  # the method's statistics summed over this epoch's steps
    last: torch.Tensor  # the last step's statistics (method.stats order)


def make_step(model, opt, method, train_sets, cfg, total_steps, first_step, ema=None, teacher=None, decay=None):
    """The whole training step (batch gather, augmentation, schedule, loss, backward, update) as
    a function of tensors on the training device only: the step counter, this epoch's batch
    indices and the running sums of the method's statistics live in the returned state, so
    that on a GPU the step is captured once in a CUDA graph and replayed with no host round trip
    (unless cfg turns the graph off). train_sets: (labelled images, labels, unlabelled images),
    None where the method takes no such batch; ema: the averaged copy of the model that the step
    updates (by 1 - decay; decay defaults to cfg.ema), or None; teacher: the model whose
    predictions the method follows (a mean teacher is the ema), or None.
    Returns (step, state): step() runs one training step; state is its StepState."""
    images, labels, unlabelled = train_sets
    device = (unlabelled if images is None else images).device
    steps_per_epoch = total_steps // cfg.epochs
    lr, recipe = opt.param_groups[0]["lr"], cfg.recipe
    n_stats, n_batches = len(method.stats), (images is not None) + (unlabelled is not None)
    mean_teacher = teacher is not None and teacher is ema
    averaged, trained = ([], []) if ema is None else (averaged_tensors(ema, mean_teacher),
                                                      averaged_tensors(model, mean_teacher))
    decay = cfg.ema if decay is None else decay
    teacher_view = (method.teacher and method.teacher.view) or (lambda x: x)
    # French et al.'s mean teacher reads in training mode: it normalises each target batch by that
    # batch's statistics, and its running statistics, used where it is evaluated, follow the target alone
    teacher_in_training_mode = mean_teacher and model.batch_norm
    state = StepState(step=torch.tensor(first_step, device=device), lr=lr,
                      batches=torch.zeros(steps_per_epoch, n_batches, cfg.batch_size, dtype=torch.long, device=device),
                      sums=torch.zeros(n_stats, device=device), last=torch.zeros(n_stats, device=device))

    def step():
        indices = iter(state.batches.index_select(0, (state.step % steps_per_epoch).view(1))[0])
        p = state.step.double() / total_steps
        lr.copy_(learning_rate(p, recipe.lr, recipe.lr_alpha, cfg.lr_beta))
        batch = Batch(None, None)
        if images is not None:
            chosen = next(indices)
            batch.images, batch.labels = images.index_select(0, chosen), labels.index_select(0, chosen)
        if unlabelled is not None:
            batch.unlabelled = unlabelled.index_select(0, next(indices))
        if teacher is not None:  # on the plain images unless the method says otherwise: a teacher
            with torch.no_grad():  # unsure of --augment's shifted ones would hold the model there
                if teacher_in_training_mode:
                    teacher.train()
                batch.teacher_probs = torch.softmax(teacher(teacher_view(batch.unlabelled)).float(), 1)
                if teacher_in_training_mode:
                    teacher.eval()  # where it is evaluated and saved
        if cfg.augment:
            batch.images, batch.unlabelled = (x if x is None else augmented("light", x)
                                              for x in (batch.images, batch.unlabelled))
        stats = sgd_step(model, opt, method, batch, p, cfg)
        if ema is not None:
            with torch.no_grad():  # one fused kernel for all weights: ema += (1 - decay) (w - ema)
                torch._foreach_lerp_(averaged, trained, 1 - decay)
        state.last.copy_(stats)
        state.sums.add_(stats)
        state.step.add_(1)

    if device.type == "cuda" and cfg.cuda_graph:
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
        except RuntimeError as e:  # torch's capture errors (CUDA, unsupported ops): the eager step still trains
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            tqdm.write(f"CUDA graph capture failed ({reason}); going on with the eager step, as --no-cuda-graph does",
                       file=sys.stderr)
            self.eager = True
            self.step()
            return
        self.graph = graph
        graph.replay()


# ---------------------------------------------------------------- the loop

@dataclass
class Run:
    """What a run trains with, built by setup(): the model and its optimizer, the models that
    train beside it, the step and its state, and the shape of the schedule."""
    cfg: Any  # a dann.config.Config
    method: Method
    model: DANN
    opt: torch.optim.Optimizer
    ema: Optional[DANN]  # --ema's average, which is then the model evaluated and shared
    teacher: Optional[DANN]  # the model the method follows, if it follows one
    step: Callable[[], None]  # one training step
    state: StepState
    sizes: list  # the sizes of the training sets the step draws from (labelled, unlabelled)
    steps_per_epoch: int
    total_steps: int
    class_names: tuple  # what the model's outputs mean, saved with it
    init_note: Optional[str] = None  # "unfinished, step K of N" when --init names an unfinished run

    @property
    def evaluated(self):
        """The model reported, evaluated and saved for sharing."""
        return self.model if self.ema is None else self.ema

    @property
    def companions(self):
        """The models a checkpoint carries beside the trained one (None where absent; a mean teacher is the ema)."""
        return {"ema": self.ema, "teacher": None if self.teacher is self.ema else self.teacher}

    def start_epoch(self, epoch):
        """Load the epoch's batches (a pure function of seed and epoch) and reset its sums."""
        device = self.state.batches.device
        self.state.batches.copy_(epoch_indices(self.sizes, self.steps_per_epoch, self.cfg.batch_size, self.cfg.seed,
                                               epoch, device))
        self.state.sums.zero_()


def train_steps(run, step, shell):
    """The loop, from `step` to the run's last: epoch by epoch, the epoch's batches drawn, then its
    steps, a teacher moved after each. Between them it calls `shell`, what surrounds the run (checks,
    console, curves, evaluation, saving: dann/training.py's Surroundings): after_step(step) after every
    step, end_of_steps(step, first) at an epoch's end or where a stop ended it, stop_requested() to
    end early. -> the step reached."""
    while step < run.total_steps and not shell.stop_requested():
        epoch, first = divmod(step, run.steps_per_epoch)
        run.start_epoch(epoch)
        for _ in range(first, run.steps_per_epoch):
            run.step()
            step += 1
            if run.method.teacher:
                run.method.teacher.after_step(run.teacher, run.evaluated, step, run.cfg)
            shell.after_step(step)
            if shell.stop_requested():
                break
        shell.end_of_steps(step, first)
    return step
