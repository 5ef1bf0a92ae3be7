"""trainer.portable: the packed data set, the keras.ops augmentation, the distillation loss and a
tiny end-to-end run (under the TensorFlow backend here; the module's code is backend-agnostic)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.errors import DataError
from trainer import portable
from trainer.config import TrainConfig
from trainer.data import load_split

OFF = dict(rotation=0.0, flip=False, contrast=0.0, brightness=0.0, translation=0.0, zoom=0.0, noise_std=0.0,
           jitter_brightness=0.0, jitter_contrast=0.0)


def _config(data_dir: Path, **model) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"data_dir": str(data_dir), "format": "ferplus", "image_size": 16, "color_mode": "grayscale",
                 "label_mode": "soft", "batch_size": 4},
        "model": {"name": "vgg", "num_filters": 2, "dense1_units": 4, **model},
        "optim": {"optimizer": "adamw", "learning_rate": 1e-3, "schedule": "cosine", "warmup_epochs": 1},
        "precision": "float32",
    })


def _faces(count: int = 6, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size, 1)).astype(np.float32)


def test_pack_round_trips_the_splits_losslessly(tmp_path, ferplus_root):
    cfg = _config(ferplus_root)
    path = portable.pack(cfg, tmp_path / "packed.npz")
    data = portable.load_pack(path)
    train = load_split(cfg.data, "train", training_labels=True)
    val = load_split(cfg.data, "val")
    np.testing.assert_array_equal(data["train_images"], train.images.astype(np.float32))
    np.testing.assert_allclose(data["train_labels"], train.labels)
    np.testing.assert_array_equal(data["val_images"], val.images.astype(np.float32))
    np.testing.assert_array_equal(data["val_labels"], val.majority)
    assert data["class_names"] == cfg.data.class_names and data["image_size"] == 16
    assert data["data_dir"] == str(ferplus_root)


def test_pack_keeps_a_subset_of_validation_images_when_asked(tmp_path, ferplus_root):
    data = portable.load_pack(portable.pack(_config(ferplus_root), tmp_path / "packed.npz", val_limit=2))
    assert len(data["val_images"]) == len(data["val_labels"]) == 2


def test_pack_refuses_rgb_and_load_names_a_missing_file(tmp_path, ferplus_root):
    rgb = _config(ferplus_root).replace({"data.color_mode": "rgb"})
    with pytest.raises(DataError, match="grayscale"):
        portable.pack(rgb, tmp_path / "packed.npz")
    with pytest.raises(DataError, match="missing.npz"):
        portable.load_pack(tmp_path / "missing.npz")


def test_augmentation_with_every_strength_zero_is_the_identity():
    cfg = TrainConfig()
    images = _faces()
    out = np.asarray(portable._augment_layer(replace(cfg.augment, **OFF), 0)(images, training=True))
    np.testing.assert_allclose(out, images, atol=1e-3)


def test_flip_alone_mirrors_some_images_and_leaves_the_others():
    cfg = TrainConfig()
    images = _faces(count=32)
    out = np.asarray(portable._augment_layer(replace(cfg.augment, **{**OFF, "flip": True}), 0)(images, training=True))
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert any(mirrored) and any(kept)


def test_full_augmentation_stays_in_pixel_range_and_is_off_at_inference():
    cfg = TrainConfig()
    layer = portable._augment_layer(cfg.augment, 0)
    images = _faces()
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_reflect_folds_coordinates_back_into_the_image():
    # Pixels 0..3 cover [-0.5, 3.5]; a point 1 pixel beyond an edge lands 1 pixel inside it.
    folded = np.asarray(portable._reflect(np.array([-1.5, -0.5, 0.0, 3.0, 4.5, 5.0], np.float32), 4))
    np.testing.assert_allclose(folded, [0.5, 0.0, 0.0, 3.0, 2.5, 2.0])


def test_distillation_loss_blends_cross_entropy_with_the_teachers_divergence():
    import keras

    cfg = TrainConfig()
    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="softmax")])
    labels = np.eye(8, dtype=np.float32)[[0, 3]]
    student = np.full((2, 8), 1 / 8, np.float32)
    teacher = np.eye(8, dtype=np.float32)[[1, 3]] * 0.9 + 0.1 / 8
    cross_entropy = np.log(8.0)
    _, loss, accuracy = portable.build_trainee(cfg, network, teacher=network, kd_weight=0.5, temperature=1.0)
    same = np.asarray(loss(labels, np.concatenate([student, student], axis=1)))
    np.testing.assert_allclose(same, 0.5 * cross_entropy, rtol=1e-5)  # no divergence from itself
    other = np.asarray(loss(labels, np.concatenate([student, teacher], axis=1)))
    divergence = np.sum(teacher * np.log(teacher / student), axis=1)
    np.testing.assert_allclose(other, 0.5 * cross_entropy + 0.5 * divergence, rtol=1e-4)
    _, plain, _ = portable.build_trainee(cfg, network)
    np.testing.assert_allclose(np.asarray(plain(labels, student)), cross_entropy, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(accuracy(labels, np.concatenate([teacher, student], axis=1))), [0, 1])


def test_train_writes_a_student_that_ers_reads(tmp_path, ferplus_root):
    import keras

    from trainer.nets import build_vgg

    cfg = _config(ferplus_root)
    packed = portable.pack(cfg, tmp_path / "packed.npz")
    out = tmp_path / "run"
    summary = portable.train(cfg, packed, out, teacher_cfg=_config(ferplus_root, num_filters=4),
                             teacher_epochs=2, epochs=3, kd_weight=0.5, temperature=2.0)
    model = keras.models.load_model(out / "model.keras")
    assert [w.shape for w in model.get_weights()] == [
        w.shape for w in build_vgg(cfg, cfg.data.input_shape, cfg.data.num_classes).get_weights()]
    saved = TrainConfig.from_file(out / "config.yaml")
    assert saved.data.data_dir == ferplus_root and saved.epochs == 3
    assert len(summary["student_history"]["loss"]) == 3 and len(summary["teacher_history"]["loss"]) == 2
    rates = summary["student_history"]["learning_rate"]
    assert rates[0] < rates[1] and rates[2] < rates[1]  # one warm-up epoch, then the cosine
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert (out / "teacher.weights.npz").is_file() and (out / "teacher_history.csv").is_file()

    again = portable.train(cfg, packed, tmp_path / "again", teacher_cfg=_config(ferplus_root, num_filters=4),
                           teacher_epochs=2, epochs=5, kd_weight=0.5, temperature=2.0,
                           teacher_weights=out / "teacher.weights.npz", max_seconds=1e-3)
    assert "teacher_history" not in again
    assert len(again["student_history"]["loss"]) == 1  # the time budget stops after the first epoch
    assert again["student_history"]["learning_rate"][0] == pytest.approx(cfg.optim.learning_rate / 2)


def test_train_refuses_a_pack_of_other_classes(tmp_path, ferplus_root):
    cfg = _config(ferplus_root)
    packed = portable.pack(cfg, tmp_path / "packed.npz")
    other = cfg.replace({"data.class_names": ["anger", "happy", "neutral"]})
    with pytest.raises(DataError, match="packed for classes"):
        portable.train(other, packed, tmp_path / "run", teacher_cfg=other, teacher_epochs=1, epochs=1,
                       kd_weight=0.5, temperature=1.0)


def test_pack_command_writes_the_file(tmp_path, ferplus_root):
    config = tmp_path / "recipe.yaml"
    _config(ferplus_root).save(config)
    with pytest.raises(SystemExit) as exit_info:
        portable.main(["pack", "--config", str(config), "--data-dir", str(ferplus_root),
                       "--out", str(tmp_path / "packed.npz"), "--val-limit", "3"])
    assert exit_info.value.code == 0
    assert len(portable.load_pack(tmp_path / "packed.npz")["val_labels"]) == 3
