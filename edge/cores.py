"""Keeping each worker of an overlapped run, and the threads its detector starts, on one core.

mediapipe's face detector runs each frame on threads of its own graph while
the worker that called it waits. When the workers occupy every core, those
threads then wait for a core the other worker holds: on 2 cores mediapipe's
frame p95 was 4.3-4.6 ms, and 2.95-2.97 ms with each worker and its
detector's threads on a core of their own, with 9-12% more frames per second
(``ers bench``-like runs of 2,000 frames, Intel Xeon, 2 cores). A single
worker beside them gains too: one frame at a time, p95 2.76-2.85 ms against
2.77-3.17 (``ers bench --no-overlap --decode-ahead 0``, the process on one
core with ``taskset`` against free, three runs each). Threads take the cores
they may run on from the thread that starts them, so a detector built inside
``pinned(core)`` keeps its threads there.

Only where ``os.sched_setaffinity`` exists (Linux); elsewhere nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def worker_cores(workers: int, *, detector_threads: bool = False) -> tuple[int, ...] | None:
    """The core each of ``workers`` workers keeps to, or None to leave them free.

    Workers are pinned only when they occupy every core this process may use,
    counting one more for a detector that works on threads of its own
    (``detector_threads``: mediapipe's, which also stay busy on a core after
    each frame; ``pipeline.model_threads_for`` counts them so too). With a
    core to spare, a detector's threads find it without help, and a pinned
    thread could not move away from another program's load.
    """
    busy = workers + int(detector_threads)  # what would run on the cores at once
    if busy < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if busy < len(cores):
        return None
    return tuple(cores[index % len(cores)] for index in range(workers))


@contextlib.contextmanager
def pinned(core: int | None) -> Iterator[None]:
    """Inside the block the calling thread runs on ``core`` alone (None: anywhere, as before),
    and so do the threads it starts there."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)  # 0: the calling thread
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
