"""``ers data``: any supported source -> the seed's ``SplittedDS/{train,val,test}/<class>/`` PNGs.

Sources: a split class-folder tree, a FER+ root (majority labels), a Kaggle
``fer2013.csv``, or a flat ``<class>/`` tree split per class with a seeded ratio.
Every image is validated (decoded) before it is written.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge.errors import ConfigError, DataError, SinkError
from edge.folders import make_folder
from trainer import fer2013, ferplus, folders
from trainer.config import CLASS_NAMES
from trainer.data import detect_layout
from trainer.images import BadFileLog, read_image

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class ConvertResult:
    out_dir: Path
    counts: dict[str, Counter] = field(default_factory=dict)
    skipped: int = 0
    source_format: str = ""
    class_names: tuple[str, ...] = ()

    def train_command(self) -> str:
        """The ``ers train`` that reads this set: its classes named when they are not the default 8."""
        command = f"ers train --data-dir {shlex.quote(str(self.out_dir))}"
        if self.class_names and tuple(self.class_names) != CLASS_NAMES:
            command += " --set " + shlex.quote(f"data.class_names={','.join(self.class_names)}")
        return command

    @property
    def empty_splits(self) -> list[str]:
        return [split for split in SPLITS if not sum(self.counts.get(split, Counter()).values())]

    def summary(self) -> str:
        lines = [f"wrote {self.out_dir} from a {self.source_format} source"
                 + (f" ({self.skipped} bad files skipped)" if self.skipped else "")]
        for split in SPLITS:
            counts = self.counts.get(split, Counter())
            detail = ", ".join(f"{name} {counts[name]}" for name in sorted(counts))
            lines.append(f"  {split}: {sum(counts.values())} images ({detail})")
        return "\n".join(lines)


def _detect(source: Path) -> str:
    layout = detect_layout(source)
    if layout is not None:
        return layout
    if source.is_dir():
        return "flat"
    raise DataError(f"{source}: not a FER+ root, fer2013.csv, split tree or class-folder tree")


def _check_out(source: Path, out_dir: Path, fmt: str) -> None:
    """Refuse an ``out_dir`` that is a file, whose split folders (deleted with ``overwrite``) would
    be or hold the source, that is the source, or that lies inside a class-folder source (where it
    would be read as one more class folder)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder")
    src, out = source.resolve(), out_dir.resolve()
    replaced = [out / split for split in SPLITS]
    if any(src == folder or folder in src.parents for folder in replaced) or out == src or (
        fmt in ("flat", "folders") and src in out.parents
    ):
        raise ConfigError(f"--out {out_dir} overlaps the source {source}; write the converted set elsewhere")


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    try:
        if out_dir.exists() and any(out_dir.iterdir()):
            if not overwrite:
                raise ConfigError(f"{out_dir} is not empty; pass --overwrite or choose another --out")
            for split in SPLITS:
                if (out_dir / split).is_dir():
                    shutil.rmtree(out_dir / split)
    except OSError as error:
        raise SinkError(f"cannot write --out {out_dir}: {error.strerror or error}") from None
    make_folder(out_dir, f"--out {out_dir}")


def _write_png(target: Path, array: np.ndarray) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if array.shape[-1] == 1 else "RGB"
    Image.fromarray(array.squeeze(-1) if mode == "L" else array, mode=mode).save(target)


def _copy_files(paths, labels, names, split: str, out_dir: Path, bad: BadFileLog, result: ConvertResult) -> None:
    from tqdm import tqdm

    counts = result.counts.setdefault(split, Counter())
    for path, label in tqdm(list(zip(paths, labels)), desc=f"writing {split}", unit="img", leave=False,
                            mininterval=1.0):
        path = Path(path)
        array = read_image(path, "rgb", bad)  # validates the file
        if array is None:
            continue
        target = out_dir / split / names[label] / (path.stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".png":
            shutil.copyfile(path, target)
        else:
            _write_png(target, array)
        counts[names[label]] += 1


def convert_dataset(source: Path, out_dir: Path, *, source_format: str = "auto",
                    ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 42,
                    class_names: tuple[str, ...] | None = None, exclude_list: Path | None = None,
                    skip_bad: bool = False, overwrite: bool = False) -> ConvertResult:
    """Write ``out_dir/{train,val,test}/<class>/*.png`` from ``source``."""
    source, out_dir = Path(source), Path(out_dir)
    fmt = _detect(source) if source_format == "auto" else source_format
    _check_out(source, out_dir, fmt)
    bad = BadFileLog(skip=skip_bad)
    result = ConvertResult(out_dir, source_format=fmt)
    if fmt == "flat":
        names = class_names or tuple(folders.flat_class_folders(source))
        paths, labels = folders.scan_class_folders(source, names, bad)
        parts = folders.stratified_split(labels, tuple(ratios), seed)
        _prepare_out(out_dir, overwrite)
        for split in SPLITS:
            idx = parts[split]
            _copy_files([paths[i] for i in idx], labels[idx], names, split, out_dir, bad, result)
    elif fmt == "folders":
        names = class_names or CLASS_NAMES
        scanned = {split: folders.scan_class_folders(source / split, names, bad) for split in SPLITS}
        _prepare_out(out_dir, overwrite)
        for split, (paths, labels) in scanned.items():
            _copy_files(paths, labels, names, split, out_dir, bad, result)
    elif fmt == "ferplus":
        names = class_names or CLASS_NAMES
        excluded = ferplus.exclusions(source, exclude_list, dedup_valid=True)
        selected = {}
        for split in SPLITS:
            table = ferplus.read_label_csv(ferplus.split_folder(source, split) / "label.csv")
            paths, labels, _ = ferplus.select(table, names, "majority", excluded)
            selected[split] = (paths, labels.argmax(axis=1))
        _prepare_out(out_dir, overwrite)
        for split, (paths, labels) in selected.items():
            _copy_files(paths, labels, names, split, out_dir, bad, result)
    elif fmt == "fer2013_csv":
        names = class_names or CLASS_NAMES
        rows = fer2013.read_fer2013_csv(source)
        _prepare_out(out_dir, overwrite)
        for split, (images, labels, lines) in rows.items():
            counts = result.counts.setdefault(split, Counter())
            for image, label, line in zip(images, labels, lines):
                if label in names:
                    _write_png(out_dir / split / label / f"{split}_{line:06d}.png", image)
                    counts[label] += 1
    else:
        raise ConfigError(f"unknown source format {fmt!r}")
    result.skipped = len(bad.skipped)
    result.class_names = tuple(names)
    bad.report()
    return result
