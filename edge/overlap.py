"""Work on the next frames on worker threads while this one is tracked and handed on.

On two cores the sequential loop leaves one idle. With ``processed_ahead``
worker threads read the source and run the per-frame work that needs no
state from earlier frames (``Pipeline``: detect, crop, classify; all release
the GIL: OpenCV's decoder, mediapipe's C calls, LiteRT), handing
``Processed`` frames to the caller, which runs what does depend on earlier
frames (tracking, smoothing) and writes the outputs. With several workers
(``OrderedWorkers``) each owns its stages, takes the next frame of the shared
source in turn and files its result under the frame's place in the stream:
the caller gets them in order. By default the caller's thread is the first
of them: it works on the next frame itself rather than wait for one (the
most frames per second); without that each worker has a thread and the
caller's frames come out sooner. A work function may work in steps (a
generator function that yields between its stages and returns the result):
the caller then hands on a frame another worker filed between the steps of
its own, instead of after all of them. ``DeliveringWorkers`` turns this
around: the caller gives a function, and whichever worker files the next
frame hands it to that function, in order: a finished frame waits only for
the frames before it.

An exception in a worker (a broken file, a detector error) is raised again
in the caller, in order, after the frames before it; stopping early (break,
Ctrl+C, SIGTERM) stops the workers at their next frame.

``Ahead`` is the general piece (any iterator on a worker thread); video
files use it too, to decode ahead (``VideoFileSource(decode_ahead=N)``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from time import perf_counter
from types import GeneratorType
from typing import Generic, NamedTuple, TypeVar

from edge.cores import pinned
from edge.types import Frame

DEFAULT_DEPTH = 1  # one frame waiting beyond those in work: keeps the threads busy, adds the least latency
_JOIN_TIMEOUT_S = 10.0
T = TypeVar("T")


class Processed(NamedTuple, Generic[T]):
    """A frame as a worker hands it over: what the work gave, and when and how long it took."""

    frame: Frame
    value: T  # what the work function returned for the frame
    started: float  # perf_counter() when the worker asked the source for the frame
    decode_s: float
    work_s: float


class _Failed(NamedTuple):
    error: BaseException


# What a work function returns for a frame: the value, or a generator that works on it in steps
# (yielding between them) and returns the value.
Work = Callable[[Frame], T | Generator[None, None, T]]


def finish(outcome: T | Generator[None, None, T]) -> T:
    """A work function's value for a frame: ``outcome`` itself, or what its steps return once all have run."""
    if not isinstance(outcome, GeneratorType):
        return outcome
    while True:
        try:
            next(outcome)
        except StopIteration as end:
            return end.value


def _in_steps(work: Work[T], frame: Frame) -> Generator[None, None, T]:
    """``work`` on ``frame`` as steps, even when it works in one go."""
    outcome = work(frame)
    if isinstance(outcome, GeneratorType):
        return (yield from outcome)
    return outcome


class _InWork(NamedTuple):
    """The consumer's own frame between two of its steps."""

    place: int
    frame: Frame
    started: float
    decode_s: float
    steps: Generator
    work_s: float  # seconds its steps took so far


_END = object()


# Lets a thread that is ready to run have this thread's core now. Without sched_yield (Windows)
# the woken thread waits for its turn.
_yield_core: Callable[[], None] = getattr(os, "sched_yield", lambda: None)


