"""Workers kept to cores: which cores, the pinning itself, and the overlapped workers that use it."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import edge.cores as cores_module
from edge_testing import FakeClassifier, FakeDetector
from edge.cores import pinned, worker_cores
from edge.overlap import DeliveringWorkers, processed_ahead
from edge.pipeline import Pipeline
from edge.types import Frame

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no thread affinity on this OS")


def _frames(count: int) -> list[Frame]:
    return [Frame(np.zeros((8, 8, 3), np.uint8), index, 40 * index) for index in range(count)]


@pytest.mark.parametrize(("allowed", "workers", "detector_threads", "expected"), [
    ({0, 1}, 2, False, (0, 1)),
    ({2, 5}, 3, False, (2, 5, 2)),  # more workers than cores: they share them in turn
    ({0, 1, 2, 3}, 2, False, None),  # a core to spare: left free
    ({0, 1}, 1, False, None),  # one worker: nothing to keep apart
    ({0, 1}, 1, True, (0,)),  # one worker beside mediapipe's own threads fills 2 cores
    ({0, 1, 2}, 2, True, (0, 1)),
    ({0, 1, 2, 3}, 2, True, None),
    ({0}, 1, False, None),
])
def test_workers_are_pinned_only_when_they_occupy_every_core(monkeypatch, allowed, workers, detector_threads,
                                                             expected):
    monkeypatch.setattr(cores_module.os, "sched_setaffinity", lambda pid, cores: None, raising=False)
    monkeypatch.setattr(cores_module.os, "sched_getaffinity", lambda pid: set(allowed), raising=False)
    assert worker_cores(workers, detector_threads=detector_threads) == expected


def test_nothing_is_pinned_without_thread_affinity(monkeypatch):
    monkeypatch.delattr(cores_module.os, "sched_setaffinity", raising=False)
    assert worker_cores(2) is None
    with pinned(0):
        pass


@needs_affinity
def test_pinned_keeps_the_thread_and_the_threads_it_starts_on_one_core_then_restores():
    before = os.sched_getaffinity(0)
    core = max(before)
    started = []
    with pinned(core):
        assert os.sched_getaffinity(0) == {core}
        thread = threading.Thread(target=lambda: started.append(os.sched_getaffinity(0)))
        thread.start()
        thread.join()
    assert started == [{core}] and os.sched_getaffinity(0) == before
    with pinned(None):
        assert os.sched_getaffinity(0) == before


@needs_affinity
@pytest.mark.parametrize("delivering", [True, False])
def test_overlapped_workers_work_on_their_cores_and_the_caller_gets_its_cores_back(delivering):
    before = os.sched_getaffinity(0)
    core = max(before)
    seen = []

    def work(frame):
        seen.append(os.sched_getaffinity(0))
        return frame.index

    if delivering:
        DeliveringWorkers(_frames(12), [work, work], lambda item: None, in_caller=True, cores=[core, core]).run()
    else:
        assert [item.value for item in processed_ahead(_frames(12), [work, work], cores=[core, core])] == list(range(12))
    assert seen == [{core}] * 12
    assert os.sched_getaffinity(0) == before


class _AffinityDetector(FakeDetector):
    """Notes the cores the calling thread may run on at each frame."""

    def __init__(self) -> None:
        super().__init__({})
        self.seen: list[set[int]] = []

    def detect(self, frame):
        self.seen.append(os.sched_getaffinity(0))
        return super().detect(frame)


@needs_affinity
@pytest.mark.parametrize("overlap", [False, True])
def test_one_pinned_worker_detects_on_its_core_sequentially_or_on_its_thread(overlap):
    before = os.sched_getaffinity(0)
    core = max(before)
    detector = _AffinityDetector()
    list(Pipeline(detector, FakeClassifier(), cores=[core]).run(_frames(4), overlap=overlap))
    assert detector.seen == [{core}] * 4 and os.sched_getaffinity(0) == before


def test_cores_must_match_the_workers():
    with pytest.raises(ValueError, match="2 cores for 3 work functions"):
        DeliveringWorkers(_frames(1), [len] * 3, lambda item: None, cores=[0, 1])
    with pytest.raises(ValueError, match="1 cores for 2 workers"):
        Pipeline(FakeDetector({}), FakeClassifier(), extra_workers=[(FakeDetector({}), FakeClassifier())], cores=[0])
