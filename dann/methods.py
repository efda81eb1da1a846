"""What each training method minimises on one step's batches.

Vocabulary: source and target are the two domains of a task (SVHN -> MNIST); a step sees a
labelled batch (images and labels) and, for adaptation methods, an unlabelled batch (target
images whose labels are never read). Source-only trains on labelled source images, target-only
on labelled target images, DANN on labelled source and unlabelled target images.

A method is a `Method`: its loss function, the domain its labelled batch comes from, whether it
takes an unlabelled batch, the names of the statistics it reports, the `Teacher` it follows if it
learns from another model (a trained one: dirt-t, self-train; its own average: self-ensemble), and
the `Recipe` its paper optimises with. The loss function gets the model, the step's `Batch`, the
training progress p (0 -> 1, a device tensor) and the run's configuration, and returns (the loss
to minimise, {name: scalar tensor}). It must read no value back to the host (no .item(), no Python
branch on a tensor), so that on a GPU the whole step stays one CUDA graph. To add a method: write
its loss function here, its hyperparameters as a small settings dataclass (their flags follow), and
add it to METHODS; `main.py --method NAME` then trains it, with checkpoints, resume, logging and
evaluation as for the others.
"""
import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import torch
import torch.nn.functional as F

from dann.augment import augmented
from dann.common import setting
from dann.models import initialise


@dataclass
class Batch:
    images: torch.Tensor  # labelled images, uint8 (or float 0..255 when augmented)
    labels: torch.Tensor
    unlabelled: Optional[torch.Tensor] = None  # None for methods that take no unlabelled batch
    teacher_probs: Optional[torch.Tensor] = None  # the teacher's predictions on the unlabelled batch


@dataclass(frozen=True)
class Teacher:
    """How a method follows a teacher: a model that no gradient reaches, whose predictions on the
    unlabelled batch (or on `view` of it) the step puts in `Batch.teacher_probs`. The teacher is a
    copy of the --init model, or with averages_student a mean teacher: an exponential moving average
    of the model (decay --teacher-ema), which is then the model evaluated and shared."""
    fresh_student: bool  # the model trained starts from its own initialisation, not the teacher's weights
    refreshed: bool  # the teacher becomes a copy of the evaluated model every --teacher-every steps
    averages_student: bool = False  # a mean teacher, moved towards the model every step
    view: Optional[Callable] = None  # what the teacher sees of the unlabelled batch; None: the plain pictures

    @property
    def needs_init(self):
        """Whether the teacher is a trained model named by --init."""
        return not self.averages_student

    def prepare_student(self, model):
        """Called once, after the teacher was copied from the --init weights in `model`."""
        if self.fresh_student:
            initialise(model)

    def after_step(self, teacher, evaluated, step, cfg):
        if self.refreshed and step % cfg.teacher_every == 0:
            teacher.load_state_dict(evaluated.state_dict())  # in place: a captured graph reads the same tensors


# DIRT-T's teacher follows the model (a proximal step); self-training's stays the model it learns from.
REFRESHED = Teacher(fresh_student=False, refreshed=True)
FIXED = Teacher(fresh_student=True, refreshed=False)


# Self-ensembling's teacher averages the model and sees its own augmented copy of each picture.
MEAN_TEACHER = Teacher(fresh_student=False, refreshed=False, averages_student=True,
                       view=functools.partial(augmented, "french"))


@dataclass(frozen=True)
class Recipe:
    """How a method's paper optimises: SGD with the DANN paper's annealed rate 0.01 / (1 + 10 p)^0.75,
    or Adam at a constant 0.001 (self-ensembling). --optimizer, --lr and --lr-alpha override it."""
    optimizer: str = "sgd"
    lr: float = 0.01
    lr_alpha: float = 10.0


ADAM = Recipe("adam", lr=0.001, lr_alpha=0.0)


@dataclass(frozen=True)
class Method:
    loss: Callable  # (model, batch, p, cfg) -> (loss, {name: scalar tensor})
    labelled: Optional[str]  # "source" or "target": the domain whose labels it trains on; None: no labels
    uses_unlabelled: bool  # whether it takes an unlabelled target batch
    stats: tuple  # the names of the statistics its loss reports, in a fixed order
    teacher: Optional[Teacher] = None  # None: the method learns from no teacher
    augments: bool = False  # augments its batches itself, as its paper does (then --augment is refused)
    recipe: Recipe = Recipe()  # its paper's optimiser, unless the run's flags say otherwise
    settings: tuple = ()  # the settings dataclasses whose fields its loss reads from the run's Config

    @property
    def trains_domain_classifier(self):
        """Whether the domain classifier is trained (dann and its kin); others keep what they started with."""
        return "domain_loss" in self.stats


