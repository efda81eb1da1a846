"""The one way any picture becomes what a model reads: every built-in domain's loader, every folder
domain's decoder and image_annotate.py go through picture_to_digit (3 x 28 x 28 uint8), and every
picture file a user names or a folder holds is opened by read_picture, which refuses what cannot be
read safely in one line."""
import os
import warnings

import numpy as np
import torch

from dann.common import mismatched_torchvision

IMAGE_SIZE = 28
NOT_PICTURES = (".pdf", ".eps", ".ps")  # PIL opens them through Ghostscript, as pages, not pictures


class UnreadablePicture(Exception):
    """A file that cannot be read as a picture; str() says why and what to do, in a few words."""


def picture_suffixes():
    """The file name endings of pictures: what PIL can open, documents left out."""
    from PIL import Image
    return {s for s in Image.registered_extensions() if s not in NOT_PICTURES}


def resize_functions():
    """torchvision's image functions, imported on first use: torchvision takes as long to import as torch,
    and 28 x 28 pictures never need it. One built for another torch stops the script in one line (it
    would fail every picture alike)."""
    try:
        import torchvision.transforms.v2.functional as TF
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        raise SystemExit(f"error: {mismatched_torchvision()}") from None
    return TF


def to_28x28_rgb(images):
    """N x C x H x W uint8 (C = 1 or 3) -> N x 3 x 28 x 28 uint8, resized with antialiasing.

    The one place where any picture becomes a model-sized image: the loaders and
    image_annotate.py both go through it.
    """
    if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        images = resize_functions().resize(images, [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


LARGEST_SIDE = 1024  # longer sides are reduced first; 28 x 28 needs far fewer pixels


def eight_bit(image):
    """Any PIL image -> an RGB image: 16-bit and float pixels scaled to 8 bits (not clipped),
    transparency laid over white."""
    from PIL import Image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float64)
        full_scale = 255.0 if pixels.max() <= 255 else 65535.0  # 16-bit files that hold 8-bit values exist
        image = Image.fromarray(np.clip(pixels / full_scale * 255 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def picture_to_digit(image):
    """Any PIL image -> 3 x 28 x 28 uint8, the way a training image looks to the model.

    EXIF rotation is applied, the pixels become 8-bit RGB (eight_bit), a picture longer than
    LARGEST_SIDE is reduced, and it is padded (edge pixels repeated) to a square before
    resizing, as SVHN's crops were squared rather than stretched.
    """
    from PIL import Image, ImageOps
    image = eight_bit(ImageOps.exif_transpose(image))
    if max(image.size) > LARGEST_SIDE:  # bounded memory: padding 20,000 x 1 pixels to a square would take GBs
        scale = LARGEST_SIDE / max(image.size)
        image = image.resize([max(1, round(side * scale)) for side in image.size], Image.LANCZOS)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    h, w = x.shape[1:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    x = torch.nn.functional.pad(x[None].float(), (left, side - w - left, top, side - h - top), mode="replicate")
    return to_28x28_rgb(x.round().to(torch.uint8))[0]


def read_picture(path):
    """A picture file -> (the upright picture, as PIL read it, the 3 x 28 x 28 uint8 digit the model
    reads); UnreadablePicture for a file that is missing, damaged, not a picture, or has more pixels
    than PIL decodes safely (checked before decoding)."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or device would block the reader forever
        raise UnreadablePicture("cannot read it as a picture (not a regular file)")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise UnreadablePicture("an empty file (0 bytes), not a picture")
    try:
        with warnings.catch_warnings():
            # PIL only warns between 89M and 179M pixels; both are refused, before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                shown = ImageOps.exif_transpose(picture)  # the same upright picture is read and drawn
                return shown, picture_to_digit(shown)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadablePicture(f"more than {Image.MAX_IMAGE_PIXELS:,} pixels, too large to read safely; "
                                "crop or shrink it first") from None
    except FileNotFoundError:
        raise UnreadablePicture("cannot read it as a picture (no such file)") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as e:  # PIL's errors for bad files
        raise UnreadablePicture(f"cannot read it as a picture ({type(e).__name__}: {e})") from None
