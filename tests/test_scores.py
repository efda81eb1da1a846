"""The label-free scores and estimates (dann/scores.py) on made-up predictions with known answers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dann.datasets import TaskData
from dann import scores
from dann.methods import METHODS


class Fixed(torch.nn.Module):
    """A model whose predictions are given per picture: a picture's first two pixels are its index."""
    def __init__(self, probs):
        super().__init__()
        self.probs, self.features = probs, torch.nn.Flatten()
        self.domain_classifier = torch.nn.Linear(3 * 28 * 28, 2)

    def predict_proba(self, images):
        return self.probs[images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()]

    def prepare(self, images):
        return images.float()


def pictures(first, count):
    """Pictures numbered first, first + 1, ...: with Fixed, picture k gets the k-th row of its predictions."""
    images = torch.zeros(count, 3, 28, 28, dtype=torch.uint8)
    index = torch.arange(first, first + count)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = index // 256, index % 256
    return images


def report(probs, held_out_probs, held_out_labels, source_labels=None, method="dann"):
    """label_free_report of a Fixed model: target pictures get `probs`, held-out source pictures the rest."""
    n = len(probs)
    model = Fixed(torch.cat([probs, held_out_probs]).double())
    source_labels = held_out_labels if source_labels is None else source_labels
    sets = TaskData(target_train=(pictures(0, n), None), source_train=(pictures(n, len(source_labels)), source_labels),
                    source_test=(pictures(n, len(held_out_labels)), held_out_labels))
    return scores.label_free_report(model, sets, METHODS[method])


def sharp(labels, classes, right=0.97):
    return F.one_hot(labels, classes).double() * (right - (1 - right) / (classes - 1)) + (1 - right) / (classes - 1)


def test_confident_diverse_predictions_score_better_on_every_score():
    labels = torch.arange(40) % 4
    good, bad = (report(p, sharp(labels, 4), labels)["label_free"] for p in (sharp(labels, 4), torch.full((40, 4), .25)))
    assert good["entropy"] < bad["entropy"] and good["information_maximisation"] > bad["information_maximisation"]
    assert good["bnm"] > bad["bnm"] and good["estimated_accuracy"] > bad["estimated_accuracy"]
    assert good["class_shift"] < 1e-9 and bad["class_shift"] == pytest.approx(0.75)  # all in class 0 against 4
    for result in (good, bad):  # SND is an entropy over the 39 other pictures
        assert np.isfinite(list(result.values())).all() and 0 <= result["snd"] <= np.log(39) + 1e-6
    # a method that does not train the domain classifier has no domain accuracy to report
    assert report(sharp(labels, 4), sharp(labels, 4), labels, method="dirt-t")["label_free"]["domain_accuracy"] is None


def test_bnm_is_the_nuclear_norm_over_the_number_of_predictions():
    # one-hot rows, n_c of class c: the singular values are sqrt(n_c); uniform rows: one, sqrt(n / classes)
    labels = torch.tensor([0] * 9 + [1] * 4 + [2] * 1 + [3] * 6)
    one_hot = F.one_hot(labels, 4).double()
    assert report(one_hot, one_hot, labels)["label_free"]["bnm"] == pytest.approx((3 + 2 + 1 + 6 ** .5) / 20)
    flat = torch.full((20, 4), .25, dtype=torch.float64)
    assert report(flat, one_hot, labels)["label_free"]["bnm"] == pytest.approx((20 / 4) ** .5 / 20)


def test_estimated_accuracy_counts_the_target_predictions_above_the_source_threshold():
    # 10 held-out source pictures, every one predicted class 0, 7 right (not the least confident ones: ATC
    # does not care which): the threshold is the 4th lowest confidence (of .6967), with 7 pictures at or above it
    top = torch.linspace(.55, .99, 10, dtype=torch.float64)
    held_out = torch.stack([top, 1 - top], 1)
    labels = torch.tensor([0, 1, 0, 0, 1, 0, 0, 1, 0, 0])
    target_top = torch.tensor([.6, .65, .7, .75, .8, .85, .9, .95, .97, .99], dtype=torch.float64)
    estimate = report(torch.stack([target_top, 1 - target_top], 1), held_out, labels)["label_free"]["estimated_accuracy"]
    assert estimate == (target_top >= top[3]).double().mean().item() == 0.8
    everything_wrong = report(torch.stack([target_top, 1 - target_top], 1), held_out, torch.ones(10, dtype=torch.long))
    assert everything_wrong["label_free"]["estimated_accuracy"] == 0