def adaptation_weight(p, gamma):
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1 (JMLR 2016, section 5.2): 0 at the start, so the
    domain classifier's noisy early gradient does not disturb the features, then towards 1."""
    return 2 / (1 + torch.exp(-gamma * p)) - 1


def dann(model, batch, p, cfg):
    """Ganin & Lempitsky (2015): the class loss on the labelled batch plus a domain classifier's
    loss on both batches, its gradient reversed (times lambda_p) on its way into the features."""
    _, loss, stats = adversarial_terms(model, batch, p, cfg)
    return loss, stats


def adversarial_terms(model, batch, p, cfg, classify_unlabelled=False):
    """DANN's forward pass and loss -> (class logits of the labelled batch, and of the unlabelled
    one after it if asked; DANN's loss; its statistics)."""
    model.grl.set_lambda(adaptation_weight(p, cfg.gamma))
    logits, domain_logits = model.adversarial(batch.images, batch.unlabelled, classify_unlabelled)
    n = len(batch.images)
    domains = (torch.arange(len(domain_logits), device=domain_logits.device) >= n).long()  # 0 source, 1 target
    class_loss = F.cross_entropy(logits[:n].float(), batch.labels)
    domain_loss = F.cross_entropy(domain_logits.float(), domains)
    domain_acc = (domain_logits.argmax(1) == domains).float().mean()
    return logits, class_loss + domain_loss, {"class_loss": class_loss, "domain_loss": domain_loss,
                                              "domain_acc": domain_acc, "lambda": model.grl.lambd}


@dataclass(frozen=True)
class InformationMaximisation:
    paper: ClassVar = "SHOT, Liang et al. 2020"
    im_weight: float = setting(1.0, "weight of (conditional entropy - entropy of the mean prediction) on the target, "
                               "times lambda_p (SHOT: 1)")


def dann_im(model, batch, p, cfg):
    """DANN plus information maximisation on the unlabelled batch (Liang et al., SHOT, ICML 2020,
    section 3.2; Krause et al. 2010): make each prediction confident (low conditional entropy)
    but the predictions as a whole diverse (high entropy of their mean), so that confidence cannot
    collapse onto a few classes. Weight --im-weight (SHOT's 1), ramped in with lambda_p like the
    domain loss: early target predictions are mostly wrong, and confidence would fix them."""
    logits, loss, stats = adversarial_terms(model, batch, p, cfg, classify_unlabelled=True)
    entropy, diversity = prediction_entropies(logits[len(batch.images):])
    loss = loss + cfg.im_weight * stats["lambda"] * (entropy - diversity)
    return loss, {**stats, "entropy": entropy, "diversity": diversity}


@dataclass(frozen=True)
class VirtualAdversarialWeights:
    paper: ClassVar = "VADA, Shu et al. 2018"
    vat_source_weight: float = setting(1.0, "weight of virtual adversarial training on the source (VADA: 1)")
    vat_target_weight: float = setting(0.01, "weight of conditional entropy and of virtual adversarial training on "
                                       "the target (VADA: 0.01)")


@dataclass(frozen=True)
class VirtualAdversarialRadius:
    paper: ClassVar = "Shu et al. 2018"
    vat_radius: float = setting(3.5, "norm of the virtual adversarial perturbation of a standardized image (VADA: 3.5)")


