"""How far to trust a reading: the calibrated chance that it is right, and when it is "not sure".

Two numbers per model, fixed once it is finished and read from no target label (RESULTS.md, 'How far
to trust a reading'): a temperature fitted on the labelled test pictures of the domain(s) whose labels
the model learnt (Guo et al., ICML 2017), and a threshold on the calibrated chance, the lowest that
keeps the estimated error of the sure readings of its unlabelled target pictures at RISK. A reading
is "not sure" below that threshold, and always below SURE_FLOOR."""
import math

import torch

RISK = 0.01  # the error the sure readings may have, as the calibrated chances estimate it on the target
SURE_FLOOR = 0.5  # below it the top class is less likely than all the others together


def calibrated(probs, temperature=1.0):
    """Class probabilities with the logits divided by `temperature` (softmax(log p / T) equals
    softmax(z / T): the log-probabilities differ from the logits by one constant a row)."""
    if temperature == 1.0:
        return probs
    return torch.softmax(probs.double().clamp_min(1e-300).log() / temperature, dim=1).to(probs.dtype)


def fit_temperature(probs, labels, weights=None):
    """The temperature that minimises the negative log-likelihood of `labels`, each picture counted
    `weights` times (default once): a convex problem in 1 / T, solved on log T between 0.05 and 20."""
    from scipy.optimize import minimize_scalar
    log_probs = probs.double().clamp_min(1e-300).log()
    weights = torch.ones(len(labels), dtype=torch.float64) if weights is None else weights.double().cpu()

    def nll(log_t):
        losses = torch.nn.functional.cross_entropy(log_probs / math.exp(log_t), labels, reduction="none")
        return ((weights * losses).sum() / weights.sum()).item()
    return round(math.exp(minimize_scalar(nll, bounds=(math.log(0.05), math.log(20)), method="bounded").x), 4)


def sure_threshold(chances, risk=RISK):
    """The lowest calibrated chance at which the readings kept, from the most sure down, have an
    estimated error (the mean of 1 - chance) of at most `risk`; 1.0 when even the surest has more."""
    ordered = chances.double().sort(descending=True).values
    estimated = (1 - ordered).cumsum(0) / torch.arange(1, len(ordered) + 1, dtype=torch.float64)
    kept = (estimated <= risk + 1e-9).nonzero()  # a mean that equals the risk is within it, whatever the rounding
    return ordered[kept.max()].item() if len(kept) else 1.0


def sure_at(threshold):
    """The calibrated chance a reading needs to be "sure": the model's threshold, never below SURE_FLOOR."""
    return max(SURE_FLOOR, threshold or 0.0)


def decide(model, labelled, unlabelled):
    """{"temperature", "unsure_below"} of a finished model: labelled = (images, labels) of the
    domain(s) whose labels it learnt, unlabelled = its target's pictures."""
    temperature = fit_temperature(model.predict_proba(labelled[0]).cpu(), labelled[1].cpu())
    chances = calibrated(model.predict_proba(unlabelled).cpu(), temperature).max(1).values
    return {"temperature": temperature, "unsure_below": sure_threshold(chances)}  # exact: the boundary picture stays sure


def risk_coverage(chances, correct, points=21):
    """The sure readings' error at each share kept, from the surest down: [(coverage, risk)], for
    the figure and the record."""
    order = chances.double().argsort(descending=True)
    errors = (~correct[order]).double().cumsum(0)
    n = len(order)
    curve = []
    for i in range(points):
        k = max(1, round(n * (i + 1) / points)) if n else 0
        curve.append((k / n if n else 0.0, errors[k - 1].item() / k if k else 0.0))
    return curve

