"""Decode and detect ahead on a worker thread: same results, same order, errors and early stops handled."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_testing import FakeClassifier, FakeDetector
from edge.overlap import Ahead, detected_ahead
from edge.pipeline import Pipeline
from edge.types import Frame

BOXES = {i: [(10 + i, 10, 40 + i, 44)] + ([(50, 5, 80, 40)] if i % 3 == 0 else []) for i in range(40)}


def _frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(count)
    return [Frame(rng.integers(0, 255, (64, 96, 3), np.uint8), i, 40 * i) for i in range(count)]


def _pipeline() -> Pipeline:
    return Pipeline(FakeDetector(BOXES), FakeClassifier())


def test_overlap_gives_the_sequential_results_in_order():
    frames = _frames(40)
    sequential = list(_pipeline().run(frames))
    overlapped = _pipeline().frames_and_results(frames, overlap=True)
    pairs = list(overlapped)
    assert [frame.index for frame, _ in pairs] == list(range(40))
    assert [result for _, result in pairs] == sequential


def test_overlap_detects_on_another_thread_and_times_decode():
    seen: list[str] = []

    class RecordingDetector(FakeDetector):
        def detect(self, frame):
            seen.append(threading.current_thread().name)
            return super().detect(frame)

    pipeline = Pipeline(RecordingDetector(BOXES), FakeClassifier())
    pipeline.timings = {}
    for _ in pipeline.run(_frames(3), overlap=True):
        assert {"decode", "detect", "preprocess", "classify", "track", "started"} <= set(pipeline.timings)
        assert pipeline.timings["started"] <= time.perf_counter()
    assert set(seen) == {"ers-detect-ahead"}


def test_a_worker_error_is_raised_in_the_caller_after_the_frames_before_it():
    def frames():
        yield from _frames(3)
        raise OSError("the camera went away")

    results = []
    with pytest.raises(OSError, match="went away"):
        for result in _pipeline().run(frames(), overlap=True):
            results.append(result)
    assert [result.frame_index for result in results] == [0, 1, 2]


def test_stopping_early_stops_the_worker():
    produced = []

    def endless():
        index = 0
        while True:
            produced.append(index)
            yield Frame(np.zeros((64, 96, 3), np.uint8), index, index)
            index += 1

    before = {thread.name for thread in threading.enumerate()}
    results = _pipeline().run(endless(), overlap=True)
    for result in results:
        if result.frame_index == 5:
            break
    results.close()
    assert "ers-detect-ahead" not in {thread.name for thread in threading.enumerate()} - before
    assert len(produced) <= 5 + 1 + 3  # the worker is at most a couple of frames ahead


def test_ahead_stops_when_its_stop_event_is_set_from_outside():
    stop = threading.Event()
    ahead = Ahead(iter(range(1000)), 1, "test-ahead", stop=stop)
    assert next(ahead) == 0
    stop.set()
    assert list(ahead) in ([], [1], [1, 2])  # what was already handed over, then the end
    assert not ahead.thread.is_alive()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        list(detected_ahead([], lambda frame: [], depth=0))
