from __future__ import annotations

import numpy as np
import pytest

from edge.crop import clip_box, crop_box, crop_face, expand_box, is_empty
from edge.model_spec import CropSpec


@pytest.mark.parametrize(
    ("box", "crop", "expected"),
    [
        ((10, 10, 30, 30), CropSpec(), (10.0, 10.0, 30.0, 30.0)),
        ((10, 10, 30, 30), CropSpec(scale=2.0), (0.0, 0.0, 40.0, 40.0)),
        # square: the larger side (height 40) sets both sides
        ((10, 0, 30, 40), CropSpec(scale=1.0), (0.0, 0.0, 40.0, 40.0)),
        # not square: each axis scaled on its own
        ((10, 0, 30, 40), CropSpec(scale=1.5, square=False), (5.0, -10.0, 35.0, 50.0)),
        # shift_y moves the centre down by a fraction of the box height
        ((0, 0, 20, 20), CropSpec(shift_y=0.25), (0.0, 5.0, 20.0, 25.0)),
        ((0, 0, 20, 20), CropSpec(shift_y=-0.5), (0.0, -10.0, 20.0, 10.0)),
    ],
)
def test_expand_box(box, crop, expected):
    assert expand_box(box, crop) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((10, 10, 30, 30), (100, 50), (10, 10, 30, 30)),
        ((-5.5, -3, 30.2, 60), (100, 50), (0, 0, 31, 50)),  # rounds outwards, clamps to the frame
        ((90, 40, 120, 70), (100, 50), (90, 40, 100, 50)),  # cut by the right and bottom edges
        ((-40, -40, -10, -10), (100, 50), (0, 0, 0, 0)),  # entirely outside: empty
        ((150, 10, 160, 20), (100, 50), (100, 10, 100, 20)),  # entirely right of the frame: empty
    ],
)
def test_clip_box(box, size, expected):
    clipped = clip_box(box, *size)
    assert clipped == expected
    assert all(isinstance(v, int) for v in clipped)


@pytest.mark.parametrize(
    ("box", "empty"), [((0, 0, 1, 1), False), ((5, 5, 5, 9), True), ((5, 5, 9, 5), True), ((9, 0, 5, 4), True)]
)
def test_is_empty(box, empty):
    assert is_empty(box) is empty


@pytest.mark.parametrize(
    ("box", "crop", "expected"),
    [
        ((40, 20, 60, 40), CropSpec(scale=1.0), (40, 20, 60, 40)),
        ((40, 20, 60, 40), CropSpec(scale=2.0), (30, 10, 70, 50)),
        # face at the top-left corner: the scaled crop is clamped, no padding
        ((0, 0, 20, 20), CropSpec(scale=2.0), (0, 0, 30, 30)),
        # face cut by the bottom-right corner of a 100x60 frame
        ((90, 50, 110, 70), CropSpec(scale=1.5), (85, 45, 100, 60)),
    ],
)
def test_crop_box(box, crop, expected):
    assert crop_box(box, crop, 100, 60) == expected


def test_crop_face_is_a_view_of_the_clamped_region():
    image = np.arange(60 * 100 * 3, dtype=np.uint8).reshape(60, 100, 3)
    crop = crop_face(image, (90, 50, 110, 70), CropSpec(scale=1.5))
    assert crop.shape == (15, 15, 3)
    assert np.shares_memory(crop, image)
    np.testing.assert_array_equal(crop, image[45:60, 85:100])


def test_crop_face_outside_the_frame_raises():
    image = np.zeros((60, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="outside the 100x60 frame"):
        crop_face(image, (200, 200, 220, 220), CropSpec())
