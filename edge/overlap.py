"""Decode and detect the next frame on a worker thread while this one is classified.

On two cores the sequential loop leaves one idle: decode + detect take about
1.9 ms of a 2.5 ms frame, the classifier, tracking and sinks the rest. With
``detected_ahead`` a worker thread reads the source and runs the face
detector (both release the GIL: OpenCV's decoder and mediapipe's C calls),
handing ``Detected`` frames through a queue of ``depth`` items to the caller,
which crops, classifies (LiteRT also releases the GIL), tracks and writes.
Frames keep their order; the detector is only ever used by the worker, the
tracker only by the caller.

An exception in the worker (a broken file, a detector error) is raised again
in the caller, in order, after the frames before it; stopping early (break,
Ctrl+C, SIGTERM) stops the worker at its next frame.

``Ahead`` is the general piece (any iterator on a worker thread); video
files use it too, to decode ahead (``VideoFileSource(decode_ahead=N)``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from time import perf_counter
from typing import NamedTuple, TypeVar

from edge.types import FaceDetection, Frame

DEFAULT_DEPTH = 1  # one frame waiting: enough to keep both threads busy, the least added latency
_JOIN_TIMEOUT_S = 10.0
T = TypeVar("T")


class Detected(NamedTuple):
    """A frame as the worker hands it over, with when and how long it took."""

    frame: Frame
    detections: Sequence[FaceDetection]
    started: float  # perf_counter() when the worker asked the source for the frame
    decode_s: float
    detect_s: float


class _Failed(NamedTuple):
    error: BaseException


_END = object()


class Ahead(Iterator[T]):
    """``items`` iterated on a worker thread, up to ``depth`` items ahead of the consumer.

    Exceptions of the worker are raised in the consumer, after the items
    before them. ``close()`` (or the end of the items) stops and joins the
    worker; setting ``stop`` (when given) also stops a worker waiting to hand
    over an item, so a source can stop it from its own ``close()``.
    """

    def __init__(self, items: Iterator[T], depth: int, name: str, stop: threading.Event | None = None) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a whole number of items >= 1; got {depth!r}")
        self._items = items
        self._handoff: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = stop if stop is not None else threading.Event()
        self._done = False
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it in its own thread
            self._put(_Failed(error))
            return
        self._put(_END)

    def __next__(self) -> T:
        while not self._done:
            try:
                item = self._handoff.get(timeout=0.1)
            except queue.Empty:
                if self.thread.is_alive() or not self._handoff.empty():
                    continue
                break  # stopped from outside before the end marker
            if item is _END:
                break
            if isinstance(item, _Failed):
                self.close()
                raise item.error
            return item
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Stop the worker after its current item and wait for it; safe to call twice."""
        self._done = True
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(_JOIN_TIMEOUT_S)


def _detect_each(
    frames: Iterable[Frame], detect: Callable[[Frame], Sequence[FaceDetection]]
) -> Iterator[Detected]:
    iterator = iter(frames)
    while True:
        started = perf_counter()
        frame = next(iterator, None)
        if frame is None:
            return
        decoded = perf_counter()
        detections = detect(frame)
        yield Detected(frame, detections, started, decoded - started, perf_counter() - decoded)


class DetectWorkers(Iterator[Detected]):
    """Frames of one source detected by several workers at once, handed on in order.

    Each worker owns one detector: it takes the next frame from the shared
    source (one worker at a time, so every detector sees increasing
    timestamps), detects it and files the result under the frame's place in
    the stream; the consumer takes results in that order. At most ``depth``
    results wait beyond the frames being detected. On two cores detection,
    the largest stage, then runs on both while decoding and the consumer's
    work fill the gaps.

    Errors are raised in the consumer in stream order, after the frames before
    them; ``close()`` stops the workers after their current frame.
    """

    def __init__(
        self,
        frames: Iterable[Frame],
        detects: Sequence[Callable[[Frame], Sequence[FaceDetection]]],
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a whole number of items >= 1; got {depth!r}")
        if not detects:
            raise ValueError("at least one detect function is needed")
        self._frames = iter(frames)
        self._take = threading.Lock()  # one worker reads the source at a time
        self._changed = threading.Condition()  # guards the fields below
        self._room = threading.Semaphore(depth + len(detects))  # frames taken and not yet handed on
        self._stop = threading.Event()
        self._filed: dict[int, Detected | _Failed] = {}
        self._taken = 0  # frames taken from the source so far
        self._end: int | None = None  # place of the first frame that will never come
        self._next = 0  # place of the next frame to hand on
        self.threads = [
            threading.Thread(target=self._work, args=(detect,), name=f"ers-detect-{number}", daemon=True)
            for number, detect in enumerate(detects)
        ]
        for thread in self.threads:
            thread.start()

    def _file(self, place: int, item: Detected | _Failed | None) -> None:
        """File ``item`` at ``place``; None marks the end of the source there, a failure ends it after."""
        with self._changed:
            if item is not None:
                self._filed[place] = item
            if not isinstance(item, Detected):
                last = place if item is None else place + 1
                self._end = last if self._end is None else min(self._end, last)
            self._changed.notify_all()

    def _work(self, detect: Callable[[Frame], Sequence[FaceDetection]]) -> None:
        while not self._stop.is_set() and self._end is None:
            if not self._room.acquire(timeout=0.05):
                continue
            with self._take:
                if self._stop.is_set() or self._end is not None:
                    return
                place = self._taken
                started = perf_counter()
                try:
                    frame = next(self._frames, None)
                except BaseException as error:  # raised in the consumer, in order
                    self._file(place, _Failed(error))
                    return
                if frame is None:
                    self._file(place, None)
                    return
                self._taken += 1
            decoded = perf_counter()
            try:
                detections = detect(frame)
            except BaseException as error:
                self._file(place, _Failed(error))
                return
            self._file(place, Detected(frame, detections, started, decoded - started, perf_counter() - decoded))

    def __next__(self) -> Detected:
        with self._changed:
            while self._next not in self._filed:
                if self._end is not None and self._next >= self._end or self._stop.is_set():
                    break
                self._changed.wait(0.1)
            item = self._filed.pop(self._next, None)
            self._next += 1
        if item is None:
            self.close()
            raise StopIteration
        self._room.release()
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the workers after their current frame and wait for them; safe to call twice."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT_S)


def detected_ahead(
    frames: Iterable[Frame],
    detect: Callable[[Frame], Sequence[FaceDetection]] | Sequence[Callable[[Frame], Sequence[FaceDetection]]],
    depth: int = DEFAULT_DEPTH,
) -> Iterator[Detected]:
    """``Detected`` items for every frame of ``frames``, read and detected on worker threads.

    ``detect`` is one function (one worker) or one per worker (``DetectWorkers``),
    each used only by its own worker.
    """
    if callable(detect):
        ahead: Ahead[Detected] | DetectWorkers = Ahead(_detect_each(frames, detect), depth, "ers-detect-ahead")
    else:
        ahead = DetectWorkers(frames, detect, depth)
    try:
        yield from ahead
    finally:
        ahead.close()


__all__ = ["Ahead", "Detected", "DetectWorkers", "detected_ahead", "DEFAULT_DEPTH"]
