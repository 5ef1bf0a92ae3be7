"""The litert engine: BlazeFace on LiteRT gives the mediapipe task's boxes without mediapipe."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from edge.blazeface import SCORE_CLIP, BlazeFace, _logit_floor, anchor_centres, trimmed_window, weighted_nms
from edge.detector import DetectorModelName, FaceDetector, FaceDetectorOptions
from edge.errors import ManifestError
from edge.types import Frame


def test_anchor_layouts_match_the_models_outputs():
    short = anchor_centres(128)
    assert short.shape == (896, 2)
    # 16x16 cells of stride 8, two anchors each, then 8x8 cells of stride 16, six anchors each
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], (0.5 / 16, 0.5 / 16))
    np.testing.assert_allclose(short[2], (1.5 / 16, 0.5 / 16))
    np.testing.assert_allclose(short[512], (0.5 / 8, 0.5 / 8))
    np.testing.assert_allclose(short[512 + 6], (1.5 / 8, 0.5 / 8))
    np.testing.assert_allclose(short[-1], (7.5 / 8, 7.5 / 8))
    full = anchor_centres(192)
    assert full.shape == (2304, 2)
    np.testing.assert_allclose(full[48], (0.5 / 48, 1.5 / 48))
    with pytest.raises(ManifestError, match="160x160"):
        anchor_centres(160)


@pytest.mark.parametrize(
    ("size", "frame", "window"),
    [
        ((640, 360), 128, (0, 16, 128, 96)),  # 16:9: the frame fills rows 28-100 of 128, rounded out to 16-pixel cells
        ((1280, 720), 128, (0, 16, 128, 96)),
        ((640, 480), 128, (0, 16, 128, 96)),  # 4:3: rows 16-112, already whole cells
        ((360, 640), 128, (16, 0, 96, 128)),  # portrait: columns
        ((2560, 1080), 128, (0, 32, 128, 64)),
        ((572, 562), 128, (0, 0, 128, 128)),  # nearly square: every row holds some of the frame
        ((300, 300), 128, (0, 0, 128, 128)),
        ((640, 360), 192, (0, 0, 192, 192)),  # the full-range model takes only its square input
    ],
)
def test_trimmed_window_keeps_the_rows_that_hold_the_frame(size, frame, window):
    assert trimmed_window(frame, *size) == window


@pytest.mark.parametrize("window", [(0, 16, 128, 96), (16, 0, 96, 128), (0, 32, 128, 64)])
def test_a_windows_anchors_are_the_squares_anchors_inside_it_in_output_order(window):
    left, top, width, height = window
    square = anchor_centres(128) * 128
    x, y = square[:, 0], square[:, 1]
    inside = (x > left) & (x < left + width) & (y > top) & (y < top + height)
    np.testing.assert_allclose(anchor_centres(128, window) * 128, square[inside])


def test_weighted_nms_merges_each_cluster_into_its_score_weighted_box():
    candidates = [
        (0.9, 0.10, 0.10, 0.30, 0.30),  # a face, two boxes
        (0.8, 0.60, 0.60, 0.80, 0.80),  # a second face, alone
        (0.6, 0.12, 0.12, 0.32, 0.32),
        (0.75, 0.20, 0.20, 0.40, 0.40),  # IoU 0.14 with the best: a face of its own at threshold 0.3
    ]
    merged = weighted_nms(candidates, 0.3)
    assert [score for score, *_ in merged] == [0.9, 0.8, 0.75]
    first, second = np.array(candidates[0][1:]), np.array(candidates[2][1:])
    np.testing.assert_allclose(merged[0][1:], (0.9 * first + 0.6 * second) / 1.5, rtol=1e-12)
    np.testing.assert_allclose(merged[1:], [candidates[1], candidates[3]], rtol=1e-12)
    assert len(weighted_nms(candidates, 0.1)) == 2  # a looser threshold takes the third box in
    assert weighted_nms([(0.8, 0.0, 0.0, 0.0, 0.0)], 0.3) == [(0.8, 0.0, 0.0, 0.0, 0.0)]  # degenerate: alone
    tied = [(0.5, 0.0, 0.0, 0.1, 0.1), (0.5, 0.5, 0.5, 0.6, 0.6)]
    np.testing.assert_allclose(weighted_nms(tied, 0.3), tied, rtol=1e-12)  # equal scores keep their order
    unscored = weighted_nms([(0.0, 0.0, 0.0, 0.2, 0.2), (0.0, 0.0, 0.0, 0.4, 0.4)], 0.2)
    np.testing.assert_allclose(unscored, [(0.0, 0.0, 0.0, 0.3, 0.3)], rtol=1e-12)  # no weight: the plain mean
    assert weighted_nms([], 0.3) == []


def _one_pass_per_cluster(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list:
    """The suppression written with arrays: each cluster compares the best box left with the rest."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    merged, remaining = [], np.arange(len(scores))
    while remaining.size:
        top, rest = boxes[remaining[0]], boxes[remaining]
        width = np.minimum(rest[:, 2], top[2]) - np.maximum(rest[:, 0], top[0])
        height = np.minimum(rest[:, 3], top[3]) - np.maximum(rest[:, 1], top[1])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        union = areas[remaining] + areas[remaining[0]] - inter
        cluster = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0) > threshold
        cluster[0] = True
        weights = scores[remaining[cluster]]
        box = (rest[cluster] * weights[:, None]).sum(axis=0) / weights.sum() if weights.sum() > 0 else \
            rest[cluster].mean(axis=0)
        merged.append((float(scores[remaining[0]]), *box.tolist()))
        remaining = remaining[~cluster]
    return merged


