"""Where results go: a live window, an annotated video or images, JSON Lines, a summary.

Every sink has ``write(frame, result)``, depends only on ``Frame`` and
``FrameResult``, and is a context manager whose idempotent ``close()``
finalises its output, so an interrupted run keeps everything written so far:
``JsonlSink`` flushes one line per frame, ``VideoFileSink`` closes the mp4
properly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

import cv2
import numpy as np

from edge.draw import annotate
from edge.errors import SinkError
from edge.folders import make_folder
from edge.types import ClosingContext, FaceResult, Frame, FrameResult, TrackSummary

logger = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    def write(self, frame: Frame, result: FrameResult) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sink: ...

    def __exit__(self, *exc_info: object) -> None: ...


class StopRequested(Exception):
    """The viewer asked to stop (q or Esc in the window, or closed it)."""


def write_json(path: Path | str, data: object, what: str) -> Path:
    """``data`` as indented JSON in ``path``, its folder created; a failure is one ``SinkError``
    naming ``what`` (a benchmark's report, bench_targets' figures)."""
    path = Path(path)
    make_folder(path.parent, f"{what} {path}")
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise SinkError(f"cannot write {what} {path}: {error.strerror or error}") from None
    return path


def _cut_after_last_line(path: Path) -> None:
    """Truncate ``path`` after its last newline: a line the disk had no room for is not left half
    written (truncating needs no room). Lines are far shorter than the 1 MiB looked at."""
    if not path.is_file():  # a device such as /dev/full: nothing to cut, and no end to read to
        return
    with contextlib.suppress(OSError), path.open("r+b") as file:
        size = file.seek(0, os.SEEK_END)
        start = max(size - (1 << 20), 0)
        file.seek(start)
        end = file.read(1 << 20).rfind(b"\n")
        if end >= 0 or start == 0:
            file.truncate(start + end + 1)


class JsonlSink(ClosingContext):
    """One JSON object per frame (``FrameResult.to_dict()``), flushed as it is written.

    Lines are built directly from the result (the same text ``json.dumps`` of
    ``to_dict()`` gives, without the dicts in between); flushing hands every
    line to the operating system as soon as it is written, so an interrupted
    run keeps every processed frame.
    """

    def __init__(self, path: Path | str, *, digits: int = 5) -> None:
        self.path = Path(path)
        self.digits = digits
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}  # labels -> their JSON strings
        make_folder(self.path.parent, f"events to {self.path}")
        try:
            self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        except OSError as error:
            raise SinkError(f"cannot write events to {self.path}: {error}") from None

    def write(self, frame: Frame, result: FrameResult) -> None:
        if self._file is None:
            raise SinkError(f"write() on closed events file {self.path}")
        # One write call per line: an interrupt never leaves half a line behind.
        try:
            self._file.write(self.line(frame, result))
            self._file.flush()
        except OSError as error:  # e.g. the disk is full
            file, self._file = self._file, None
            with contextlib.suppress(OSError):  # closing flushes the same unwritable line again
                file.close()
            _cut_after_last_line(self.path)
            raise SinkError(f"cannot write events to {self.path}: {error}") from None

    def line(self, frame: Frame, result: FrameResult) -> str:
        """The events line of one frame, newline included."""
        faces = ",".join([self._face(face, result.labels) for face in result.faces])
        image = f',"image":{json.dumps(frame.name)}' if frame.name else ""
        head = f'{{"frame_index":{int(result.frame_index)},"timestamp_ms":{int(result.timestamp_ms)}'
        return f'{head},"faces":[{faces}]{image}}}\n'

    def _face(self, face: FaceResult, labels: tuple[str, ...]) -> str:
        keys = self._keys.get(labels)
        if keys is None:
            keys = self._keys[labels] = tuple(json.dumps(label) + ":" for label in labels)
        digits = self.digits
        x1, y1, x2, y2 = face.box_xyxy
        raw = ",".join([key + _number(round(value, digits)) for key, value in zip(keys, face.raw_probs)])
        smoothed = ",".join([key + _number(round(value, digits)) for key, value in zip(keys, face.smoothed_probs)])
        return (
            f'{{"track_id":{int(face.track_id)},"box_xyxy":[{int(x1)},{int(y1)},{int(x2)},{int(y2)}],'
            f'"detection_score":{_number(round(face.detection_score, digits))},"label":{json.dumps(face.label)},'
            f'"confidence":{_number(round(face.confidence, digits))},'
            f'"raw_probs":{{{raw}}},"smoothed_probs":{{{smoothed}}}}}'
        )

    def close(self) -> None:
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            file.close()


def _number(value: float) -> str:
    """A float as ``json.dumps`` writes it."""
    return repr(float(value)) if value - value == 0 else json.dumps(float(value))


class VideoFileSink(ClosingContext):
    """Annotated frames as an mp4 (``mp4v``) at the source's frame rate.

    The writer opens on the first frame, at that frame's size; later frames of
    another size are resized to it.
    """

    def __init__(self, path: Path | str, fps: float, *, fourcc: str = "mp4v", bars: bool = True) -> None:
        if not 0.0 < fps <= 1000.0:
            raise SinkError(f"video fps must be in (0, 1000]; got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.frames_written = 0
        self._fourcc = cv2.VideoWriter_fourcc(*fourcc)
        self._bars = bars
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._closed = False
        make_folder(self.path.parent, f"the annotated video {self.path}")

    def write(self, frame: Frame, result: FrameResult) -> None:
        self.write_image(self.render(frame, result))

    def render(self, frame: Frame, result: FrameResult) -> np.ndarray:
        """The annotated BGR image ``write`` encodes (``ers bench`` times the two steps apart)."""
        return annotate(frame.image_rgb, result, bars=self._bars, bgr=True)

    def write_image(self, image_bgr: np.ndarray) -> None:
        """Encode one BGR image as the next video frame."""
        if self._closed:
            raise SinkError(f"write() on closed video {self.path}")
        image = image_bgr
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), self._fourcc, self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                raise SinkError(f"cannot write video {self.path} (mp4v at {size[0]}x{size[1]})")
            self._size = size
        elif size != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if self._writer.write(image) is False:  # OpenCV 5 says so (disk full, file too large); 4.x returns None
            raise SinkError(
                f"cannot write video {self.path}: the encoder failed at frame {self.frames_written + 1} "
                "(disk full or file too large?)"
            )
        self.frames_written += 1

    def close(self) -> None:
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()


class ImageDirSink(ClosingContext):
    """Annotated frames as PNG files (``000000_<name>.png``) in a folder: for image sources."""

    def __init__(self, folder: Path | str, *, bars: bool = True) -> None:
        self.folder = Path(folder)
        self.paths: list[Path] = []
        self._bars = bars
        self._closed = False
        make_folder(self.folder, f"annotated images to {self.folder}")

    def write(self, frame: Frame, result: FrameResult) -> None:
        if self._closed:
            raise SinkError(f"write() on closed image folder {self.folder}")
        stem = Path(frame.name).stem if frame.name else "frame"
        path = self.folder / f"{frame.index:06d}_{stem}.png"
        if not cv2.imwrite(str(path), annotate(frame.image_rgb, result, bars=self._bars, bgr=True)):
            raise SinkError(f"cannot write {path}")
        self.paths.append(path)

    def close(self) -> None:
        self._closed = True


def display_available() -> bool:
    """Whether a window can be shown: always on Windows and macOS, else when X11 or Wayland is set."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink(ClosingContext):
    """A live window with the annotated frames and the processing rate.

    ``write`` raises ``StopRequested`` when the viewer presses q or Esc or
    closes the window. Without a display it refuses to start (``SinkError``);
    when the window cannot be created (no GUI support in this OpenCV build),
    a warning is logged and frames are no longer shown.
    """

    def __init__(self, title: str = "ers", *, bars: bool = True) -> None:
        if not display_available():
            # Checked up front: OpenCV's Qt backend aborts the whole process without a display.
            raise SinkError("no display to show a window on (DISPLAY is not set); use --no-display")
        self.title = title
        self._bars = bars
        self._opened = False
        self._disabled = False
        self._last_s: float | None = None
        self._fps: float | None = None

    def _tick(self) -> float | None:
        now = time.perf_counter()
        if self._last_s is not None and now > self._last_s:
            rate = 1.0 / (now - self._last_s)
            self._fps = rate if self._fps is None else 0.9 * self._fps + 0.1 * rate
        self._last_s = now
        return self._fps

    def write(self, frame: Frame, result: FrameResult) -> None:
        fps = self._tick()
        if self._disabled:
            return
        image = annotate(frame.image_rgb, result, fps=fps, bars=self._bars, bgr=True)
        try:
            if not self._opened:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
                self._opened = True
            cv2.imshow(self.title, image)
            key = cv2.waitKey(1) & 0xFF
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        except cv2.error as error:
            logger.warning("cannot show a window (%s); continuing without one", str(error).strip())
            self._disabled = True
            return
        if key in (ord("q"), ord("Q"), 27) or visible < 1:
            raise StopRequested(f"stopped from the window ({'key' if visible >= 1 else 'closed'})")

    def close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


