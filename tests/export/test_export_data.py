from __future__ import annotations

import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from export_testdata import CLASS_NAMES, make_images, write_class_folders

from edge.errors import ConfigError, DataError
from export import data as export_data

SHAPE = (16, 16, 1)


def test_class_folders_labels_follow_the_given_class_order(tmp_path):
    images, labels = make_images(2, seed=0)
    write_class_folders(tmp_path, images, labels)
    order = ("sad", "neutral", "happy", "angry")
    loaded = export_data.load_class_folders(tmp_path, SHAPE, order)
    assert loaded.class_names == order
    assert loaded.images.shape == (8, *SHAPE) and loaded.images.dtype == np.uint8
    # folder "angry" (labels 0 in CLASS_NAMES) is index 3 in `order`
    expected = [order.index(CLASS_NAMES[label]) for label in sorted(labels)]
    assert sorted(loaded.labels.tolist()) == sorted(expected)
    assert np.array_equal(loaded.images[loaded.labels == 3], images[labels == 0])


def test_class_folders_without_names_use_alphabetical_folder_order(tmp_path):
    write_class_folders(tmp_path, *make_images(1, seed=0))
    assert export_data.load_class_folders(tmp_path, SHAPE).class_names == tuple(sorted(CLASS_NAMES))


def test_class_folders_that_do_not_match_the_labels_are_named(tmp_path):
    write_class_folders(tmp_path, *make_images(1, seed=0))
    (tmp_path / "angry").rename(tmp_path / "furious")
    with pytest.raises(DataError, match=r"missing \['angry'\], unexpected \['furious'\]"):
        export_data.load_class_folders(tmp_path, SHAPE, CLASS_NAMES)


@pytest.mark.parametrize("layout", ["no folders", "empty folders"])
def test_class_folders_without_images_are_refused(tmp_path, layout):
    if layout == "empty folders":
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no class folders|holds no images"):
        export_data.load_class_folders(tmp_path, SHAPE)


def test_limit_takes_a_seeded_subset(tmp_path):
    write_class_folders(tmp_path, *make_images(5, seed=0))
    first = export_data.load_class_folders(tmp_path, SHAPE, limit=7, seed=3)
    again = export_data.load_class_folders(tmp_path, SHAPE, limit=7, seed=3)
    assert len(first) == 7 and np.array_equal(first.images, again.images)


def test_images_are_resized_and_converted_to_the_model_colour_mode(tmp_path):
    bgr = np.zeros((40, 30, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = export_data.read_image(tmp_path / "red.png", (16, 16, 3))
    assert rgb.shape == (16, 16, 3) and (rgb[..., 0] == 255).all() and (rgb[..., 2] == 0).all()
    gray = export_data.read_image(tmp_path / "red.png", (12, 12, 1))
    assert gray.shape == (12, 12, 1)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png is not a readable image"):
        export_data.load_class_folders(tmp_path, SHAPE)


def test_image_folder_reads_flat_and_class_folders(tmp_path):
    images, labels = make_images(2, seed=0)
    write_class_folders(tmp_path / "nested", images, labels)
    for index, image in enumerate(images[:3]):
        cv2.imwrite(str(tmp_path / f"flat{index}.png"), image)
    assert export_data.load_image_folder(tmp_path / "nested", SHAPE).shape == (8, *SHAPE)
    assert export_data.load_image_folder(tmp_path, SHAPE, limit=2).shape == (2, *SHAPE)


def test_empty_image_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="holds no images"):
        export_data.load_image_folder(tmp_path, SHAPE)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((0, 16, 16, 1), np.uint8), "is empty"),
        (np.zeros((4, 24, 24, 1), np.uint8), r"shape \(N, 16, 16, 1\).*got \(4, 24, 24, 1\)"),
        (np.zeros((4, 16, 16, 3), np.uint8), "got \\(4, 16, 16, 3\\)"),
        (np.zeros((16, 16), np.uint8), "got \\(16, 16\\)"),
        (np.full((2, 16, 16, 1), 2.0, np.float32) * 300, r"\[0, 255\].*got \[600, 600\]"),
        (np.full((2, 16, 16, 1), np.nan, np.float32), r"\[0, 255\]"),
        (np.full((2, 16, 16, 1), "a"), "numeric"),
    ],
)
def test_check_images_refuses_bad_sets(images, match):
    with pytest.raises(DataError, match=match):
        export_data.check_images(images, SHAPE, "representative images")


