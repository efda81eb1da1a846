"""What each training method minimises on one step's batches.

Vocabulary: source and target are the two domains of a task (SVHN -> MNIST); a step sees a
labelled batch (images and labels) and, for adaptation methods, an unlabelled batch (target
images whose labels are never read). Source-only trains on labelled source images, target-only
on labelled target images, DANN on labelled source and unlabelled target images.

A method is a `Method`: its loss function, the domain its labelled batch comes from, whether it
takes an unlabelled batch, and the names of the statistics it reports. The loss function gets
the model, the step's `Batch`, the training progress p (0 -> 1, a device tensor) and the run's
configuration, and returns (the loss to minimise, {name: scalar tensor}). It must read no value
back to the host (no .item(), no Python branch on a tensor), so that on a GPU the whole step
stays one CUDA graph. To add a method: write its loss function here and add it to METHODS;
`main.py --mode NAME` then trains it, with checkpoints, resume, logging and evaluation as for
the others.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    images: torch.Tensor  # labelled images, uint8 (or float 0..255 when augmented)
    labels: torch.Tensor
    unlabelled: Optional[torch.Tensor] = None  # None for methods that take no unlabelled batch


@dataclass(frozen=True)
class Method:
    loss: Callable  # (model, batch, p, cfg) -> (loss, {name: scalar tensor})
    labelled: str  # "source" or "target": the domain whose labels it trains on
    uses_unlabelled: bool  # whether it takes an unlabelled target batch
    stats: tuple  # the names of the statistics its loss reports, in a fixed order


def adaptation_weight(p, gamma):
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1 (JMLR 2016, section 5.2): 0 at the start, so the
    domain classifier's noisy early gradient does not disturb the features, then towards 1."""
    return 2 / (1 + torch.exp(-gamma * p)) - 1


def dann(model, batch, p, cfg):
    """Ganin & Lempitsky (2015): the class loss on the labelled batch plus a domain classifier's
    loss on both batches, its gradient reversed (times lambda_p) on its way into the features."""
    model.grl.set_lambda(adaptation_weight(p, cfg.gamma))
    logits, domain_logits = model.adversarial(batch.images, batch.unlabelled)
    n = len(batch.images)
    domains = (torch.arange(len(domain_logits), device=domain_logits.device) >= n).long()  # 0 source, 1 target
    class_loss = F.cross_entropy(logits.float(), batch.labels)
    domain_loss = F.cross_entropy(domain_logits.float(), domains)
    domain_acc = (domain_logits.argmax(1) == domains).float().mean()
    return class_loss + domain_loss, {"class_loss": class_loss, "domain_loss": domain_loss, "domain_acc": domain_acc,
                                      "lambda": model.grl.lambd}


def supervised(model, batch, p, cfg):
    """The class loss on the labelled batch alone: the paper's lower (source) and upper (target) bounds."""
    class_loss = F.cross_entropy(model(batch.images).float(), batch.labels)
    return class_loss, {"class_loss": class_loss}


METHODS = {
    "dann": Method(dann, labelled="source", uses_unlabelled=True,
                   stats=("class_loss", "domain_loss", "domain_acc", "lambda")),
    "source-only": Method(supervised, labelled="source", uses_unlabelled=False, stats=("class_loss",)),
    "target-only": Method(supervised, labelled="target", uses_unlabelled=False, stats=("class_loss",)),
}
