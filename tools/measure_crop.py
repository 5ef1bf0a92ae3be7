"""Measure the crop contract: how a BlazeFace box relates to a training crop.

FER images are tight 48x48 face crops. The runtime crops faces from the
detector's box, so live crops match training crops only if the box is
expanded and shifted the way FER frames a face. This tool upscales training
images, pads them with replicated edges so the detector sees a face with
context, detects, and reports the median box relative to the FER frame as a
``CropSpec`` (``scale`` = frame side / box side, ``shift_y`` = frame centre
minus box centre, in box heights) for each shipped detector model.

    python tools/measure_crop.py --config runs/ferplus_vgg/config.yaml --count 1500

Pass the values to ``ers export --crop-scale ... --crop-shift-y ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import cv2
import numpy as np

from edge.detector import DetectorModelName, FaceDetector, FaceDetectorOptions
from edge.errors import ErsError
from edge.types import Frame


def measure(images: np.ndarray, model: DetectorModelName, upscale: int, pad: int) -> dict:
    """Median detector box of ``images`` (N, S, S[, 1]) as fractions of the image frame."""
    boxes = []
    options = FaceDetectorOptions(model=model, running_mode="image", min_detection_confidence=0.5)
    with FaceDetector(options) as detector:
        for index, image in enumerate(images):
            gray = image[..., 0] if image.ndim == 3 else image
            side = gray.shape[0] * upscale
            big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
            big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            rgb = np.ascontiguousarray(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
            faces = detector.detect(Frame(image_rgb=rgb, index=index, timestamp_ms=index))
            if faces:
                x1, y1, x2, y2 = (value - pad for value in faces[0].box_xyxy)
                boxes.append(((x1 + x2) / 2 / side, (y1 + y2) / 2 / side, (x2 - x1) / side, (y2 - y1) / side))
    if not boxes:
        raise click.ClickException(f"the {model.value} detector found no face in the {len(images)} images")
    found = np.array(boxes)
    centre_x, centre_y, width, height = np.median(found, axis=0)
    return {
        "detector": model.value,
        "images": int(len(images)),
        "found": int(len(found)),
        "median_box_fraction": {"cx": centre_x, "cy": centre_y, "w": width, "h": height},
        "crop": {"scale": round(1.0 / max(width, height), 3), "shift_y": round((0.5 - centre_y) / height, 3)},
    }


@click.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Training config (a run folder's config.yaml) naming the data.")
@click.option("--split", default="val", show_default=True)
@click.option("--count", default=1500, show_default=True, help="Images to measure.")
@click.option("--upscale", default=4, show_default=True)
@click.option("--pad", default=96, show_default=True, help="Replicated border in upscaled pixels.")
@click.option("--data-dir", type=click.Path(exists=True, path_type=Path),
              help="The data the config names, where it is now (a run's config keeps the path it was given).")
def main(config: Path, split: str, count: int, upscale: int, pad: int, data_dir: Path | None) -> None:
    """Where BlazeFace puts its box on FER-style faces: the crop contract for `ers export`."""
    from trainer.config import TrainConfig
    from trainer.data import load_image_arrays

    try:
        cfg = TrainConfig.from_file(config)
        data = (cfg.replace({"data.data_dir": data_dir}) if data_dir is not None else cfg).data
        images, _ = load_image_arrays(data, split, limit=count)
    except ErsError as error:
        raise click.ClickException(str(error)) from None
    results = [measure(images, model, upscale, pad) for model in (DetectorModelName.SHORT, DetectorModelName.FULL)]
    click.echo(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
