"""Label-free signs that adaptation worked: scores of a model computed from unlabelled target
training pictures (and the labelled source), never from target labels, so that a user whose
target has none can still compare runs. RESULTS.md, 'Label-free scores', measures how well each
ranks runs by their true target accuracy.

Each score is a `Score` in SCORES: its function, the column choose.py prints it under, and its
orientation (`oriented(value)`: higher is better), from which choose.py's table, its ranking rule
and experiments/rank_scores.py are derived. To add a score: write its function of a `Evidence`
and add a `Score` to SCORES; every report then carries it.

- entropy: the mean entropy of the target predictions (nats; lower is more confident);
- information maximisation: the entropy of the mean target prediction minus that mean entropy
  (Krause et al. 2010; SHOT's objective): confident and diverse predictions score high;
- class shift: the total variation distance between the share of target pictures predicted as
  each class and the share of each class among the source's labels (0: the same mix);
- domain accuracy: how well the model's own domain classifier tells source from target features
  on balanced batches (.5: the adversary is fooled); None for methods that do not train it;
- SND, soft neighbourhood density (Saito et al., ICCV 2021): the mean entropy of each target
  picture's softmax-weighted similarities to the others in prediction space (temperature 0.05);
  higher when target pictures form tight, well-separated clusters.
"""
import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F


SAMPLE = 2000  # target (and source) pictures scored: enough for stable scores, cheap at every evaluation
SND_TEMPERATURE = 0.05  # Saito et al.'s


@dataclasses.dataclass
class Evidence:
    """What the scores read: the model, the first SAMPLE target and source training pictures, the
    source's labels, and the model's predictions on the target pictures (float64)."""
    model: torch.nn.Module
    target: torch.Tensor
    source: torch.Tensor
    source_labels: torch.Tensor
    probs: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Score:
    name: str
    compute: Callable  # Evidence -> float
    oriented: Callable  # value -> the same value made "higher is better"
    column: str  # choose.py's column title
    reads_domain_classifier: bool = False  # None for a model whose method did not train it


def entropy(probs):
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def mean_entropy(e):
    return entropy(e.probs).mean().item()


def information_maximisation(e):
    return (entropy(e.probs.mean(0)) - entropy(e.probs).mean()).item()


def class_shift(e):
    classes = e.probs.shape[1]
    source_share = torch.bincount(e.source_labels, minlength=classes).double()
    predicted_share = torch.bincount(e.probs.argmax(1), minlength=classes).double()
    return 0.5 * (predicted_share / len(e.probs) - source_share / len(e.source)).abs().sum().item()


def soft_neighbourhood_density(e):
    """SND (Saito et al. 2021): cosine similarities between target predictions, each row a softmax
    over the other pictures at temperature 0.05, and the mean entropy of those rows."""
    unit = F.normalize(e.probs.float(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))  # a picture is not its own neighbour
    return entropy(F.softmax(similarity / SND_TEMPERATURE, dim=1)).mean().item()


def domain_accuracy(e, batch_size=1024):
    model, source, target = e.model, e.source, e.target
    was_training = model.training
    model.eval()
    correct = 0
    for domain, images in enumerate((source[:len(target)], target[:len(source)])):
        for i in range(0, len(images), batch_size):
            logits = model.domain_classifier(model.features(model.prepare(images[i:i + batch_size])))
            correct += (logits.argmax(1) == domain).sum().item()
    model.train(was_training)
    return correct / (2 * min(len(source), len(target)))


def lower(v):
    return -v


def higher(v):
    return v


SCORES = {s.name: s for s in (
    Score("entropy", mean_entropy, lower, "entropy"),
    Score("information_maximisation", information_maximisation, higher, "IM"),
    Score("class_shift", class_shift, lower, "class shift"),
    Score("domain_accuracy", domain_accuracy, lambda v: -abs(v - 0.5), "domain acc", True),  # .5: adversary fooled
    Score("snd", soft_neighbourhood_density, higher, "SND"),
)}


@torch.no_grad()
def label_free_scores(model, target_images, source_images, source_labels, method):
    """Every score of SCORES for `model`, trained by `method` (a methods.Method), on the first SAMPLE
    target and source training pictures; None for a score of a domain classifier the method did not
    train (DIRT-T's is the DANN model's it started from, source-only's was never trained)."""
    target, source = target_images[:SAMPLE], source_images[:SAMPLE]
    evidence = Evidence(model, target, source, source_labels[:SAMPLE], model.predict_proba(target).double())
    return {name: None if score.reads_domain_classifier and not method.trains_domain_classifier
            else score.compute(evidence) for name, score in SCORES.items()}
