"""Class-folder layouts: ``<split>/<class>/*.png`` and a flat ``<class>/*.png`` tree.

``scan_class_folders`` is the validation pass: it lists and decodes every
file once with Pillow, so every problem is reported before training starts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edge.errors import DataError
from trainer.images import IMAGE_SUFFIXES, BadFileLog, check_image

SPLITS = ("train", "val", "test")


def is_split_root(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "train").is_dir()


def scan_class_folders(
    directory: Path, class_names: tuple[str, ...], bad: BadFileLog, *, check: bool = True,
    channels: int | None = None,
) -> tuple[list[Path], np.ndarray]:
    """Image paths under ``directory/<class>/`` and their int labels in ``class_names`` order.

    Folders that are not configured classes, empty or missing class folders,
    non-image files and undecodable images go to ``bad`` (raise, or skip and count).
    """
    from tqdm import tqdm

    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: folder is missing; expected one sub-folder per class "
                        f"({', '.join(class_names)})")
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name not in class_names:
            bad.bad(entry, f"folder {entry.name!r} is not a configured class; classes are {list(class_names)} "
                           "(set data.class_names to include it, or remove the folder)")
        elif entry.is_file():
            bad.bad(entry, "stray file next to the class folders; expected only class folders")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        folder = directory / name
        files = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
        images = []
        for path in files:
            if path.is_dir():
                bad.bad(path, "nested folder inside a class folder")
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                bad.bad(path, f"not an image file (suffix {path.suffix or 'none'}); "
                              f"expected {sorted(IMAGE_SUFFIXES)}")
            else:
                images.append(path)
        if not images:
            reason = "is empty" if folder.is_dir() else "is missing"
            bad.bad(folder, f"class folder {reason}; every configured class needs images "
                            f"(or set data.class_names to the classes you have)")
        paths.extend(images)
        labels.extend([index] * len(images))
    if check and paths:
        def one(path: Path) -> tuple[bool, BadFileLog]:
            local = BadFileLog(skip=True)
            return check_image(path, local, channels=channels), local

        keep = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(one, paths, chunksize=64)
            for path, (ok, local) in tqdm(zip(paths, results), total=len(paths), leave=False,
                                         desc=f"checking {directory.name}", unit="img", mininterval=1.0):
                bad.converted.update(local.converted)
                if not ok:
                    bad.bad(path, local.skipped[0][1])
                keep.append(ok)
        paths = [p for p, ok in zip(paths, keep) if ok]
        labels = [label for label, ok in zip(labels, keep) if ok]
    if not paths:
        raise DataError(f"{directory}: no usable images in any class folder")
    return paths, np.asarray(labels, dtype=np.int64)


def flat_class_folders(root: Path) -> list[str]:
    """Class names of a flat ``<class>/*`` tree (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder does not exist")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{root}: no class folders found")
    return names


def stratified_split(labels: np.ndarray, ratios: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Seeded per-class split of indices into train/val/test by ``ratios``."""
    if len(ratios) != 3 or not all(r >= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:  # nan fails >= 0
        raise DataError(f"split ratios must be three non-negative numbers summing to 1; got {ratios}")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"the split seed must be a whole number in [0, 2**32); got {seed!r}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_train = int(round(ratios[0] * len(members)))
        n_val = int(round(ratios[1] * len(members)))
        out["train"].extend(members[:n_train])
        out["val"].extend(members[n_train:n_train + n_val])
        out["test"].extend(members[n_train + n_val:])
    return {split: np.asarray(sorted(idx), dtype=np.int64) for split, idx in out.items()}