def test_check_images_adds_the_grayscale_channel():
    assert export_data.check_images(np.zeros((2, 16, 16), np.uint8), SHAPE, "x").shape == (2, *SHAPE)


def test_config_beside_the_model_is_found(tmp_path):
    model = tmp_path / "model.keras"
    assert export_data.find_training_config(model, None) is None
    (tmp_path / "config.yaml").write_text("data: {}\n")
    assert export_data.find_training_config(model, None) == tmp_path / "config.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        export_data.find_training_config(model, tmp_path / "other.yaml")


@pytest.fixture
def fake_trainer(monkeypatch):
    """Stand-ins for trainer.config / trainer.data with the documented signatures."""
    calls = []
    data_config = types.SimpleNamespace(
        class_names=CLASS_NAMES, color_mode="grayscale", image_size=16
    )
    config_module = types.ModuleType("trainer.config")
    config_module.TrainConfig = types.SimpleNamespace(
        from_file=lambda path: types.SimpleNamespace(data=data_config)
    )
    data_module = types.ModuleType("trainer.data")

    def load_image_arrays(data, split, limit=None, seed=0):
        calls.append((data, split, limit, seed))
        images, labels = make_images(3, seed=7)
        return images[:limit], labels[:limit]

    data_module.load_image_arrays = load_image_arrays
    monkeypatch.setitem(sys.modules, "trainer.config", config_module)
    monkeypatch.setitem(sys.modules, "trainer.data", data_module)
    return calls


def test_training_config_and_split_come_from_the_trainer(fake_trainer, tmp_path):
    training = export_data.read_training_config(tmp_path / "config.yaml")
    assert training.class_names == CLASS_NAMES
    assert (training.color_mode, training.image_size) == ("grayscale", 16)
    split = training.load_split("test", limit=5, seed=4)
    assert len(split) == 5 and split.labels.dtype == np.int64
    assert fake_trainer == [(training.data_config, "test", 5, 4)]
    assert "test split of" in split.source


def test_trainer_labels_out_of_range_are_refused(fake_trainer, monkeypatch, tmp_path):
    training = export_data.read_training_config(tmp_path / "config.yaml")
    images, _ = make_images(1, seed=0)
    monkeypatch.setattr(sys.modules["trainer.data"], "load_image_arrays",
                        lambda *args, **kwargs: (images, np.array([0, 1, 2, 9])))
    with pytest.raises(DataError, match=r"labels must be in \[0, 3\]; got \[0, 9\]"):
        training.load_split("test")


def test_real_trainer_config_round_trip(tmp_path, dataset_dir):
    """The coupling with the real trainer, when it is installed (skipped otherwise)."""
    config = pytest.importorskip("trainer.config")
    pytest.importorskip("trainer.data")
    cfg = config.TrainConfig.from_dict({"data": {
        "data_dir": str(dataset_dir), "image_size": 16, "color_mode": "grayscale",
        "class_names": list(CLASS_NAMES),
    }})
    path = cfg.save(Path(tmp_path) / "config.yaml")
    training = export_data.read_training_config(path)
    assert training.class_names == CLASS_NAMES
    split = training.load_split("test", limit=10)
    assert split.images.shape == (10, 16, 16, 1) and split.images.dtype == np.uint8
    assert split.labels.max() < len(CLASS_NAMES)
