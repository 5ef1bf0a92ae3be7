"""Pure functions that turn a detector box into the face crop the model expects.

The manifest's ``CropSpec`` says how the training crops were framed: the crop
is centred on the box centre moved down by ``shift_y`` box heights, and its
side is ``scale`` times the box's larger side (a square when ``square``, else
the box scaled on each axis).

Frame edges: the crop is **clamped** to the frame (never padded), as
``CropSpec`` documents. A face cut by the frame edge therefore gives a crop
that is narrower or shorter than the ideal square, and the classifier's resize
stretches it slightly; this keeps every pixel real (no replicated borders the
model never saw in training) and costs no copy, because the crop is a view of
the frame.
"""

from __future__ import annotations

import math

import numpy as np

from edge.model_spec import CropSpec
from edge.types import BoxXyxy

FloatBox = tuple[float, float, float, float]


def expand_box(box_xyxy: BoxXyxy | FloatBox, crop: CropSpec) -> FloatBox:
    """The crop region (float xyxy, possibly outside the frame) for a detector box."""
    x1, y1, x2, y2 = box_xyxy
    width, height = x2 - x1, y2 - y1
    centre_x = (x1 + x2) / 2.0
    centre_y = (y1 + y2) / 2.0 + crop.shift_y * height
    if crop.square:
        half_width = half_height = crop.scale * max(width, height) / 2.0
    else:
        half_width, half_height = crop.scale * width / 2.0, crop.scale * height / 2.0
    return (centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height)


def clip_box(box_xyxy: BoxXyxy | FloatBox, width: int, height: int) -> BoxXyxy:
    """Round a box outwards to whole pixels and clamp it to a ``width`` x ``height`` frame.

    A box entirely outside the frame comes back empty (``x2 <= x1`` or
    ``y2 <= y1``); see ``is_empty``.
    """
    x1, y1, x2, y2 = box_xyxy
    return (
        min(max(math.floor(x1), 0), width),
        min(max(math.floor(y1), 0), height),
        max(min(math.ceil(x2), width), 0),
        max(min(math.ceil(y2), height), 0),
    )


def is_empty(box_xyxy: BoxXyxy) -> bool:
    """True when a box has no pixel."""
    return box_xyxy[2] <= box_xyxy[0] or box_xyxy[3] <= box_xyxy[1]


def crop_box(box_xyxy: BoxXyxy, crop: CropSpec, width: int, height: int) -> BoxXyxy:
    """The clamped pixel box of the face crop inside a ``width`` x ``height`` frame."""
    return clip_box(expand_box(box_xyxy, crop), width, height)


def crop_face(image: np.ndarray, box_xyxy: BoxXyxy, crop: CropSpec) -> np.ndarray:
    """The face crop of ``image`` (HxWxC) for a detector box: a view, not a copy.

    Raises ``ValueError`` when the crop falls entirely outside the image.
    """
    height, width = image.shape[:2]
    x1, y1, x2, y2 = crop_box(box_xyxy, crop, width, height)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(
            f"face box {tuple(box_xyxy)} lies outside the {width}x{height} frame; nothing to crop"
        )
    return image[y1:y2, x1:x2]
