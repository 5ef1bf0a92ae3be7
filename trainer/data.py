"""Data sets for training and evaluation: three layouts, one tf.data pipeline.

Layouts (``data.format``, ``auto`` detects them):

* ``folders``: ``data_dir/{train,val,test}/<class>/*.png`` (the seed's
  ``SplittedDS``), read with ``tf.keras.utils.image_dataset_from_directory``
  (or, when bad files were skipped, the same decode on the list of good files);
* ``ferplus``: ``data_dir/FER2013Train|Valid[|Test]/label.csv`` plus PNGs
  (see ``trainer.ferplus``), decoded once into a uint8 array;
* ``fer2013_csv``: the Kaggle ``fer2013.csv`` file (see ``trainer.fer2013``).

Every split is validated (all files decoded once) before any tensor is made.
Training batches are float32 pixels in [0, 255] at ``image_size``; the model
rescales them itself. Evaluation splits always carry majority labels.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import DataError
from trainer import fer2013, ferplus, folders
from trainer.config import DataConfig, TrainConfig
from trainer.images import BadFileLog, read_images, stack_images

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class SplitData:
    """One split, validated: either decoded ``images`` or image ``paths``, and labels.

    ``labels`` is float32 (N, C): one-hot, or a vote distribution for FER+
    ``soft`` training labels. ``directory`` is set for a clean class-folder split.
    """

    split: str
    labels: np.ndarray
    images: np.ndarray | None = None
    paths: tuple[str, ...] | None = None
    directory: Path | None = None
    summary: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def majority(self) -> np.ndarray:
        return self.labels.argmax(axis=1).astype(np.int64)

    def subset(self, indices: np.ndarray) -> SplitData:
        return replace(
            self,
            labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            paths=None if self.paths is None else tuple(self.paths[i] for i in indices),
            directory=None,
        )


def detect_layout(root: Path) -> str | None:
    """``ferplus``, ``fer2013_csv`` or ``folders`` for a data root that looks like one, else None."""
    if ferplus.is_ferplus_root(root):
        return "ferplus"
    if fer2013.is_fer2013_csv(root):
        return "fer2013_csv"
    if folders.is_split_root(root):
        return "folders"
    return None


def detect_format(data: DataConfig) -> str:
    if data.data_dir is None:
        raise DataError("no data directory; pass --data-dir or set data.data_dir")
    root = Path(data.data_dir)
    if not root.exists():
        # a run's config.yaml keeps data_dir as it was typed: relative to where that run was started
        where = "" if root.is_absolute() else f" (relative to the current folder {Path.cwd()}; pass --data-dir)"
        raise DataError(f"{root}: data directory does not exist{where}")
    if data.format != "auto":
        return data.format
    layout = detect_layout(root)
    if layout is not None:
        return layout
    raise DataError(
        f"{root}: cannot tell the data layout; expected train/val/test class folders, a FER+ root "
        "(FER2013Train/label.csv) or a fer2013.csv file (set data.format to say which)"
    )


def _one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.zeros((len(indices), num_classes), np.float32)
    labels[np.arange(len(indices)), indices] = 1.0
    return labels


@functools.lru_cache(maxsize=2)
def _cached_fer2013(path: str, mtime: float) -> dict[str, Any]:
    return fer2013.read_fer2013_csv(Path(path))


def _load_ferplus(data: DataConfig, split: str, label_mode: str, bad: BadFileLog) -> SplitData:
    root = Path(data.data_dir)
    folder = ferplus.split_folder(root, split)
    table = ferplus.read_label_csv(folder / "label.csv")
    excluded = ferplus.exclusions(root, data.exclude_list, data.dedup_valid)
    paths, labels, counts = ferplus.select(table, data.class_names, label_mode, excluded)
    arrays, kept = read_images(paths, data.color_mode, bad, desc=f"reading {folder.name}")
    images = stack_images((arrays[i] for i in kept), data.channels)
    summary = (f"{folder.name}: {counts['rows']} rows, {counts['dropped_by_label_rule']} dropped by the "
               f"{label_mode} rule, {counts['excluded']} excluded, {len(kept)} used")
    return SplitData(split, labels[kept], images=images, summary=summary)


def _load_fer2013(data: DataConfig, split: str) -> SplitData:
    path = Path(data.data_dir)
    images, names, _ = _cached_fer2013(str(path), path.stat().st_mtime)[split]
    if len(images) == 0:
        raise DataError(f"{path}: has no rows for the {split} split "
                        f"(Usage {[u for u, s in fer2013.USAGE_TO_SPLIT.items() if s == split][0]})")
    wanted = np.asarray([name in data.class_names for name in names], bool)
    indices = np.asarray([data.class_names.index(n) for n, w in zip(names, wanted) if w], np.int64)
    images = images[wanted]
    if data.channels == 3:
        images = np.repeat(images, 3, axis=-1)
    summary = f"{path.name} {split}: {len(names)} rows, {int((~wanted).sum())} of unconfigured classes dropped"
    return SplitData(split, _one_hot(indices, data.num_classes), images=images, summary=summary)


def _load_folders(data: DataConfig, split: str, bad: BadFileLog) -> SplitData:
    directory = Path(data.data_dir) / split
    skipped_before = len(bad.skipped)
    paths, indices = folders.scan_class_folders(directory, data.class_names, bad, channels=data.channels)
    # Keras reads every image file of the class folders, hidden ones too (macOS's "._x.png" copies,
    # which are no images), so it reads them only when the scan kept all there are; else the paths go.
    hidden = any(path.name.startswith(".") for name in data.class_names if (directory / name).is_dir()
                 for path in (directory / name).iterdir())
    clean = len(bad.skipped) == skipped_before and not hidden
    summary = f"{directory}: {len(paths)} images"
    return SplitData(split, _one_hot(indices, data.num_classes), paths=tuple(map(str, paths)),
                     directory=directory if clean else None, summary=summary)


def load_split(data: DataConfig, split: str, *, training_labels: bool = False,
               bad: BadFileLog | None = None) -> SplitData:
    """Validate and load one split. ``training_labels`` uses ``data.label_mode`` (else majority)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}; got {split!r}")
    bad = bad if bad is not None else BadFileLog(skip=data.skip_bad_files)
    fmt = detect_format(data)
    label_mode = data.label_mode if training_labels else "majority"
    if label_mode == "soft" and fmt != "ferplus":
        raise DataError(f"data.label_mode 'soft' needs FER+ vote labels; {data.data_dir} is {fmt}")
    if fmt == "ferplus":
        result = _load_ferplus(data, split, label_mode, bad)
    elif fmt == "fer2013_csv":
        result = _load_fer2013(data, split)
    else:
        result = _load_folders(data, split, bad)
    if len(result) == 0:
        raise DataError(f"{data.data_dir}: the {split} split has no usable images")
    counts = result.labels.sum(axis=0)
    empty = [name for name, count in zip(data.class_names, counts) if count == 0]
    if empty:
        log.warning("%s split has no images of class(es) %s", split, empty)
    log.info("%s (%s)", result.summary, bad.summary() or "no bad files")
    return result


