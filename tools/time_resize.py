"""Time the classifier's face resize (``edge.classifier.resize_to``) against OpenCV's direct area resize.

For square grey crops of several sides (an image resized to each), prints
milliseconds per resize to the model's 48x48 input both ways and how far
the two results lie apart in grey levels: the figures in ``resize_to``'s
docstring.

    python tools/time_resize.py --image .cache/media/single_face.jpg
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import cv2
import numpy as np

from edge.classifier import resize_to


def per_call_ms(function, repeats: int) -> float:
    """Mean milliseconds of ``function()`` over ``repeats`` calls, after a warm-up."""
    for _ in range(max(repeats // 10, 1)):
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return 1000.0 * (time.perf_counter() - start) / repeats


@click.command()
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Any photo; its grey version is resized to each side first.")
@click.option("--sides", default="60,97,150,207,300,500,800", show_default=True, help="Crop sides in pixels.")
@click.option("--size", type=click.IntRange(min=1), default=48, show_default=True, help="Model input side.")
@click.option("--repeats", type=click.IntRange(min=1), default=3000, show_default=True)
def main(image_path: Path, sides: str, size: int, repeats: int) -> None:
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
    click.echo(f"{'side':>6}{'resize_to ms':>14}{'area ms':>10}{'faster':>8}{'max diff':>10}{'mean diff':>11}")
    for side in side_list:
        crop = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        direct = cv2.resize(crop, target, interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        difference = np.abs(resize_to(crop, target).astype(np.int16) - direct)
        ours = per_call_ms(lambda: resize_to(crop, target), repeats)
        theirs = per_call_ms(lambda: cv2.resize(crop, target, interpolation=cv2.INTER_AREA), repeats)
        click.echo(f"{side:>6}{ours:>14.4f}{theirs:>10.4f}{theirs / ours:>7.2f}x"
                   f"{int(difference.max()):>10}{float(difference.mean()):>11.2f}")


if __name__ == "__main__":
    main()