def vada(model, batch, p, cfg):
    """VADA (Shu et al., A DIRT-T Approach to Unsupervised Domain Adaptation, ICLR 2018): DANN
    plus conditional entropy on the unlabelled batch and virtual adversarial training on both
    batches, which keeps the classifier smooth where the data are, so that its decision
    boundaries pass through low-density regions of the target. Weights as in the reference code
    (RuiShu/dirt-t): --vat-source-weight 1 for source VAT, --vat-target-weight 0.01 for the target's
    entropy and VAT, radius --vat-radius 3.5 (here in standardized-pixel units)."""
    logits, loss, stats = adversarial_terms(model, batch, p, cfg, classify_unlabelled=True)
    n = len(batch.images)
    entropy, _ = prediction_entropies(logits[n:])
    vat_source = vat_loss(model, model.prepare(batch.images), logits[:n], cfg.vat_radius)
    vat_target = vat_loss(model, model.prepare(batch.unlabelled), logits[n:], cfg.vat_radius)
    loss = loss + cfg.vat_source_weight * vat_source + cfg.vat_target_weight * (entropy + vat_target)
    return loss, {**stats, "entropy": entropy, "vat_source": vat_source, "vat_target": vat_target}


@dataclass(frozen=True)
class Refinement:
    paper: ClassVar = "DIRT-T, Shu et al. 2018"
    teacher_every: int = setting(5000, "the teacher becomes a copy of the evaluated model every K steps (reference "
                                 "code: 5000)", metavar="K")
    teacher_weight: float = setting(1.0, "weight of KL(teacher || model) on the target, beside entropy and VAT at 1 "
                                    "(the reference's 1e-2 : 1e-2 : 1e-2)")


def dirt_t(model, batch, p, cfg):
    """DIRT-T's refinement (Shu et al. 2018, section 4), a second phase that starts from an adapted
    model (--init) and sees the target alone: conditional entropy and virtual adversarial training
    push its decision boundaries out of the target's dense regions, and a KL term to the teacher
    (the model as it was up to --teacher-every steps ago) keeps each step close to the last, a
    natural-gradient-like proximal step. The reference code weights the three terms 1e-2 each
    under Adam, which ignores a common scale; with SGD the terms keep that 1 : 1 : 1 ratio
    (--teacher-weight scales the KL term)."""
    x = model.prepare(batch.unlabelled)
    logits = model.classify(x)
    entropy, _ = prediction_entropies(logits)
    vat_target = vat_loss(model, x, logits, cfg.vat_radius)
    teacher_kl = kl_from(batch.teacher_probs, logits)
    return entropy + vat_target + cfg.teacher_weight * teacher_kl, {
        "entropy": entropy, "vat_target": vat_target, "teacher_kl": teacher_kl}


def self_train(model, batch, p, cfg):
    """Self-training, a third phase (pseudo-labels, Lee 2013; a noised student as in Noisy Student,
    Xie et al., CVPR 2020): a freshly initialised model learns the class the teacher (--init, e.g.
    a dirt-t run) gives each unlabelled image. The teacher sees the plain image and, with --augment,
    the student a distorted copy, so the student learns the teacher's labels made consistent under
    distortions instead of copying its decision boundaries, and may end more accurate than it.
    Hard labels: the teacher's most probable class (Noisy Student allows soft or hard ones)."""
    pseudo_labels = batch.teacher_probs.argmax(1)
    logits = model(batch.unlabelled).float()
    class_loss = F.cross_entropy(logits, pseudo_labels)
    agreement = (logits.argmax(1) == pseudo_labels).float().mean()
    return class_loss, {"class_loss": class_loss, "agreement": agreement}


@dataclass(frozen=True)
class SelfEnsembling:
    paper: ClassVar = "French et al. 2018"
    teacher_ema: float = setting(0.99, "decay of the mean teacher, the average of the model's weights that is "
                                 "evaluated and shared (French et al.: 0.99)")
    confidence: float = setting(0.968, "a target picture's consistency counts where the teacher's top probability "
                                "exceeds this (French et al.: 0.968)")
    consistency_weight: float = setting(3.0, "weight of the consistency and class-balance terms (French et al.: 3)")
    balance_weight: float = setting(0.005, "weight of the class-balance term within them (French et al.: 0.005)")


