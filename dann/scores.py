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
- estimated accuracy: ATC (Garg et al., ICLR 2022), the share of target pictures whose prediction
  is more confident (negative entropy) than a threshold set on held-out labelled source pictures
  (the source's test split), where as many pictures lie above it as the model classifies correctly;
- DoC (Guillory et al., ICCV 2021): the held-out source accuracy, less the drop in mean top probability
  from the held-out source pictures to the target ones;
- COT (Lu et al., NeurIPS 2023): one minus the optimal-transport cost between the target predictions
  and one-hot labels in the source's class mix, the cost of sending prediction p to label y being
  ||p - e_y||_inf = 1 - p_y, on probabilities calibrated by a temperature fitted on the held-out
  source pictures (dann/trust.py): the mean top probability where the predicted mix is the
  source's, lower where it is not;
- class shift: the total variation distance between the share of target pictures predicted as
  each class and the share of each class among the source's labels (0: the same mix);
- estimated class shift: the same distance to the estimated target class mix, for a target whose
  mix may not be the source's. The mix is estimated as in BBSE (Lipton et al., ICML 2018): the mean
  target prediction is the model's confusions on held-out source pictures, averaged over the
  target's unknown class mix, solved for that mix (non-negative least squares). It assumes the
  model confuses classes on the target as it does on the source;
- BNM (Cui et al., CVPR 2020): the nuclear norm of the target predictions over their number, high
  when they are both confident and spread over many classes;
- domain accuracy: how well the model's own domain classifier tells source from target features
  on balanced batches (.5: the adversary is fooled); None for methods that do not train it;
- SND, soft neighbourhood density (Saito et al., ICCV 2021): the mean entropy of each target
  picture's softmax-weighted similarities to the others in prediction space (temperature 0.05);
  higher when target pictures form tight, well-separated clusters.
"""
import dataclasses
import itertools
import statistics
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from dann import trust


SAMPLE = 2000  # target (and source) pictures scored: enough for stable scores, cheap at every evaluation
SND_TEMPERATURE = 0.05  # Saito et al.'s


@dataclasses.dataclass
class Evidence:
    """What the scores read: the model, the first SAMPLE target and source training pictures, the
    source's labels, the model's predictions on the target pictures (float64), and its predictions
    on held-out source pictures (the source's test split, which training never reads) with their labels."""
    model: torch.nn.Module
    target: torch.Tensor
    source: torch.Tensor
    source_labels: torch.Tensor
    probs: torch.Tensor
    held_out_probs: torch.Tensor
    held_out_labels: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Score:
    name: str
    compute: Optional[Callable]  # Evidence -> float; None for a score of a sweep's candidates together
    oriented: Callable  # value -> the same value made "higher is better"
    column: str  # choose.py's column title
    reads_domain_classifier: bool = False  # None for a model whose method did not train it


def entropy(probs):
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def mean_entropy(e):
    return entropy(e.probs).mean().item()


def information_maximisation(e):
    return (entropy(e.probs.mean(0)) - entropy(e.probs).mean()).item()


def predicted_share(e):
    return torch.bincount(e.probs.argmax(1), minlength=e.probs.shape[1]).double().cpu() / len(e.probs)


def class_shift(e):
    source_share = torch.bincount(e.source_labels, minlength=e.probs.shape[1]).double().cpu() / len(e.source)
    return 0.5 * (predicted_share(e) - source_share).abs().sum().item()


def estimated_class_shift(e):
    return 0.5 * (predicted_share(e) - estimated_class_mix(e)).abs().sum().item()


def estimated_class_mix(e):
    """BBSE with soft predictions: confusion[i, j] is the mean probability of class i over held-out
    source pictures of class j, so a target of class mix q has the mean prediction confusion @ q."""
    from scipy.optimize import nnls  # here: scipy.optimize takes a quarter of torch's time to import
    classes = e.probs.shape[1]
    members = F.one_hot(e.held_out_labels, classes).double()
    confusion = e.held_out_probs.T @ members / members.sum(0).clamp_min(1)
    mix = torch.from_numpy(nnls(confusion.cpu().numpy(), e.probs.mean(0).cpu().numpy())[0])
    return mix / mix.sum()  # a least-squares fit of a mean prediction that sums to 1 is never all zero


def estimated_accuracy(e):
    """ATC-NE: the threshold t leaves below it as many held-out source pictures as the model gets wrong;
    the estimate is the share of target pictures at or above t."""
    confidence = (-entropy(e.held_out_probs)).sort().values
    wrong = (e.held_out_probs.argmax(1) != e.held_out_labels).sum().item()
    threshold = confidence[wrong] if wrong < len(confidence) else float("inf")
    return (-entropy(e.probs) >= threshold).double().mean().item()


def difference_of_confidences(e):
    held_out = (e.held_out_probs.argmax(1) == e.held_out_labels).double().mean()
    return (held_out - e.held_out_probs.max(1).values.mean() + e.probs.max(1).values.mean()).item()


def confidence_optimal_transport(e):
    """COT: an assignment of the target pictures to as many one-hot labels, each class as often as in the
    source's labels (rounded, so that the counts add up), that costs the least 1 - p_y."""
    from scipy.optimize import linear_sum_assignment
    probs = trust.calibrated(e.probs, trust.fit_temperature(e.held_out_probs.cpu(), e.held_out_labels.cpu())).cpu()
    classes = probs.shape[1]
    mix = torch.bincount(e.source_labels.cpu(), minlength=classes).double() / len(e.source_labels)
    counts = (mix * len(probs)).floor().long()
    counts[(mix * len(probs) - counts).argsort(descending=True)[:len(probs) - counts.sum()]] += 1
    labels = torch.repeat_interleave(torch.arange(classes), counts)
    cost = 1 - probs[:, labels]
    rows, cols = linear_sum_assignment(cost.numpy())
    return 1 - cost[rows, cols].mean().item()


def batch_nuclear_norm(e):
    return torch.linalg.matrix_norm(e.probs, ord="nuc").item() / len(e.probs)


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
    Score("estimated_accuracy", estimated_accuracy, higher, "est. acc"),
    Score("doc", difference_of_confidences, higher, "DoC"),
    Score("cot", confidence_optimal_transport, higher, "COT"),
    Score("class_shift", class_shift, lower, "class shift"),
    Score("estimated_class_shift", estimated_class_shift, lower, "est. shift"),
    Score("bnm", batch_nuclear_norm, higher, "BNM"),
    Score("domain_accuracy", domain_accuracy, lambda v: -abs(v - 0.5), "domain acc", True),  # .5: adversary fooled
    Score("snd", soft_neighbourhood_density, higher, "SND"),
)}
# scored over a sweep's candidates together (ensemble_agreement), not one model at a time: choose.py's table
SWEEP_SCORES = {s.name: s for s in (Score("agreement", None, higher, "agreement"),
                                     Score("seed_agreement", None, higher, "seed agr."))}
