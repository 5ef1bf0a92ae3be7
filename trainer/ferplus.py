"""FER+ layout: ``FER2013Train|Valid|Test/label.csv`` crowd votes and PNG images.

``label.csv`` has no header; columns are ``image, face box`` then the votes of
10 annotators for ``neutral, happiness, surprise, sadness, anger, disgust,
fear, contempt, unknown, NF`` (NF = not a face).

Label modes (pure functions, see ``votes_to_labels``):

* ``majority``: one-hot of the emotion with the most votes; an image is
  dropped when the top vote is ``unknown``/``NF`` or tied between columns.
* ``soft``: the distribution of the emotion votes (``unknown``/``NF`` votes
  removed); an image is dropped when it has no emotion vote or when
  ``unknown`` or ``NF`` holds the most votes (ties included).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
FERPLUS_TO_PROJECT = {
    "anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
    "happiness": "happy", "neutral": "neutral", "sadness": "sad", "surprise": "surprise",
}
DUPLICATES_FILE = "valid_duplicates_of_train.csv"
NUM_EMOTIONS = 8


def is_ferplus_root(path: Path) -> bool:
    return (Path(path) / SPLIT_FOLDERS["train"] / "label.csv").is_file()


def split_folder(root: Path, split: str) -> Path:
    """The folder of a split; ``test`` falls back to FER2013Valid when there is no FER2013Test."""
    root = Path(root)
    folder = root / SPLIT_FOLDERS[split]
    if split == "test" and not (folder / "label.csv").is_file():
        log.info("no %s in %s; the test split is %s", folder.name, root, SPLIT_FOLDERS["val"])
        folder = root / SPLIT_FOLDERS["val"]
    if not (folder / "label.csv").is_file():
        raise DataError(f"{folder / 'label.csv'}: missing; a FER+ root needs {folder.name}/label.csv")
    return folder


@dataclass(frozen=True)
class VoteTable:
    """The parsed ``label.csv`` of one folder."""

    folder: Path
    images: tuple[str, ...]
    votes: np.ndarray  # (N, 10) int


def read_label_csv(path: Path) -> VoteTable:
    """Parse a FER+ ``label.csv``; a malformed row is a ``DataError`` naming file and line."""
    path = Path(path)
    images: list[str] = []
    votes: list[list[int]] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != 12:
                    raise DataError(
                        f"{path}: line {line_no} has {len(row)} columns; expected 12 "
                        "(image, face box, 10 vote counts)"
                    )
                try:
                    counts = [int(float(cell)) for cell in row[2:]]
                except ValueError:
                    raise DataError(f"{path}: line {line_no} has a non-numeric vote count: {row[2:]}") from None
                if min(counts) < 0:
                    raise DataError(f"{path}: line {line_no} has a negative vote count: {row[2:]}")
                images.append(row[0].strip())
                votes.append(counts)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    if not images:
        raise DataError(f"{path}: has no rows")
    return VoteTable(path.parent, tuple(images), np.asarray(votes, dtype=np.int64))


def emotion_order(class_names: tuple[str, ...]) -> np.ndarray:
    """Index of each configured class among the 10 vote columns."""
    project_to_column = {proj: VOTE_COLUMNS.index(fer) for fer, proj in FERPLUS_TO_PROJECT.items()}
    missing = [name for name in class_names if name not in project_to_column]
    if missing:
        raise DataError(
            f"FER+ has no votes for class(es) {missing}; FER+ classes are {sorted(project_to_column)}"
        )
    return np.asarray([project_to_column[name] for name in class_names], dtype=np.int64)


def votes_to_labels(votes: np.ndarray, class_names: tuple[str, ...], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``(keep_mask (N,), labels (kept, C) float32)`` in ``class_names`` order.

    Votes for emotions that are not configured count like ``unknown``.
    """
    votes = np.asarray(votes, dtype=np.float64)
    columns = emotion_order(class_names)
    top = votes.max(axis=1)
    is_top = votes == top[:, None]
    non_emotion = np.ones(votes.shape[1], bool)
    non_emotion[columns] = False
    non_emotion_top = (is_top & non_emotion[None, :]).any(axis=1)
    emotion_votes = votes[:, columns]
    if mode == "majority":
        keep = (is_top.sum(axis=1) == 1) & ~non_emotion_top & (top > 0)
        labels = np.zeros((int(keep.sum()), len(columns)), np.float32)
        labels[np.arange(len(labels)), emotion_votes[keep].argmax(axis=1)] = 1.0
        return keep, labels
    if mode == "soft":
        totals = emotion_votes.sum(axis=1)
        keep = (totals > 0) & ~non_emotion_top
        labels = (emotion_votes[keep] / totals[keep, None]).astype(np.float32)
        return keep, labels
    raise DataError(f"unknown FER+ label mode {mode!r}; use 'majority' or 'soft'")


def read_exclude_list(path: Path) -> set[tuple[str, str]]:
    """``(folder, image)`` pairs from a CSV with a ``folder,image`` header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: exclude list does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"folder", "image"} <= set(reader.fieldnames):
            raise DataError(f"{path}: exclude list needs a header with columns folder,image; got {reader.fieldnames}")
        return {(row["folder"].strip(), row["image"].strip()) for row in reader}


def exclusions(root: Path, exclude_list: Path | None, dedup_valid: bool) -> set[tuple[str, str]]:
    """The configured exclude list, or the root's duplicate list when ``dedup_valid``."""
    if exclude_list is not None:
        return read_exclude_list(exclude_list)
    default = Path(root) / DUPLICATES_FILE
    if dedup_valid and default.is_file():
        return read_exclude_list(default)
    return set()


def select(table: VoteTable, class_names: tuple[str, ...], mode: str,
           excluded: set[tuple[str, str]]) -> tuple[list[Path], np.ndarray, dict[str, int]]:
    """Image paths and labels of one folder after label rules and the exclude list."""
    keep, labels = votes_to_labels(table.votes, class_names, mode)
    folder = table.folder.name
    not_excluded = np.asarray([(folder, name) not in excluded for name in table.images], bool)
    kept_rows = np.flatnonzero(keep)
    mask = not_excluded[kept_rows]
    paths = [table.folder / table.images[row] for row in kept_rows[mask]]
    counts = {
        "rows": len(table.images),
        "dropped_by_label_rule": int((~keep).sum()),
        "excluded": int((keep & ~not_excluded).sum()),
        "kept": len(paths),
    }
    return paths, labels[mask], counts
