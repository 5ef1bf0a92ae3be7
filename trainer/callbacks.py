"""Training callbacks: the seed's EarlyStopping and ModelCheckpoint, plus logging and resume.

Resume: ``BackupAndRestore(run_dir/backup)`` saves weights, optimizer state
and the epoch number after every epoch; fit() started again with the same run
folder continues from there. The learning-rate schedule is a function of the
epoch index (``LearningRateScheduler``), so it picks up at the right value.
``history.csv`` is appended to, after dropping any rows of epochs the backup
does not cover (a run killed between the CSV row and the backup).
ModelCheckpoint starts from the best value already in ``history.csv``;
EarlyStopping's patience counter and best weights restart with the resumed
segment (Keras does not back them up).

With ``optim.ema_momentum`` the optimizer keeps a moving average of the
weights, and ``EmaSelection`` puts it in the model for validation and for every
epoch-end callback, so early stopping, the checkpoint and the saved model are
the averaged weights.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable

import keras

from trainer.config import OptimConfig, TrainConfig

BACKUP_DIR = "backup"
HISTORY_CSV = "history.csv"
CHECKPOINT = "checkpoint.keras"
TENSORBOARD_DIR = "tensorboard"


def warmup_cosine_rate(optim: OptimConfig, epoch: int, decayed: float) -> float:
    """Linear warm-up over ``optim.warmup_epochs``, then cosine decay; ``decayed`` is the share of
    the decay done (0 to 1; clipped), which the caller measures in epochs or in time."""
    base, floor, warmup = optim.learning_rate, optim.min_learning_rate, optim.warmup_epochs
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * min(1.0, max(0.0, decayed))))


def lr_schedule(optim: OptimConfig, epochs: int) -> Callable[[int], float]:
    """Learning rate of a (0-based) epoch: constant, or linear warm-up then cosine decay."""

    def rate(epoch: int, _current: float | None = None) -> float:
        if optim.schedule == "constant":
            return optim.learning_rate
        decayed = (epoch - optim.warmup_epochs) / max(1, epochs - optim.warmup_epochs)
        return warmup_cosine_rate(optim, epoch, decayed)

    return rate


def backup_epoch(run_dir: Path) -> int | None:
    """Epochs completed by an interrupted run (from its backup), or None."""
    meta = Path(run_dir) / BACKUP_DIR / "training_metadata.json"
    if not meta.is_file():
        return None
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (ValueError, KeyError, json.JSONDecodeError):
        return None


def read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as columns of floats ({} when missing)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


class TrimHistory(keras.callbacks.Callback):
    """Before CSVLogger appends, drop rows of epochs the backup will run again."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_train_begin(self, logs=None):
        path = self.run_dir / HISTORY_CSV
        done = backup_epoch(self.run_dir) or 0
        if not path.is_file():
            return
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        header, body = rows[0], [r for r in rows[1:] if r and int(float(r[0])) < done]
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *body])


