"""Decode, detect and classify ahead on worker threads: same results, same order, errors and early stops handled."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_testing import FakeClassifier, FakeDetector
from edge.overlap import Ahead, DeliveringWorkers, OrderedWorkers, finish, processed_ahead
from edge.pipeline import Pipeline
from edge.types import Frame

BOXES = {i: [(10 + i, 10, 40 + i, 44)] + ([(50, 5, 80, 40)] if i % 3 == 0 else []) for i in range(40)}


def _frames(count: int) -> list[Frame]:
    rng = np.random.default_rng(count)
    return [Frame(rng.integers(0, 255, (64, 96, 3), np.uint8), i, 40 * i) for i in range(count)]


def _pipeline(workers: int = 1) -> Pipeline:
    return Pipeline(FakeDetector(BOXES), FakeClassifier(),
                    extra_workers=[(FakeDetector(BOXES), FakeClassifier()) for _ in range(workers - 1)])


class RecordingDetector(FakeDetector):
    """Notes the thread and frame of every call, and can be slowed down."""

    def __init__(self, boxes, delay_s: float = 0.0) -> None:
        super().__init__(boxes)
        self.delay_s = delay_s
        self.seen: list[tuple[str, int]] = []

    def detect(self, frame):
        self.seen.append((threading.current_thread().name, frame.timestamp_ms))
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().detect(frame)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_overlap_gives_the_sequential_results_in_order(workers):
    frames = _frames(40)
    sequential = list(_pipeline().run(frames))
    overlapped = _pipeline(workers).frames_and_results(frames, overlap=True)
    pairs = list(overlapped)
    assert [frame.index for frame, _ in pairs] == list(range(40))
    assert [result for _, result in pairs] == sequential


def test_overlap_detects_on_another_thread_and_times_decode():
    detector = RecordingDetector(BOXES)
    pipeline = Pipeline(detector, FakeClassifier())
    pipeline.timings = {}
    for _ in pipeline.run(_frames(3), overlap=True):
        assert {"decode", "detect", "preprocess", "classify", "track", "started"} <= set(pipeline.timings)
        assert pipeline.timings["started"] <= time.perf_counter()
    assert {thread for thread, _ in detector.seen} == {"ers-worker"}


def test_several_workers_share_the_frames_each_on_its_own_thread_in_time_order():
    # Uneven delays make the workers overtake each other; results must still come in order.
    detectors = [RecordingDetector(BOXES, delay_s=0.002 * (k + 1)) for k in range(3)]
    classifiers = [FakeClassifier() for _ in detectors]
    pipeline = Pipeline(detectors[0], classifiers[0], extra_workers=list(zip(detectors[1:], classifiers[1:])))
    results = list(pipeline.run(_frames(30), overlap=True))
    assert [result.frame_index for result in results] == list(range(30))
    assert sorted(stamp for d in detectors for _, stamp in d.seen) == [40 * i for i in range(30)]
    for detector in detectors:
        assert detector.seen, "every worker detects some frames"
        assert len({thread for thread, _ in detector.seen}) == 1  # a detector stays on one thread
        stamps = [stamp for _, stamp in detector.seen]
        assert stamps == sorted(stamps)  # video mode needs increasing timestamps per detector
    assert len({d.seen[0][0] for d in detectors}) == 3
    # each worker classifies the faces it detected, with its own classifier
    assert [len(c.batches) for c in classifiers] == [len(d.seen) for d in detectors]


def test_without_overlap_only_the_first_worker_is_used():
    detectors = [RecordingDetector(BOXES) for _ in range(2)]
    pipeline = Pipeline(detectors[0], FakeClassifier(), extra_workers=[(detectors[1], FakeClassifier())])
    list(pipeline.run(_frames(4)))
    assert len(detectors[0].seen) == 4 and not detectors[1].seen


@pytest.mark.parametrize("workers", [1, 2])
def test_a_source_error_is_raised_in_the_caller_after_the_frames_before_it(workers):
    def frames():
        yield from _frames(3)
        raise OSError("the camera went away")

    results = []
    with pytest.raises(OSError, match="went away"):
        for result in _pipeline(workers).run(frames(), overlap=True):
            results.append(result)
    assert [result.frame_index for result in results] == [0, 1, 2]


def test_a_detector_error_is_raised_in_order_while_other_workers_go_on():
    class FailingDetector(FakeDetector):
        def detect(self, frame):
            if frame.index == 5:
                raise RuntimeError("detector broke on frame 5")
            return super().detect(frame)

    pipeline = Pipeline(FailingDetector(BOXES), FakeClassifier(),
                        extra_workers=[(FailingDetector(BOXES), FakeClassifier())])
    results = []
    with pytest.raises(RuntimeError, match="frame 5"):
        for result in pipeline.run(_frames(20), overlap=True):
            results.append(result)
    assert [result.frame_index for result in results] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("workers", [1, 2])
def test_stopping_early_stops_the_workers(workers):
    produced = []

    def endless():
        index = 0
        while True:
            produced.append(index)
            yield Frame(np.zeros((64, 96, 3), np.uint8), index, index)
            index += 1

    before = set(threading.enumerate())
    results = _pipeline(workers).run(endless(), overlap=True)
    for result in results:
        if result.frame_index == 5:
            break
    results.close()
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("ers-worker")]
    assert len(produced) <= 5 + 1 + 1 + workers  # at most depth + one frame per worker ahead


def test_ahead_stops_when_its_stop_event_is_set_from_outside():
    stop = threading.Event()
    ahead = Ahead(iter(range(1000)), 1, "test-ahead", stop=stop)
    assert next(ahead) == 0
    stop.set()
    assert list(ahead) in ([], [1], [1, 2])  # what was already handed over, then the end
    assert not ahead.thread.is_alive()


@pytest.mark.parametrize("detect", [lambda frame: [], [lambda frame: []] * 2])
def test_depth_must_be_positive(detect):
    with pytest.raises(ValueError, match="depth"):
        list(processed_ahead([], detect, depth=0))


def test_ordered_workers_need_a_work_function_and_end_cleanly_on_an_empty_source():
    with pytest.raises(ValueError, match="at least one"):
        OrderedWorkers([], [])
    workers = OrderedWorkers([], [lambda frame: []] * 2)
    assert list(workers) == []
    assert not any(thread.is_alive() for thread in workers.threads)


@pytest.mark.parametrize("caller_works", [True, False])
def test_with_several_workers_the_first_works_in_the_callers_thread_or_its_own(caller_works):
    detectors = [RecordingDetector(BOXES, delay_s=0.001) for _ in range(2)]
    pipeline = Pipeline(detectors[0], FakeClassifier(), extra_workers=[(detectors[1], FakeClassifier())],
                        caller_works=caller_works)
    before = set(threading.enumerate())
    started = []
    results = []
    for result in pipeline.run(_frames(20), overlap=True):
        started.extend(t.name for t in set(threading.enumerate()) - before)
        results.append(result)
    assert [result.frame_index for result in results] == list(range(20))
    first = threading.current_thread().name if caller_works else "ers-worker-0"
    assert {thread for thread, _ in detectors[0].seen} == {first}
    assert {thread for thread, _ in detectors[1].seen} == {"ers-worker-1"}
    assert set(started) == ({"ers-worker-1"} if caller_works else {"ers-worker-0", "ers-worker-1"})


def test_a_dedicated_worker_gives_up_its_core_only_when_the_consumer_waits_for_its_frame(monkeypatch):
    import edge.overlap as overlap

    yields = []
    monkeypatch.setattr(overlap, "_yield_core", lambda: yields.append(threading.current_thread().name))
    workers = OrderedWorkers(_frames(10), [lambda frame: time.sleep(0.005) or frame.index] * 2, in_caller=False)
    assert [item.value for item in workers] == list(range(10))
    assert yields and set(yields) <= {"ers-worker-0", "ers-worker-1"}
    yields.clear()
    in_caller = OrderedWorkers(_frames(10), [lambda frame: time.sleep(0.005) or frame.index] * 2, in_caller=True)
    assert [item.value for item in in_caller] == list(range(10))
    assert yields == []  # a consumer that works itself is woken the usual way
    ahead_of_a_slow_consumer = OrderedWorkers(_frames(10), [lambda frame: frame.index] * 2, in_caller=False)
    for item in ahead_of_a_slow_consumer:
        time.sleep(0.01)  # the next frames are filed meanwhile: nobody waits for them
    assert len(yields) <= 2  # at most while the consumer waits for the first frames


def test_ordered_workers_in_the_caller_alone_start_no_thread_and_keep_the_order():
    seen = []
    workers = OrderedWorkers(_frames(6), [lambda frame: seen.append(frame.index) or frame.index], in_caller=True)
    assert workers.threads == []
    assert [item.value for item in workers] == list(range(6)) and seen == list(range(6))


def test_an_error_in_the_callers_work_is_raised_in_order_and_ctrl_c_at_once():
    def work(frame):
        if frame.index == 3:
            raise ValueError("frame 3 is bad")
        return frame.index

    workers = OrderedWorkers(_frames(10), [work], in_caller=True)
    assert [next(workers).value for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="frame 3"):
        next(workers)

    def interrupted(frame):
        raise KeyboardInterrupt

    slow = OrderedWorkers(_frames(10), [interrupted, lambda frame: time.sleep(0.5)], in_caller=True)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        next(slow)
    assert time.perf_counter() - start < 0.4  # not held back behind the other worker's frame
    slow.close()


def test_one_work_function_in_a_list_still_works_on_a_thread_of_its_own():
    seen = []
    items = list(processed_ahead(_frames(3), [lambda frame: seen.append(threading.current_thread().name)]))
    assert [item.frame.index for item in items] == [0, 1, 2]
    assert set(seen) == {"ers-worker"}


def test_work_in_steps_runs_to_its_value_and_a_plain_value_passes_through():
    def steps():
        yield
        yield
        return "done"

    assert finish(steps()) == "done"
    assert finish([1, 2]) == [1, 2]


def _stepping_workers(events: list) -> OrderedWorkers:
    """Two frames: the caller's work in two steps of 0.1 s; the other worker's frames take 0.02 s and start first."""
    helper_started = threading.Event()

    def helper(frame):
        helper_started.set()
        time.sleep(0.02)
        return frame.index

    def caller_steps(frame):
        try:
            events.append(("step 1", frame.index))
            time.sleep(0.1)
            yield
            events.append(("step 2", frame.index))
            return frame.index
        finally:
            events.append(("ended", frame.index))

    workers = OrderedWorkers(_frames(2), [caller_steps, helper], in_caller=True)
    assert helper_started.wait(5)  # the other worker holds frame 0: the caller takes frame 1
    return workers


def test_the_caller_hands_on_a_frame_filed_meanwhile_between_the_steps_of_its_own():
    events = []
    items = []
    for item in _stepping_workers(events):
        events.append(("handed on", item.value))
        items.append(item)
    assert events == [("step 1", 1), ("handed on", 0), ("step 2", 1), ("ended", 1), ("handed on", 1)]
    assert 0.1 <= items[1].work_s < 0.2  # its steps' time, not the time it spent handing frame 0 on


def test_closing_the_workers_ends_the_callers_frame_between_its_steps():
    events = []
    workers = _stepping_workers(events)
    assert next(workers).value == 0
    workers.close()
    assert events == [("step 1", 1), ("ended", 1)]


def test_an_error_in_a_later_step_of_the_callers_work_is_raised_in_order():
    def steps(frame):
        yield
        if frame.index == 2:
            raise ValueError("frame 2 fails in its second step")
        return frame.index

    workers = OrderedWorkers(_frames(5), [steps], in_caller=True)
    assert [next(workers).value for _ in range(2)] == [0, 1]
    with pytest.raises(ValueError, match="frame 2"):
        next(workers)


def _deliver_all(workers: int, frames, *, overlap: bool = True) -> list:
    handed = []
    _pipeline(workers).deliver(frames, lambda frame, result: handed.append((frame.index, result)), overlap=overlap)
    return handed


@pytest.mark.parametrize(("workers", "overlap"), [(1, False), (1, True), (2, True), (3, True)])
def test_deliver_hands_on_the_sequential_results_in_order(workers, overlap):
    sequential = list(_pipeline().run(_frames(40)))
    handed = _deliver_all(workers, _frames(40), overlap=overlap)
    assert [index for index, _ in handed] == list(range(40))
    assert [result for _, result in handed] == sequential


@pytest.mark.parametrize(("workers", "in_this_thread"), [(1, False), (2, True)])
def test_deliver_with_one_worker_or_in_this_thread_hands_on_in_the_callers_thread(workers, in_this_thread):
    threads, handed = set(), []

    def handle(frame, result):
        threads.add(threading.current_thread())
        handed.append(result)

    _pipeline(workers).deliver(_frames(12), handle, overlap=True, in_this_thread=in_this_thread)
    assert threads == {threading.main_thread()} and handed == list(_pipeline().run(_frames(12)))


def test_delivering_workers_deliver_in_order_one_call_at_a_time():
    delivering, handed = [], []

    def deliver(item):
        delivering.append(item.value)
        assert len(delivering) == 1, "deliver is never called on two threads at once"
        time.sleep(0.001)
        handed.append(item.value)
        delivering.pop()

    works = [lambda frame, k=k: time.sleep(0.002 * ((frame.index * (k + 1)) % 3)) or frame.index for k in range(3)]
    DeliveringWorkers(_frames(30), works, deliver, in_caller=True).run()
    assert handed == list(range(30))


def test_a_worker_delivers_a_frame_it_finished_while_the_caller_works_on_its_own():
    # The other worker's first frame is slow; the caller's second frame waits for that frame to be
    # delivered, which must not need the caller (it would otherwise wait 2 s and note it).
    worker_frame_out = threading.Event()
    waited = []
    caller_frames = []

    def in_caller(frame):
        caller_frames.append(frame.index)
        if len(caller_frames) == 2:
            waited.append(worker_frame_out.wait(2))
        return "caller"

    def other(frame):
        if frame.index < 2:
            time.sleep(0.05)
        return "worker"

    def deliver(item):
        if item.value == "worker":
            worker_frame_out.set()

    DeliveringWorkers(_frames(6), [in_caller, other], deliver, in_caller=True).run()
    assert waited == [True]


@pytest.mark.parametrize("failing", ["work", "source", "deliver"])
def test_delivering_workers_raise_an_error_after_the_frames_before_it(failing):
    def frames():
        yield from _frames(5)
        if failing == "source":
            raise OSError("the camera went away")
        yield from _frames(10)[5:]

    def work(frame):
        if failing == "work" and frame.index == 5:
            raise RuntimeError("work broke on frame 5")
        return frame.index

    handed = []

    def deliver(item):
        if failing == "deliver" and item.value == 5:
            raise RuntimeError("the disk is full at frame 5")
        handed.append(item.value)

    before = set(threading.enumerate())
    with pytest.raises((RuntimeError, OSError), match="frame 5|went away"):
        DeliveringWorkers(frames(), [work, work], deliver, in_caller=True).run()
    assert handed == [0, 1, 2, 3, 4]
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("ers-worker")]


def test_ctrl_c_in_the_caller_waits_for_a_delivery_under_way_and_stops_the_workers():
    import _thread

    events = []

    def deliver(item):
        if threading.current_thread() is not threading.main_thread() and not events:
            events.append("delivery begun")
            _thread.interrupt_main()  # Ctrl+C while this thread writes a frame
            time.sleep(0.1)
            events.append("delivery ended")

    def work(frame):
        time.sleep(0.002)
        return frame.index

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        DeliveringWorkers(_frames(40), [work, work], deliver, in_caller=True).run()
    assert events == ["delivery begun", "delivery ended"]
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("ers-worker")]


def test_delivering_workers_without_the_caller_deliver_on_their_threads():
    threads = []
    DeliveringWorkers(_frames(8), [lambda frame: frame.index] * 2,
                      lambda item: threads.append(threading.current_thread().name)).run()
    assert len(threads) == 8 and set(threads) <= {"ers-worker-0", "ers-worker-1"}
