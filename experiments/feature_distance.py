"""No digit here (RESULTS.md, 'How far to trust a reading'): the distance of a picture's features to
the nearest class centre of what the model learnt (the Mahalanobis score of Lee et al., NeurIPS 2018)
as a second "not sure", measured as experiments/energy_marking.py measures the energy.

The centres: the mean features (`representation`) of each class of the model's labelled domain(s),
LABELLED of their training pictures drawn with seed 0 and their own labels, and of each class the
model reads in its target's training pictures 2,001 to 7,000 (no label read); one covariance pooled
within those groups, pseudo-inverted as Lee et al.'s code does. A picture's distance is its squared
Mahalanobis distance to the nearest centre; the threshold, the distance 1% of the target's first 2,000
unlabelled training pictures lie above.

    python -m experiments.feature_distance --data-dir data      # MNIST, MNIST-M and synth in data/
"""
import torch

from experiments.energy_marking import measure

LABELLED = 5000
TARGET_FIT = slice(2000, 7000)  # after the pictures the threshold is read on


def centres_and_precision(features, groups):
    """(one centre a group, the pseudo-inverse of the covariance pooled within the groups), float64."""
    features = features.double()
    names, index = groups.unique(return_inverse=True)
    centres = torch.stack([features[index == g].mean(0) for g in range(len(names))])
    within = features - centres[index]
    return centres, torch.linalg.pinv(within.T @ within / len(features), hermitian=True)


def nearest_distance(features, centres, precision):
    """Each row's squared Mahalanobis distance to the nearest centre."""
    f = features.double()
    d = ((f @ precision) * f).sum(1, keepdim=True) - 2 * f @ precision @ centres.T \
        + ((centres @ precision) * centres).sum(1)
    return d.min(1).values


def distance_signal(model, sets):
    """The feature distance as a signal: (a picture's number, higher the farther from what the model learnt)."""
    images, labels = sets.source_train
    drawn = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:LABELLED]
    target = sets.target_train[0][TARGET_FIT]
    read = model.predict_proba(target).argmax(1)
    classes = model.classes
    features = torch.cat([model.representation(images[drawn]), model.representation(target)])
    centres, precision = centres_and_precision(features, torch.cat([labels[drawn], classes + read]))

    def distance(pictures):
        return nearest_distance(model.representation(pictures), centres, precision)
    return distance


if __name__ == "__main__":
    measure(__doc__, distance_signal)
