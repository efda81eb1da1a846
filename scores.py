"""Label-free signs that adaptation worked: scores of a model computed from unlabelled target
training pictures (and the labelled source), never from target labels, so that a user whose
target has none can still compare runs. RESULTS.md, 'Label-free scores', measures how well each
ranks runs by their true target accuracy.

- entropy: the mean entropy of the target predictions (nats; lower is more confident);
- information maximisation: the entropy of the mean target prediction minus that mean entropy
  (Krause et al. 2010; SHOT's objective): confident and diverse predictions score high;
- class shift: the total variation distance between the share of target pictures predicted as
  each class and the share of each class among the source's labels (0: the same mix);
- domain accuracy: how well the model's own domain classifier tells source from target features
  on balanced batches (.5: the adversary is fooled; meaningful for methods that train it);
- SND, soft neighbourhood density (Saito et al., ICCV 2021): the mean entropy of each target
  picture's softmax-weighted similarities to the others in prediction space (temperature 0.05);
  higher when target pictures form tight, well-separated clusters.
"""
import torch
import torch.nn.functional as F

from models import standardize

SAMPLE = 2000  # target (and source) pictures scored: enough for stable scores, cheap at every evaluation
SND_TEMPERATURE = 0.05  # Saito et al.'s


def entropy(probs):
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


@torch.no_grad()
def label_free_scores(model, target_images, source_images, source_labels):
    """The scores of `model` on the first SAMPLE target and source training pictures."""
    target, source = target_images[:SAMPLE], source_images[:SAMPLE]
    probs = model.predict_proba(target).double()
    mean_entropy = entropy(probs).mean()
    classes = probs.shape[1]
    source_share = torch.bincount(source_labels[:SAMPLE], minlength=classes).double()
    predicted_share = torch.bincount(probs.argmax(1), minlength=classes).double()
    return {"entropy": mean_entropy.item(),
            "information_maximisation": (entropy(probs.mean(0)) - mean_entropy).item(),
            "class_shift": 0.5 * (predicted_share / len(probs) - source_share / len(source)).abs().sum().item(),
            "domain_accuracy": domain_accuracy(model, source, target),
            "snd": soft_neighbourhood_density(probs)}


def soft_neighbourhood_density(probs):
    """SND (Saito et al. 2021): cosine similarities between target predictions, each row a softmax
    over the other pictures at temperature 0.05, and the mean entropy of those rows."""
    unit = F.normalize(probs.float(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))  # a picture is not its own neighbour
    return entropy(F.softmax(similarity / SND_TEMPERATURE, dim=1)).mean().item()


def domain_accuracy(model, source, target, batch_size=1024):
    was_training = model.training
    model.eval()
    correct = 0
    for domain, images in enumerate((source[:len(target)], target[:len(source)])):
        for i in range(0, len(images), batch_size):
            logits = model.domain_classifier(model.features(standardize(images[i:i + batch_size])))
            correct += (logits.argmax(1) == domain).sum().item()
    model.train(was_training)
    return correct / (2 * min(len(source), len(target)))