def self_ensemble(model, batch, p, cfg):
    """Self-ensembling (French, Mackiewicz & Fisher, ICLR 2018): the class loss on augmented
    labelled pictures, plus, on the unlabelled batch, the squared difference between the model's
    predictions and its mean teacher's (the average of its weights, --teacher-ema, on another
    augmented copy of each picture), counted only where the teacher is confident (--confidence),
    and a class-balance term (binary cross-entropy of the mean prediction against a uniform one,
    scaled by the confident share) that keeps the predictions from collapsing onto a few classes.
    Weights as in the paper: --consistency-weight 3 on both, --balance-weight 0.005 on the second."""
    n = len(batch.images)
    logits = model.classify_apart(augmented("french", torch.cat([batch.images, batch.unlabelled])), n).float()
    class_loss = F.cross_entropy(logits[:n], batch.labels)
    student, teacher = F.softmax(logits[n:], 1), batch.teacher_probs
    confident = (teacher.max(1).values > cfg.confidence).float()
    consistency = (((student - teacher) ** 2).mean(1) * confident).mean()
    balance = class_balance(student) * confident.mean()
    loss = class_loss + cfg.consistency_weight * (consistency + cfg.balance_weight * balance)
    return loss, {"class_loss": class_loss, "consistency": consistency, "balance": balance,
                  "confident": confident.mean()}


def class_balance(probs):
    """Binary cross-entropy of each class's mean predicted probability against 1 / classes, summed."""
    mean = probs.mean(0)
    uniform = torch.full_like(mean, 1 / len(mean))
    with bf16_autocast(mean.device, False):  # CUDA's autocast refuses binary_cross_entropy, even in float32
        return F.binary_cross_entropy(mean.clamp(1e-6, 1 - 1e-6), uniform, reduction="sum")


@dataclass(frozen=True)
class RelativeThreshold:
    paper: ClassVar = "AdaMatch, Berthelot et al. 2022"
    relative_confidence: float = setting(0.9, "a pseudo-label counts where its probability is at least this times "
                                         "the mean top probability on the weak source copies (Berthelot et al.: 0.9)")


def adamatch(model, batch, p, cfg):
    """AdaMatch (Berthelot et al., ICLR 2022): the class loss on a weakly (shift) and a strongly
    augmented copy of each labelled picture, plus the class loss on strongly augmented unlabelled
    pictures towards pseudo-labels from their weakly augmented copies. The pseudo-labels' class mix is
    aligned to the source's (distribution alignment: the target predictions times the ratio of the
    mean source prediction to the mean target prediction), and only those at least --relative-confidence
    times the mean confidence on the weak source copies count (relative threshold). The target term's
    weight rises from 0 to 1 over the first half of training as 1/2 - cos(min(pi, 2 pi p)) / 2.
    The paper's random logit interpolation mixes logits made with the batch-norm statistics of the
    joint and the source-only batch; these networks have no batch norm, so both are the same, and it
    is left out. The pseudo-labels get no gradient; the weak target copies are classified without one."""
    n = len(batch.images)
    weak_source, weak_target = (augmented("weak", x) for x in (batch.images, batch.unlabelled))
    logits = model(torch.cat([weak_source, augmented("strong", torch.cat([batch.images, batch.unlabelled]))])).float()
    source_weak, source_strong, target_strong = logits[:n], logits[n:2 * n], logits[2 * n:]
    class_loss = (F.cross_entropy(source_weak, batch.labels) + F.cross_entropy(source_strong, batch.labels)) / 2
    with torch.no_grad():
        pseudo_labels, confident, threshold = aligned_pseudo_labels(
            F.softmax(source_weak.detach(), 1), F.softmax(model(weak_target).float(), 1), cfg.relative_confidence)
    target_loss = (F.cross_entropy(target_strong, pseudo_labels, reduction="none") * confident).mean()
    loss = 2 * class_loss + warmup(p) * target_loss  # the paper sums the two copies' class losses
    return loss, {"class_loss": class_loss, "target_loss": target_loss, "confident": confident.mean(),
                  "threshold": threshold}


def aligned_pseudo_labels(source_probs, target_probs, relative_confidence):
    """AdaMatch's pseudo-labels -> (each target picture's class, 1.0 where it counts else 0.0, the
    threshold): the target predictions' class mix aligned to the source's, each row renormalised, and
    a class counted where its aligned probability reaches relative_confidence times the mean top
    probability of the source predictions."""
    aligned = target_probs * source_probs.mean(0) / target_probs.mean(0)
    confidence, labels = (aligned / aligned.sum(1, keepdim=True)).max(1)
    threshold = relative_confidence * source_probs.max(1).values.mean()
    return labels, (confidence >= threshold).float(), threshold


def warmup(p):
    """AdaMatch's weight of the target term: 1/2 - cos(min(pi, 2 pi p)) / 2, from 0 to 1 at half of training."""
    return 0.5 - torch.cos(torch.clamp(2 * math.pi * p, max=math.pi)) / 2


