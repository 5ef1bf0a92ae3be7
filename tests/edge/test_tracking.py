from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.tracking import (
    FaceTracker,
    ScoreSmoother,
    SmoothingMethod,
    SmoothingOptions,
    TrackingOptions,
    iou_matrix,
)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # empty boxes: no division by zero
    ],
)
def test_iou_matrix_pairs(a, b, expected):
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_iou_matrix_shapes_including_empty():
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert iou_matrix(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)


def test_tracker_keeps_ids_for_moving_faces():
    tracker = FaceTracker()
    first = tracker.update([(0, 0, 20, 20), (100, 0, 120, 20)])
    assert first == [1, 2]
    # listed in the other order and moved a little: same identities
    assert tracker.update([(102, 1, 122, 21), (2, 1, 22, 21)]) == [2, 1]


def test_tracker_gives_new_ids_to_new_faces_and_never_reuses_them():
    tracker = FaceTracker(TrackingOptions(max_missed=0))
    assert tracker.update([(0, 0, 20, 20)]) == [1]
    assert tracker.update([(200, 200, 220, 220)]) == [2]  # no overlap: a new face
    assert tracker.update([]) == []
    tracker.reset()
    assert tracker.active_ids == ()
    assert tracker.update([(0, 0, 20, 20)]) == [3]


def test_tracker_remembers_a_face_for_max_missed_frames():
    tracker = FaceTracker(TrackingOptions(max_missed=2))
    tracker.update([(0, 0, 20, 20)])
    tracker.update([])
    tracker.update([])
    assert tracker.active_ids == (1,)
    assert tracker.update([(1, 1, 21, 21)]) == [1]  # back after two missed frames
    tracker.update([])
    tracker.update([])
    tracker.update([])
    assert tracker.active_ids == ()
    assert tracker.update([(1, 1, 21, 21)]) == [2]


def test_tracker_matches_each_track_at_most_once():
    tracker = FaceTracker()
    tracker.update([(0, 0, 20, 20)])
    ids = tracker.update([(0, 0, 20, 20), (1, 1, 21, 21)])
    assert sorted(ids) == [1, 2]
    assert ids[0] == 1  # the better match keeps the identity


def test_tracker_matches_crowds_as_greedy_matching_on_the_iou_matrix_does():
    """Many faces, some overlapping, moving at random: the same ids as the plain greedy matcher."""
    rng = np.random.default_rng(3)
    for threshold in (0.05, 0.3, 0.7):
        tracker = FaceTracker(TrackingOptions(iou_threshold=threshold, max_missed=0))
        track_ids: list[int] = []
        track_boxes = np.zeros((0, 4))
        next_id = 1
        for _ in range(200):
            count = int(rng.integers(0, 9))
            corners = rng.integers(0, 120, (count, 2))
            boxes = np.concatenate([corners, corners + rng.integers(1, 40, (count, 2))], axis=1)
            overlaps = iou_matrix(track_boxes, boxes)
            pairs = sorted(((overlaps[t, b], t * count + b) for t in range(len(track_ids)) for b in range(count)
                            if overlaps[t, b] >= threshold), reverse=True)
            expected, taken = [0] * count, set()
            for _, flat in pairs:
                track, box = divmod(flat, count)
                if track not in taken and not expected[box]:
                    taken.add(track)
                    expected[box] = track_ids[track]
            for box in range(count):
                if not expected[box]:
                    expected[box], next_id = next_id, next_id + 1
            assert tracker.update([tuple(int(v) for v in box) for box in boxes]) == expected
            track_ids, track_boxes = expected, boxes


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"iou_threshold": 1.5}, "iou_threshold"),
        ({"max_missed": -1}, "max_missed"),
    ],
)
def test_tracking_options_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        TrackingOptions(**kwargs)


def test_ema_smoothing_matches_the_formula():
    smoother = ScoreSmoother(SmoothingOptions(alpha=0.25))
    first = np.array([[1.0, 0.0]], np.float32)
    second = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_allclose(smoother.update([7], first), first)
    np.testing.assert_allclose(smoother.update([7], second), [[0.75, 0.25]])
    np.testing.assert_allclose(smoother.update([7], second), [[0.5625, 0.4375]])


def test_smoothing_keeps_tracks_apart_and_does_not_alias_inputs():
    smoother = ScoreSmoother(SmoothingOptions(alpha=0.5))
    probs = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    smoother.update([1, 2], probs)
    probs[:] = 0.5  # the caller reuses its buffer
    np.testing.assert_allclose(smoother.update([2, 1], np.array([[0.0, 1.0], [1.0, 0.0]])), [[0, 1], [1, 0]])


def test_alpha_one_means_no_smoothing():
    smoother = ScoreSmoother(SmoothingOptions(alpha=1.0))
    smoother.update([1], np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(smoother.update([1], np.array([[0.2, 0.8]])), [[0.2, 0.8]])


def test_window_smoothing_averages_the_last_frames():
    smoother = ScoreSmoother(SmoothingOptions(method="window", window=2))
    assert smoother.options.method is SmoothingMethod.WINDOW
    smoother.update([1], np.array([[1.0, 0.0]]))
    smoother.update([1], np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(smoother.update([1], np.array([[0.0, 1.0]])), [[0.0, 1.0]])


def test_retain_and_reset_forget_tracks():
    smoother = ScoreSmoother(SmoothingOptions(alpha=0.5))
    smoother.update([1, 2], np.array([[1.0, 0.0], [1.0, 0.0]]))
    smoother.retain([2])
    # track 1 starts afresh, track 2 is smoothed
    out = smoother.update([1, 2], np.array([[0.0, 1.0], [0.0, 1.0]]))
    np.testing.assert_allclose(out, [[0.0, 1.0], [0.5, 0.5]])
    smoother.reset()
    np.testing.assert_allclose(smoother.update([2], np.array([[0.0, 1.0]])), [[0.0, 1.0]])


def test_smoother_rejects_mismatched_ids():
    with pytest.raises(ValueError, match="2 track ids for 1"):
        ScoreSmoother().update([1, 2], np.zeros((1, 3)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"alpha": 0.0}, "alpha"), ({"alpha": 1.2}, "alpha"), ({"window": 0}, "window"), ({"method": "median"}, "method")],
)
def test_smoothing_options_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SmoothingOptions(**kwargs)
