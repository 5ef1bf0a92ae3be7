from __future__ import annotations

import os
import tempfile

import edge._mediapipe as mediapipe_module


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def test_quiet_native_stderr_without_a_temporary_file_runs_the_block_and_leaks_no_fd(monkeypatch):
    def no_temporary_file(*args, **kwargs):
        raise OSError("no space left for temporary files")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_temporary_file)
    before = _open_fds()
    ran = []
    with mediapipe_module.quiet_native_stderr():
        ran.append(True)
    assert ran == [True]
    assert _open_fds() == before
