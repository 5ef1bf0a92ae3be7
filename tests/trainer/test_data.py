from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CLASSES, FERPLUS_ROWS, SIZE, make_ferplus, write_png
from edge.errors import DataError
from trainer.config import DataConfig, TrainConfig
from trainer.data import load_datasets, load_image_arrays, load_split, make_dataset, validate_data
from trainer.ferplus import votes_to_labels
from trainer.images import BadFileLog, read_image

VOTES = np.asarray([votes for _, votes in FERPLUS_ROWS])


def data_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(data_dir=root, image_size=kw.pop("image_size", SIZE), **kw)


# ---------------------------------------------------------------- FER+ labels
def test_majority_votes():
    keep, labels = votes_to_labels(VOTES, CLASSES, "majority")
    assert keep.tolist() == [True, True, True, False, False, False, True, True]
    names = [CLASSES[i] for i in labels.argmax(1)]
    assert names == ["neutral", "happy", "anger", "sad", "surprise"]
    assert np.all(labels.sum(1) == 1)


def test_soft_votes():
    keep, labels = votes_to_labels(VOTES, CLASSES, "soft")
    assert keep.tolist() == [True, True, True, True, False, False, True, True]
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-6)
    happy = labels[1]
    assert happy[CLASSES.index("happy")] == pytest.approx(6 / 8)
    assert happy[CLASSES.index("surprise")] == pytest.approx(2 / 8)
    tie = labels[3]
    assert tie[CLASSES.index("neutral")] == pytest.approx(0.5) and tie[CLASSES.index("happy")] == pytest.approx(0.5)
    sad = labels[4]  # the unknown votes are dropped: 1 neutral + 6 sad
    assert sad[CLASSES.index("sad")] == pytest.approx(6 / 7)


def test_ferplus_layout_majority_with_dedup(ferplus_root: Path):
    data = data_cfg(ferplus_root, color_mode="grayscale")
    train = load_split(data, "train", training_labels=True)
    assert len(train) == 5 and train.images.shape == (5, SIZE, SIZE, 1)
    val = load_split(data, "val")
    assert len(val) == 4  # c.png is listed in valid_duplicates_of_train.csv
    test = load_split(data, "test")  # no FER2013Test: the test split is FER2013Valid
    np.testing.assert_array_equal(test.labels, val.labels)


def test_ferplus_soft_training_and_majority_evaluation(ferplus_root: Path):
    data = data_cfg(ferplus_root, label_mode="soft")
    train = load_split(data, "train", training_labels=True)
    assert len(train) == 6 and not np.all(train.labels.max(1) == 1)
    val = load_split(data, "val", training_labels=False)
    assert np.all(val.labels.max(1) == 1)  # evaluation uses majority labels


def test_ferplus_exclude_list_and_no_dedup(tmp_path: Path, ferplus_root: Path):
    exclude = tmp_path / "exclude.csv"
    exclude.write_text("folder,image\nFER2013Train,a.png\nFER2013Train,b.png\n")
    assert len(load_split(data_cfg(ferplus_root, exclude_list=exclude), "train", training_labels=True)) == 3
    assert len(load_split(data_cfg(ferplus_root, dedup_valid=False), "val")) == 5


def test_ferplus_test_folder_used_when_present(tmp_path: Path):
    root = make_ferplus(tmp_path / "fp", with_test=True)
    (root / "FER2013Test" / "label.csv").write_text('a.png,"(0, 0, 16, 16)",10,0,0,0,0,0,0,0,0,0\n')
    assert len(load_split(data_cfg(root), "test")) == 1


# ---------------------------------------------------------------- other layouts
def test_class_folders(class_folders: Path):
    data = data_cfg(class_folders, color_mode="rgb")
    split = load_split(data, "train")
    assert len(split) == 16 and split.directory is not None  # clean -> image_dataset_from_directory
    ds = load_datasets(TrainConfig(data=replace_batch(data, 5)), ("train", "val")).val
    images, labels = next(iter(ds))
    assert images.shape == (5, SIZE, SIZE, 3) and labels.shape == (5, 8)
    assert images.dtype.name == "float32" and 0 <= float(images.numpy().min()) <= float(images.numpy().max()) <= 255


