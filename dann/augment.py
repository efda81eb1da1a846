"""The batched augmentation: every image of a batch shifted and recoloured with its own draws, on
the batch's device, with no per-image Python."""
import torch
import torch.nn.functional as F


def augment(images, pad=4, jitter=0.4):
    """A batch of uint8 images -> float 0..255 images, each randomly shifted and recoloured:
    torchvision's RandomCrop(28, padding=4) then ColorJitter(brightness, contrast, saturation
    = jitter), but drawn per image for the whole batch at once on the images' device, with no
    per-image Python (torchvision's batched transforms draw one set of parameters per batch).
    Only the draws use the global RNG, so a seeded CPU run stays reproducible."""
    n, c, h, w = images.shape
    x = F.pad(images.float(), (pad, pad, pad, pad))  # zero fill, as RandomCrop's default
    shift = torch.randint(0, 2 * pad + 1, (2, n, 1, 1, 1), device=images.device)
    rows = shift[0] + torch.arange(h, device=images.device).view(1, 1, h, 1)
    cols = shift[1] + torch.arange(w, device=images.device).view(1, 1, 1, w)
    x = x.gather(2, rows.expand(n, c, h, w + 2 * pad)).gather(3, cols.expand(n, c, h, w))
    factors = 1 + jitter * (2 * torch.rand(3, n, 1, 1, 1, device=images.device) - 1)
    x = (x * factors[0]).clamp(0, 255)
    x = x.lerp(_gray(x).mean((2, 3), keepdim=True), 1 - factors[1]).clamp(0, 255)  # contrast
    return x.lerp(_gray(x), 1 - factors[2]).clamp(0, 255)  # saturation


def _gray(x):
    """N x 3 x H x W -> N x 1 x H x W luma, with the weights torchvision's rgb_to_grayscale uses."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)
