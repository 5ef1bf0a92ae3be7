"""Fetch the BlazeFace face-detector models that ``edge`` ships.

mediapipe >= 0.10.30 no longer bundles a face-detection model, but the
``mediapipe==0.10.21`` wheel on PyPI does. This downloads that wheel with pip
(without installing it), extracts the two models into
``edge/models/detector/`` and checks them against the sha256 recorded in
``edge/detector.py``, so the shipped files can be reproduced byte for byte:

    python tools/fetch_blazeface.py            # verify against the recorded hashes
    python tools/fetch_blazeface.py --print-hashes   # show hashes (when updating the pin)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from edge.detector import DETECTOR_MODELS, DETECTOR_MODELS_DIR  # noqa: E402  (TF- and mediapipe-free import)
from tools._wheel import download_wheel  # noqa: E402

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"  # the model files are identical in every wheel of the release
WHEEL_PYTHON = "3.11"


def extract_models(wheel: Path, out_dir: Path, check: bool = True) -> dict[str, str]:
    """Copy each model out of the wheel; returns file name -> sha256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hashes = {}
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise SystemExit(f"{wheel}: not a readable wheel ({error})") from None
    with archive:
        for model in DETECTOR_MODELS.values():
            try:
                data = archive.read(model.wheel_path)
            except KeyError:
                raise SystemExit(f"{wheel} holds no {model.wheel_path}: pass a mediapipe 0.10.21 wheel") from None
            digest = hashlib.sha256(data).hexdigest()
            if check and digest != model.sha256:
                raise SystemExit(f"{model.wheel_path} in {wheel.name} has sha256 {digest}, expected {model.sha256}")
            (out_dir / model.file).write_bytes(data)
            hashes[model.file] = digest
    return hashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=DETECTOR_MODELS_DIR)
    parser.add_argument("--wheel", type=Path, help="use an already downloaded mediapipe 0.10.21 wheel")
    parser.add_argument("--print-hashes", action="store_true", help="print hashes instead of checking them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel or download_wheel(
            WHEEL_REQUIREMENT, Path(scratch), python_version=WHEEL_PYTHON, platform=WHEEL_PLATFORM
        )
        hashes = extract_models(wheel, args.out_dir, check=not args.print_hashes)
    for name, digest in hashes.items():
        print(f"{digest}  {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