# ----------------------------------------------------------------- tf.data
def _decode_path(path: "tf.Tensor", channels: int, size: int) -> "tf.Tensor":
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image = tf.image.resize(image, (size, size), method="bilinear")
    image.set_shape((size, size, channels))
    return image


def _base_dataset(split: SplitData, data: DataConfig, shuffle_seed: int | None) -> "tf.data.Dataset":
    """Batched (float32 images in [0, 255] at image_size, float32 labels); shuffled when seeded."""
    import tensorflow as tf

    size, channels, batch = data.image_size, data.channels, data.batch_size
    autotune = tf.data.AUTOTUNE
    n = len(split)
    if split.images is not None:
        images = tf.constant(split.images)
        labels = tf.constant(split.labels)
        ds = tf.data.Dataset.range(n)
        if shuffle_seed is not None:
            ds = ds.shuffle(data.shuffle_buffer or n, seed=shuffle_seed, reshuffle_each_iteration=True)
        native = tuple(split.images.shape[1:3])

        def gather(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            image = tf.cast(tf.gather(images, index), tf.float32)
            if native != (size, size):
                image = tf.image.resize(image, (size, size), method="bilinear")
            return image, tf.gather(labels, index)

        return ds.batch(batch).map(gather, num_parallel_calls=autotune)
    if split.directory is not None:
        # Keras shuffles the file list (and a path buffer each epoch) before decoding.
        ds = tf.keras.utils.image_dataset_from_directory(
            split.directory, labels="inferred", label_mode="categorical",
            class_names=list(data.class_names), color_mode=data.color_mode, batch_size=None,
            image_size=(size, size), shuffle=shuffle_seed is not None, seed=shuffle_seed, verbose=False,
        )
    else:
        ds = tf.data.Dataset.from_tensor_slices((list(split.paths), split.labels))
        if shuffle_seed is not None:  # shuffle paths, not decoded images
            ds = ds.shuffle(data.shuffle_buffer or n, seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda p, y: (_decode_path(p, channels, size), y), num_parallel_calls=autotune)
    return ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.float32)),
                               num_parallel_calls=autotune)


