"""Time the classifier's face resize (``edge.classifier.resize_to``) against OpenCV's direct area resize.

For square grey crops of several sides (an image resized to each), prints
milliseconds per resize to the model's 48x48 input both ways and how far
the two results lie apart in grey levels: the figures in ``resize_to``'s
docstring. With ``--media`` it also classifies every face the detector finds
in those videos and photos (every other frame), at its own size and enlarged
2.5 times as from a 1600x900 camera, resized both ways, and prints how often
the shipped int8 model's top label agrees.

    python tools/time_resize.py --image .cache/media/single_face.jpg
    python tools/time_resize.py --image .cache/media/single_face.jpg --media .cache/media/single_face.mp4 \
        --media .cache/media/WolfgangLanger_Pexels.mp4 --media .cache/media/multi_face.jpg
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
import cv2
import numpy as np

from edge.classifier import EmotionClassifier, resize_to
from edge.crop import crop_face
from edge.detector import DetectorModelName, FaceDetector, FaceDetectorOptions
from edge.pipeline import DEFAULT_MODEL_DIR
from edge.sources import open_source


def per_call_ms(function: Callable[[], object], repeats: int) -> float:
    """Mean milliseconds of ``function()`` over ``repeats`` calls, after a warm-up."""
    for _ in range(max(repeats // 10, 1)):
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return 1000.0 * (time.perf_counter() - start) / repeats


def direct_resize(crop_rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The resize ``EmotionClassifier.prepare`` did before ``resize_to``: grey, then one OpenCV call."""
    grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    shrinking = grey.shape[0] > size[1] or grey.shape[1] > size[0]
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)[..., np.newaxis]


def agreement(media: list[Path]) -> tuple[int, float, float, tuple[int, int]]:
    """Crops classified (each face twice: as found and 2.5x larger), top-1 agreement, largest
    probability difference, crop sides (min, max):
    the shipped int8 model on crops resized by ``resize_to`` and by ``direct_resize``."""
    classifier = EmotionClassifier.from_dir(DEFAULT_MODEL_DIR, "int8")
    size = (classifier.spec.input_width, classifier.spec.input_height)
    options = FaceDetectorOptions(model=DetectorModelName.FULL, running_mode="image")
    faces, agreeing, largest, sides = 0, 0, 0.0, []
    with classifier, FaceDetector(options) as detector:
        for path in media:
            with open_source(path) as source:
                for index, frame in enumerate(source):
                    if index % 2:
                        continue
                    for detection in detector.detect(frame):
                        crop = crop_face(frame.image_rgb, detection.box_xyxy, classifier.spec.crop)
                        for crop_at in (crop, cv2.resize(crop, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)):
                            ours = classifier.predict(classifier.prepare(crop_at)[np.newaxis])
                            theirs = classifier.predict(direct_resize(crop_at, size)[np.newaxis])
                            faces += 1
                            agreeing += int(ours.argmax() == theirs.argmax())
                            largest = max(largest, float(np.abs(ours - theirs).max()))
                            sides.append(min(crop_at.shape[:2]))
    if not faces:
        raise click.UsageError("the detector found no face in the --media files")
    return faces, agreeing / faces, largest, (min(sides), max(sides))


@click.command()
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Any photo; its grey version is resized to each side first.")
@click.option("--sides", default="60,97,150,207,300,500,800", show_default=True, help="Crop sides in pixels.")
@click.option("--size", type=click.IntRange(min=1), default=48, show_default=True, help="Model input side.")
@click.option("--repeats", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--media", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A video or photo whose faces are classified both ways (repeatable).")
def main(image_path: Path, sides: str, size: int, repeats: int, media: tuple[Path, ...]) -> None:
    """Print, per crop side, both resizes' milliseconds and their difference."""
    image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise click.BadParameter(f"{image_path} is not an image OpenCV can read", param_hint="--image")
    try:
        side_list = [int(side) for side in sides.split(",")]
    except ValueError:
        raise click.BadParameter(f"sides must be whole numbers separated by commas; got {sides!r}",
                                 param_hint="--sides") from None
    target = (size, size)
    click.echo(f"{'side':>6}{'resize_to ms':>14}{'direct ms':>11}{'faster':>8}{'max diff':>10}{'mean diff':>11}")
    for side in side_list:
        crop = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        direct = cv2.resize(crop, target, interpolation=interpolation)
        difference = np.abs(resize_to(crop, target).astype(np.int16) - direct)
        ours = per_call_ms(lambda: resize_to(crop, target), repeats)
        theirs = per_call_ms(lambda: cv2.resize(crop, target, interpolation=interpolation), repeats)
        click.echo(f"{side:>6}{ours:>14.4f}{theirs:>11.4f}{theirs / ours:>7.2f}x"
                   f"{int(difference.max()):>10}{float(difference.mean()):>11.2f}")
    if media:
        faces, agreed, largest, (low, high) = agreement(list(media))
        click.echo(f"{faces} crops (each face as found and 2.5x larger, {low}-{high} pixels): top-1 agreement "
                   f"{100 * agreed:.2f}%, "
                   f"largest probability difference {largest:.3f}")


if __name__ == "__main__":
    main()
