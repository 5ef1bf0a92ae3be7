"""Time the ``fer`` package on a clip; run by ``ers bench`` in its own process.

``fer`` imports TensorFlow, which the ers runtime never does, so this file
imports nothing from ``edge`` and runs under any Python that has ``fer``
(``ers bench`` passes its text with ``-c``; run by path, ``edge/types.py``
would hide the standard library's ``types``):

    python -c "$(cat edge/_fer_runner.py)" CLIP FRAMES WARMUP    # prints one JSON object

It decodes the clip with OpenCV (looping as needed) and calls
``FER().detect_emotions`` on every frame: fer's default path (Haar cascade
face detector, then its emotion model), the way its README uses it.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _frames(clip: str):
    import cv2

    while True:
        capture = cv2.VideoCapture(clip)
        ok, image = capture.read()
        if not ok:
            raise SystemExit(f"cannot read {clip}")
        while ok:
            yield image
            ok, image = capture.read()
        capture.release()


def main(clip: str, frames: int, warmup: int) -> dict:
    import fer
    from fer.fer import FER

    cascade = os.path.join(os.path.dirname(fer.__file__), "data", "haarcascade_frontalface_default.xml")
    detector = FER(cascade_file=cascade) if os.path.isfile(cascade) else FER()
    stream = _frames(clip)
    for _ in range(warmup):
        detector.detect_emotions(next(stream))
    latencies, faces = [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(frames):
        begin = time.perf_counter()
        faces += len(detector.detect_emotions(next(stream)))
        latencies.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    latencies.sort()
    return {
        "version": getattr(fer, "__version__", "unknown"),
        "frames": frames,
        "elapsed_s": elapsed,
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "latency_ms_mean": 1000.0 * sum(latencies) / len(latencies),
        "latency_ms_p50": 1000.0 * latencies[len(latencies) // 2],
        "faces_per_frame": faces / frames,
        "cpu_ms_per_frame": 1000.0 * cpu_s / frames,
        "python": sys.executable,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
