from __future__ import annotations

import json
from pathlib import Path

import keras
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
