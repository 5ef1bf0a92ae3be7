"""Distillation on an accelerator machine that has Keras' JAX or PyTorch backend but no TensorFlow.

``ers train`` needs TensorFlow (``tf.data``, ``tf.distribute``). GPU hosts
often carry only JAX or PyTorch, and TensorFlow's GPU build is too large to
bring along. This module trains the same ``trainer.nets`` networks there with
backend-agnostic Keras, in two steps:

1. ``pack`` (here, with the project's loaders): the training images with
   their vote distributions and the deduplicated validation images with their
   majority labels, exactly as ``ers train`` reads them, into one ``.npz``
   (images losslessly WebP-encoded as mosaics, so FER+ fits in about 45 MB).
2. ``train`` (on the accelerator, ``KERAS_BACKEND=jax``): a wider teacher on
   the vote distributions, then the recipe's network distilled from it. Both
   see the recipe's augmentation, done on the accelerator inside the training
   step (``_augment_layer``), and the student learns from the teacher's predictions on the very
   batch it sees (the same augmented images), which is what makes a teacher
   worth having: fixed predictions on un-augmented training images (``distill``
   in the config) barely add to the votes the teacher was trained on.

The student is saved as a float32 ``.keras`` model of the recipe's
architecture, which ``ers evaluate`` and ``ers export`` read like any model of
``ers train``. Random layers stay in the training wrapper, never in the saved
networks, so TFLite conversion is unaffected.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError
from trainer.config import TrainConfig

log = logging.getLogger(__name__)

MOSAIC_COLUMNS = 160  # 160 x 48 = 7,680 pixels wide; WebP allows 16,383 on a side


# ----------------------------------------------------------------- pack (here)
def _encode_mosaic(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1) images as the bytes of one lossless WebP tiling them row by row."""
    import cv2

    count, height, width = images.shape[:3]
    rows = -(-count // MOSAIC_COLUMNS)
    tiles = np.zeros((rows * MOSAIC_COLUMNS, height, width), np.uint8)
    tiles[:count] = images[..., 0]
    mosaic = tiles.reshape(rows, MOSAIC_COLUMNS, height, width).transpose(0, 2, 1, 3)
    ok, buffer = cv2.imencode(".webp", mosaic.reshape(rows * height, MOSAIC_COLUMNS * width),
                              [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
    if not ok:
        raise DataError("OpenCV could not encode the image mosaic as WebP")
    return buffer.reshape(-1)


def _decode_mosaic(buffer: np.ndarray, count: int, size: int) -> np.ndarray:
    """Inverse of ``_encode_mosaic``: uint8 (count, size, size, 1)."""
    import cv2

    mosaic = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    if mosaic is None:
        raise DataError("the packed image mosaic is not a readable WebP")
    rows = mosaic.shape[0] // size
    tiles = mosaic.reshape(rows, size, MOSAIC_COLUMNS, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    return tiles[:count, :, :, None]


def pack(cfg: TrainConfig, out_path: Path, val_limit: int | None = None) -> Path:
    """Write the training and validation splits of ``cfg.data`` to ``out_path`` (``.npz``).

    Grayscale only: the packed format stores one channel. ``val_limit`` keeps a
    seeded random subset of the validation images, for transfers with a size
    limit (the device tool's 64 MiB, for one); the validation there only
    follows the run, which selects nothing on it.
    """
    from trainer.data import load_split

    if cfg.data.channels != 1:
        raise DataError(f"pack stores grayscale images; data.color_mode is {cfg.data.color_mode!r}")
    train = load_split(cfg.data, "train", training_labels=True)
    val = load_split(cfg.data, "val")
    if val_limit is not None and val_limit < len(val):
        val = val.subset(np.sort(np.random.default_rng(cfg.seed).permutation(len(val))[:val_limit]))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_path,
        train_images=_encode_mosaic(train.images), train_count=len(train), train_labels=train.labels,
        val_images=_encode_mosaic(val.images), val_count=len(val), val_labels=val.majority,
        image_size=cfg.data.image_size, class_names=np.asarray(cfg.data.class_names),
        data_dir=str(cfg.data.data_dir),
    )
    log.info("packed %d training and %d validation images into %s (%.1f MB)", len(train), len(val),
             out_path, out_path.stat().st_size / 1e6)
    return out_path


def load_pack(path: Path) -> dict[str, Any]:
    """The arrays of a ``pack`` file: images as float32 pixels in [0, 255]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such packed dataset (make one with `python -m trainer.portable pack`)")
    with np.load(path) as data:
        size = int(data["image_size"])
        return {
            "train_images": _decode_mosaic(data["train_images"], int(data["train_count"]), size).astype(np.float32),
            "train_labels": data["train_labels"].astype(np.float32),
            "val_images": _decode_mosaic(data["val_images"], int(data["val_count"]), size).astype(np.float32),
            "val_labels": data["val_labels"].astype(np.int64),
            "class_names": tuple(str(name) for name in data["class_names"]),
            "image_size": size,
            "data_dir": str(data["data_dir"]),
        }


# ----------------------------------------------------------- train (anywhere)
def _reflect(coords, size: int):
    """Continuous pixel coordinates folded into [0, size - 1] by half-sample symmetric reflection."""
    from keras import ops

    period = 2.0 * size
    folded = ops.mod(coords + 0.5, period)
    folded = ops.where(folded >= size, period - folded, folded) - 0.5
    return ops.clip(folded, 0.0, size - 1.0)


def _augment_layer(augment, seed: int):
    """The recipe's augmentation as one layer of vectorised keras.ops.

    Keras' RandomRotation, RandomTranslation and RandomZoom warp each image
    through ``affine_transform``, which under JAX on a GPU took 0.5 s per batch
    of 128 (100 times the network's own step). Here rotation, horizontal flip,
    translation and zoom are one affine map per image, sampled bilinearly with a
    gather and reflected at the borders (their ``fill_mode="reflect"``); then
    come contrast and brightness (per image, like RandomContrast and
    RandomBrightness), the Gaussian noise and the grayscale jitter of
    ``trainer.augment``. Strengths are those of ``AugmentConfig``.
    """
    import keras
    from keras import ops

    class Augment(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def _uniform(self, shape, strength: float):
            return keras.random.uniform(shape, -strength, strength, seed=self.seed_generator)

        def _warp(self, images):
            count = ops.shape(images)[0]
            height, width = images.shape[1], images.shape[2]
            angle = self._uniform((count, 1, 1), augment.rotation * 2.0 * math.pi)
            zoom = 1.0 + self._uniform((count, 1, 1), augment.zoom)
            shift_x = self._uniform((count, 1, 1), augment.translation * width)
            shift_y = self._uniform((count, 1, 1), augment.translation * height)
            mirror = 1.0
            if augment.flip:
                mirror = ops.where(keras.random.uniform((count, 1, 1), seed=self.seed_generator) < 0.5, -1.0, 1.0)
            ys, xs = ops.meshgrid(ops.arange(height, dtype="float32") - (height - 1) / 2.0,
                                  ops.arange(width, dtype="float32") - (width - 1) / 2.0, indexing="ij")
            xs, ys = xs[None] * mirror * zoom, ys[None] * zoom
            cos, sin = ops.cos(angle), ops.sin(angle)
            source_x = _reflect(cos * xs - sin * ys + (width - 1) / 2.0 - shift_x, width)
            source_y = _reflect(sin * xs + cos * ys + (height - 1) / 2.0 - shift_y, height)
            x0, y0 = ops.floor(source_x), ops.floor(source_y)
            wx, wy = source_x - x0, source_y - y0
            x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
            x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
            base = ops.reshape(ops.arange(count, dtype="int32") * (height * width), (-1, 1, 1))
            flat = ops.reshape(images, (-1,))

            def pixel(y, x):
                return ops.take(flat, base + y * width + x)

            top = pixel(y0, x0) * (1.0 - wx) + pixel(y0, x1) * wx
            bottom = pixel(y1, x0) * (1.0 - wx) + pixel(y1, x1) * wx
            return ops.expand_dims(top * (1.0 - wy) + bottom * wy, -1)

        def call(self, images, training=False):
            if not training:
                return images
            per_image = (ops.shape(images)[0], 1, 1, 1)
            images = self._warp(ops.cast(images, "float32"))
            if augment.contrast > 0:
                mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
                images = mean + (images - mean) * (1.0 + self._uniform(per_image, augment.contrast))
            if augment.brightness > 0:
                images = images + 255.0 * self._uniform(per_image, augment.brightness)
            if augment.noise_std > 0:
                images = images + keras.random.normal(ops.shape(images), stddev=augment.noise_std,
                                                      seed=self.seed_generator)
            x = ops.clip(images, 0.0, 255.0) / 255.0
            if augment.jitter_brightness > 0:
                x = x + self._uniform(per_image, augment.jitter_brightness)
            if augment.jitter_contrast > 0:
                mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
                x = mean + (x - mean) * (1.0 + self._uniform(per_image, augment.jitter_contrast))
            return ops.clip(x, 0.0, 1.0) * 255.0

    return Augment(name="augment")


def build_trainee(cfg: TrainConfig, network, teacher=None, kd_weight: float = 0.0, temperature: float = 1.0):
    """A training wrapper: augmentation, ``network`` and, when given, a frozen ``teacher``.

    Its output is the network's probabilities, followed by the teacher's on the
    same augmented images; the loss is cross-entropy with the labels blended
    with the temperature-scaled divergence from the teacher.
    """
    import keras
    from keras import ops

    augment = _augment_layer(cfg.augment, cfg.seed) if cfg.augment.enabled else None
    num_classes = cfg.data.num_classes
    if teacher is not None:
        teacher.trainable = False

    class Trainee(keras.Model):
        def __init__(self):
            super().__init__(name="trainee")
            self.network, self.teacher = network, teacher
            self.augment = augment

        def build(self, input_shape):
            self.network.build(input_shape)  # the teacher, built already, is frozen

        def call(self, images, training=False):
            if training and self.augment is not None:
                images = self.augment(images, training=True)
            probs = ops.cast(self.network(images, training=training), "float32")
            if self.teacher is None:
                return probs
            taught = ops.stop_gradient(ops.cast(self.teacher(images, training=False), "float32"))
            return ops.concatenate([probs, taught], axis=-1)

    def loss(labels, outputs):
        probs = ops.clip(outputs[:, :num_classes], 1e-7, 1.0)
        cross_entropy = -ops.sum(labels * ops.log(probs), axis=-1)
        if teacher is None or kd_weight == 0:
            return cross_entropy
        taught = ops.clip(outputs[:, num_classes:], 1e-7, 1.0)
        student_t = ops.softmax(ops.log(probs) / temperature, axis=-1)
        teacher_t = ops.softmax(ops.log(taught) / temperature, axis=-1)
        divergence = ops.sum(teacher_t * (ops.log(ops.clip(teacher_t, 1e-7, 1.0))
                                          - ops.log(ops.clip(student_t, 1e-7, 1.0))), axis=-1)
        return (1.0 - kd_weight) * cross_entropy + kd_weight * temperature**2 * divergence

    def accuracy(labels, outputs):
        return ops.cast(ops.equal(ops.argmax(labels, axis=-1), ops.argmax(outputs[:, :num_classes], axis=-1)),
                        "float32")

    trainee = Trainee()
    return trainee, loss, accuracy


def _budget_schedule(optim, epochs: int, max_seconds: float | None):
    """Warm-up then cosine decay over ``epochs`` or ``max_seconds``, whichever runs out first.

    A lease on an accelerator ends at a fixed time, and a run stopped halfway
    down its cosine is a poor model: here the decay follows the larger of the
    epochs done and the time spent, and training stops when the next epoch
    would overrun, so the learning rate reaches its floor either way.
    """
    import keras

    class BudgetSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started, self.epoch_seconds = time.time(), 0.0

        def _progress(self, epoch: int) -> float:
            """The share of the run done at this epoch's end, by epochs or by the time it will take."""
            spent = (time.time() - self.started + self.epoch_seconds) / max_seconds if max_seconds else 0.0
            return max(epoch / epochs, spent)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.time()
            if epoch < optim.warmup_epochs:
                rate = optim.learning_rate * (epoch + 1) / (optim.warmup_epochs + 1)
            else:
                done = self._progress(epoch)
                warm = optim.warmup_epochs / epochs
                fraction = min(1.0, max(0.0, (done - warm) / max(1e-9, 1.0 - warm)))
                rate = optim.min_learning_rate + 0.5 * (optim.learning_rate - optim.min_learning_rate) * (
                    1.0 + math.cos(math.pi * fraction))
            self.model.optimizer.learning_rate = rate

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds = time.time() - self.epoch_started
            if logs is not None:
                logs["learning_rate"] = float(self.model.optimizer.learning_rate)
            if max_seconds and time.time() - self.started + self.epoch_seconds > max_seconds:
                log.info("stopping after epoch %d: the next would pass %.0f s", epoch + 1, max_seconds)
                self.model.stop_training = True

    return BudgetSchedule()


def fit_network(cfg: TrainConfig, data: dict[str, Any], network, *, epochs: int, teacher=None,
                kd_weight: float = 0.0, temperature: float = 1.0, label: str = "network",
                max_seconds: float | None = None) -> dict[str, list]:
    """Train ``network`` in place on the packed data with the recipe's optimizer and a cosine schedule."""
    import keras

    from trainer.train import make_optimizer

    trainee, loss, accuracy = build_trainee(cfg, network, teacher, kd_weight, temperature)
    trainee.compile(optimizer=make_optimizer(cfg), loss=loss, metrics=[accuracy])
    val_onehot = np.eye(cfg.data.num_classes, dtype=np.float32)[data["val_labels"]]
    started = time.time()

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log.info("%s epoch %d/%d: loss %.4f accuracy %.4f val_accuracy %.4f lr %.2e (%.0f s)", label,
                     epoch + 1, epochs, logs.get("loss", math.nan), logs.get("accuracy", math.nan),
                     logs.get("val_accuracy", math.nan), logs.get("learning_rate", math.nan),
                     time.time() - started)

    history = trainee.fit(
        data["train_images"], data["train_labels"], batch_size=cfg.data.batch_size, epochs=epochs,
        validation_data=(data["val_images"], val_onehot), shuffle=True, verbose=0,
        callbacks=[_budget_schedule(cfg.optim, epochs, max_seconds), Progress()],
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def write_history_csv(history: dict[str, list[float]], path: Path) -> Path:
    """``history.csv`` as ``ers train`` writes it (an ``epoch`` column, 0-based), for ``ers evaluate``'s curves."""
    import csv

    keys = sorted(history)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *keys])
        for epoch in range(max((len(v) for v in history.values()), default=0)):
            writer.writerow([epoch, *(history[k][epoch] if epoch < len(history[k]) else "" for k in keys)])
    return path


def save_weights_npz(model, path: Path) -> None:
    """A model's weights as float16 arrays (half the size of a ``.keras`` file, to ship back)."""
    np.savez(path, *[np.asarray(w, np.float16) for w in model.get_weights()])


def load_weights_npz(model, path: Path) -> None:
    with np.load(path) as data:
        model.set_weights([data[f"arr_{i}"].astype(np.float32) for i in range(len(data.files))])


def train(cfg: TrainConfig, pack_path: Path, out_dir: Path, *, teacher_cfg: TrainConfig,
          teacher_epochs: int, epochs: int, kd_weight: float, temperature: float,
          teacher_weights: Path | None = None, teacher_max_seconds: float | None = None,
          max_seconds: float | None = None) -> dict[str, Any]:
    """Teacher (trained, or read from ``teacher_weights``), then the distilled student, into ``out_dir``."""
    import keras

    from trainer.nets import build_vgg
    from trainer.precision import float32_copy, precision_policy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_pack(pack_path)
    if data["class_names"] != cfg.data.class_names or data["image_size"] != cfg.data.image_size:
        raise DataError(f"{pack_path}: packed for classes {data['class_names']} at {data['image_size']} px; "
                        f"the config wants {cfg.data.class_names} at {cfg.data.image_size} px")
    keras.utils.set_random_seed(cfg.seed)
    shape = cfg.data.input_shape
    summary: dict[str, Any] = {"backend": keras.backend.backend(), "kd_weight": kd_weight,
                               "temperature": temperature, "epochs": epochs, "teacher_epochs": teacher_epochs}
    with precision_policy(cfg.precision):
        teacher = build_vgg(teacher_cfg, shape, cfg.data.num_classes)
        summary["teacher_model"] = dataclasses.asdict(teacher_cfg.model)
        summary["teacher_parameters"] = teacher.count_params()
        if teacher_weights is not None:
            load_weights_npz(teacher, teacher_weights)
        else:
            started = time.time()
            summary["teacher_history"] = fit_network(teacher_cfg, data, teacher, epochs=teacher_epochs,
                                                     label="teacher", max_seconds=teacher_max_seconds)
            summary["teacher_seconds"] = time.time() - started
            write_history_csv(summary["teacher_history"], out_dir / "teacher_history.csv")
            save_weights_npz(teacher, out_dir / "teacher.weights.npz")
        student = build_vgg(cfg, shape, cfg.data.num_classes)
        started = time.time()
        summary["student_history"] = fit_network(cfg, data, student, epochs=epochs, teacher=teacher,
                                                 kd_weight=kd_weight, temperature=temperature, label="student",
                                                 max_seconds=max_seconds)
        summary["student_seconds"] = time.time() - started
    write_history_csv(summary["student_history"], out_dir / "history.csv")
    float32_copy(student).save(out_dir / "model.keras")
    # The student's config, with the epochs it was given and the data the pack came from: `ers evaluate`
    # and `ers export` read it beside the model on the machine that packed.
    cfg.replace({"data.data_dir": data["data_dir"], "epochs": epochs}).save(out_dir / "config.yaml")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------------ CLI
def _config(path: Path, sets: tuple[str, ...]) -> TrainConfig:
    from trainer.config import read_config_file, resolve_config

    return resolve_config(read_config_file(path), list(sets), source=str(path))


def main(argv: list[str] | None = None) -> None:
    """``python -m trainer.portable pack|train``; see the module docstring."""
    import click

    config_option = click.option("--config", "config_path", required=True,
                                 type=click.Path(exists=True, dir_okay=False, path_type=Path),
                                 help="The student's recipe, e.g. recipes/ferplus_vgg.yaml.")
    set_option = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")

    @click.group()
    def cli() -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")

    @cli.command("pack")
    @config_option
    @set_option
    @click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="FER+ root.")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .npz to write.")
    @click.option("--val-limit", type=click.IntRange(min=1), help="Pack a random subset of this many "
                  "validation images (default: all).")
    def pack_command(config_path: Path, sets: tuple[str, ...], data_dir: Path, out: Path,
                     val_limit: int | None) -> None:
        """Pack the recipe's training and validation images (here, with the project's loaders)."""
        pack(_config(config_path, sets + (f"data.data_dir={data_dir}",)), out, val_limit)

    @cli.command("train")
    @config_option
    @set_option
    @click.option("--pack", "pack_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  required=True, help="The .npz written by `pack`.")
    @click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
    @click.option("--teacher-set", multiple=True, metavar="KEY=VALUE",
                  default=("model.num_filters=64", "model.dense1_units=256"), show_default=True,
                  help="Recipe overrides that make the teacher (repeat for several).")
    @click.option("--teacher-epochs", type=int, default=200, show_default=True)
    @click.option("--teacher-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A teacher.weights.npz of an earlier run: skip training the teacher.")
    @click.option("--epochs", type=int, default=300, show_default=True, help="The student's epochs.")
    @click.option("--teacher-max-seconds", type=click.FloatRange(min=0, min_open=True),
                  help="Stop the teacher by then; its cosine schedule is shortened to fit.")
    @click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True),
                  help="Likewise for the student.")
    @click.option("--kd-weight", type=click.FloatRange(0, 1), default=0.75, show_default=True,
                  help="Share of the loss that follows the teacher rather than the labels.")
    @click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
    def train_command(config_path: Path, sets: tuple[str, ...], pack_path: Path, out_dir: Path,
                      teacher_set: tuple[str, ...], teacher_epochs: int, teacher_weights: Path | None,
                      teacher_max_seconds: float | None, max_seconds: float | None, epochs: int,
                      kd_weight: float, temperature: float) -> None:
        """Train a teacher, then the recipe's network distilled from it (KERAS_BACKEND=jax or torch)."""
        cfg = _config(config_path, sets)
        summary = train(cfg, pack_path, out_dir, teacher_cfg=_config(config_path, sets + teacher_set),
                        teacher_epochs=teacher_epochs, epochs=epochs, kd_weight=kd_weight,
                        temperature=temperature, teacher_weights=teacher_weights,
                        teacher_max_seconds=teacher_max_seconds, max_seconds=max_seconds)
        click.echo(f"student: {out_dir / 'model.keras'} ({summary['student_seconds']:.0f} s)")

    cli.main(args=argv, prog_name="python -m trainer.portable")


if __name__ == "__main__":
    main()
