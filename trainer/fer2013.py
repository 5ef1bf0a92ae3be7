"""Kaggle FER2013 CSV: ``emotion,pixels,Usage`` with 48x48 grayscale pixel strings.

``emotion`` 0..6 = angry, disgust, fear, happy, sad, surprise, neutral (mapped
to the project's names); ``Usage`` Training/PublicTest/PrivateTest becomes
train/val/test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge.errors import DataError

KAGGLE_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")


def is_fer2013_csv(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".csv"


def read_fer2013_csv(path: Path) -> dict[str, tuple[np.ndarray, list[str], list[int]]]:
    """``{split: (images uint8 (N,h,w,1), class names, csv line numbers)}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: FER2013 CSV does not exist")
    rows: dict[str, tuple[list[np.ndarray], list[str], list[int]]] = {s: ([], [], []) for s in USAGE_TO_SPLIT.values()}
    side = None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not set(REQUIRED_COLUMNS) <= set(reader.fieldnames):
                raise DataError(f"{path}: needs a header with columns {','.join(REQUIRED_COLUMNS)}; "
                                f"got {reader.fieldnames}")
            for line_no, row in enumerate(reader, start=2):
                try:
                    emotion = int(row["emotion"])
                    pixels = np.asarray(row["pixels"].split(), dtype=np.int64)
                except (ValueError, AttributeError, TypeError):
                    raise DataError(f"{path}: line {line_no} has a malformed emotion or pixels value") from None
                if not 0 <= emotion < len(KAGGLE_CLASSES):
                    raise DataError(f"{path}: line {line_no} has emotion {emotion}; expected 0..6")
                usage = (row["Usage"] or "").strip()
                if usage not in USAGE_TO_SPLIT:
                    raise DataError(f"{path}: line {line_no} has Usage {usage!r}; expected one of "
                                    f"{list(USAGE_TO_SPLIT)}")
                this_side = int(round(np.sqrt(pixels.size)))
                if this_side * this_side != pixels.size or pixels.size == 0 or (side and this_side != side):
                    raise DataError(f"{path}: line {line_no} has {pixels.size} pixels; expected a square image "
                                    f"of {side or 48}x{side or 48}")
                if pixels.min() < 0 or pixels.max() > 255:
                    raise DataError(f"{path}: line {line_no} has pixel values outside 0..255")
                side = this_side
                images, names, lines = rows[USAGE_TO_SPLIT[usage]]
                images.append(pixels.astype(np.uint8).reshape(side, side, 1))
                names.append(KAGGLE_CLASSES[emotion])
                lines.append(line_no)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    return {
        split: (np.stack(images) if images else np.zeros((0, side or 48, side or 48, 1), np.uint8), names, lines)
        for split, (images, names, lines) in rows.items()
    }