class SummarySink(ClosingContext):
    """Accumulates, per track, what ``tracks()`` reports at the end of a run."""

    def __init__(self) -> None:
        self.labels: tuple[str, ...] = ()
        self.frames = 0
        self.frames_with_faces = 0
        self.faces = 0
        self._tracks: dict[int, dict] = {}

    def write(self, frame: Frame, result: FrameResult) -> None:
        self.frames += 1
        if not result.faces:
            return
        self.labels = result.labels
        self.frames_with_faces += 1
        self.faces += len(result.faces)
        for face in result.faces:
            track = self._tracks.get(face.track_id)
            if track is None:
                size = len(face.raw_probs)
                track = self._tracks[face.track_id] = {
                    "first": result.frame_index,
                    "count": 0,
                    "raw": np.zeros(size, np.float64),
                    "smoothed": np.zeros(size, np.float64),
                    "votes": np.zeros(size, np.int64),
                }
            track["count"] += 1
            track["last"] = result.frame_index
            track["raw"] += face.raw_probs
            track["smoothed"] += face.smoothed_probs
            track["votes"][int(np.argmax(face.smoothed_probs))] += 1

    def tracks(self) -> tuple[TrackSummary, ...]:
        """One summary per track, by track id."""
        summaries = []
        for track_id in sorted(self._tracks):
            track = self._tracks[track_id]
            count = track["count"]
            mean_smoothed = track["smoothed"] / count
            # Most frequent smoothed label; ties go to the higher mean, then the earlier label.
            votes = track["votes"]
            tied = np.flatnonzero(votes == votes.max())
            dominant = int(tied[np.argmax(mean_smoothed[tied])])
            summaries.append(
                TrackSummary(
                    track_id=track_id,
                    frames_seen=count,
                    first_frame=track["first"],
                    last_frame=track["last"],
                    dominant_label=self.labels[dominant] if self.labels else str(dominant),
                    mean_raw_probs=tuple((track["raw"] / count).tolist()),
                    mean_smoothed_probs=tuple(mean_smoothed.tolist()),
                )
            )
        return tuple(summaries)

    def close(self) -> None:
        pass