def test_weighted_nms_gives_what_the_suppression_with_arrays_gives():
    """Random boxes, with duplicates, tied scores and degenerate boxes: the same clusters, in the
    same order, and the same boxes but for the order of a sum (numpy adds 8 or more in pairs)."""
    rng = np.random.default_rng(7)
    for trial in range(2000):
        count = int(rng.integers(1, 30))
        centres = rng.random((count, 2))
        sizes = rng.random((count, 2)) * 0.3
        if trial % 4 == 0:  # duplicate boxes and tied scores
            centres, sizes = np.round(centres * 4) / 4, np.round(sizes * 8) / 8
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        if trial % 7 == 0:
            boxes[:2] = 0.0  # degenerate boxes
        scores = rng.random(count)
        if trial % 3 == 0:
            scores = np.round(scores * 4) / 4
        threshold = float(rng.choice([0.0, 0.1, 0.3, 0.5, 1.0]))
        expected = _one_pass_per_cluster(boxes, scores, threshold)
        merged = weighted_nms([(score, *box) for score, box in zip(scores.tolist(), boxes.tolist())], threshold)
        assert [score for score, *_ in merged] == [score for score, *_ in expected]
        np.testing.assert_allclose([box for _, *box in merged], [box for _, *box in expected], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("min_score", [0.0, 1e-7, 0.3, 0.5, 0.7, 0.999999, 1.0])
def test_the_logit_floor_lets_through_every_score_that_reaches_min_score(min_score):
    """Only raw scores above the floor get the sigmoid: none that reaches min_score in float32 may be
    below it, near the threshold or far (min_score 1 passes the scores that round to 1)."""
    floor = _logit_floor(min_score)
    inside = min(max(min_score, 1e-30), 1 - 1e-7)  # a probability with a finite logit
    centre = np.float32(np.log(inside / (1 - inside)))
    logits = np.concatenate([
        np.linspace(-120, 120, 200_001, dtype=np.float32),
        centre + np.arange(-5000, 5001, dtype=np.float32) * np.spacing(np.abs(centre) + np.float32(1e-3)),
    ]).astype(np.float32)
    with np.errstate(over="ignore"):
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -SCORE_CLIP, SCORE_CLIP)))
    passing = scores >= np.float32(min_score)
    assert passing.any() or min_score == 1.0 and not (scores >= 1.0).any()
    assert (logits[passing] >= floor).all()
    if min_score > 1e-6:  # and it lies just below the threshold: it lets through few scores that fail
        assert 1.0 / (1.0 + np.exp(-floor)) > min(min_score, 1.0 - 1e-6) - 2e-6


def test_the_letterbox_puts_pixels_in_the_models_range_as_the_task_does():
    """The model's input is p * (2 / 255) - 1 in float32 for each warped pixel p, the border -1."""
    from edge.detector import load_detector_model

    blazeface = BlazeFace(load_detector_model(FaceDetectorOptions(model="short")), min_score=0.5,
                          suppression_threshold=0.3)
    frame = np.random.default_rng(3).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    blazeface._letterbox(frame)
    expected = blazeface._warped.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    tensor = blazeface._input_view()[0]
    np.testing.assert_array_equal(tensor, expected)
    assert tensor[0, 0].tolist() == [-1.0, -1.0, -1.0] and tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_a_model_without_blazeface_outputs_is_refused(tiny_model_dir):
    model = next(tiny_model_dir.glob("*.tflite")).read_bytes()
    with pytest.raises(ManifestError, match="not a BlazeFace model"):
        BlazeFace(model, min_score=0.5, suppression_threshold=0.3)
    with pytest.raises(ManifestError, match="cannot load"):
        BlazeFace(b"not a model", min_score=0.5, suppression_threshold=0.3)