class EpochScalars(keras.callbacks.Callback):
    """TensorBoard scalar logs per epoch (train/ and validation/ event files).

    Used when the ``tensorboard`` package (which Keras' TensorBoard callback
    needs) is not installed; it writes with ``tf.summary.write`` from
    TensorFlow itself, tagged for TensorBoard's scalar dashboard.
    """

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers: dict = {}

    def _writer(self, name: str):
        import tensorflow as tf

        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        for key, value in (logs or {}).items():
            split, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(split).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value)), step=epoch, metadata=metadata)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def tensorboard_callback(log_dir: Path) -> keras.callbacks.Callback:
    """Keras' TensorBoard callback when ``tensorboard`` is installed, else ``EpochScalars``."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return keras.callbacks.TensorBoard(log_dir=str(log_dir))
    return EpochScalars(log_dir)


def _best_so_far(run_dir: Path, monitor: str) -> float | None:
    values = [v for v in read_history(Path(run_dir) / HISTORY_CSV).get(monitor, []) if not math.isnan(v)]
    if not values:
        return None
    return max(values) if "accuracy" in monitor else min(values)


def recalibrate_batch_norm(model, dataset, batches: int) -> int:
    """Re-estimate every BatchNormalization layer's moving statistics for the model's weights.

    The statistics become the plain mean over up to ``batches`` batches of
    ``dataset`` (the model runs in training mode, as when they were first
    gathered). Averaged weights need this: the statistics a run keeps belong
    to its latest training weights. Layers frozen in inference mode
    (``optim.freeze_norms``) are re-estimated too, and stay frozen. Returns the
    number of batches used.
    """
    from trainer.norms import batch_norms

    norms = batch_norms(model)
    saved = [(layer.momentum, layer.trainable) for layer in norms]
    used = 0
    try:
        for layer in norms:
            layer.trainable = True  # a frozen layer normalises with its moving statistics and never updates them
        for used, batch in enumerate(dataset.take(batches) if norms else (), start=1):
            for layer in norms:
                layer.momentum = 1.0 - 1.0 / used  # a running mean: the first batch replaces the old values
            model(batch[0] if isinstance(batch, (tuple, list)) else batch, training=True)
    finally:
        for layer, (momentum, trainable) in zip(norms, saved):
            layer.momentum, layer.trainable = momentum, trainable
    return used


class EmaSelection(keras.callbacks.SwapEMAWeights):
    """Validate, select and save the optimizer's moving average of the weights.

    Keras' ``SwapEMAWeights(swap_on_epoch=True)`` swaps the averaged weights into
    the model for validation and at each epoch end, ahead of the callbacks after
    it, and swaps the training weights back when the next epoch begins. Once an
    epoch, with the average in the model, the BatchNormalization statistics are
    re-estimated on ``calibration_batches`` batches of ``train_data``; training
    itself normalises with each batch's own statistics, so it is unaffected.

    The backup, written last at the epoch end, therefore holds the averaged
    weights in the model and the training weights in the optimizer; a resumed
    run starts from that state, so the swap back must happen before its first
    epoch.
    """

    def __init__(self, run_dir: Path, train_data=None, calibration_batches: int = 0):
        super().__init__(swap_on_epoch=True)
        self.run_dir = Path(run_dir)
        self.train_data = train_data
        self.calibration_batches = calibration_batches if train_data is not None else 0
        self._calibrated = False

    def _calibrate(self) -> None:
        if self.calibration_batches and not self._calibrated:
            recalibrate_batch_norm(self.model, self.train_data, self.calibration_batches)
        self._calibrated = True

    def on_train_begin(self, logs=None):
        # BackupAndRestore restores after this (it comes last), and a backup is always swapped.
        self._ema_weights_in_model = backup_epoch(self.run_dir) is not None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._calibrated = False

    def on_test_begin(self, logs=None):
        super().on_test_begin(logs)
        self._calibrate()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._calibrate()  # when there was no validation


def default_callbacks(run_dir: Path, cfg: TrainConfig, train_data=None) -> list[keras.callbacks.Callback]:
    """The run's callbacks in the order they must run at each epoch end.

    ``train_data`` is the training set (``Datasets.calibration``), which
    ``optim.ema_momentum`` needs to re-estimate the BatchNormalization
    statistics of the averaged weights.
    """
    run_dir = Path(run_dir)
    mode = "max" if "accuracy" in cfg.monitor else "min"
    callbacks: list[keras.callbacks.Callback] = [TrimHistory(run_dir)]
    if cfg.optim.ema_momentum:
        # Frozen normalisations keep their statistics: the averaged weights are validated with them.
        calibration_batches = 0 if cfg.optim.freeze_norms else cfg.optim.ema_calibration_batches
        callbacks.append(EmaSelection(run_dir, train_data, calibration_batches))
    if cfg.optim.schedule != "constant":
        callbacks.append(keras.callbacks.LearningRateScheduler(lr_schedule(cfg.optim, cfg.epochs)))
    elif cfg.optim.reduce_lr_on_plateau:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=cfg.monitor, mode=mode, factor=cfg.optim.reduce_lr_factor,
            patience=cfg.optim.reduce_lr_patience, min_lr=cfg.optim.min_learning_rate, verbose=1,
        ))
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=cfg.monitor, mode=mode, patience=cfg.early_stopping_patience,
            restore_best_weights=True, verbose=1,
        ))
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            run_dir / CHECKPOINT, monitor=cfg.monitor, mode=mode, save_best_only=True,
            initial_value_threshold=_best_so_far(run_dir, cfg.monitor), verbose=0,
        ),
        tensorboard_callback(run_dir / TENSORBOARD_DIR),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_CSV), append=True),
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR)),
    ]
    return callbacks
