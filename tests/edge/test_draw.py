from __future__ import annotations

import numpy as np
import pytest

from edge.draw import annotate, track_colour
from edge_testing import LABELS
from edge.types import FaceResult, FrameResult


def _result(box=(20, 20, 60, 60), track_id=3) -> FrameResult:
    probs = tuple(np.linspace(0.05, 0.3, len(LABELS)) / np.linspace(0.05, 0.3, len(LABELS)).sum())
    face = FaceResult(
        track_id=track_id,
        box_xyxy=box,
        detection_score=0.9,
        raw_probs=probs,
        smoothed_probs=probs,
        label=LABELS[-1],
        confidence=max(probs),
    )
    return FrameResult(0, 0, (face,), LABELS)


@pytest.mark.parametrize("bgr", [False, True])
@pytest.mark.parametrize("box", [(20, 20, 60, 60), (0, 0, 40, 40), (280, 200, 320, 240), (150, 100, 320, 240)])
def test_annotate_draws_on_a_copy_and_never_on_its_input(bgr, box):
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    before = image.copy()
    out = annotate(image, _result(box), fps=30.0, bgr=bgr)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, image)
    assert (out != (image[..., ::-1] if bgr else image)).any()


def test_box_colour_follows_the_track_and_bgr_swaps_channels():
    image = np.zeros((120, 160, 3), np.uint8)
    rgb = annotate(image, _result((40, 40, 80, 80), track_id=1), bars=False)
    bgr = annotate(image, _result((40, 40, 80, 80), track_id=1), bars=False, bgr=True)
    assert tuple(rgb[60, 40]) == track_colour(1)
    assert tuple(bgr[60, 40]) == track_colour(1)[::-1]


def test_empty_result_gives_an_identical_copy():
    image = np.full((50, 60, 3), 7, np.uint8)
    out = annotate(image, FrameResult(0, 0, (), LABELS))
    np.testing.assert_array_equal(out, image)
    assert out is not image