@pytest.mark.parametrize("images", ["augmented", "plain"])
def test_calibration_batches_are_the_training_images_asked_for(fer2013_csv: Path, images):
    from trainer.config import resolve_config

    cfg = resolve_config(None, [f"data.data_dir={fer2013_csv}", f"data.image_size={SIZE}", "data.color_mode=rgb",
                                "data.batch_size=3", f"optim.ema_calibration_images={images}"])
    datasets = load_datasets(cfg, ("train", "val"))
    if images == "augmented":
        assert datasets.calibration is datasets.train
        return
    seen = np.concatenate([batch.numpy() for batch, _ in datasets.calibration])
    clean = load_split(cfg.data, "train").images.astype(np.float32)
    assert seen.shape == clean.shape
    order = lambda x: x[np.lexsort(x.reshape(len(x), -1).T)]  # noqa: E731 - the same images, shuffled
    np.testing.assert_array_equal(order(seen), order(clean))
    assert not np.array_equal(seen, clean)  # shuffled (7 images: an unshuffled order is 1 in 5,040)


def replace_batch(data: DataConfig, batch: int) -> DataConfig:
    from dataclasses import replace

    return replace(data, batch_size=batch)


def test_fer2013_csv(fer2013_csv: Path):
    data = data_cfg(fer2013_csv, color_mode="rgb")
    for split in ("train", "val", "test"):
        loaded = load_split(data, split)
        assert len(loaded) == 7 and loaded.images.shape == (7, SIZE, SIZE, 3)
    names = [CLASSES[i] for i in load_split(data, "train").majority]
    assert names == ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.mark.parametrize("layout", ["folders", "ferplus", "fer2013_csv"])
@pytest.mark.parametrize("color_mode,channels", [("grayscale", 1), ("rgb", 3)])
def test_load_image_arrays(layout, color_mode, channels, class_folders, ferplus_root, fer2013_csv):
    root = {"folders": class_folders, "ferplus": ferplus_root, "fer2013_csv": fer2013_csv}[layout]
    data = DataConfig(data_dir=root, image_size=24, color_mode=color_mode)
    images, labels = load_image_arrays(data, "val")
    assert images.dtype == np.uint8 and images.shape[1:] == (24, 24, channels)
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    subset, sub_labels = load_image_arrays(data, "val", limit=3, seed=1)
    assert subset.shape[0] == 3
    again, _ = load_image_arrays(data, "val", limit=3, seed=1)
    np.testing.assert_array_equal(subset, again)
    # the subset is a subset of the full split, labels included
    full = {(img.tobytes(), int(lab)) for img, lab in zip(images, labels)}
    assert all((img.tobytes(), int(lab)) in full for img, lab in zip(subset, sub_labels))


def test_folder_labels_follow_class_names(class_folders: Path):
    images, labels = load_image_arrays(data_cfg(class_folders, color_mode="grayscale"), "test")
    # write_png makes class k's pixels about 30*k, so the mean orders the classes
    means = [images[labels == k].mean() for k in range(8)]
    assert means == sorted(means)


# ---------------------------------------------------------------- bad input
def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