ALL_SCORES = {**SCORES, **SWEEP_SCORES}


@torch.no_grad()
def evidence(model, sets):
    """What the scores read of `model`: the first SAMPLE pictures of the target's and the source's
    training sets (a datasets.TaskData) and of the source's held-out test set, an equal share of each
    source where several are joined."""
    target = sets.target_train[0][:SAMPLE]  # an unlabelled target's labels are None, and unread anyway
    source, source_labels = first_of_each_source(sets.source_train, sets.source_parts)
    held_out, held_out_labels = first_of_each_source(sets.source_test, sets.source_test_parts)
    return Evidence(model, target, source, source_labels, model.predict_proba(target).double(),
                    model.predict_proba(held_out).double(), held_out_labels)


def first_of_each_source(pictures, parts):
    """(images, labels) of joined sources of sizes `parts` (None: one source) -> the first SAMPLE //
    len(parts) of each, so that the first source does not stand for all of them."""
    if parts is None or len(parts) == 1:
        return tuple(t[:SAMPLE] for t in pictures)
    share = SAMPLE // len(parts)
    keep = torch.cat([torch.arange(start, start + min(size, share))
                      for start, size in zip(itertools.accumulate((0, *parts[:-1])), parts)])
    return tuple(t[keep.to(t.device)] for t in pictures)


@torch.no_grad()
def label_free_scores(e, method):
    """Every score of SCORES of the evidence on a model trained by `method` (a methods.Method, or None for
    an ensemble, which has no domain classifier of its own); None for a score of a domain classifier the
    method did not train (DIRT-T's is the DANN model's it started from, source-only's was never trained)."""
    return {name: None if score.reads_domain_classifier and not (method and method.trains_domain_classifier)
            else score.compute(e) for name, score in SCORES.items()}


def ensemble_agreement(predictions):
    """EnsV (Hu et al., NeurIPS 2024 Datasets and Benchmarks): each model's share of target pictures on
    which its class is the ensemble's, the ensemble being the mean of all the models' predictions.
    Higher is better; an ensemble of one agrees with itself."""
    if not predictions:  # a sweep with no finished candidate
        return []
    consensus = torch.stack(predictions).mean(0).argmax(1)
    return [(p.argmax(1) == consensus).double().mean().item() for p in predictions]


def seed_agreement(predictions):
    """GDE (Jiang et al., ICLR 2022): each copy of one recipe (trained with another seed) estimated as
    accurate as its mean agreement with the other copies' classes on the target pictures; None for a
    recipe with one copy."""
    classes = [p.argmax(1) for p in predictions]
    if len(classes) < 2:
        return [None] * len(classes)
    return [statistics.mean((c == other).double().mean().item() for j, other in enumerate(classes) if j != i)
            for i, c in enumerate(classes)]


def label_free_report(model, sets, method):
    """What a run, valid.py and choose.py record: every score, and the estimated target class mix."""
    e = evidence(model, sets)
    return {"label_free": label_free_scores(e, method),
            "target_class_mix": [round(share, 4) for share in estimated_class_mix(e).tolist()]}