def skewed(mix, per_class_probs, total):
    """Target predictions of a model that predicts every picture of class c as per_class_probs[c], for a
    target whose class mix is `mix`."""
    counts = (torch.tensor(mix) * total).round().long()
    labels = torch.repeat_interleave(torch.arange(len(mix)), counts)
    return per_class_probs[labels], labels


def test_the_class_mix_of_a_skewed_target_is_estimated_and_class_shift_measured_against_it():
    # the model confuses classes: each class's prediction is a fixed, unsharp row (a confusion matrix)
    confusion = torch.tensor([[.7, .2, .1, .0], [.1, .8, .0, .1], [.0, .1, .6, .3], [.1, .0, .2, .7]],
                             dtype=torch.float64)
    balanced = torch.arange(400) % 4
    mix = [.55, .25, .15, .05]
    target, _ = skewed(mix, confusion, 1000)
    result = report(target, confusion[balanced], balanced)
    assert result["target_class_mix"] == pytest.approx(mix, abs=1e-4)
    # every row's top is its own class, so the predicted mix is the true one: no shift from the estimate,
    # while the balanced source's mix is .30 away
    assert result["label_free"]["estimated_class_shift"] == pytest.approx(0, abs=1e-4)
    assert result["label_free"]["class_shift"] == pytest.approx(.30 + .0)
    # a model that calls everything class 0 is as far from the estimate as all but class 0's share
    collapsed, _ = skewed(mix, torch.tensor([[.9, .1, 0, 0]] * 4, dtype=torch.float64), 1000)
    estimate = report(collapsed, confusion[balanced], balanced)
    assert estimate["label_free"]["estimated_class_shift"] == pytest.approx(1 - estimate["target_class_mix"][0],
                                                                            abs=1e-4)
    assert estimate["label_free"]["class_shift"] == pytest.approx(.75)


def test_a_mean_prediction_that_no_class_mix_explains_still_gives_a_class_mix():
    # sharper on the target than on held-out source pictures: the mean prediction (0, 0, 1) lies outside
    # every mix of the source's confusion columns, and the nearest mix is all class 2
    held_out = sharp(torch.arange(30) % 3, 3, right=0.8)
    certain = torch.tensor([[0.0, 0.0, 1.0]] * 10, dtype=torch.float64)
    mix = report(certain, held_out, torch.arange(30) % 3)["target_class_mix"]
    assert mix == pytest.approx([0, 0, 1], abs=1e-4)


def test_each_model_is_scored_by_its_agreement_with_the_ensemble_of_all():
    # two of three models call every picture class 0; the third calls half of them class 1, and so
    # agrees with the ensemble's mean prediction on the other half only
    zeros = F.one_hot(torch.zeros(8, dtype=torch.long), 2).double()
    half = F.one_hot(torch.tensor([0, 1] * 4), 2).double()
    assert scores.ensemble_agreement([zeros, zeros, half]) == [1.0, 1.0, 0.5]
    assert scores.ensemble_agreement([half]) == [1.0] and scores.ensemble_agreement([]) == []


def test_each_seed_is_estimated_as_accurate_as_its_mean_agreement_with_the_other_seeds():
    # GDE: seeds a and b read 8 pictures alike; c reads 4 of them otherwise
    a = F.one_hot(torch.zeros(8, dtype=torch.long), 2).double()
    c = F.one_hot(torch.tensor([0, 1] * 4), 2).double()
    assert scores.seed_agreement([a, a.clone(), c]) == [0.75, 0.75, 0.5]
    assert scores.seed_agreement([c]) == [None] and scores.seed_agreement([]) == []
