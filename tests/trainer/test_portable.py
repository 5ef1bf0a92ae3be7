"""trainer.portable: the packed data set, the keras.ops augmentation, the distillation loss and a
tiny end-to-end run (under the TensorFlow backend here; the module's code is backend-agnostic)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError, DataError, SinkError
from trainer.config import ModelConfig, TrainConfig
from trainer.data import load_split
from trainer.portable import DistillOptions, load_pack, pack, train_distilled
from trainer.portable.augment import augment_layer, reflect
from trainer.portable.cli import main
from trainer.portable.distill import budget_schedule, build_trainee

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
    path = pack(cfg, tmp_path / "packed.npz")
    data = load_pack(path)
    train = load_split(cfg.data, "train", training_labels=True)
    val = load_split(cfg.data, "val")
    np.testing.assert_array_equal(data["train_images"], train.images.astype(np.float32))
    np.testing.assert_allclose(data["train_labels"], train.labels)
    np.testing.assert_array_equal(data["val_images"], val.images.astype(np.float32))
    np.testing.assert_array_equal(data["val_labels"], val.majority)
    assert data["class_names"] == cfg.data.class_names and data["image_size"] == 16
    assert data["data_dir"] == str(ferplus_root)


def test_pack_at_another_size_than_the_files_holds_what_the_pipeline_feeds(tmp_path, ferplus_root):
    from trainer.data import load_image_arrays

    cfg = _config(ferplus_root).replace({"data.image_size": 8})  # the fixture's files are 16x16
    data = load_pack(pack(cfg, tmp_path / "packed.npz"))
    assert data["image_size"] == 8
    assert data["train_images"].shape[1:] == data["val_images"].shape[1:] == (8, 8, 1)
    assert len(data["train_images"]) == len(load_split(cfg.data, "train", training_labels=True))
    expected, labels = load_image_arrays(cfg.data, "val")
    np.testing.assert_array_equal(data["val_images"], expected.astype(np.float32))
    np.testing.assert_array_equal(data["val_labels"], labels)


def test_pack_keeps_a_subset_of_validation_images_when_asked(tmp_path, ferplus_root):
    data = load_pack(pack(_config(ferplus_root), tmp_path / "packed.npz", val_limit=2))
    assert len(data["val_images"]) == len(data["val_labels"]) == 2


def test_pack_refuses_rgb_and_load_names_a_missing_file(tmp_path, ferplus_root):
    rgb = _config(ferplus_root).replace({"data.color_mode": "rgb"})
    with pytest.raises(DataError, match="grayscale"):
        pack(rgb, tmp_path / "packed.npz")
    with pytest.raises(DataError, match="missing.npz"):
        load_pack(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match="text.npz: not a packed dataset"):
        load_pack(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", images=np.zeros(3))
    with pytest.raises(DataError, match="missing train_images"):
        load_pack(tmp_path / "other.npz")


def test_pack_takes_an_out_without_suffix_and_refuses_bad_outs_and_class_folders(tmp_path, ferplus_root,
                                                                                 class_folders):
    assert pack(_config(ferplus_root), tmp_path / "packed") == tmp_path / "packed.npz"
    assert load_pack(tmp_path / "packed.npz")["image_size"] == 16
    (tmp_path / "a_file").write_text("x")
    for out in (tmp_path / "a_file" / "x.npz", tmp_path / "a_file" / "deeper" / "x.npz"):
        with pytest.raises(SinkError, match=f"cannot write --out {out}: {tmp_path / 'a_file'} is a file, not a folder"):
            pack(_config(ferplus_root), out)
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        pack(_config(ferplus_root), tmp_path / "folder.npz")
    folders = _config(class_folders).replace({"data.format": "auto", "data.label_mode": "majority"})
    with pytest.raises(DataError, match="pack reads a FER\\+ root or a fer2013.csv; .* is folders"):
        pack(folders, tmp_path / "folders.npz")


def test_pack_reads_with_pillow_where_opencv_is_missing(tmp_path, ferplus_root, monkeypatch):
    packed = pack(_config(ferplus_root), tmp_path / "packed.npz")
    with_opencv = load_pack(packed)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now fails, as on an accelerator without it
    with_pillow = load_pack(packed)
    for key in ("train_images", "val_images"):
        np.testing.assert_array_equal(with_pillow[key], with_opencv[key])
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match="needs OpenCV or Pillow"):
        load_pack(packed)


def test_pack_names_a_split_too_large_for_one_mosaic():
    from trainer.portable.pack import _encode_mosaic

    with pytest.raises(DataError, match="WebP allows 16383 on a side"):
        _encode_mosaic(np.zeros((160 * 400, 48, 48, 1), np.uint8))


def test_augmentation_with_every_strength_zero_is_the_identity():
    cfg = TrainConfig()
    images = _faces()
    out = np.asarray(augment_layer(replace(cfg.augment, **OFF), 0)(images, training=True))
    np.testing.assert_allclose(out, images, atol=1e-3)


def test_flip_alone_mirrors_some_images_and_leaves_the_others():
    cfg = TrainConfig()
    images = _faces(count=32)
    out = np.asarray(augment_layer(replace(cfg.augment, **{**OFF, "flip": True}), 0)(images, training=True))
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert any(mirrored) and any(kept)


def test_full_augmentation_stays_in_pixel_range_and_is_off_at_inference():
    cfg = TrainConfig()
    layer = augment_layer(cfg.augment, 0)
    images = _faces()
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_reflect_folds_coordinates_back_into_the_image():
    # Pixels 0..3 cover [-0.5, 3.5]; a point 1 pixel beyond an edge lands 1 pixel inside it.
    folded = np.asarray(reflect(np.array([-1.5, -0.5, 0.0, 3.0, 4.5, 5.0], np.float32), 4))
    np.testing.assert_allclose(folded, [0.5, 0.0, 0.0, 3.0, 2.5, 2.0])


def test_distillation_loss_blends_cross_entropy_with_the_teachers_divergence():
    import keras

    cfg = TrainConfig()
    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="softmax")])
    labels = np.eye(8, dtype=np.float32)[[0, 3]]
    student = np.full((2, 8), 1 / 8, np.float32)
    teacher = np.eye(8, dtype=np.float32)[[1, 3]] * 0.9 + 0.1 / 8
    cross_entropy = np.log(8.0)
    _, loss, accuracy = build_trainee(cfg, network, teacher=network, kd_weight=0.5, temperature=1.0)
    same = np.asarray(loss(labels, np.concatenate([student, student], axis=1)))
    np.testing.assert_allclose(same, 0.5 * cross_entropy, rtol=1e-5)  # no divergence from itself
    other = np.asarray(loss(labels, np.concatenate([student, teacher], axis=1)))
    divergence = np.sum(teacher * np.log(teacher / student), axis=1)
    np.testing.assert_allclose(other, 0.5 * cross_entropy + 0.5 * divergence, rtol=1e-4)
    _, plain, _ = build_trainee(cfg, network)
    np.testing.assert_allclose(np.asarray(plain(labels, student)), cross_entropy, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(accuracy(labels, np.concatenate([teacher, student], axis=1))), [0, 1])


def test_distill_writes_a_student_that_ers_reads(tmp_path, ferplus_root):
    import keras

    from trainer.nets import build_vgg

    cfg = _config(ferplus_root)
    packed = pack(cfg, tmp_path / "packed.npz")
    out = tmp_path / "run"
    options = DistillOptions(teacher_overrides=("model.num_filters=4",), teacher_epochs=2, epochs=3,
                             kd_weight=0.5, temperature=2.0)
    summary = train_distilled(cfg, packed, out, options)
    model = keras.models.load_model(out / "model.keras")
    assert [w.shape for w in model.get_weights()] == [
        w.shape for w in build_vgg(cfg, cfg.data.input_shape, cfg.data.num_classes).get_weights()]
    saved = TrainConfig.from_file(out / "config.yaml")
    assert saved.data.data_dir == ferplus_root and saved.epochs == 3
    assert len(summary["student_history"]["loss"]) == 3 and len(summary["teacher_history"]["loss"]) == 2
    assert summary["teacher_parameters"] > model.count_params()
    rates = summary["student_history"]["learning_rate"]
    assert rates[0] < rates[1] and rates[2] < rates[1]  # one warm-up epoch, then the cosine
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert (out / "teacher.weights.npz").is_file() and (out / "teacher_history.csv").is_file()

    teacher = _weights(out / "teacher.weights.npz")

    reuse = replace(options, epochs=5, teacher_weights=out / "teacher.weights.npz", max_seconds=1e-3)
    again = train_distilled(cfg, packed, tmp_path / "again", reuse)
    assert "teacher_history" not in again and again["teacher_weights"] == str(out / "teacher.weights.npz")
    assert "teacher_epochs" not in again and "teacher_max_seconds" not in again  # no teacher trained
    assert len(again["student_history"]["loss"]) == 1  # the time budget stops after the first epoch
    assert again["student_history"]["learning_rate"][0] == pytest.approx(cfg.optim.learning_rate / 2)
    assert TrainConfig.from_file(tmp_path / "again" / "config.yaml").epochs == 1  # the epochs it ran, not 5
    assert _same_arrays(_weights(tmp_path / "again" / "teacher.weights.npz"), teacher)  # the teacher it used


def test_distill_replaces_an_earlier_run_only_when_asked(tmp_path, ferplus_root):
    cfg = _config(ferplus_root)
    packed = pack(cfg, tmp_path / "packed.npz")
    out = tmp_path / "run"
    train_distilled(cfg, packed, out, DistillOptions(teacher_overrides=("model.num_filters=4",), teacher_epochs=1,
                                                     epochs=1))
    teacher = _weights(out / "teacher.weights.npz")
    (out / "notes.txt").write_text("mine")
    reuse = DistillOptions(teacher_overrides=("model.num_filters=4",), teacher_weights=out / "teacher.weights.npz",
                           epochs=2)
    with pytest.raises(ConfigError, match=f"{out} holds an earlier run's model.keras, .*teacher_history.csv; pass "
                                          "--overwrite"):
        train_distilled(cfg, packed, out, reuse)
    train_distilled(cfg, packed, out, reuse, overwrite=True)  # its teacher read from the very folder it replaces
    assert not (out / "teacher_history.csv").exists()  # the earlier run's teacher, not this one's
    assert _same_arrays(_weights(out / "teacher.weights.npz"), teacher)
    assert TrainConfig.from_file(out / "config.yaml").epochs == 2 and (out / "notes.txt").read_text() == "mine"


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[name] for name in data.files]


def _same_arrays(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def test_time_budget_does_not_take_the_compiling_first_epoch_for_the_next(monkeypatch):
    """60 s to compile and run the first epoch, 1 s for each after: a 100 s budget runs 41 epochs."""
    from types import SimpleNamespace

    import trainer.portable.distill as distill

    clock = [0.0]
    monkeypatch.setattr(distill.time, "time", lambda: clock[0])
    schedule = budget_schedule(TrainConfig().optim, epochs=1000, max_seconds=100.0)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.0), stop_training=False))
    schedule.on_train_begin()
    epochs = 0
    while not schedule.model.stop_training:
        schedule.on_epoch_begin(epochs)
        clock[0] += 60.0 if epochs == 0 else 1.0
        schedule.on_epoch_end(epochs, {})
        epochs += 1
    assert epochs == 41 and clock[0] == 100.0  # stopped when the next epoch would pass 100 s
    spent = budget_schedule(TrainConfig().optim, epochs=1000, max_seconds=30.0)
    spent.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.0), stop_training=False))
    spent.on_train_begin()
    spent.on_epoch_begin(0)
    clock[0] += 60.0
    spent.on_epoch_end(0, {})
    assert spent.model.stop_training  # a budget already spent stops after the first epoch


def test_distill_checks_the_student_and_the_teacher_weights_before_training(tmp_path, ferplus_root):
    cfg = _config(ferplus_root)
    packed = pack(cfg, tmp_path / "packed.npz")
    bad = cfg.replace({"model.conv_ranks": "block2_1:64"})
    with pytest.raises(ConfigError, match="block2_1:64 must be below"):
        train_distilled(bad, packed, tmp_path / "bad", DistillOptions(teacher_epochs=50, epochs=1))
    assert not (tmp_path / "bad").exists()  # refused before the teacher trained or the folder was made
    other = tmp_path / "other.weights.npz"
    np.savez(other, np.zeros((3, 3, 1, 5), np.float16))
    for weights, message in ((other, "weights of another network .*--teacher-set"),
                             (packed, "not a teacher.weights.npz")):
        with pytest.raises(DataError, match=f"{weights.name}: {message}"):
            train_distilled(cfg, packed, tmp_path / "run", DistillOptions(teacher_weights=weights, epochs=1))
    assert not (tmp_path / "run").exists()


def test_a_damaged_pack_is_named_in_one_line(tmp_path, ferplus_root):
    good = pack(_config(ferplus_root), tmp_path / "packed.npz").read_bytes()
    cases = {
        "truncated.npz": good[: len(good) // 2],
        "empty.npz": b"",
        "flipped.npz": good[:200] + bytes([good[200] ^ 0xFF]) + good[201:],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    for name in (*cases, "array.npz"):
        with pytest.raises(DataError, match=f"{name}: .*(not a packed dataset|damaged)"):
            load_pack(tmp_path / name)


def test_distill_refuses_a_pack_of_other_classes(tmp_path, ferplus_root):
    cfg = _config(ferplus_root)
    packed = pack(cfg, tmp_path / "packed.npz")
    other = cfg.replace({"data.class_names": ["anger", "happy", "neutral"]})
    with pytest.raises(DataError, match="packed for classes"):
        train_distilled(other, packed, tmp_path / "run", DistillOptions(epochs=1, teacher_epochs=1))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be >= 1; got 0"),
    ("kd_weight", 1.5, "kd_weight must be in"),
    ("temperature", 0.0, "temperature must be > 0"),
    ("max_seconds", -1.0, "max_seconds must be > 0"),
    ("teacher_weights", Path("nowhere.npz"), "nowhere.npz is not a file"),
    ("teacher_overrides", ("model.num_filters",), r"\(--teacher-set\) expects key=value; got 'model.num_filters'"),
])
def test_distill_options_name_the_bad_value(field, value, message):
    with pytest.raises(ConfigError, match=message):
        DistillOptions(**{field: value})


def test_teacher_config_applies_the_overrides_to_the_students_recipe(ferplus_root):
    cfg = _config(ferplus_root)
    teacher = DistillOptions().teacher_config(cfg)
    assert (teacher.model.num_filters, teacher.model.dense1_units) == (64, 256)
    assert teacher.data == cfg.data and teacher.augment == cfg.augment
    split = cfg.replace({"model.conv_ranks": "block3_1:48"})
    assert DistillOptions().teacher_config(split).model.conv_ranks == ()
    assert DistillOptions(teacher_overrides=("model.conv_ranks=block3_1:96",)).teacher_config(split) \
        .model.conv_ranks == ("block3_1:96",)


def test_teacher_is_the_full_network_whatever_makes_its_student_cheaper(ferplus_root):
    cheap = _config(ferplus_root).replace({
        "model.conv_ranks": "block3_1:48", "model.first_block_convs": 1, "model.first_block_downsample": "stride",
        "model.input_size": 40, "model.input_fit": "crop"})
    teacher = DistillOptions().teacher_config(cheap).model
    full = ModelConfig()
    assert (teacher.conv_ranks, teacher.first_block_convs, teacher.first_block_downsample, teacher.input_size,
            teacher.input_fit) == (full.conv_ranks, full.first_block_convs, full.first_block_downsample,
                                   full.input_size, full.input_fit)
    assert (teacher.num_filters, teacher.dense1_units) == (64, 256)
    strided = DistillOptions(teacher_overrides=("model.first_block_downsample=stride",)).teacher_config(cheap)
    assert strided.model.first_block_downsample == "stride"  # the teacher's own overrides still win
    assert strided.model.input_size == 0


def test_pack_command_writes_the_file_and_its_next_command_keeps_the_overrides(tmp_path, ferplus_root, capsys):
    config = tmp_path / "recipe.yaml"
    _config(ferplus_root).save(config)
    with pytest.raises(SystemExit) as exit_info:
        main(["pack", "--config", str(config), "--data-dir", str(ferplus_root), "--set", "data.image_size=8",
              "--out", str(tmp_path / "packed.npz"), "--val-limit", "3"])
    assert exit_info.value.code == 0
    assert len(load_pack(tmp_path / "packed.npz")["val_labels"]) == 3
    hint = capsys.readouterr().out.splitlines()[-1]
    assert hint.startswith("next: ") and " --set data.image_size=8 --pack " in hint  # a pack at 8 px needs it


def test_commands_report_bad_input_in_one_line(tmp_path, ferplus_root, capsys):
    config = tmp_path / "recipe.yaml"
    _config(ferplus_root).save(config)
    with pytest.raises(SystemExit) as exit_info:
        main(["pack", "--config", str(config), "--data-dir", str(tmp_path / "nowhere"), "--out",
              str(tmp_path / "packed.npz")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "Error:" in error and "nowhere" in error and "Traceback" not in error
