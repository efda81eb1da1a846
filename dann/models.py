"""DANN networks (Ganin et al., JMLR 2016, section 5 and figure 4) and the gradient reversal layer.

A DANN is a feature extractor G_f shared by a label classifier G_y and, behind a gradient
reversal layer, a domain classifier G_d. Minimising both losses with plain SGD then trains
G_d to tell the domains apart and G_f to make them indistinguishable.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dann.common import UserError

ARCHS = ("mnist", "svhn", "mnist-bn")  # the paper's two and French et al.'s; a task's default: domains.default_arch
INPUT_NORMS = ("standardize", "scale", "joint")  # what a network makes of its pixels: DANN.prepare


class GradientReversalFunction(torch.autograd.Function):
    """Identity on the way forward; multiplies the gradient by -lambda on the way back."""

    @staticmethod
    def forward(ctx, x, lambd):
        ctx.save_for_backward(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (lambd,) = ctx.saved_tensors
        return -lambd * grad, None


class GradientReversal(nn.Module):
    """The reversal layer. lambda lives in a buffer so it can change every step without
    re-tracing anything (a captured CUDA graph or compiled step keeps reading the buffer)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("lambd", torch.zeros(()), persistent=False)

    def set_lambda(self, value):
        self.lambd.copy_(torch.as_tensor(value))  # a device tensor stays on the device: no sync

    def forward(self, x):
        return GradientReversalFunction.apply(x, self.lambd)


def _mlp(sizes, dropout):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def feature_extractor(arch):
    if arch == "mnist":  # 28 -> 24 -> 12 -> 8 -> 4: 48 x 4 x 4 features
        return nn.Sequential(
            nn.Conv2d(3, 32, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten())
    if arch == "svhn":  # 28 -> 28 -> 13 -> 13 -> 6 -> 6 (padded 5x5 convs): 128 x 6 x 6 features
        return nn.Sequential(
            nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 128, 5, padding=2), nn.ReLU(inplace=True),
            nn.Flatten())
    if arch == "mnist-bn":  # French et al.'s mnist-bn-32-64-256: 28 -> 24 -> 12 -> 10 -> 8 -> 4: 64 x 4 x 4
        return nn.Sequential(
            nn.Conv2d(3, 32, 5), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.5))  # their dropout, on the flattened features
    raise UserError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


FEATURES = {"mnist": 48 * 4 * 4, "svhn": 128 * 6 * 6, "mnist-bn": 64 * 4 * 4}
LABEL_HIDDEN = {"mnist": (100, 100), "svhn": (3072, 2048), "mnist-bn": (256,)}
DOMAIN_HIDDEN = {"mnist": (100,), "svhn": (1024, 1024), "mnist-bn": (100,)}


def initialise(model):
    """He et al. (2015) for the layers followed by a ReLU, zeros for the two output layers and
    all biases. torch's default draws weights with a third of He's variance, so every ReLU layer
    shrinks the signal and its gradient and short runs stall; random output layers at He's scale
    start the class loss far above log 10, and the first steps are spent undoing that. Zero
    output layers start every prediction uniform (RESULTS.md, 'Initialisation', has the trials)."""
    outputs = {model.label_classifier[-1], model.domain_classifier[-1]}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if m in outputs:
                nn.init.zeros_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def standardize(images, dims=(2, 3)):
    """uint8 (or 0..255 float) images -> float with every image's channels at zero mean and
    unit variance. Per-image statistics remove the colour and contrast that separate MNIST
    from MNIST-M (or SVHN's lighting) without looking at any label. dims=(1, 2, 3) takes them
    over all channels together, keeping the ratios between a picture's colours."""
    x = images.float()
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True)
    return (x - mean) / (std + 1.0)  # +1 (in pixel units) keeps blank images finite


def scale(images):
    """uint8 (or 0..255 float) images -> float in [-1, 1], every picture's own colour and contrast kept."""
    return images.float() / 127.5 - 1