def make_dataset(split: SplitData, cfg: TrainConfig, training: bool) -> "tf.data.Dataset":
    """The tf.data pipeline of one split; training adds shuffling, augmentation and CutMix."""
    import tensorflow as tf

    if not training:
        return _base_dataset(split, cfg.data, None).prefetch(tf.data.AUTOTUNE)
    from trainer.augment import build_augment_fn

    augment = build_augment_fn(cfg.augment, cfg.data.color_mode, seed=cfg.seed)

    def stream(seed: int) -> tf.data.Dataset:
        ds = _base_dataset(split, cfg.data, seed)
        if augment is not None:
            ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        return ds

    ds = stream(cfg.seed)
    if cfg.cutmix.enabled:
        from trainer.cutmix import apply_cutmix_stream

        ds = apply_cutmix_stream(ds, stream(cfg.seed + 1), cfg.cutmix, seed=cfg.seed)
    if cfg.distill.teachers and cfg.distill.online:
        from trainer.distill import online_teacher_labels

        ds = ds.map(online_teacher_labels(cfg))
    return ds.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True, eq=False)
class Datasets:
    train: Any
    val: Any
    test: Any
    class_names: tuple[str, ...]
    sizes: dict[str, int]
    test_labels: np.ndarray  # int majority labels of the test split, in dataset order
    # Training batches for re-estimating normalisation statistics (``optim.ema_calibration_images``):
    # ``train`` itself, or its images un-augmented and shuffled. None without a train split.
    calibration: Any = None


def validate_data(data: DataConfig, splits: tuple[str, ...] = SPLITS) -> dict[str, SplitData]:
    """The validation pass: every split loaded and every file checked, before training."""
    bad = BadFileLog(skip=data.skip_bad_files)
    loaded = {split: load_split(data, split, training_labels=split == "train", bad=bad) for split in splits}
    bad.report()
    return loaded


def load_datasets(cfg: TrainConfig, splits: tuple[str, ...] = SPLITS, *,
                  fit_batch_size: int | None = None) -> Datasets:
    """Validated splits as tf.data pipelines.

    ``fit_batch_size`` batches the train and val pipelines (``model.fit``'s
    global batch under a distribution strategy: ``data.batch_size`` per replica
    times the replicas); the test pipeline keeps ``data.batch_size``.
    """
    loaded = validate_data(cfg.data, splits)
    if "train" in loaded and cfg.distill.teachers:
        from trainer.distill import with_teacher_labels

        loaded["train"] = with_teacher_labels(cfg, loaded["train"])
    fit_cfg = cfg
    if fit_batch_size is not None and fit_batch_size != cfg.data.batch_size:
        fit_cfg = replace(cfg, data=replace(cfg.data, batch_size=fit_batch_size))
    made = {s: make_dataset(loaded[s], cfg if s == "test" else fit_cfg, training=s == "train") for s in loaded}
    test = loaded.get("test")
    calibration = made.get("train")
    if calibration is not None and cfg.optim.ema_calibration_images == "plain":
        import tensorflow as tf

        calibration = _base_dataset(loaded["train"], fit_cfg.data, cfg.seed + 2).prefetch(tf.data.AUTOTUNE)
    return Datasets(
        train=made.get("train"), val=made.get("val"), test=made.get("test"),
        class_names=cfg.data.class_names, sizes={s: len(d) for s, d in loaded.items()},
        test_labels=test.majority if test is not None else np.zeros(0, np.int64), calibration=calibration,
    )


def load_image_arrays(data: DataConfig, split: str, limit: int | None = None,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, image_size, image_size, channels) and int64 majority labels (N,).

    Pixels are exactly what the evaluation pipeline feeds the model (rounded to
    uint8). ``limit`` keeps a seeded random subset of that many images.
    """
    loaded = load_split(data, split, training_labels=False)
    if limit is not None and limit < len(loaded):
        indices = np.sort(np.random.default_rng(seed).permutation(len(loaded))[:limit])
        loaded = loaded.subset(indices)
    return pipeline_pixels(loaded, data), loaded.majority


def pipeline_pixels(split: SplitData, data: DataConfig) -> np.ndarray:
    """uint8 images (N, image_size, image_size, channels) of ``split``, in its order: what the
    evaluation pipeline feeds the model (decoded and resized there), rounded."""
    import tensorflow as tf

    if split.directory is not None:  # keep the paths order the labels use
        split = replace(split, directory=None)
    ds = _base_dataset(split, replace(data, batch_size=256), None)
    images = [tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8).numpy() for x, _ in ds]
    return np.concatenate(images, axis=0)
