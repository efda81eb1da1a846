"""dann/trust.py on made-up predictions whose answers are known: the temperature that undoes a known
overconfidence, the threshold at its boundary, the risk-coverage numbers."""
import torch

from dann import trust


def made_up(n=20000, classes=10, temperature=1.0, seed=0):
    """Logits drawn so that softmax(logits) is calibrated; labels drawn from those probabilities.
    Returns (probabilities a model `temperature` times overconfident shows, labels)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64) * 2
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=g).squeeze(1)
    return torch.softmax(logits * temperature, 1), labels


def test_a_model_overconfident_by_a_known_temperature_is_corrected():
    for factor in (3.0, 1.0, 0.5):
        probs, labels = made_up(temperature=factor)
        assert abs(trust.fit_temperature(probs, labels) - factor) < 0.08 * factor
    probs, labels = made_up(temperature=3.0)
    fixed = trust.calibrated(probs, trust.fit_temperature(probs, labels))
    chance, predicted = fixed.max(1)
    right = (predicted == labels).double().mean().item()
    assert abs(chance.mean().item() - right) < 0.01  # what the chances promise is what happens
    assert probs.max(1).values.mean().item() - right > 0.1  # and was not before
    assert torch.equal(trust.calibrated(probs, 1.0), probs)


def test_the_threshold_keeps_the_most_readings_whose_estimated_error_is_within_the_risk():
    chances = torch.tensor([1.0, 0.99, 0.98, 0.97, 0.90, 0.60])
    # kept from the top: errors 0, .01, .03, .06, .16 -> means 0, .005, .01, .015, .032
    assert trust.sure_threshold(chances, risk=0.01) == chances[2].item()
    assert trust.sure_threshold(chances, risk=0.015) == chances[3].item()
    assert trust.sure_threshold(chances[[5, 4, 1]], risk=0.01) == chances[1].item()  # the order given does not matter
    assert trust.sure_threshold(torch.tensor([0.8, 0.7]), risk=0.01) == 1.0  # nothing sure enough: nothing sure


def test_a_reading_at_the_threshold_is_sure_and_below_the_floor_never():
    assert trust.sure_at(0.98) == 0.98 and trust.sure_at(0.2) == trust.sure_at(None) == trust.SURE_FLOOR
    chances = torch.tensor([0.98, 0.979], dtype=torch.float64)
    assert (chances >= trust.sure_at(0.98)).tolist() == [True, False]


def test_risk_coverage_counts_the_errors_of_the_surest_readings():
    chances = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([True, False, True, True])
    curve = trust.risk_coverage(chances, correct, points=4)
    assert curve == [(0.25, 0.0), (0.5, 0.5), (0.75, 1 / 3), (1.0, 0.25)]


def test_decide_reads_labels_only_where_the_model_learnt_them():
    class Fixed(torch.nn.Module):
        def __init__(self, probs):
            super().__init__()
            self.probs = probs

        def predict_proba(self, images):
            return self.probs[images]
    probs, labels = made_up(temperature=2.0)
    model = Fixed(probs)
    found = trust.decide(model, (torch.arange(10000), labels[:10000]), torch.arange(10000, 20000))
    assert abs(found["temperature"] - 2.0) < 0.16
    chances = trust.calibrated(probs[10000:], found["temperature"]).max(1).values
    assert found["unsure_below"] == trust.sure_threshold(chances)


def evidence_of(probs, held_out_probs, held_out_labels, source_labels):
    from dann.scores import Evidence
    return Evidence(None, None, torch.zeros(len(source_labels)), source_labels, probs.double(), held_out_probs.double(),
                    held_out_labels)


def test_doc_is_the_held_out_accuracy_less_the_drop_in_confidence():
    from dann import scores
    held_out = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    labels = torch.tensor([0, 0, 1, 0])  # 3 of 4 right, mean confidence .75
    e = evidence_of(torch.tensor([[0.6, 0.4], [0.4, 0.6]]), held_out, labels, labels)  # mean confidence .6
    assert abs(scores.difference_of_confidences(e) - (0.75 - 0.75 + 0.6)) < 1e-6
    e = evidence_of(held_out, held_out, labels, labels)  # no shift: the held-out accuracy
    assert abs(scores.difference_of_confidences(e) - 0.75) < 1e-6


def test_cot_charges_predictions_whose_class_mix_is_not_the_sources():
    from dann import scores
    certain = torch.eye(2).repeat(50, 1)  # right and sure on 100 held-out pictures of each class
    labels = certain.argmax(1)
    balanced = evidence_of(torch.eye(2).repeat(20, 1) * 0.98 + 0.01, certain * 0.98 + 0.01, labels, labels)
    one_class = evidence_of(torch.tensor([[0.99, 0.01]]).repeat(40, 1), certain * 0.98 + 0.01, labels, labels)
    assert scores.confidence_optimal_transport(balanced) > 0.95  # sure, in the source's mix: little cost
    # all predicted as class 0 while the source is half class 1: half must move at a cost near 1
    assert abs(scores.confidence_optimal_transport(one_class) - 0.5) < 0.03
    assert scores.mean_entropy(one_class) < 0.1  # though every prediction is sure


def test_a_weighted_temperature_is_that_of_the_pictures_weighed():
    sharp, sharp_labels = made_up(n=10000, temperature=3.0, seed=1)
    plain, plain_labels = made_up(n=10000, temperature=1.0, seed=2)
    probs, labels = torch.cat([sharp, plain]), torch.cat([sharp_labels, plain_labels])
    only_sharp = torch.cat([torch.ones(10000), torch.zeros(10000)])
    assert abs(trust.fit_temperature(probs, labels, only_sharp) - 3.0) < 0.25
    assert abs(trust.fit_temperature(probs, labels, 1 - only_sharp) - 1.0) < 0.08
    assert trust.fit_temperature(probs, labels, torch.full((20000,), 7.0)) == trust.fit_temperature(probs, labels)


def test_importance_weights_are_the_density_ratio_of_two_known_domains():
    """Source N(0, 1), target N(1, 1) in one dimension (and noise in another): p_t / p_s = exp(x - 1/2),
    so the weights, normalised to mean 1 over the source, are exp(x) / E_s[exp(x)] = exp(x - 1/2)."""
    from experiments.weighted_calibration import effective_share, importance_weights
    g = torch.Generator().manual_seed(0)
    source, target = torch.randn(8000, 2, generator=g), torch.randn(8000, 2, generator=g) + torch.tensor([1.0, 0.0])
    weights = importance_weights(source, target)
    truth = (source[:, 0] - 0.5).exp()
    assert abs(weights.mean().item() - 1) < 1e-9
    assert ((weights.log() - truth.log()).abs().median()) < 0.1
    assert 0.2 < effective_share(weights) < 0.6  # exp(-1) = .37 for this pair of domains
    assert effective_share(torch.ones(5)) == 1.0


def test_moved_copies_shift_each_picture_two_pixels_each_way_with_the_edge_repeated():
    from experiments.shift_agreement import moved
    picture = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    picture[0, 0, 3, 4] = 255
    copies = moved(picture)
    assert copies.shape == (4, 1, 1, 8, 8) and copies.dtype == torch.uint8
    where = [tuple(c[0, 0].nonzero()[0].tolist()) for c in copies]
    assert where == [(1, 4), (5, 4), (3, 2), (3, 6)]  # up, down, left, right
    edge = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8)
    assert torch.equal(moved(edge)[0][0, 0, -3:], edge[0, 0, -1].expand(3, 8))  # moved up: the last row repeated


def test_a_reading_is_sure_with_the_moves_only_where_every_moved_copy_agrees():
    from experiments.shift_agreement import marking
    chances = torch.tensor([0.99, 0.99, 0.6, 0.99])
    agree = torch.tensor([[True] * 4, [True, True, False, True], [True] * 4, [True] * 4])
    correct = torch.tensor([True, False, False, False])
    marks = marking(chances, agree, 0.9, correct)
    assert marks["threshold"] == (0.25, 1 / 3)
    assert marks["threshold and moves"] == (0.5, 0.5)


def test_a_model_trained_on_moved_pictures_is_told_from_its_config():
    from experiments.shift_agreement import trained_on_moved_copies
    assert trained_on_moved_copies({"method": "self-ensemble"})  # French et al.'s warp and shift
    assert trained_on_moved_copies({"method": "adamatch"})
    assert trained_on_moved_copies({"method": "self-train", "augment": True})
    assert not trained_on_moved_copies({"method": "dann", "augment": False})
    assert not trained_on_moved_copies({"method": "dirt-t"})
    assert not trained_on_moved_copies({"method": "self-ensemble", "init": "runs/dirt-t"})  # a refinement


def test_the_moves_are_not_adopted_for_models_trained_on_moved_pictures_where_one_reader_goal_is_lost(capsys):
    from experiments.shift_agreement import verdict_on_moved_copies
    def row(model, accuracy, threshold, moves, moved_copies=True):
        return {"model": model, "set": "s", "accuracy": accuracy, "moved_copies": moved_copies,
                "threshold": threshold, "threshold and moves": moves}
    closer = [row("a", 0.95, (0.10, 0.980), (0.12, 0.990)), row("b", 0.99, (0.02, 0.995), (0.03, 0.999)),
              row("c", 0.60, (0.50, 0.800), (0.90, 1.000)),  # read below .85: not judged
              row("d", 0.95, (0.01, 0.950), (0.50, 1.000), moved_copies=False)]  # keeps the threshold alone
    verdict_on_moved_copies(closer)
    line = capsys.readouterr().out.strip()
    assert line.startswith("2 pairs") and "lost: none" in line and line.endswith("moves adopted for such models")
    lost = closer + [row("e", 0.99, (0.02, 0.995), (0.05, 0.999))]  # marks .05 where .04 is allowed
    verdict_on_moved_copies(lost)
    line = capsys.readouterr().out.strip()
    assert "lost: e on s" in line and line.endswith("moves not adopted for such models")


def test_energy_is_high_where_no_class_responds_strongly_and_marks_past_its_threshold():
    from experiments.energy_marking import energy, energy_signal, marking

    class Logits(torch.nn.Module):  # the picture's first pixel scales a fixed response
        def forward(self, images):
            return images[:, 0, 0, :10].float() * images[:, 0, 1, :1].float()

        def predict_proba(self, images):
            return self(images).softmax(1)

    images = torch.zeros(3, 3, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, :10] = torch.tensor([9, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=torch.uint8)
    images[:, 0, 1, 0] = torch.tensor([3, 1, 0], dtype=torch.uint8)  # strong, weak, no response: same softmax top
    e = energy(Logits(), images)
    assert e[0] < e[1] < e[2] and torch.isclose(e[2], -torch.tensor(10.0).log())
    signal = energy_signal(Logits(), None)
    signal.__name__ = "energy"
    marks, read = marking(Logits(), images[:2], {"temperature": 1.0, "unsure_below": 0.0}, signal, e[0].item(),
                          correct=lambda read: read == 0)
    assert read.tolist() == [0, 0] and marks["threshold"] == (0.0, 1.0) and marks["threshold and energy"] == (0.5, 1.0)


def test_the_feature_distance_is_the_mahalanobis_distance_to_the_nearest_class_centre():
    from experiments.feature_distance import centres_and_precision, nearest_distance
    # two groups at (0, 0) and (10, 0), spread 1 along x and 2 along y within each: pooled variances 1 and 4
    spread = torch.tensor([[1.0, 2.0], [-1.0, 2.0], [1.0, -2.0], [-1.0, -2.0]])
    features = torch.cat([spread, spread + torch.tensor([10.0, 0.0])])
    centres, precision = centres_and_precision(features, torch.tensor([3, 3, 3, 3, 7, 7, 7, 7]))
    assert torch.allclose(centres, torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(precision, torch.diag(torch.tensor([1.0, 0.25], dtype=torch.float64)))
    d = nearest_distance(torch.tensor([[1.0, 0.0], [0.0, 4.0], [9.0, 2.0], [5.0, 0.0]]), centres, precision)
    assert torch.allclose(d, torch.tensor([1.0, 4.0, 2.0, 25.0], dtype=torch.float64))  # each to its nearer centre
