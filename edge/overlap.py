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


def detected_ahead(
    frames: Iterable[Frame],
    detect: Callable[[Frame], Sequence[FaceDetection]],
    depth: int = DEFAULT_DEPTH,
) -> Iterator[Detected]:
    """``Detected`` items for every frame of ``frames``, read and detected on a worker thread."""
    ahead = Ahead(_detect_each(frames, detect), depth, "ers-detect-ahead")
    try:
        yield from ahead
    finally:
        ahead.close()


__all__ = ["Ahead", "Detected", "detected_ahead", "DEFAULT_DEPTH"]
