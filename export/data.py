"""Where export gets its images: the trainer's config and splits, or plain folders.

This is the only module of ``export`` that knows the trainer. With a training
config (``config.yaml`` beside ``model.keras``) the labels come from
``cfg.data.class_names`` and the images from
``trainer.data.load_image_arrays``; without one, a class-folder directory
``DIR/<label>/*.png`` serves as the test or representative set, read with
OpenCV and resized to the model's input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True, kw_only=True, eq=False)
class LabelledImages:
    """uint8 images (N, H, W, C) in 0..255 and int64 labels indexing ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingData:
    """The part of a resolved training config that export needs."""

    config_path: Path
    class_names: tuple[str, ...]
    color_mode: str
    image_size: int
    data_config: Any  # trainer.config.DataConfig, kept opaque here

    def load_split(self, split: str, *, limit: int | None = None, seed: int = 0) -> LabelledImages:
        """Images and labels of ``split`` ("train" | "val" | "test") via the trainer's loader."""
        try:
            from trainer.data import load_image_arrays
        except ImportError as error:
            raise ConfigError(
                f"reading the {split} split of {self.config_path} needs trainer.data "
                f"({error}); pass a class-folder directory instead"
            ) from None
        images, labels = load_image_arrays(self.data_config, split, limit=limit, seed=seed)
        source = f"{split} split of {self.config_path}"
        images = np.asarray(images)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(images) != len(labels):
            raise DataError(f"{source}: {len(images)} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(
                f"{source}: labels must be in [0, {len(self.class_names) - 1}]; "
                f"got [{labels.min()}, {labels.max()}]"
            )
        return LabelledImages(
            images=images, labels=labels, class_names=self.class_names, source=source
        )


def trainer_custom_objects() -> dict[str, Any]:
    """Custom layers the trainer's models use (e.g. the ViT's ``PositionEmbedding``), so
    ``keras.models.load_model`` can rebuild them; empty without the trainer."""
    try:
        from trainer.models import custom_objects
    except ImportError:
        return {}
    return dict(custom_objects())


def float32_model(model, custom_objects: dict[str, Any]):
    """``model`` rebuilt in float32 when it was saved mid-way through a mixed-precision run
    (a checkpoint), so no bfloat16/float16 casts reach TFLite; unchanged otherwise."""
    try:
        from trainer.precision import float32_copy
    except ImportError:
        return model
    return float32_copy(model, custom_objects)


def find_training_config(model_path: Path, config_path: Path | None) -> Path | None:
    """``config_path`` when given (it must exist), else ``config.yaml`` beside the model if present."""
    if config_path is not None:
        if not Path(config_path).is_file():
            raise ConfigError(f"training config {config_path} does not exist")
        return Path(config_path)
    beside = Path(model_path).parent / CONFIG_NAME
    return beside if beside.is_file() else None


def read_training_config(path: Path) -> TrainingData:
    """Load a training config with the trainer's own reader."""
    try:
        from trainer.config import TrainConfig
    except ImportError as error:
        raise ConfigError(
            f"reading {path} needs trainer.config ({error}); pass --test-dir and "
            "--representative-dir class folders instead"
        ) from None
    data = TrainConfig.from_file(path).data
    return TrainingData(
        config_path=Path(path),
        class_names=tuple(data.class_names),
        color_mode=data.color_mode,
        image_size=int(data.image_size),
        data_config=data,
    )


def class_folders(directory: Path) -> list[Path]:
    """Sub-folders of ``directory`` in name order, hidden ones skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory")
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image(path: Path, input_shape: tuple[int, int, int]) -> np.ndarray:
    """One image as uint8 (H, W, C) in the model's colour mode (RGB order), resized if needed."""
    height, width, channels = input_shape
    buffer = np.fromfile(path, dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imdecode(buffer, flag) if buffer.size else None
    if image is None:
        raise DataError(f"{path} is not a readable image")
    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] > height or image.shape[1] > width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interpolation)
    if channels == 1:
        return image[..., np.newaxis]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _sample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or len(items) <= limit:
        return items
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in keep]


def _stack(paths: list[Path], input_shape: tuple[int, int, int]) -> np.ndarray:
    if not paths:
        return np.zeros((0, *input_shape), np.uint8)
    return np.stack([read_image(p, input_shape) for p in paths])


def load_class_folders(
    directory: Path,
    input_shape: tuple[int, int, int],
    class_names: tuple[str, ...] | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> LabelledImages:
    """A labelled set from ``directory/<label>/*.png``.

    With ``class_names`` the folder names must be exactly those labels (any
    order on disk; labels index ``class_names``). Without, the labels are the
    folder names in alphabetical order, as Keras' ``image_dataset_from_directory``
    assigns them.
    """
    directory = Path(directory)
    folders = class_folders(directory)
    if not folders:
        raise DataError(
            f"{directory} has no class folders; expected {directory}/<label>/*.png, one folder per label"
        )
    names = tuple(p.name for p in folders)
    if class_names is None:
        class_names = names
        logger.info("labels taken from the folder names of %s: %s", directory, list(names))
    elif set(names) != set(class_names):
        missing = sorted(set(class_names) - set(names))
        unexpected = sorted(set(names) - set(class_names))
        raise DataError(
            f"class folders of {directory} do not match the model's labels {list(class_names)}: "
            f"missing {missing}, unexpected {unexpected}"
        )
    index = {name: i for i, name in enumerate(class_names)}
    entries = [(path, index[folder.name]) for folder in folders for path in _image_files(folder)]
    entries = _sample(entries, limit, seed)
    if not entries:
        raise DataError(f"{directory} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return LabelledImages(
        images=_stack([p for p, _ in entries], input_shape),
        labels=np.array([label for _, label in entries], np.int64),
        class_names=tuple(class_names),
        source=str(directory),
    )


def load_image_folder(
    directory: Path, input_shape: tuple[int, int, int], *, limit: int | None = None, seed: int = 0
) -> np.ndarray:
    """Unlabelled images from class folders or from a flat folder (representative data)."""
    directory = Path(directory)
    folders = class_folders(directory)
    paths = [p for folder in folders for p in _image_files(folder)] + _image_files(directory)
    if not paths:
        raise DataError(f"{directory} holds no images, neither directly nor in class folders")
    return _stack(_sample(paths, limit, seed), input_shape)


def check_images(images: np.ndarray, input_shape: tuple[int, int, int], what: str) -> np.ndarray:
    """``images`` as (N, H, W, C) matching the model input with pixel values in 0..255."""
    images = np.asarray(images)
    if images.ndim == 3 and input_shape[2] == 1:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[1:] != tuple(input_shape):
        raise DataError(
            f"{what} must have shape (N, {', '.join(map(str, input_shape))}) to match the model "
            f"input; got {images.shape}"
        )
    if len(images) == 0:
        raise DataError(f"{what} is empty; it needs at least one image")
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise DataError(f"{what} must hold numeric pixel values; got dtype {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 255.0:
        raise DataError(
            f"{what} must hold pixel values in [0, 255] (the model rescales inside); "
            f"got [{low:g}, {high:g}]"
        )
    return images
