"""The one place that imports mediapipe, so TensorFlow never enters the runtime.

mediapipe 1.2.2 tries ``from tensorflow.tools.docs import doc_controls`` at
import time and, when TensorFlow happens to be installed (a workstation with
the ``train`` extra), imports all of it: seconds of start-up and gigabytes of
memory for a decorator. Blocking the name while mediapipe imports makes that
optional import fail cleanly, exactly as on a device without TensorFlow.

The native side also prints start-up chatter (LiteRT environment, XNNPACK,
sparsity notes) straight to file descriptor 2; ``quiet_native_stderr`` hides
it around the calls that produce it and replays it if the call fails. File
descriptor 2 belongs to the whole process, so those blocks take turns: two
threads that each swapped it (a worker's first detection beside a video file
being opened) would restore each other's copies, and the last to leave would
point fd 2 at a deleted temporary file for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType

_BLOCKED = "tensorflow"
_STDERR_SWAP = threading.RLock()  # one thread at a time points fd 2 elsewhere (re-entrant: blocks may nest)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers, so native text lands where fd 2 points now."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc symbols (e.g. Windows): nothing buffered to flush
        pass


def import_mediapipe() -> tuple[ModuleType, ModuleType]:
    """Import mediapipe without TensorFlow; returns ``(mediapipe, mediapipe.tasks.python.vision)``."""
    missing = object()
    previous = sys.modules.get(_BLOCKED, missing)
    sys.modules[_BLOCKED] = None  # type: ignore[assignment]  # makes `import tensorflow` fail
    try:
        import mediapipe
        from mediapipe.tasks.python import vision
    finally:
        if previous is missing:
            del sys.modules[_BLOCKED]
        else:
            sys.modules[_BLOCKED] = previous  # type: ignore[assignment]
    return mediapipe, vision


def import_c_api() -> tuple[ModuleType, ModuleType]:
    """mediapipe's ctypes structs and status helpers: ``(detections_c, mediapipe_c_utils)``.

    ``edge.detector`` uses them to call the face detector's C functions directly.
    """
    import_mediapipe()
    from mediapipe.tasks.python.components.containers import detections_c
    from mediapipe.tasks.python.core import mediapipe_c_utils

    return detections_c, mediapipe_c_utils


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send what native code writes to fd 2 into a temporary file; replay it on error.

    Other threads' blocks wait for this one to end (see the module docstring).
    """
    with _STDERR_SWAP:
        yield from _quiet_native_stderr()


def _quiet_native_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to hide
        yield
        return
    try:
        sink = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder: nothing to hide the text in
        os.close(saved)
        yield
        return
    with sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            _flush_c_stdio()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)
