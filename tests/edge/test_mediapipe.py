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


def test_quiet_blocks_of_several_threads_give_fd_2_back_as_it_was():
    """Workers detect their first frames while a video opens: each block hides fd 2 at once."""
    import random
    import threading
    import time

    original = os.fstat(2)
    inside = []

    def quiet_often(seed: int) -> None:
        pause = random.Random(seed)
        for _ in range(20):
            with mediapipe_module.quiet_native_stderr():
                inside.append(os.fstat(2).st_ino)
                with mediapipe_module.quiet_native_stderr():  # nested in one thread, as a detector in a source
                    time.sleep(pause.random() / 2000)
                time.sleep(pause.random() / 2000)
            time.sleep(pause.random() / 2000)

    threads = [threading.Thread(target=quiet_often, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (original.st_dev, original.st_ino)
    assert len(inside) == 80 and original.st_ino not in inside
