"""Mixed-precision training: bfloat16 compute, float32 files."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_overrides
from edge.cli import cli
from edge.errors import ConfigError
from trainer.config import TrainConfig
from trainer.models import build_model
from trainer.precision import float32_copy, is_mixed, precision_policy


@pytest.mark.parametrize("name", ["lenet", "vgg", "vit"])
def test_float32_copy_keeps_the_predictions_and_drops_the_casts(name: str):
    cfg = TrainConfig.from_dict({
        "model": {"name": name, "num_filters": 4, "dense1_units": 8, "dense2_units": 8,
                  "projection_dim": 8, "vit_mlp_dim": 8, "vit_layers": 1, "patch_size": 8},
        "data": {"image_size": 32, "color_mode": "grayscale"},
    })
    with precision_policy("mixed_bfloat16"):
        mixed = build_model(cfg, cfg.data.input_shape, 8)
    assert keras.config.dtype_policy().name == "float32"  # the policy does not leak
    assert is_mixed(mixed) and mixed.outputs[0].dtype == "float32"  # the softmax stays float32
    plain = float32_copy(mixed)
    assert not is_mixed(plain) and float32_copy(plain) is plain
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(plain.predict(images, verbose=0), mixed.predict(images, verbose=0), atol=0.02)


def test_a_mixed_run_saves_float32_models(tmp_path: Path, class_folders: Path):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["train", *tiny_overrides(class_folders, run_dir), "--set", "precision=mixed_bfloat16"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("model.keras", "checkpoint.keras", "model.h5"):
        assert not is_mixed(keras.models.load_model(run_dir / name, compile=False)), name
    assert TrainConfig.from_file(run_dir / "config.yaml").precision == "mixed_bfloat16"
    assert json.loads((run_dir / "metrics.json").read_text())["num_samples"] == 16


def test_an_unknown_precision_is_a_clear_error():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "bfloat8"})


@pytest.fixture
def mixed_checkpoint(tmp_path: Path) -> Path:
    """A model saved while its layers compute in bfloat16, as ModelCheckpoint saves one mid-run."""
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    with precision_policy("mixed_bfloat16"):
        build_model(cfg, cfg.data.input_shape, 8).save(tmp_path / "checkpoint.keras")
    assert is_mixed(keras.models.load_model(tmp_path / "checkpoint.keras", compile=False))
    return tmp_path / "checkpoint.keras"


def test_export_loads_a_mixed_checkpoint_as_float32(mixed_checkpoint: Path):
    from export.api import load_keras_model

    assert not is_mixed(load_keras_model(mixed_checkpoint))


def test_evaluate_loads_a_mixed_checkpoint_as_float32(mixed_checkpoint: Path):
    from trainer.evaluate import load_model

    assert not is_mixed(load_model(mixed_checkpoint))
