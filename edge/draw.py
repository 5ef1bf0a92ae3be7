"""Annotated copies of frames: boxes, label and confidence, per-class bars, FPS.

``annotate`` never draws into its input; it returns a new image, RGB by
default or BGR (``bgr=True``) for OpenCV writers and windows, so the colour
conversion and the copy are one operation.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.types import FaceResult, FrameResult

# Distinct colours (RGB) cycled by track id.
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The RGB colour used for a track."""
    return _PALETTE[track_id % len(_PALETTE)]


def _colour(rgb: tuple[int, int, int], bgr: bool) -> tuple[int, int, int]:
    return (rgb[2], rgb[1], rgb[0]) if bgr else rgb


def _text_with_background(
    image: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int]
) -> None:
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = origin
    y = max(y, height + baseline)
    cv2.rectangle(image, (x, y - height - baseline), (x + width + 4, y + 2), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y - baseline + 1), _FONT, scale, _BLACK, 1, cv2.LINE_AA)


def _draw_bars(
    image: np.ndarray, face: FaceResult, labels: tuple[str, ...], scale: float, colour: tuple[int, int, int]
) -> None:
    """Per-class smoothed probabilities as horizontal bars beside the face box."""
    height, width = image.shape[:2]
    row = max(int(22 * scale), 9)
    name_width = int(70 * scale) + 4
    bar_width = int(90 * scale)
    panel_width = name_width + bar_width + 6
    x1, y1, x2, _ = face.box_xyxy
    x = x2 + 4 if x2 + 4 + panel_width <= width else max(x1 - 4 - panel_width, 0)
    y = min(max(y1, 0), max(height - row * len(labels), 0))
    for index, (name, prob) in enumerate(zip(labels, face.smoothed_probs)):
        top = y + index * row
        cv2.rectangle(image, (x, top), (x + panel_width, top + row - 1), _BLACK, cv2.FILLED)
        cv2.putText(image, name[:9], (x + 2, top + row - 3), _FONT, 0.45 * scale, _WHITE, 1, cv2.LINE_AA)
        filled = int(round(bar_width * min(max(prob, 0.0), 1.0)))
        if filled:
            cv2.rectangle(
                image, (x + name_width, top + 2), (x + name_width + filled, top + row - 3), colour, cv2.FILLED
            )


def annotate(
    image_rgb: np.ndarray,
    result: FrameResult,
    *,
    fps: float | None = None,
    bars: bool = True,
    bgr: bool = False,
) -> np.ndarray:
    """A new image with every face of ``result`` drawn on a copy of ``image_rgb``.

    Each face gets its box in its track's colour, ``label confidence #id``
    above it, and (``bars``) its smoothed per-class probabilities beside it;
    ``fps`` adds a frame-rate line in the top-left corner.
    """
    canvas = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR) if bgr else image_rgb.copy()
    scale = min(max(image_rgb.shape[0] / 720.0, 0.6), 2.0)
    thickness = max(int(round(2 * scale)), 1)
    for face in result.faces:
        colour = _colour(track_colour(face.track_id), bgr)
        x1, y1, x2, y2 = face.box_xyxy
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), colour, thickness)
        caption = f"{face.label} {face.confidence:.2f} #{face.track_id}"
        _text_with_background(canvas, caption, (x1, y1 - 2), 0.6 * scale, colour)
        if bars and result.labels:
            _draw_bars(canvas, face, result.labels, scale, colour)
    if fps is not None:
        _text_with_background(canvas, f"FPS {fps:.1f}", (4, 4), 0.6 * scale, _WHITE)
    return canvas
