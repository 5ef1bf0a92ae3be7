"""Tiny synthetic data sets (16x16 images) in every layout the trainer reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SIZE = 16


def write_png(path: Path, value: int, size: int = SIZE, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = np.clip(value * 30 + rng.integers(0, 20, (size, size)), 0, 255).astype(np.uint8)
    if mode == "RGB":
        pixels = np.stack([pixels] * 3, axis=-1)
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def make_class_folders(root: Path, per_class: int = 2, classes=CLASSES) -> Path:
    for split in ("train", "val", "test"):
        for index, name in enumerate(classes):
            for k in range(per_class):
                write_png(root / split / name / f"{name}_{k}.png", index, mode="RGB" if k % 2 else "L")
    return root


# FER+ vote rows: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_ROWS = [
    ("a.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # neutral
    ("b.png", [0, 6, 2, 0, 0, 0, 0, 0, 2, 0]),  # happy (soft: 6/8 happy, 2/8 surprise)
    ("c.png", [0, 0, 0, 0, 7, 3, 0, 0, 0, 0]),  # anger
    ("d.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),  # tie: dropped in majority, kept in soft
    ("e.png", [0, 0, 0, 0, 0, 0, 0, 0, 8, 2]),  # unknown majority: dropped in both
    ("f.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face: dropped in both
    ("g.png", [1, 0, 0, 6, 0, 0, 0, 0, 3, 0]),  # sad
    ("h.png", [0, 0, 9, 0, 0, 0, 0, 1, 0, 0]),  # surprise
]


def make_ferplus(root: Path, with_test: bool = False, duplicates: bool = True) -> Path:
    folders = ["FER2013Train", "FER2013Valid"] + (["FER2013Test"] if with_test else [])
    for folder in folders:
        lines = []
        for index, (name, votes) in enumerate(FERPLUS_ROWS):
            write_png(root / folder / name, index)
            lines.append(f'{name},"(0, 0, 16, 16)",' + ",".join(map(str, votes)))
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    if duplicates:
        (root / "valid_duplicates_of_train.csv").write_text("folder,image\nFER2013Valid,c.png\n")
    return root


def make_fer2013_csv(path: Path, per_usage: int = 7, side: int = SIZE) -> Path:
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for k in range(per_usage):
            pixels = " ".join(map(str, rng.integers(0, 256, side * side)))
            lines.append(f"{k % 7},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return make_class_folders(tmp_path / "SplittedDS")


@pytest.fixture
def ferplus_root(tmp_path: Path) -> Path:
    return make_ferplus(tmp_path / "ferplus")


@pytest.fixture
def fer2013_csv(tmp_path: Path) -> Path:
    return make_fer2013_csv(tmp_path / "fer2013.csv")


TINY_SETS = ("ImageSize=16", "NoOfUDense1=16", "NoOfUDense2=8", "NoOfFilters=2", "verbose=0")


def tiny_overrides(data_dir: Path, run_dir: Path) -> list[str]:
    """CLI args of a fast run: 16 px input and a tiny LeNet."""
    args = ["--data-dir", str(data_dir), "--run-dir", str(run_dir), "--epochs", "1", "--batch-size", "8"]
    for item in TINY_SETS:
        args += ["--set", item]
    return args
