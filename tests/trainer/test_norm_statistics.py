"""tools/norm_statistics.py: a model scored with its normalisation statistics as saved and re-estimated."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from trainer.config import resolve_config
from trainer.data import load_datasets
from trainer.models import build_model
from tool_scripts import loaded_tool


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("norm_statistics") as module:
        yield module


def saved_run(run_dir: Path, data_dir: Path):
    """A tiny ``vgg`` with moving statistics far from its inputs', saved with its config."""
    cfg = resolve_config(None, [f"data.data_dir={data_dir}", "data.image_size=16", "data.batch_size=4",
                                "model.name=vgg", "model.num_filters=2", "model.dense1_units=8"])
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            units = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 5, units).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.01, 0.1, units).astype(np.float32))
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    cfg.save(run_dir / "config.yaml")
    return cfg, model


def test_scores_as_saved_and_both_re_estimates(tool, tmp_path: Path, class_folders: Path):
    cfg, model = saved_run(tmp_path / "run", class_folders)
    result = CliRunner().invoke(tool.main, ["--model", str(tmp_path / "run" / "model.keras"), "--batches", "2"])
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"^  (.+?)\s+([\d.]+)%$", result.output, flags=re.M))
    assert list(rows) == ["as saved", "re-estimated on augmented training images",
                          "re-estimated on plain training images"]
    datasets = load_datasets(cfg, ("test",))
    direct = np.mean(model.predict(datasets.test, verbose=0).argmax(-1) == datasets.test_labels)
    assert float(rows["as saved"]) == pytest.approx(100 * direct, abs=0.005)


def test_re_estimates_start_from_the_saved_model_and_change_its_statistics(tool, tmp_path: Path,
                                                                            class_folders: Path, monkeypatch):
    cfg, model = saved_run(tmp_path / "run", class_folders)
    import trainer.callbacks

    seen = []
    recalibrate = trainer.callbacks.recalibrate_batch_norm

    def recorded(model, dataset, batches):
        norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
        before = norm.moving_mean.numpy().copy()
        used = recalibrate(model, dataset, batches)
        seen.append((before, norm.moving_mean.numpy().copy(), used))
        return used

    monkeypatch.setattr(trainer.callbacks, "recalibrate_batch_norm", recorded)
    tool.score_statistics(cfg, tmp_path / "run" / "model.keras", 2)
    saved = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert len(seen) == 2
    for before, after, used in seen:
        np.testing.assert_array_equal(before, saved.moving_mean.numpy())  # each from the model as saved
        assert used == 2 and not np.allclose(after, before)


def test_a_model_without_a_config_is_refused_naming_the_file(tool, tmp_path: Path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    result = CliRunner().invoke(tool.main, ["--model", str(model)])
    assert result.exit_code != 0 and str(tmp_path / "config.yaml") in result.output
    assert "Traceback" not in result.output


def test_a_model_that_does_not_fit_the_config_is_refused(tool, tmp_path: Path, class_folders: Path):
    cfg, _ = saved_run(tmp_path / "run", class_folders)
    cfg.replace({"data.image_size": 24}).save(tmp_path / "run" / "config.yaml")
    result = CliRunner().invoke(tool.main, ["--model", str(tmp_path / "run" / "model.keras")])
    assert result.exit_code == 1 and "model.keras" in result.output and "Traceback" not in result.output