class DANN(nn.Module):
    """forward(images) -> class logits; adversarial(labelled, unlabelled) is the training pass."""

    def __init__(self, arch="mnist", dropout=0.0, classes=10, input_norm="standardize"):
        super().__init__()
        self.arch, self.dropout, self.classes, self.input_norm = arch, dropout, classes, input_norm
        if input_norm not in INPUT_NORMS:
            raise UserError(f"unknown input normalisation {input_norm!r}; choose one of {', '.join(INPUT_NORMS)}")
        self.features = feature_extractor(arch)
        self.batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in self.features)
        self.label_classifier = _mlp((FEATURES[arch], *LABEL_HIDDEN[arch], classes), dropout)
        self.grl = GradientReversal()
        self.domain_classifier = _mlp((FEATURES[arch], *DOMAIN_HIDDEN[arch], 2), dropout)
        initialise(self)

    def forward(self, images):
        return self.classify(self.prepare(images))

    def features_apart(self, *domains):
        """The features of several domains' pictures, one tensor a domain, in one tensor. With batch norm
        each domain is normalised by its own batch statistics, as French et al. train (one batch's
        statistics shared by two domains mix what the network is to tell apart); without it, one pass."""
        if self.batch_norm:
            return torch.cat([self.features(self.prepare(x)) for x in domains])
        return self.features(self.prepare(torch.cat(domains)))

    def classify_apart(self, images, n):
        """Class logits of pictures whose first n come from one domain and the rest from another."""
        return self.label_classifier(self.features_apart(images[:n], images[n:]))

    def prepare(self, images):
        """The network's input from pictures: standardized (each picture's channels at zero mean and unit
        variance, DIRT-T's instance normalisation), standardized jointly (all its channels together,
        French et al.'s code) or scaled to [-1, 1] (RESULTS.md compares them)."""
        if self.input_norm == "scale":
            return scale(images)
        return standardize(images, (2, 3) if self.input_norm == "standardize" else (1, 2, 3))

    def classify(self, x):
        """Class logits of prepared images (what virtual adversarial training perturbs)."""
        return self.label_classifier(self.features(x))

    def adversarial(self, labelled, unlabelled, classify_unlabelled=False):
        """-> (class logits of the labelled images, and of the unlabelled ones if asked; domain
        logits of all of them). DANN's own loss needs the labelled half's class logits only,
        and with the svhn network that halves the work of its largest layers."""
        f = self.features_apart(labelled, unlabelled)
        logits = self.label_classifier(f if classify_unlabelled else f[:len(labelled)])
        return logits, self.domain_classifier(self.grl(f))

    @torch.no_grad()
    def predict_proba(self, images, batch_size=2048):
        return self._in_eval_batches(lambda x: F.softmax(self(x).float(), 1), images, batch_size)

    @torch.no_grad()
    def representation(self, images, batch_size=2048):
        """The feature extractor's output, one flat row a picture: where the domains are made alike
        (the importance weights of dann/trust.py are computed there)."""
        return self._in_eval_batches(lambda x: self.features(self.prepare(x)).flatten(1).float(), images, batch_size)

    def _in_eval_batches(self, f, images, batch_size):
        was_training = self.training
        self.eval()
        out = torch.cat([f(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
        self.train(was_training)
        return out


class Ensemble(nn.Module):
    """Several trained DANNs of one shape read as one model: its prediction is the mean of theirs (the
    ensemble that choose.py offers beside its choice; RESULTS.md, 'Estimating target accuracy')."""

    def __init__(self, members, arch="mnist", dropout=0.0, classes=10, input_norm="standardize"):
        super().__init__()
        self.arch, self.dropout, self.classes, self.input_norm = arch, dropout, classes, input_norm
        self.members = nn.ModuleList(DANN(arch, dropout, classes, input_norm) for _ in range(members))

    def forward(self, images):
        """The log of the mean predicted probabilities: what a DANN's logits are to its softmax."""
        return torch.stack([F.softmax(m(images).float(), 1) for m in self.members]).mean(0).log()

    @torch.no_grad()
    def predict_proba(self, images, batch_size=2048):
        return torch.stack([m.predict_proba(images, batch_size) for m in self.members]).mean(0)

    @torch.no_grad()
    def representation(self, images, batch_size=2048):
        return torch.cat([m.representation(images, batch_size) for m in self.members], 1)