BAD_CASES = {
    "corrupt": lambda root: (corrupt(root / "train/happy/happy_0.png"), "happy_0.png"),
    "zero_byte": lambda root: ((root / "train/sad/sad_0.png").write_bytes(b""), "sad_0.png"),
    "not_an_image": lambda root: ((root / "val/fear/fear_1.png").write_text("hello"), "fear_1.png"),
    "wrong_suffix": lambda root: ((root / "train/fear/notes.txt").write_text("hello"), "notes.txt"),
    "unknown_class_folder": lambda root: (write_png(root / "train/bored/x.png", 1), "bored"),
    "empty_class_folder": lambda root: ([p.unlink() for p in (root / "test/contempt").iterdir()], "contempt"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_raise_naming_the_file(case, class_folders: Path):
    _, name = BAD_CASES[case](class_folders)
    with pytest.raises(DataError, match=name):
        validate_data(data_cfg(class_folders))


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_skipped_and_counted(case, class_folders: Path, caplog):
    BAD_CASES[case](class_folders)
    caplog.set_level("INFO")
    loaded = validate_data(data_cfg(class_folders, skip_bad_files=True))
    assert sum(len(s) for s in loaded.values()) <= 48
    assert "skipped 1 bad file" in caplog.text or "skipped 2 bad file" in caplog.text


def test_missing_split(class_folders: Path):
    shutil.rmtree(class_folders / "test")
    with pytest.raises(DataError, match="test"):
        validate_data(data_cfg(class_folders))


def test_missing_data_dir(tmp_path: Path, monkeypatch):
    with pytest.raises(DataError, match="does not exist$"):
        validate_data(data_cfg(tmp_path / "nope"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"nope: data directory does not exist \(relative to the current folder"):
        validate_data(data_cfg(Path("nope")))


@pytest.mark.parametrize("line,match", [
    ("a.png,box,1,2,3\n", "12"),
    ('a.png,"box",x,0,0,0,0,0,0,0,0,0\n', "non-numeric"),
])
def test_malformed_ferplus_label_csv(ferplus_root: Path, line, match):
    label = ferplus_root / "FER2013Valid" / "label.csv"
    label.write_text(label.read_text() + line)
    with pytest.raises(DataError, match=f"label.csv.*{match}"):
        validate_data(data_cfg(ferplus_root))


def test_ferplus_missing_image(ferplus_root: Path):
    (ferplus_root / "FER2013Train" / "h.png").unlink()
    with pytest.raises(DataError, match="h.png"):
        validate_data(data_cfg(ferplus_root))
    loaded = validate_data(data_cfg(ferplus_root, skip_bad_files=True))
    assert len(loaded["train"]) == 4


def test_ferplus_missing_valid(ferplus_root: Path):
    shutil.rmtree(ferplus_root / "FER2013Valid")
    with pytest.raises(DataError, match="FER2013Valid"):
        validate_data(data_cfg(ferplus_root))


@pytest.mark.parametrize("row,match", [
    ("9,1 2 3 4,Training", "emotion 9"),
    ("1,1 2 3,Training", "pixels"),
    ("1,1 2 x 4,Training", "malformed"),
    ("1,1 2 3 4,Holdout", "Usage"),
])
def test_malformed_fer2013_csv(tmp_path: Path, row, match):
    path = tmp_path / "fer2013.csv"
    path.write_text(f"emotion,pixels,Usage\n{row}\n")
    with pytest.raises(DataError, match=f"fer2013.csv.*{match}"):
        validate_data(data_cfg(path))


def test_fer2013_csv_missing_split(tmp_path: Path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n1,1 2 3 4,Training\n2,1 2 3 4,PublicTest\n")
    with pytest.raises(DataError, match="test split"):
        validate_data(data_cfg(path))


def test_special_modes_are_converted(tmp_path: Path, caplog):
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 120, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((SIZE, SIZE, 3), 120, np.uint8)).convert("P").save(tmp_path / "p.png")
    Image.fromarray(np.full((SIZE, SIZE), 120 * 257, np.uint16)).save(tmp_path / "i16.png")
    bad = BadFileLog()
    for name in ("rgba", "p", "i16"):
        for mode, channels in (("grayscale", 1), ("rgb", 3)):
            array = read_image(tmp_path / f"{name}.png", mode, bad)
            assert array.shape == (SIZE, SIZE, channels) and array.dtype == np.uint8
            assert abs(int(array.mean()) - 120) <= 2, (name, mode, array.mean())
    assert sum(bad.converted.values()) == 6 and "converted 6" in bad.summary()


def test_hidden_files_in_class_folders_are_not_read(class_folders: Path):
    """macOS leaves "._name.png" AppleDouble files beside the images when it copies them: no images."""
    (class_folders / "train" / "happy" / "._happy_0.png").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    cfg = TrainConfig().replace({"data.data_dir": class_folders, "data.image_size": SIZE})
    split = load_split(cfg.data, "train")
    assert split.directory is None and not any(Path(p).name.startswith(".") for p in split.paths)
    import tensorflow as tf

    batches = list(make_dataset(split, cfg, training=False))
    assert sum(int(tf.shape(images)[0]) for images, _ in batches) == len(split)


def test_a_cmyk_jpeg_is_bad_only_where_tensorflow_would_decode_it_to_grayscale(class_folders: Path):
    Image.new("CMYK", (SIZE, SIZE), (0, 0, 0, 40)).save(class_folders / "train" / "sad" / "cmyk.jpg")
    with pytest.raises(DataError, match="cmyk.jpg: a CMYK JPEG, which TensorFlow cannot decode to grayscale"):
        load_split(data_cfg(class_folders, color_mode="grayscale"), "train")
    split = load_split(data_cfg(class_folders, color_mode="rgb"), "train")  # decode_image reads it as RGB
    assert any(Path(path).name == "cmyk.jpg" for path in split.paths)
