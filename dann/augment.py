"""The batched augmentations: every image of a batch transformed with its own draws, on the batch's
device, with no per-image Python. Only the draws use the global RNG, so a seeded CPU run stays
reproducible.

Training and the methods name a recipe of RECIPES and call `augmented(name, images)`:
- light (--augment): a shift of up to 4 pixels and a colour jitter (`augment`);
- weak (AdaMatch's weak copies): the shift alone;
- french (self-ensembling's): French et al.'s digit set, a random affine warp, colour jitter,
  inversion and noise (`strong_augment` without blur and cutout);
- strong (AdaMatch's strong copies): the same with FixMatch's blur and cutout.
The strong ones are drawn by `draw_strong` and applied by `apply_strong`, kept apart so that a
test can apply one picture's draws alone and compare.
"""
import contextlib

import torch
import torch.nn.functional as F


def augmented(recipe, images):
    """A batch of uint8 images -> float 0..255 images augmented by RECIPES[recipe], in float32 even
    under --bf16's autocast, which would round the pictures and make the blur's convolution
    bfloat16: the augmentation prepares the input, it is no part of the network."""
    kind = images.device.type
    with torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else contextlib.nullcontext():
        return RECIPES[recipe](images)


def augment(images, pad=4, jitter=0.4):
    """A batch of uint8 images -> float 0..255 images, each randomly shifted and recoloured:
    torchvision's RandomCrop(28, padding=4) then ColorJitter(brightness, contrast, saturation
    = jitter), but drawn per image for the whole batch at once on the images' device, with no
    per-image Python (torchvision's batched transforms draw one set of parameters per batch)."""
    n, c, h, w = images.shape
    x = F.pad(images.float(), (pad, pad, pad, pad))  # zero fill, as RandomCrop's default
    shift = torch.randint(0, 2 * pad + 1, (2, n, 1, 1, 1), device=images.device)
    rows = shift[0] + torch.arange(h, device=images.device).view(1, 1, h, 1)
    cols = shift[1] + torch.arange(w, device=images.device).view(1, 1, 1, w)
    x = x.gather(2, rows.expand(n, c, h, w + 2 * pad)).gather(3, cols.expand(n, c, h, w))
    factors = 1 + jitter * (2 * torch.rand(3, n, 1, 1, 1, device=images.device) - 1)
    return jitter_colours(x, factors)


def jitter_colours(x, factors):
    """ColorJitter's brightness, contrast and saturation, by factors[0], [1] and [2] (each N x 1 x 1 x 1)."""
    x = (x * factors[0]).clamp(0, 255)
    x = x.lerp(_gray(x).mean((2, 3), keepdim=True), 1 - factors[1]).clamp(0, 255)  # contrast
    return x.lerp(_gray(x), 1 - factors[2]).clamp(0, 255)  # saturation


def _gray(x):
    """N x 3 x H x W -> N x 1 x H x W luma, with the weights torchvision's rgb_to_grayscale uses."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


# How strong: French et al.'s digit augmentation (an affine warp whose 2 x 2 part is the identity plus
# N(0, 0.1) noise, a shift of up to 2 pixels, intensity inversion, Gaussian noise of 0.1 of the picture's
# spread), with ColorJitter's 0.4 for their intensity scale and offset (which the network's per-picture
# standardisation would undo), and FixMatch's blur and cutout (a square of half the picture's side at most).
AFFINE_STD, MAX_SHIFT, JITTER, NOISE, MAX_BLUR, CUTOUT = 0.1, 2.0, 0.4, 0.1, 1.0, 0.5


def strong_augment(images, blur_and_cutout=True):
    """A batch of uint8 (or 0..255 float) images -> float 0..255 images, each strongly distorted;
    blur_and_cutout=False leaves out FixMatch's two, for French et al.'s set alone."""
    return apply_strong(images, draw_strong(images.shape, images.device, blur_and_cutout))


def draw_strong(shape, device, blur_and_cutout=True):
    """The draws for apply_strong of each picture of a batch of `shape`: {name: tensor with a row a picture}."""
    n, most = shape[0], float(blur_and_cutout)
    def uniform(*shape, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(n, *shape, device=device)
    return {"affine": torch.eye(2, device=device) + AFFINE_STD * torch.randn(n, 2, 2, device=device),
            "shift": uniform(2, low=-MAX_SHIFT, high=MAX_SHIFT),
            "colour": 1 + JITTER * uniform(3, low=-1.0, high=1.0),
            "invert": torch.rand(n, device=device) < 0.5,
            "blur": uniform(high=MAX_BLUR * most),
            "noise": torch.randn(*shape, device=device),
            "cutout": torch.cat([uniform(2), uniform(1, high=CUTOUT * most)], 1)}  # centre (fractions) and side


def apply_strong(images, draws):
    """Apply draw_strong's draws to a batch; each picture's result depends on its own draws only."""
    x = warp(images.float(), draws["affine"], draws["shift"])
    x = jitter_colours(x, draws["colour"].T.reshape(3, -1, 1, 1, 1))
    x = torch.where(draws["invert"].view(-1, 1, 1, 1), 255 - x, x)
    x = x.lerp(blurred(x), draws["blur"].view(-1, 1, 1, 1))
    x = x + NOISE * x.std((1, 2, 3), keepdim=True) * draws["noise"]
    return cut_out(x, draws["cutout"]).clamp(0, 255)


def warp(x, affine, shift):
    """Each picture warped about its centre: output pixel at p reads the input at affine @ p + shift
    (p in pixels from the centre), bilinear, zero outside, as cv2.warpAffine does for French et al."""
    n, _, h, w = x.shape
    # made on the device, not copied there: a copy from the host cannot be captured in a CUDA graph
    pixels = torch.stack([torch.full((), w / 2, device=x.device), torch.full((), h / 2, device=x.device)])
    theta = torch.cat([affine * pixels.view(1, 1, 2) / pixels.view(1, 2, 1),  # to grid_sample's [-1, 1] units
                       (shift / pixels).unsqueeze(2)], 2)
    grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def blurred(x):
    """Each channel smoothed by a 3 x 3 binomial filter (1 2 1 / 4 each way, about a Gaussian of sigma
    0.7), the border repeated. The filter is made on the device, as in warp()."""
    k = torch.full((3,), 0.25, device=x.device).index_fill(0, torch.ones(1, dtype=torch.long, device=x.device), 0.5)
    kernel = (k.view(3, 1) * k.view(1, 3)).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def cut_out(x, cutout):
    """A square of each picture (centre and side as fractions of the picture) set to its mean grey."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + 0.5
    cols = torch.arange(w, device=x.device).view(1, 1, w) + 0.5
    half = cutout[:, 2].view(n, 1, 1) * h / 2
    inside = ((rows - cutout[:, 0].view(n, 1, 1) * h).abs() < half) & (
        (cols - cutout[:, 1].view(n, 1, 1) * w).abs() < half)
    return torch.where(inside.unsqueeze(1), x.mean((1, 2, 3), keepdim=True), x)


RECIPES = {
    "light": augment,
    "weak": lambda images: augment(images, jitter=0.0),
    "french": lambda images: strong_augment(images, blur_and_cutout=False),
    "strong": strong_augment,
}
