"""The packed data set: a recipe's splits in one ``.npz`` that travels to a machine without TensorFlow.

Images are tiled into one lossless WebP per split (FER+ Train: 45.6 MB against
58.6 MB with zlib and 62 MB raw), labels are stored as ``ers train`` reads them.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ConfigError, DataError, SinkError
from edge.folders import make_folder
from trainer.config import DataConfig, TrainConfig

if TYPE_CHECKING:
    from trainer.data import SplitData

log = logging.getLogger(__name__)

MOSAIC_COLUMNS = 160  # 160 x 48 = 7,680 pixels wide
WEBP_MAX_SIDE = 16383


def _encode_mosaic(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1) images as the bytes of one lossless WebP tiling them row by row."""
    import cv2

    count, height, width = images.shape[:3]
    rows = -(-count // MOSAIC_COLUMNS)
    if max(rows * height, MOSAIC_COLUMNS * width) > WEBP_MAX_SIDE:
        raise DataError(f"{count} images of {height}x{width} make a mosaic of {MOSAIC_COLUMNS * width}x"
                        f"{rows * height} pixels; WebP allows {WEBP_MAX_SIDE} on a side (pack a smaller split)")
    tiles = np.zeros((rows * MOSAIC_COLUMNS, height, width), np.uint8)
    tiles[:count] = images[..., 0]
    mosaic = tiles.reshape(rows, MOSAIC_COLUMNS, height, width).transpose(0, 2, 1, 3)
    ok, buffer = cv2.imencode(".webp", mosaic.reshape(rows * height, MOSAIC_COLUMNS * width),
                              [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
    if not ok:
        raise DataError("OpenCV could not encode the image mosaic as WebP")
    return buffer.reshape(-1)


def _decode_mosaic(buffer: np.ndarray, count: int, size: int) -> np.ndarray:
    """Inverse of ``_encode_mosaic``: uint8 (count, size, size, 1), read with OpenCV or, on a machine
    without it (an accelerator's, say), with Pillow: both decode lossless WebP to the same pixels."""
    mosaic = _read_webp_grey(buffer)
    if mosaic is None:
        raise DataError("the packed image mosaic is not a readable WebP")
    rows = mosaic.shape[0] // size
    tiles = mosaic.reshape(rows, size, MOSAIC_COLUMNS, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    return tiles[:count, :, :, None]


def _read_webp_grey(buffer: np.ndarray) -> np.ndarray | None:
    """The single-channel image in WebP bytes, or None when they are not one."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        return cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading a pack needs OpenCV or Pillow (pip install pillow)") from None
    try:
        with Image.open(io.BytesIO(buffer.tobytes())) as image:
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError):
        return None


def _at_size(split: SplitData, data: DataConfig) -> np.ndarray:
    """The split's uint8 images at ``data.image_size``: as they are when the files have that size, else
    as the training pipeline resizes them (``trainer.data.pipeline_pixels``)."""
    from trainer.data import pipeline_pixels

    size = data.image_size
    return split.images if split.images.shape[1:3] == (size, size) else pipeline_pixels(split, data)


def pack(cfg: TrainConfig, out_path: Path, val_limit: int | None = None) -> Path:
    """Write the training and validation splits of ``cfg.data`` to ``out_path`` (``.npz``).

    Grayscale only: the packed format stores one channel. ``val_limit`` keeps a
    seeded random subset of the validation images, for transfers with a size
    limit (the device tool's 64 MiB, for one); the validation there only
    follows the run, which selects nothing on it.
    """
    from trainer.data import detect_format, load_split

    if cfg.data.channels != 1:
        raise DataError(f"pack stores grayscale images; data.color_mode is {cfg.data.color_mode!r}")
    out_path = Path(out_path)
    if out_path.suffix != ".npz":  # numpy would add it, and the file would not be where we look
        out_path = out_path.with_name(out_path.name + ".npz")
    if out_path.is_dir():
        raise ConfigError(f"--out {out_path} is a folder; name the .npz file to write")
    fmt = detect_format(cfg.data)
    if fmt not in ("ferplus", "fer2013_csv"):
        raise DataError(f"pack reads a FER+ root or a fer2013.csv; {cfg.data.data_dir} is {fmt}")
    make_folder(out_path.parent, f"--out {out_path}")  # before the slow part: a bad --out fails now
    train = load_split(cfg.data, "train", training_labels=True)
    val = load_split(cfg.data, "val")
    if val_limit is not None and val_limit < len(val):
        val = val.subset(np.sort(np.random.default_rng(cfg.seed).permutation(len(val))[:val_limit]))
    try:
        np.savez_compressed(
            out_path,
            train_images=_encode_mosaic(_at_size(train, cfg.data)), train_count=len(train),
            train_labels=train.labels,
            val_images=_encode_mosaic(_at_size(val, cfg.data)), val_count=len(val), val_labels=val.majority,
            image_size=cfg.data.image_size, class_names=np.asarray(cfg.data.class_names),
            data_dir=str(cfg.data.data_dir),
        )
    except OSError as error:
        raise SinkError(f"cannot write {out_path}: {error.strerror or error}") from None
    log.info("packed %d training and %d validation images into %s (%.1f MB)", len(train), len(val),
             out_path, out_path.stat().st_size / 1e6)
    return out_path


PACK_KEYS = ("train_images", "train_count", "train_labels", "val_images", "val_count", "val_labels",
             "image_size", "class_names", "data_dir")


def load_pack(path: Path) -> dict[str, Any]:
    """The arrays of a ``pack`` file: images as float32 pixels in [0, 255]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such packed dataset (make one with `python -m trainer.portable pack`)")
    damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # what numpy and zipfile raise on broken bytes
    try:
        data = np.load(path, allow_pickle=False)
    except damaged as error:
        raise DataError(f"{path}: not a packed dataset ({error or type(error).__name__})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not a packed dataset (one array, not an .npz archive)")
    with data:
        missing = [key for key in PACK_KEYS if key not in data.files]
        if missing:
            raise DataError(f"{path}: not a packed dataset of this version (missing {', '.join(missing)}); "
                            "pack it again with `python -m trainer.portable pack`")
        try:
            size = int(data["image_size"])
            loaded = {
                "train_images": _decode_mosaic(data["train_images"], int(data["train_count"]), size).astype(np.float32),
                "train_labels": data["train_labels"].astype(np.float32),
                "val_images": _decode_mosaic(data["val_images"], int(data["val_count"]), size).astype(np.float32),
                "val_labels": data["val_labels"].astype(np.int64),
                "class_names": tuple(str(name) for name in data["class_names"]),
                "image_size": size,
                "data_dir": str(data["data_dir"]),
            }
        except damaged as error:
            reason = error or type(error).__name__
            raise DataError(f"{path}: a damaged packed dataset ({reason}); pack it again") from None
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
    for split in ("train", "val"):
        if len(loaded[f"{split}_images"]) != len(loaded[f"{split}_labels"]):
            raise DataError(f"{path}: {len(loaded[f'{split}_images'])} {split} images for "
                            f"{len(loaded[f'{split}_labels'])} labels; pack it again")
    return loaded
