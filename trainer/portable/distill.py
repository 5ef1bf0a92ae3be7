"""A teacher, then the recipe's network distilled from it on the same augmented batches (any Keras backend)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, DataError
from edge.folders import make_folder
from trainer.config import TrainConfig
from trainer.portable.pack import load_pack

log = logging.getLogger(__name__)

TEACHER_OVERRIDES = ("model.num_filters=64", "model.dense1_units=256")
# What a run writes into its --out-dir (the teacher's history only when it trained the teacher).
OUTPUTS = ("model.keras", "config.yaml", "history.csv", "summary.json", "teacher.weights.npz", "teacher_history.csv")


@dataclass(frozen=True, kw_only=True)
class DistillOptions:
    """How the teacher is made and how the student learns from it; defaults: the shipped model's run.

    ``teacher_overrides`` are ``key=value`` recipe overrides that turn the
    student's recipe into the teacher's (4x the parameters by default).
    ``teacher_weights`` skips training the teacher: a ``teacher.weights.npz``
    of an earlier run with the same overrides. ``*max_seconds`` bend each
    cosine schedule to a time budget (see ``budget_schedule``).
    """

    teacher_overrides: tuple[str, ...] = TEACHER_OVERRIDES
    teacher_epochs: int = 200
    epochs: int = 300
    kd_weight: float = 0.75  # the share of the loss that follows the teacher rather than the votes
    temperature: float = 2.0
    teacher_weights: Path | None = None
    teacher_max_seconds: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("teacher_epochs", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.kd_weight <= 1:
            raise ConfigError(f"kd_weight must be in [0, 1]; got {self.kd_weight}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0; got {self.temperature}")
        for name in ("teacher_max_seconds", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be > 0 when given; got {value}")
        if self.teacher_weights is not None and not Path(self.teacher_weights).is_file():
            raise ConfigError(f"teacher_weights: {self.teacher_weights} is not a file")
        for item in self.teacher_overrides:
            if "=" not in item:
                raise ConfigError(f"teacher_overrides (--teacher-set) expects key=value; got {item!r}")

    def teacher_config(self, cfg: TrainConfig) -> TrainConfig:
        """The student's recipe with ``teacher_overrides`` applied.

        What makes a student cheaper is its own (``trainer.config.VGG_OPTIONS``: split
        convolutions, a pruned or strided first block, a lower resolution):
        the teacher is the recipe's full network unless its overrides say
        otherwise. Both see the same 48x48 batches either way.
        """
        from trainer.config import VGG_OPTIONS, ModelConfig, resolve_config

        full = ModelConfig()
        resets = {f"model.{name}": getattr(full, name) for name in VGG_OPTIONS}
        return resolve_config(None, self.teacher_overrides, base=resolve_config(None, resets, base=cfg))


def build_trainee(cfg: TrainConfig, network, teacher=None, kd_weight: float = 0.0, temperature: float = 1.0):
    """A training wrapper: augmentation, ``network`` and, when given, a frozen ``teacher``.

    Its output is the network's probabilities, followed by the teacher's on the
    same augmented images; the loss is cross-entropy with the labels blended
    with the temperature-scaled divergence from the teacher.
    """
    import keras
    from keras import ops

    from trainer.portable.augment import augment_layer

    augment = augment_layer(cfg.augment, cfg.seed) if cfg.augment.enabled else None
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


def budget_schedule(optim, epochs: int, max_seconds: float | None):
    """Warm-up then cosine decay over ``epochs`` or ``max_seconds``, whichever runs out first.

    A lease on an accelerator ends at a fixed time, and a run stopped halfway
    down its cosine is a poor model: here the decay follows the larger of the
    epochs done and the time spent, and training stops when the next epoch
    would overrun, so the learning rate reaches its floor either way. The
    next epoch is taken to last as long as the last one, but the first: that
    one compiles the step (about a minute on a GPU, against under a second
    for an epoch after it), so after it only a budget already spent stops.
    """
    import keras

    from trainer.callbacks import warmup_cosine_rate

    class BudgetSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started, self.epoch_seconds = time.time(), 0.0

        def _progress(self, epoch: int) -> float:
            """The share of the run done at this epoch's end, by epochs or by the time it will take."""
            spent = (time.time() - self.started + self.epoch_seconds) / max_seconds if max_seconds else 0.0
            return max(epoch / epochs, spent)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.time()
            warm = optim.warmup_epochs / epochs
            decayed = (self._progress(epoch) - warm) / max(1e-9, 1.0 - warm)
            self.model.optimizer.learning_rate = warmup_cosine_rate(optim, epoch, decayed)

        def on_epoch_end(self, epoch, logs=None):
            if epoch > 0:  # the first epoch's time is mostly compiling
                self.epoch_seconds = time.time() - self.epoch_started
            if logs is not None:
                logs["learning_rate"] = float(self.model.optimizer.learning_rate)
            if max_seconds and time.time() - self.started + self.epoch_seconds > max_seconds:
                log.info("stopping after epoch %d: the next would pass %.0f s", epoch + 1, max_seconds)
                self.model.stop_training = True

    return BudgetSchedule()


