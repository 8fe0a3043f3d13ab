"""Decode a photo into an RGB array, robustly, and shrink it for detection.

Phones write JPEGs sideways with an EXIF orientation tag, scanners write CMYK, screenshots come as
RGBA or palette PNGs; all of them become plain H x W x 3 uint8 RGB here. Truncated files, files that
are not images and decompression bombs are refused with our own exceptions instead of Pillow's
(which say little) or, worse, a detector that reports "no face" for a broken file.

Nothing here writes the image anywhere, and log messages carry sizes only.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vision.types import ImageTooLarge, UnreadableImage

log = logging.getLogger(__name__)

ImageSource = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]

# 50 megapixels covers every phone camera's default mode and scanned prints; a selfie larger than
# that is almost certainly a decompression bomb (a few KB of PNG that inflates to gigabytes).
MAX_PIXELS = 50_000_000
# MTCNN's time grows with pixel count (0.5 s at 740x960, 20+ s at 6000x4000) while a selfie's face
# is large, so detection runs on a copy whose long side is at most this many pixels.
DETECTION_LONG_SIDE = 640
# Transparent areas become white, not black: a black background would darken the face's outline.
_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class DetectionCopy:
    """A shrunken copy of the photo and the factors that map its coordinates back
    (original x = copy x / scale_x, likewise y)."""

    rgb: np.ndarray
    scale_x: float
    scale_y: float


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif")


def _is_heif(source) -> bool:
    """An ISO-BMFF file ('ftyp' at byte 4) of a HEIF brand: iPhones' default photo format."""
    try:
        if isinstance(source, bytes):
            head = source[:12]
        else:
            with open(source, "rb") as f:
                head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def load_rgb(source: ImageSource, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a path, bytes, PIL image or uint8 array into a C-contiguous H x W x 3 uint8 RGB array.

    Raises UnreadableImage for missing-the-point inputs (not an image, truncated, corrupt) and
    ImageTooLarge above `max_pixels`. FileNotFoundError passes through unchanged.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, "the image")
        return _pil_to_rgb(source)
    name = "the image bytes" if isinstance(source, bytes) else os.fspath(source)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        # Pillow's own bomb check warns (or raises above 2x its limit); we want our limit, as an error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                _check_pixels(image.size, max_pixels, name)
                image.load()
                return _pil_to_rgb(image)
    except (ImageTooLarge, UnreadableImage):
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{name}: {e}; expected at most {max_pixels:,} pixels") from e
    except UnidentifiedImageError as e:
        if _is_heif(source):
            raise UnreadableImage(
                f"{name} is a HEIC/HEIF photo, which is not supported; export it as JPEG (phones can) and try again"
            ) from e
        raise UnreadableImage(
            f"{name} is not an image Pillow can read (expected JPEG, PNG, WebP, ...); "
            "check that the file is a photo and not, say, an HTML page or a text file"
        ) from e
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated",
        # "broken data stream"), and some corrupt headers as SyntaxError or ValueError.
        raise UnreadableImage(
            f"{name} could not be decoded ({e}); expected a complete image file; "
            "the upload may have been cut off, try sending the photo again"
        ) from e


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{name} is {width}x{height} = {width * height:,} pixels; expected at most {max_pixels:,}. "
            "Send a smaller photo (a selfie needs no more than a few megapixels)"
        )
    if width < 1 or height < 1:
        raise UnreadableImage(f"{name} has no pixels ({width}x{height})")


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: Pillow's convert("RGB") clips instead of rescaling.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() or 1.0
        gray = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise UnreadableImage(f"expected a uint8 image array, got dtype {array.dtype}; scale it to 0..255 first")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + np.float32(255.0) * (1 - alpha)).round().astype(np.uint8)
    elif not (array.ndim == 3 and array.shape[2] == 3):
        raise UnreadableImage(f"expected an H x W x 3 RGB array, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise UnreadableImage(f"the image array has no pixels (shape {array.shape})")
    return np.ascontiguousarray(array)


def detection_copy(rgb: np.ndarray, long_side: int = DETECTION_LONG_SIDE) -> DetectionCopy:
    """Shrink (never enlarge) so the long side is at most `long_side` pixels."""
    height, width = rgb.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    if scale == 1.0:
        return DetectionCopy(rgb=rgb, scale_x=1.0, scale_y=1.0)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    log.debug("shrunk %dx%d to %dx%d for detection", width, height, size[0], size[1])
    # Rounding makes the two axes' factors differ slightly from `scale`; keep both exact.
    return DetectionCopy(rgb=small, scale_x=size[0] / width, scale_y=size[1] / height)
