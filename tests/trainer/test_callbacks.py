from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from trainer.callbacks import TrimHistory, backup_epoch, default_callbacks, lr_schedule, read_history
from trainer.config import resolve_config


def test_constant_schedule():
    cfg = resolve_config(None, ["LearningRate=0.01"])
    assert [lr_schedule(cfg.optim, 5)(e) for e in range(5)] == [0.01] * 5


def test_cosine_with_warmup():
    cfg = resolve_config(None, ["LearningRate=1.0", "optim.schedule=cosine", "optim.warmup_epochs=2",
                                "optim.min_learning_rate=0.0"])
    rate = lr_schedule(cfg.optim, 6)
    assert [rate(e) for e in range(2)] == pytest.approx([1 / 3, 2 / 3])
    assert rate(2) == pytest.approx(1.0)
    assert rate(4) == pytest.approx(0.5)
    assert rate(6) == pytest.approx(0.0)
    values = [rate(e) for e in range(2, 7)]
    assert values == sorted(values, reverse=True)


def test_callback_set_depends_on_schedule(tmp_path: Path):
    constant = [type(c).__name__ for c in default_callbacks(tmp_path, resolve_config(None, []))]
    cosine = [type(c).__name__ for c in default_callbacks(tmp_path, resolve_config(None, ["optim.schedule=cosine"]))]
    assert "ReduceLROnPlateau" in constant and "LearningRateScheduler" not in constant
    assert "LearningRateScheduler" in cosine and "ReduceLROnPlateau" not in cosine
    for name in ("EarlyStopping", "ModelCheckpoint", "CSVLogger", "BackupAndRestore"):
        assert name in constant
    assert constant[-1] == "BackupAndRestore"
    early = next(c for c in default_callbacks(tmp_path, resolve_config(None, [])) if isinstance(c, keras.callbacks.EarlyStopping))
    assert early.patience == 5 and early.restore_best_weights


def test_trim_history_drops_epochs_the_backup_will_repeat(tmp_path: Path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    assert backup_epoch(tmp_path) == 2
    TrimHistory(tmp_path).on_train_begin()
    assert read_history(tmp_path / "history.csv") == {"epoch": [0.0, 1.0], "loss": [1.0, 0.9]}


def _ema_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9), loss="categorical_crossentropy")
    return model


def _ema_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype("float32"), np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]


def _weights(variables) -> list:
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


class _Probe(keras.callbacks.Callback):
    """Records the model's weights where the other callbacks see them, and its training weights."""

    def __init__(self, stop_at_epoch: int | None = None):
        super().__init__()
        self.stop_at_epoch, self.at_epoch_end, self.at_epoch_begin, self.averages = stop_at_epoch, [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.at_epoch_begin.append(_weights(self.model.trainable_variables))
        averages = getattr(self.model.optimizer, "_model_variables_moving_average", None)  # built at step 1
        self.averages.append(None if averages is None else _weights(averages))
        if epoch == self.stop_at_epoch:
            raise RuntimeError("simulated kill")

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(_weights(self.model.trainable_variables))


def test_ema_selection_gives_the_epoch_end_callbacks_and_the_final_model_the_average(tmp_path: Path):
    from trainer.callbacks import EmaSelection

    x, y = _ema_data()
    model, probe = _ema_model(), _Probe()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[EmaSelection(tmp_path), probe])
    # Training resumed each epoch from its own weights, not from the average shown at the epoch end.
    for ended, began in zip(probe.at_epoch_end[:-1], probe.at_epoch_begin[1:]):
        assert not np.allclose(ended[0], began[0])
    for ended, averages in zip(probe.at_epoch_end[:-1], probe.averages[1:]):
        for seen, average in zip(ended, averages):
            np.testing.assert_allclose(seen, average)  # what the epoch-end callbacks saw was the average
    final = _weights(model.trainable_variables)
    for saved, seen in zip(final, probe.at_epoch_end[-1]):
        np.testing.assert_allclose(saved, seen)


def test_ema_selection_resumes_from_the_training_weights_not_the_average(tmp_path: Path):
    from trainer.callbacks import EmaSelection

    x, y = _ema_data()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    first = _Probe(stop_at_epoch=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        _ema_model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[EmaSelection(tmp_path), first, backup])
    assert backup_epoch(tmp_path) == 1
    resumed = _Probe()
    _ema_model().fit(x, y, batch_size=8, epochs=3, verbose=0,
                     callbacks=[EmaSelection(tmp_path), resumed, keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    for before, after in zip(first.at_epoch_begin[1], resumed.at_epoch_begin[0]):
        np.testing.assert_allclose(after, before)
    for before, after in zip(first.averages[1], resumed.averages[0]):
        np.testing.assert_allclose(after, before)


def test_ema_momentum_turns_on_the_average(tmp_path: Path):
    from trainer.callbacks import EmaSelection
    from trainer.train import make_optimizer

    cfg = resolve_config(None, ["optim.ema_momentum=0.999"])
    assert make_optimizer(cfg).use_ema and make_optimizer(cfg).ema_momentum == 0.999
    names = [type(c) for c in default_callbacks(tmp_path, cfg)]
    assert EmaSelection in names and names.index(EmaSelection) < names.index(keras.callbacks.EarlyStopping)
    assert EmaSelection not in [type(c) for c in default_callbacks(tmp_path, resolve_config(None, []))]
    assert not make_optimizer(resolve_config(None, [])).use_ema
    with pytest.raises(Exception, match="optim.ema_momentum must be in"):
        resolve_config(None, ["optim.ema_momentum=1.0"])


@pytest.mark.parametrize("frozen", [False, True])
def test_recalibrate_batch_norm_makes_the_statistics_the_mean_over_the_batches(frozen):
    import tensorflow as tf

    from trainer.callbacks import recalibrate_batch_norm

    model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.99)])
    norm = model.layers[0]
    batches = [np.full((4, 2), value, "float32") + np.array([[0, 0], [0, 0], [1, 1], [1, 1]], "float32")
               for value in (1.0, 3.0, 8.0)]
    dataset = tf.data.Dataset.from_tensor_slices((np.concatenate(batches), np.zeros(12))).batch(4)
    norm.trainable = not frozen
    assert recalibrate_batch_norm(model, dataset, batches=2) == 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_mean), [2.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_variance), [0.25, 0.25], rtol=1e-6)
    assert norm.momentum == 0.99 and norm.trainable is not frozen  # a frozen layer is re-estimated and stays frozen


def test_weight_averaging_leaves_frozen_normalisations_as_they_are(tmp_path: Path):
    from trainer.callbacks import EmaSelection, default_callbacks

    def selection(*overrides):
        cfg = resolve_config(None, ["optim.ema_momentum=0.999", "optim.ema_calibration_batches=7", *overrides])
        return next(c for c in default_callbacks(tmp_path, cfg, train_data=object()) if isinstance(c, EmaSelection))

    assert selection().calibration_batches == 7
    assert selection("optim.freeze_norms=true").calibration_batches == 0