def fit_network(cfg: TrainConfig, data: dict[str, Any], network, *, epochs: int, history_csv: Path,
                teacher=None, kd_weight: float = 0.0, temperature: float = 1.0, label: str = "network",
                max_seconds: float | None = None) -> dict[str, list]:
    """Train ``network`` in place on the packed data with the recipe's optimizer and a cosine schedule.

    The epochs are logged to ``history_csv`` as ``ers train`` logs them (Keras' CSVLogger), so
    ``ers evaluate`` draws the curves from it.
    """
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
        callbacks=[budget_schedule(cfg.optim, epochs, max_seconds), Progress(),
                   keras.callbacks.CSVLogger(str(history_csv))],
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def save_weights_npz(model, path: Path) -> None:
    """A model's weights as float16 arrays (half the size of a ``.keras`` file, to ship back)."""
    np.savez(path, *[np.asarray(w, np.float16) for w in model.get_weights()])


def load_weights_npz(model, path: Path) -> None:
    """Weights written by ``save_weights_npz`` into ``model``; a file of another network is refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, TypeError) as error:
        raise DataError(f"{path}: not a teacher.weights.npz of `distill` ({error})") from None
    expected = [tuple(w.shape) for w in model.weights]
    if [w.shape for w in weights] != expected:
        first = weights[0].shape if weights else ()
        raise DataError(f"{path}: weights of another network ({len(weights)} arrays, the first {first}) than the "
                        f"teacher's ({len(expected)}, the first {expected[0]}); give the --teacher-set it was "
                        "trained with")
    model.set_weights([w.astype(np.float32) for w in weights])


def train_distilled(cfg: TrainConfig, pack_path: Path, out_dir: Path,
                    options: DistillOptions = DistillOptions(), *, overwrite: bool = False) -> dict[str, Any]:
    """Teacher (trained, or read from ``options.teacher_weights``), then the distilled student.

    Writes into ``out_dir``: ``model.keras`` (the student, float32),
    ``config.yaml`` (with the epochs the student ran), ``history.csv``,
    ``summary.json``, ``teacher.weights.npz`` (the teacher it was taught by)
    and, when it trained the teacher, ``teacher_history.csv``. A folder that
    holds an earlier run's outputs is refused unless ``overwrite``, which
    replaces them, so none is left from the earlier run. Returns the summary.
    """
    import keras

    from trainer.nets import build_vgg
    from trainer.precision import float32_copy, precision_policy

    out_dir = Path(out_dir)
    earlier = [name for name in OUTPUTS if (out_dir / name).exists()]
    if earlier and not overwrite:
        raise ConfigError(f"{out_dir} holds an earlier run's {', '.join(earlier)}; pass --overwrite to replace "
                          "them (other files stay) or name another --out-dir")
    data = load_pack(pack_path)
    if data["class_names"] != cfg.data.class_names or data["image_size"] != cfg.data.image_size:
        raise DataError(f"{pack_path}: packed for classes {data['class_names']} at {data['image_size']} px; "
                        f"the config wants {cfg.data.class_names} at {cfg.data.image_size} px")
    teacher_cfg = options.teacher_config(cfg)
    shape = cfg.data.input_shape
    build_vgg(cfg, shape, cfg.data.num_classes)  # a bad student option fails now, not after the teacher has trained
    keras.utils.set_random_seed(cfg.seed)  # after that check, so the runs draw what they drew before it
    summary: dict[str, Any] = {"backend": keras.backend.backend(),
                               **{k: v for k, v in dataclasses.asdict(options).items() if not isinstance(v, Path)}}
    if options.teacher_weights is not None:  # the teacher is not trained: its schedule does not apply
        del summary["teacher_epochs"], summary["teacher_max_seconds"]
    with precision_policy(cfg.precision):
        teacher = build_vgg(teacher_cfg, shape, cfg.data.num_classes)
        summary["teacher_parameters"] = teacher.count_params()
        if options.teacher_weights is not None:
            load_weights_npz(teacher, options.teacher_weights)
            summary["teacher_weights"] = str(options.teacher_weights)
        make_folder(out_dir, f"--out-dir {out_dir}")  # once nothing given can fail any more
        if options.teacher_weights is None:
            started = time.time()
            summary["teacher_history"] = fit_network(
                teacher_cfg, data, teacher, epochs=options.teacher_epochs, history_csv=out_dir / "teacher_history.csv",
                label="teacher", max_seconds=options.teacher_max_seconds)
            summary["teacher_seconds"] = time.time() - started
        elif "teacher_history.csv" in earlier:  # an earlier run's teacher, not this one's
            (out_dir / "teacher_history.csv").unlink()
        save_weights_npz(teacher, out_dir / "teacher.weights.npz")  # the run folder keeps the teacher it used
        student = build_vgg(cfg, shape, cfg.data.num_classes)
        started = time.time()
        summary["student_history"] = fit_network(
            cfg, data, student, epochs=options.epochs, history_csv=out_dir / "history.csv", teacher=teacher,
            kd_weight=options.kd_weight, temperature=options.temperature, label="student",
            max_seconds=options.max_seconds)
        summary["student_seconds"] = time.time() - started
    float32_copy(student).save(out_dir / "model.keras")
    # The student's config, with the epochs it ran and the data the pack came from: `ers evaluate`
    # and `ers export` read it beside the model on the machine that packed.
    ran = len(summary["student_history"]["loss"])  # fewer than asked when a time budget stopped it
    cfg.replace({"data.data_dir": data["data_dir"], "epochs": ran}).save(out_dir / "config.yaml")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
