"""Checking and decoding image files with Pillow, before TensorFlow sees them.

Every file is opened and fully decoded once in a validation pass, so a
corrupt, empty or non-image file becomes a ``DataError`` that names it (or is
skipped and counted with ``skip_bad_files``) instead of a TensorFlow stack
trace in the middle of an epoch.

Images whose mode is not plain 8-bit grayscale/RGB (RGBA, LA, palette,
16-bit, 1-bit, CMYK) are accepted and converted to the configured colour
mode: alpha is dropped, palettes are expanded, 16-bit values are scaled to
8 bit. That matches what ``tf.io.decode_image`` does with them, and the
number of converted files is logged. Only a CMYK JPEG that TensorFlow must
decode to grayscale itself (class folders, ``check_image(channels=1)``) is a
bad file: ``tf.io.decode_image`` reads CMYK as RGB but not as one channel.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge.errors import DataError

log = logging.getLogger(__name__)

# What both Pillow and tf.io.decode_image can read.
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "BMP", "GIF"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
PLAIN_MODES = frozenset({"L", "RGB"})


@dataclass
class BadFileLog:
    """Collects files that were skipped (``skip=True``) or raises on the first one."""

    skip: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: Counter = field(default_factory=Counter)

    def bad(self, path: Path | str, reason: str) -> None:
        if not self.skip:
            raise DataError(f"{path}: {reason} (pass --skip-bad / data.skip_bad_files=true to skip such files)")
        self.skipped.append((str(path), reason))

    def summary(self) -> str:
        parts = []
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} bad file(s)")
        if self.converted:
            modes = ", ".join(f"{count} {mode}" for mode, count in sorted(self.converted.items()))
            parts.append(f"converted {sum(self.converted.values())} image(s) to 8-bit ({modes})")
        return "; ".join(parts)

    def report(self) -> None:
        if self.skipped:
            for path, reason in self.skipped[:10]:
                log.warning("skipped %s: %s", path, reason)
            if len(self.skipped) > 10:
                log.warning("... and %d more skipped files", len(self.skipped) - 10)
        if self.summary():
            log.info("%s", self.summary())


def _open(path: Path) -> Image.Image:
    """Open and fully decode one file; raises ``DataError`` naming it."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    try:
        image = Image.open(path)
        image.load()
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file that can be decoded") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: corrupt or truncated image ({error})") from None
    if image.format not in SUPPORTED_FORMATS:
        raise DataError(f"{path}: unsupported image format {image.format}; use PNG or JPEG")
    return image


def to_array(image: Image.Image, color_mode: str) -> np.ndarray:
    """A decoded Pillow image as uint8 HxWxC in ``color_mode`` (``grayscale``: C=1, ``rgb``: C=3)."""
    if image.mode.startswith("I"):  # 16/32-bit integer grayscale
        values = np.asarray(image).astype(np.float64)
        scale = 257.0 if values.max(initial=0) > 255 or image.mode.startswith("I;16") else 1.0
        image = Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8), mode="L")
    target = "L" if color_mode == "grayscale" else "RGB"
    if image.mode != target:
        if image.mode in ("P", "PA", "RGBA", "LA", "CMYK", "1", "YCbCr") and target == "L":
            image = image.convert("RGB") if image.mode not in ("LA", "1") else image
        image = image.convert(target)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return array


def _open_recorded(path: Path, bad: BadFileLog) -> Image.Image | None:
    """The decoded image, or ``None`` when it is bad; ``bad`` records (or raises) either way."""
    try:
        image = _open(Path(path))
    except DataError as error:
        bad.bad(path, str(error).split(": ", 1)[1])
        return None
    if image.mode not in PLAIN_MODES:
        bad.converted[image.mode] += 1
    return image


def read_image(path: Path, color_mode: str, bad: BadFileLog) -> np.ndarray | None:
    """Decode one file to uint8 HxWxC, or ``None`` when it is bad and skipped."""
    image = _open_recorded(path, bad)
    return None if image is None else to_array(image, color_mode)


def check_image(path: Path, bad: BadFileLog, *, channels: int | None = None) -> bool:
    """True when TensorFlow will decode the file (to ``channels``, when it decodes it itself);
    bad files raise or are recorded."""
    image = _open_recorded(path, bad)
    if image is not None and channels == 1 and image.mode == "CMYK":
        bad.bad(path, "a CMYK JPEG, which TensorFlow cannot decode to grayscale; save it as RGB or grayscale")
        return False
    return image is not None


def read_images(
    paths: Sequence[Path], color_mode: str, bad: BadFileLog, desc: str = "reading images"
) -> tuple[list[np.ndarray | None], list[int]]:
    """Decode many files in threads (with a progress bar); returns arrays and kept indices."""
    from tqdm import tqdm

    def one(path: Path) -> tuple[np.ndarray | None, DataError | None, Counter]:
        local = BadFileLog(skip=True)
        array = read_image(path, color_mode, local)
        error = DataError(f"{local.skipped[0][0]}: {local.skipped[0][1]}") if local.skipped else None
        return array, error, local.converted

    arrays: list[np.ndarray | None] = []
    kept: list[int] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(one, paths, chunksize=64)
        for index, (array, error, converted) in enumerate(
            tqdm(results, total=len(paths), desc=desc, unit="img", leave=False, mininterval=1.0)
        ):
            bad.converted.update(converted)
            if error is not None:
                bad.bad(paths[index], str(error).split(": ", 1)[1])
                arrays.append(None)
                continue
            arrays.append(array)
            kept.append(index)
    return arrays, kept


def stack_images(arrays: Iterable[np.ndarray], channels: int) -> np.ndarray:
    """Stack uint8 HxWxC arrays; images of a different size are resized to the first one's."""
    arrays = list(arrays)
    if not arrays:
        return np.zeros((0, 8, 8, channels), np.uint8)
    height, width = arrays[0].shape[:2]
    out = np.empty((len(arrays), height, width, channels), np.uint8)
    for index, array in enumerate(arrays):
        if array.shape[:2] != (height, width):
            mode = "L" if channels == 1 else "RGB"
            resized = Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode=mode)
            array = np.asarray(resized.resize((width, height), Image.BILINEAR)).reshape(height, width, channels)
        out[index] = array
    return out