def _check_depth(depth: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a whole number of items >= 1; got {depth!r}")


class Ahead(Iterator[T]):
    """``items`` iterated on a worker thread, up to ``depth`` items ahead of the consumer.

    Exceptions of the worker are raised in the consumer, after the items
    before them. ``close()`` (or the end of the items) stops and joins the
    worker; setting ``stop`` (when given) also stops a worker waiting to hand
    over an item, so a source can stop it from its own ``close()``.
    """

    def __init__(self, items: Iterator[T], depth: int, name: str, stop: threading.Event | None = None) -> None:
        _check_depth(depth)
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


def _process_each(frames: Iterable[Frame], work: Work[T], core: int | None) -> Iterator[Processed[T]]:
    iterator = iter(frames)
    while True:
        started = perf_counter()
        frame = next(iterator, None)
        if frame is None:
            return
        decoded = perf_counter()
        with pinned(core):
            value = finish(work(frame))
        yield Processed(frame, value, started, decoded - started, perf_counter() - decoded)


class _Workers(Generic[T]):
    """What both ways of handing frames on share: worker threads that take the next frame of one
    source in turn (one at a time, so each sees increasing timestamps, as a detector in video mode
    needs), work on it and file the result under the frame's place in the stream.

    ``in_caller`` leaves the first work function to the consumer's own
    thread (no thread is started for it). ``cores`` (one per work function)
    keeps each worker's thread on its core while it works (``edge.cores``).
    At most ``depth`` results wait beyond the frames in work. ``close()``
    stops the workers after their current frame.
    """

    def __init__(self, frames: Iterable[Frame], works: Sequence[Work[T]],
                 depth: int = DEFAULT_DEPTH, *, in_caller: bool = False,
                 cores: Sequence[int] | None = None) -> None:
        _check_depth(depth)
        if not works:
            raise ValueError("at least one work function is needed")
        if cores is not None and len(cores) != len(works):
            raise ValueError(f"cores gives {len(cores)} cores for {len(works)} work functions")
        cores = cores or [None] * len(works)
        self._caller_work = works[0] if in_caller else None
        self._caller_core = cores[0] if in_caller else None
        self._frames = iter(frames)
        self._take = threading.Lock()  # one worker reads the source at a time
        self._changed = threading.Condition()  # guards the fields below
        self._room = threading.Semaphore(depth + len(works))  # frames taken and not yet handed on
        self._stop = threading.Event()
        self._filed: dict[int, Processed[T] | _Failed] = {}
        self._taken = 0  # frames taken from the source so far
        self._end: int | None = None  # place of the first frame that will never come
        self._next = 0  # place of the next frame to hand on
        self._waiting = False  # the consumer waits for the next frame to be filed
        self.threads = [
            threading.Thread(target=self._work, args=(work, core), name=f"ers-worker-{number}", daemon=True)
            for number, (work, core) in enumerate(zip(works, cores))
            if not (in_caller and number == 0)
        ]

    def _start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _file(self, place: int, item: Processed[T] | _Failed | None) -> bool:
        """File ``item`` at ``place``; None marks the end of the source there, a failure ends it after.

        True when the consumer is waiting for just this place.
        """
        with self._changed:
            if item is not None:
                self._filed[place] = item
            if not isinstance(item, Processed):
                last = place if item is None else place + 1
                self._end = last if self._end is None else min(self._end, last)
            self._changed.notify_all()
            return self._waiting and place == self._next

    def _after_filing(self, awaited: bool) -> None:
        """What a worker does once it has filed a frame, a failure or the end
        (``awaited``: the consumer waits for just that place)."""

    def _work(self, work: Work[T], core: int | None) -> None:
        with pinned(core):
            self._work_frames(work)

    def _work_frames(self, work: Work[T], caught: type[BaseException] = BaseException) -> None:
        """Take, work on and file frames until none is left; errors of the kind ``caught`` are filed
        (the consumer's own thread lets Ctrl+C and the like through at once)."""
        while not self._stop.is_set() and self._end is None:
            if not self._room.acquire(timeout=0.05):
                continue
            taken = self._take_frame(caught)
            if taken is None:
                self._after_filing(False)
                return
            place, frame, started, decoded = taken
            try:
                value = finish(work(frame))
            except caught as error:  # raised in the consumer, in order
                self._after_filing(self._file(place, _Failed(error)))
                return
            processed = Processed(frame, value, started, decoded - started, perf_counter() - decoded)
            self._after_filing(self._file(place, processed))

    def _take_frame(self, caught: type[BaseException]) -> tuple[int, Frame, float, float] | None:
        """The next frame with its place, when it was asked for and when it was read (room for it
        already acquired); None when there is nothing more to take (stopped, the end, or an error filed).

        Errors of the kind ``caught`` are filed, to be raised in the consumer in
        order; the consumer's own work lets Ctrl+C and the like through at once.
        """
        with self._take:
            if self._stop.is_set() or self._end is not None:
                self._room.release()
                return None
            place = self._taken
            started = perf_counter()
            try:
                frame = next(self._frames, None)
            except caught as error:
                self._file(place, _Failed(error))
                return None
            if frame is None:
                self._file(place, None)
                return None
            self._taken += 1
            return place, frame, started, perf_counter()

    def close(self) -> None:
        """Stop the workers after their current frame and wait for them; safe to call twice."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self.threads:
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join(_JOIN_TIMEOUT_S)


class OrderedWorkers(_Workers[T], Iterator[Processed[T]]):
    """Frames of one source worked on by several workers at once, handed on in order by iteration.

    ``in_caller`` runs the first work function in the consumer's own thread:
    whenever the next result is not filed yet, the consumer takes the next
    frame and works on it itself instead of waiting: on two cores one thread
    fewer to share the cores and the most frames per second, but a frame
    another worker finished meanwhile waits until the consumer's own is done,
    or, when the work goes in steps (``Work``), until its current step is:
    between steps the consumer hands on what was filed and comes back to its
    frame at the next call. Without it every worker has a thread and the
    consumer only waits: frames come out after their own time. A worker that
    files the frame the consumer waits for then gives up its core
    (``sched_yield``): on two busy cores the woken consumer otherwise waited
    for a time slice, 1 ms at p95. ``DeliveringWorkers`` hands frames on
    without either wait, where the consumer's code may run on any thread.

    Errors are raised in the consumer in stream order, after the frames before
    them; ``close()`` stops the workers after their current frame.
    """

    def __init__(self, frames: Iterable[Frame], works: Sequence[Work[T]],
                 depth: int = DEFAULT_DEPTH, *, in_caller: bool = False,
                 cores: Sequence[int] | None = None) -> None:
        super().__init__(frames, works, depth, in_caller=in_caller, cores=cores)
        self._own: _InWork | None = None  # the consumer's own frame, between two of its steps
        self._start()

    def _after_filing(self, awaited: bool) -> None:
        if awaited and self._caller_work is None:
            _yield_core()  # the consumer hands the frame on now, not after this thread's time slice

    def _work_in_caller(self) -> None:
        """Work on frames in the consumer's thread, a step at a time, until the next result is filed
        or no frame can be taken."""
        work = self._caller_work
        while work is not None:
            with self._changed:
                if self._next in self._filed or self._stop.is_set():
                    return
            if self._own is not None:
                self._step_own()
            elif self._end is not None or not self._room.acquire(blocking=False):
                return  # the frames in flight will be filed: wait for them
            else:
                taken = self._take_frame(Exception)
                if taken is None:
                    return
                place, frame, started, decoded = taken
                self._own = _InWork(place, frame, started, decoded - started, _in_steps(work, frame), 0.0)

    def _step_own(self) -> None:
        """Run the next step of the consumer's own frame; file the frame once its steps are done."""
        own = self._own
        begun = perf_counter()
        try:
            next(own.steps)
        except StopIteration as end:
            self._own = None
            self._file(own.place, Processed(own.frame, end.value, own.started, own.decode_s,
                                            own.work_s + perf_counter() - begun))
        except Exception as error:
            self._own = None
            self._file(own.place, _Failed(error))
        else:
            self._own = own._replace(work_s=own.work_s + perf_counter() - begun)

    def __next__(self) -> Processed[T]:
        with pinned(self._caller_core):  # the consumer's own code runs where it ran before
            self._work_in_caller()
        with self._changed:
            self._waiting = True
            while self._next not in self._filed:
                if (self._end is not None and self._next >= self._end) or self._stop.is_set():
                    break
                self._changed.wait(0.1)
            self._waiting = False
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
        super().close()
        own, self._own = self._own, None
        if own is not None:
            own.steps.close()


class DeliveringWorkers(_Workers[T]):
    """Frames of one source worked on by several workers at once, each handed to ``deliver`` in order
    by whichever worker thread finished it (``run``).

    A worker that files the next frame calls ``deliver`` with it, and with
    those after it that are filed already; while one worker delivers, the
    others go on with the next frames, and the one delivering takes theirs
    too. So ``deliver`` is called in stream order, one call at a time, but
    not always on the same thread, and a finished frame waits only for the
    frames before it: not for the step another thread is in, as with
    ``OrderedWorkers``, and not for a thread to wake up. ``deliver`` must
    therefore be safe to call from any thread (no GUI window).

    ``run()`` does the caller's share (``in_caller``: the first work
    function, a frame at a time) and returns once every frame is delivered.
    It raises, after the frames before it were delivered, an error of the
    work or of the source, and an error ``deliver`` raised on any thread.
    Ctrl+C in the caller's thread stops the workers after their current frame
    and a delivery under way (closing outputs then loses nothing).
    """

    def __init__(self, frames: Iterable[Frame], works: Sequence[Work[T]],
                 deliver: Callable[[Processed[T]], None], depth: int = DEFAULT_DEPTH, *,
                 in_caller: bool = False, cores: Sequence[int] | None = None) -> None:
        super().__init__(frames, works, depth, in_caller=in_caller, cores=cores)
        self._deliver = deliver
        self._delivering = False  # a thread is handing frames to deliver
        self._error: BaseException | None = None  # what stopped the delivery, raised by run()

    def _after_filing(self, awaited: bool) -> None:
        self._hand_on()

    def _hand_on(self) -> None:
        """Deliver the filed frames that are next in order, unless another thread already does."""
        with self._changed:
            if self._delivering:
                return  # that thread takes this frame too
            self._delivering = True
        try:
            while True:
                with self._changed:
                    item = None if self._stop.is_set() else self._filed.pop(self._next, None)
                    if item is None:
                        self._delivering = False
                        self._changed.notify_all()
                        return
                    self._next += 1
                self._room.release()
                if isinstance(item, _Failed):
                    raise item.error
                self._deliver(item)
        except BaseException as error:
            with self._changed:
                self._error = self._error or error
                self._delivering = False
                self._stop.set()
                self._changed.notify_all()
            if threading.current_thread() is threading.main_thread():
                raise  # Ctrl+C and the like stop the caller's thread at once

    def run(self) -> None:
        """Work and deliver every frame of the source (see the class); returns once all are delivered."""
        self._start()
        work = self._caller_work
        try:
            if work is not None:
                with pinned(self._caller_core):
                    self._work_frames(work, Exception)  # delivers as it files (_after_filing)
            with self._changed:
                while not self._stop.is_set() and (self._delivering or self._end is None or self._next < self._end):
                    self._changed.wait(0.1)
        finally:
            self.close()
        if self._error is not None:
            raise self._error


def processed_ahead(
    frames: Iterable[Frame],
    work: Work[T] | Sequence[Work[T]],
    depth: int = DEFAULT_DEPTH,
    *,
    in_caller: bool = True,
    cores: Sequence[int] | None = None,
) -> Iterator[Processed[T]]:
    """``Processed`` items for every frame of ``frames``, read and worked on by worker threads.

    ``work`` is one function per worker, each called only by its own worker:
    one (or a bare function) works on a thread of its own; with several
    (``OrderedWorkers``) so does each, but for the first, which works in the
    caller's thread ``in_caller``, a step at a time when it works in steps
    (``Work``), each on its core of ``cores`` when given.
    """
    if not callable(work) and len(work) == 1:
        work = work[0]
    if callable(work):
        core = cores[0] if cores else None
        ahead: Ahead[Processed[T]] | OrderedWorkers[T] = Ahead(_process_each(frames, work, core), depth, "ers-worker")
    else:
        ahead = OrderedWorkers(frames, work, depth, in_caller=in_caller, cores=cores)
    try:
        yield from ahead
    finally:
        ahead.close()


__all__ = [
    "Ahead", "DeliveringWorkers", "OrderedWorkers", "Processed", "Work", "finish", "processed_ahead", "DEFAULT_DEPTH",
]