def _frames(media, count: int = 40) -> list[np.ndarray]:
    import cv2

    frames = []
    for name in ("single_face.mp4", "WolfgangLanger_Pexels.mp4"):
        capture = cv2.VideoCapture(str(media / name))
        for _ in range(count // 2):
            ok, image = capture.read()
            if ok:
                frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        capture.release()
    for name in ("single_face.jpg", "multi_face.jpg"):
        frames.append(cv2.cvtColor(cv2.imread(str(media / name)), cv2.COLOR_BGR2RGB))
    return frames


@pytest.mark.parametrize(("model", "tolerance_px", "score_tolerance"), [("short", 1, 1e-3), ("full", 6, 0.02)])
def test_litert_engine_gives_the_mediapipe_tasks_boxes_on_real_faces(media, model, tolerance_px, score_tolerance):
    """Landscape and portrait frames (the letterbox pads the other axis), one face and five.

    With the short-range model the boxes and scores of the clips' frames are the very same;
    in photos and portrait frames a score may move in the fourth decimal (mediapipe warps
    with a perspective matrix, which OpenCV rounds differently). The full-range
    model's sparse network runs on other kernels inside mediapipe: scores differ in the third
    decimal and a box may move by a few pixels.
    """
    frames = _frames(media)
    frames += [np.ascontiguousarray(np.rot90(image)) for image in frames[::8]]
    found = exact = 0
    options = FaceDetectorOptions(model=model, running_mode="image")
    with FaceDetector(options) as task, FaceDetector(replace(options, engine="litert")) as litert:
        for index, image in enumerate(frames):
            frame = Frame(image, index, index)
            expected, got = task.detect(frame), litert.detect(frame)
            assert len(got) == len(expected), f"frame {index}"
            for want, have in zip(expected, got):
                assert max(abs(a - b) for a, b in zip(want.box_xyxy, have.box_xyxy)) <= tolerance_px, f"frame {index}"
                assert have.score == pytest.approx(want.score, abs=score_tolerance), f"frame {index}"
                exact += want == have
            found += len(got)
    assert found >= 40  # both found faces: one in each of the 40 frames of the clips at least
    if model == "short":
        assert exact >= len(frames) - 10  # all but the photos and the portraits


def test_trimmed_letterbox_finds_the_same_faces_a_few_pixels_apart(media):
    """The short-range model on the rows (or columns) that hold the frame: 96 of 128 for all these
    frames but the nearly square photo and its rotation. The network pads the cut edges with
    zeros where the square input had its -1 border, so boxes move by up to 4% of their side
    (2 pixels in the landscape clips) and scores by at most 0.02; one detector follows frames
    of every shape."""
    frames = _frames(media)
    frames += [np.ascontiguousarray(np.rot90(image)) for image in frames[::8]]
    options = FaceDetectorOptions(model="short", running_mode="image", engine="litert")
    found = 0
    with FaceDetector(options) as square, FaceDetector(replace(options, trim_letterbox=True)) as trimmed:
        assert trimmed.trims_letterbox and not square.trims_letterbox
        for index, image in enumerate(frames):
            frame = Frame(image, index, index)
            expected, got = square.detect(frame), trimmed.detect(frame)
            height, width = image.shape[:2]
            assert trimmed._blazeface._window == trimmed_window(128, width, height)
            assert len(got) == len(expected), f"frame {index}"
            for want, have in zip(expected, got):
                side = want.box_xyxy[2] - want.box_xyxy[0]
                moved = max(abs(a - b) for a, b in zip(want.box_xyxy, have.box_xyxy))
                assert moved <= (2 if width == 640 else 0.04 * side), f"frame {index}"
                assert have.score == pytest.approx(want.score, abs=0.02), f"frame {index}"
            found += len(got)
    assert found >= 40


def test_the_full_range_model_is_not_trimmed():
    options = FaceDetectorOptions(model="full", running_mode="image", engine="litert", trim_letterbox=True)
    with FaceDetector(options) as detector:
        assert not detector.trims_letterbox
        assert detector.detect(Frame(np.zeros((360, 640, 3), np.uint8), 0, 0)) == []
        assert detector._blazeface._window == (0, 0, 192, 192)


def test_litert_engine_runs_without_importing_mediapipe():
    code = (
        "import sys, numpy as np\n"
        "from edge.detector import FaceDetector, FaceDetectorOptions\n"
        "from edge.types import Frame\n"
        "with FaceDetector(FaceDetectorOptions(engine='litert')) as detector:\n"
        "    assert detector.detect(Frame(np.zeros((90, 160, 3), np.uint8), 0, 0)) == []\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('mediapipe', 'tensorflow')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_litert_engine_reports_the_shipped_model_it_runs():
    with FaceDetector(FaceDetectorOptions(model="full", engine="litert")) as detector:
        assert detector.model is DetectorModelName.FULL
        assert detector._blazeface.input_size == 192