def supervised(model, batch, p, cfg):
    """The class loss on the labelled batch alone: the paper's lower (source) and upper (target) bounds."""
    class_loss = F.cross_entropy(model(batch.images).float(), batch.labels)
    return class_loss, {"class_loss": class_loss}


# ---------------------------------------------------------------- the terms methods share

def prediction_entropies(logits):
    """-> (mean entropy of the predictions, entropy of their mean), in nats."""
    log_p = F.log_softmax(logits.float(), 1)
    p = log_p.exp()
    mean = p.mean(0)
    return -(p * log_p).sum(1).mean(), -(mean * mean.clamp_min(1e-12).log()).sum()


VAT_XI = 0.1  # the probe's norm: small beside the radius, but not lost in float32 rounding of pixels ~1


def vat_perturbation(model, x, probs, radius):
    """The perturbation of norm `radius` (per image) that most changes the prediction, found by
    one power iteration from a random direction (Miyato et al., VAT, TPAMI 2018). The probe's
    pass runs in float32 under --bf16 too: the probe, about 0.002 a pixel, is below bfloat16's
    resolution at standardized pixels near 1, and a rounded probe points in a weaker direction."""
    probe = (VAT_XI * unit(torch.randn_like(x))).requires_grad_()
    with bf16_autocast(x.device, False):
        kl = kl_from(probs, model.classify(x + probe))
        (grad,) = torch.autograd.grad(kl, probe)
    return radius * unit(grad)


def bf16_autocast(device, on):
    """--bf16's autocast on `device` where `on`, and switched off (inside an outer one too) where
    not; nothing where the device has no autocast (the meta device of the tests). cache_enabled=False:
    autocast's weight cache would outlive a CUDA graph capture."""
    if not torch.amp.is_autocast_available(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, torch.bfloat16, enabled=on, cache_enabled=False)


def vat_loss(model, x, logits, radius):
    """KL(prediction at x || prediction at x + the virtual adversarial perturbation); the
    prediction at x is the target and gets no gradient."""
    probs = F.softmax(logits.detach().float(), 1)
    return kl_from(probs, model.classify(x + vat_perturbation(model, x, probs, radius)))


def kl_from(probs, logits):
    return F.kl_div(F.log_softmax(logits.float(), 1), probs, reduction="batchmean")


def unit(d):
    """Each image's perturbation scaled to norm 1 (a zero one stays zero)."""
    return d / (d.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1)) + 1e-12)


ADVERSARIAL = ("class_loss", "domain_loss", "domain_acc", "lambda")
METHODS = {
    "dann": Method(dann, labelled="source", uses_unlabelled=True, stats=ADVERSARIAL),
    "dann-im": Method(dann_im, labelled="source", uses_unlabelled=True, stats=ADVERSARIAL + ("entropy", "diversity"),
                      settings=(InformationMaximisation,)),
    "vada": Method(vada, labelled="source", uses_unlabelled=True,
                   stats=ADVERSARIAL + ("entropy", "vat_source", "vat_target"),
                   settings=(VirtualAdversarialWeights, VirtualAdversarialRadius)),
    "dirt-t": Method(dirt_t, labelled=None, uses_unlabelled=True, stats=("entropy", "vat_target", "teacher_kl"),
                     teacher=REFRESHED, settings=(VirtualAdversarialRadius, Refinement)),
    "self-train": Method(self_train, labelled=None, uses_unlabelled=True, stats=("class_loss", "agreement"),
                         teacher=FIXED),
    "self-ensemble": Method(self_ensemble, labelled="source", uses_unlabelled=True,
                            stats=("class_loss", "consistency", "balance", "confident"), teacher=MEAN_TEACHER,
                            augments=True, recipe=ADAM, settings=(SelfEnsembling,)),
    "adamatch": Method(adamatch, labelled="source", uses_unlabelled=True,
                       stats=("class_loss", "target_loss", "confident", "threshold"), augments=True,
                       settings=(RelativeThreshold,)),
    "source-only": Method(supervised, labelled="source", uses_unlabelled=False, stats=("class_loss",)),
    "target-only": Method(supervised, labelled="target", uses_unlabelled=False, stats=("class_loss",)),
}
