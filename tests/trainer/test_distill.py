"""Knowledge distillation: teachers' predictions blended into the training labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_overrides
from edge.cli import cli
from edge.errors import ConfigError, DataError
from trainer.config import TrainConfig
from trainer.data import load_split
from trainer.distill import with_teacher_labels
from trainer.models import build_model


def _config(data_dir: Path, **distill) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"data_dir": str(data_dir), "image_size": 16, "batch_size": 8},
        "model": {"num_filters": 2, "dense1_units": 16, "dense2_units": 8},
        "distill": distill,
    })


@pytest.fixture
def teacher(tmp_path: Path, class_folders: Path) -> Path:
    cfg = _config(class_folders)
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    path = tmp_path / "teacher.keras"
    model.save(path)
    return path


@pytest.mark.parametrize(("weight", "flip"), [(0.5, True), (1.0, False)])
def test_labels_are_blended_with_the_teachers_predictions(class_folders, teacher, weight, flip):
    import keras

    cfg = _config(class_folders, teachers=[str(teacher), str(teacher)], weight=weight, flip=flip)
    split = load_split(cfg.data, "train", training_labels=True)
    blended = with_teacher_labels(cfg, split)
    model = keras.models.load_model(teacher, compile=False)
    images = np.stack([np.asarray(keras.utils.load_img(p, target_size=(16, 16))) for p in split.paths]) \
        if split.images is None else split.images
    images = images.astype("float32")
    expected = model.predict(images, verbose=0)
    if flip:
        expected = (expected + model.predict(images[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(blended.labels, (1 - weight) * split.labels + weight * expected, atol=1e-3)
    np.testing.assert_allclose(blended.labels.sum(axis=1), 1.0, atol=1e-5)
    assert len(blended) == len(split)


def test_online_teachers_label_the_very_augmented_batch_the_student_sees(class_folders, teacher):
    import keras

    from trainer.data import make_dataset

    cfg = _config(class_folders, teachers=[str(teacher)], weight=1.0, online=True).replace(
        {"augment.enabled": True, "augment.noise_std": 20.0})
    split = load_split(cfg.data, "train", training_labels=True)
    assert with_teacher_labels(cfg, split) is split  # nothing precomputed
    model = keras.models.load_model(teacher, compile=False)
    for images, labels in make_dataset(split, cfg, training=True).take(2):
        np.testing.assert_allclose(labels.numpy(), model.predict(images.numpy(), verbose=0), atol=1e-5)
    half = cfg.replace({"distill.weight": 0.5})
    for _, labels in make_dataset(split, half, training=True).take(2):
        np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, atol=1e-5)


def test_without_teachers_the_split_is_unchanged(class_folders):
    cfg = _config(class_folders)
    split = load_split(cfg.data, "train", training_labels=True)
    assert with_teacher_labels(cfg, split) is split


def test_a_teacher_that_does_not_fit_or_does_not_exist_is_a_clear_error(tmp_path, class_folders):
    wide = _config(class_folders).replace({"data.image_size": 24})
    model = build_model(wide, wide.data.input_shape, 8)
    model.save(tmp_path / "wide.keras")
    split = load_split(_config(class_folders).data, "train", training_labels=True)
    with pytest.raises(ConfigError, match="wide.keras takes"):
        with_teacher_labels(_config(class_folders, teachers=[str(tmp_path / "wide.keras")]), split)
    with pytest.raises(DataError, match="does not exist"):
        with_teacher_labels(_config(class_folders, teachers=[str(tmp_path / "none.keras")]), split)


def test_distill_options_are_validated_and_parsed():
    with pytest.raises(ConfigError, match="distill.weight"):
        TrainConfig.from_dict({"distill": {"weight": 0}})
    cfg = TrainConfig().replace({"distill.teachers": "a.keras, b.keras", "distill.flip": "false",
                                 "distill.online": "true"})
    assert cfg.distill.teachers == ("a.keras", "b.keras") and not cfg.distill.flip and cfg.distill.online


def test_train_with_a_teacher_end_to_end(tmp_path, class_folders, teacher):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["train", *tiny_overrides(class_folders, run_dir), "--set", f"distill.teachers={teacher}"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert TrainConfig.from_file(run_dir / "config.yaml").distill.teachers == (str(teacher),)
    assert (run_dir / "model.keras").is_file()
