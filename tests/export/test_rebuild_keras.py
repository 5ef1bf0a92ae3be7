"""tools/rebuild_keras.py: a Keras model back from an export's float32 TFLite file, the same function."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edge.model_spec import CropSpec
from export.convert import convert_to_tflite, save_saved_model
from export.metadata import build_model_spec, build_variant_spec
from trainer.config import TrainConfig
from trainer.models import build_model
from export_testdata import CLASS_NAMES, make_images, write_class_folders
from tool_scripts import loaded_tool


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("rebuild_keras") as module:
        yield module


def exported(tmp_path: Path, cfg: TrainConfig) -> tuple[Path, object]:
    """An export folder of a tiny ``vgg`` with trained-looking normalisations: float32 file and config."""
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            width = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, width), rng.normal(size=width), rng.normal(size=width),
                               rng.uniform(0.5, 2, width)])
    out = tmp_path / "export"
    (out / "report").mkdir(parents=True)
    cfg.save(out / "report" / "config.yaml")
    tflite_path = out / "model_float32.tflite"
    tflite_path.write_bytes(convert_to_tflite(save_saved_model(model, tmp_path / "saved"), "float32"))
    build_model_spec(labels=cfg.data.class_names, input_shape=cfg.data.input_shape, crop=CropSpec(),
                     source_model_sha256="", variants={"float32": build_variant_spec(tflite_path, "float32")}
                     ).save(out)
    return out, model


@pytest.mark.parametrize("conv_ranks", ["", "block2_1:3"])
def test_the_rebuilt_model_computes_what_the_exported_one_does(tool, tmp_path: Path, conv_ranks: str):
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8,
                                           "conv_ranks": conv_ranks},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    model_dir, original = exported(tmp_path, cfg)
    result = CliRunner().invoke(tool.main, ["--model-dir", str(model_dir), "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 0, result.output
    rebuilt = keras.models.load_model(tmp_path / "m.keras")
    images = np.random.default_rng(1).uniform(0, 255, (4, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), original.predict(images, verbose=0), atol=1e-5)


def test_a_config_of_another_network_is_refused_by_file_and_nothing_is_written(tool, tmp_path: Path):
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    model_dir, _ = exported(tmp_path, cfg)
    cfg.replace({"model.first_block_convs": 1}).save(tmp_path / "other.yaml")
    result = CliRunner().invoke(tool.main, ["--model-dir", str(model_dir), "--config", str(tmp_path / "other.yaml"),
                                            "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 1 and "model_float32.tflite: the TFLite file has 10 convolution and dense" in result.output
    assert not (tmp_path / "m.keras").exists()


def test_conv_ranks_split_the_rebuilt_model_and_the_config_beside_it_says_so(tool, tmp_path: Path):
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    model_dir, _ = exported(tmp_path, cfg)
    out = tmp_path / "split" / "model.keras"
    result = CliRunner().invoke(tool.main, ["--model-dir", str(model_dir), "--conv-ranks", "block3_1:5",
                                            "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {layer.name for layer in keras.models.load_model(out).layers}
    assert "block3_1_conv_reduce" in names and "block3_1_conv" not in names
    assert TrainConfig.from_file(out.parent / "config.yaml").model.conv_ranks == ("block3_1:5",)
    assert "split block3_1:5" in result.output


def test_calibrate_dir_gives_the_normalisations_the_training_images_statistics(tool, tmp_path: Path):
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale",
                                          "class_names": list(CLASS_NAMES)}})
    model_dir, _ = exported(tmp_path, cfg)
    write_class_folders(tmp_path / "data" / "train", *make_images(6, seed=1))
    out = tmp_path / "m.keras"
    result = CliRunner().invoke(tool.main, ["--model-dir", str(model_dir), "--out", str(out), "--conv-ranks",
                                            "block3_1:5", "--calibrate-dir", str(tmp_path / "data"),
                                            "--calibrate-images", "10"])
    assert result.exit_code == 0, result.output
    assert "normalisations calibrated on 10 training images" in result.output
    rebuilt = keras.models.load_model(out)
    variances = [layer.moving_variance.numpy() for layer in rebuilt.layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(variances) == 9 and not any(np.allclose(v, 1 - 1e-3) for v in variances)  # not identities


def test_a_calibrate_dir_without_training_images_is_named(tool, tmp_path: Path):
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 16, "color_mode": "grayscale"}})
    model_dir, _ = exported(tmp_path, cfg)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(tool.main, ["--model-dir", str(model_dir), "--out", str(tmp_path / "m.keras"),
                                            "--calibrate-dir", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "--calibrate-dir" in result.output and "empty" in result.output
    assert not (tmp_path / "m.keras").exists()
