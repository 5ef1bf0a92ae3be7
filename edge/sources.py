"""Where frames come from: cameras and streams, video files, images and folders.

Every source is an iterable of ``Frame`` (RGB, converted from OpenCV's BGR
once, here), a context manager with an idempotent ``close()``, and says what
kind of frames it gives:

- ``live`` (``CameraSource``: a webcam index or a stream URL): a grabber thread
  keeps only the newest frame, so a slow consumer always processes the latest
  image and stale ones are dropped (``dropped_frames``; gaps in
  ``Frame.index``). Timestamps come from the clock.
- ``video`` (``VideoFileSource``): every frame is processed; timestamps come
  from the file's frame rate. A frame that cannot be decoded in the middle of
  the file is skipped and counted (``skipped_frames``).
- ``images`` (``ImageSource``: one image or a folder): unrelated stills, in
  file-name order; unreadable files in a folder are skipped and counted.

``open_source("0" | "rtsp://..." | "clip.mp4" | "photo.jpg" | "folder/")``
picks the right one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edge._mediapipe import quiet_native_stderr
from edge.errors import ConfigError, SourceError
from edge.types import ClosingContext, Frame, SourceKind

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
FALLBACK_FPS = 30.0
RUNTIME_OPENCV_THREADS = 1  # see opencv_threads
DECODE_AHEAD = 2  # frames a video file source decodes ahead of its consumer on a thread of its own (0: none)
# FFmpeg's own decoding threads for a video file. One: the runtime already decodes beside detection and
# classification, and on 2 cores FFmpeg's default threads took 0.88-0.92 ms of CPU per 640x360 frame against
# 0.51-0.54 ms for one thread, which also decoded a little faster (0.51-0.53 against 0.58-0.63 ms a frame).
DECODE_THREADS = 1
IMAGE_INTERVAL_MS = 1000  # nominal spacing of image timestamps (one image per second)


def decode_ahead_for(overlap: bool) -> int:
    """Frames a video file should decode ahead on a thread of its own for a consumer that
    ``overlap``s or not.

    A sequential pipeline gains a decoder thread: the next frame decodes while
    this one is detected (on single_face.mp4, 2 cores, 334-339 FPS against
    264-266 without). Overlapped workers already read the next frames ahead
    of the consumer, each decoding the frame it takes: a decoder thread there
    only adds a third busy thread and two hand-offs per frame (497-509 FPS
    without it against 450-497 with, in 4 interleaved pairs; 452-468 against
    422-431 on WolfgangLanger_Pexels.mp4).
    """
    return 0 if overlap else DECODE_AHEAD


@contextlib.contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    """OpenCV's thread pool set to ``count`` threads for the block, then restored.

    ``ers run`` and ``ers bench`` use one: the runtime's OpenCV calls
    (colour conversion, face crops, drawing) take tens of microseconds, less
    than waking a second thread costs, and the other core is busy detecting.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@runtime_checkable
class Source(Protocol):
    """What the pipeline and the runner need from a source of frames."""

    kind: SourceKind
    name: str
    fps: float  # nominal frames per second (what an output video is written at)
    skipped_frames: int  # frames that could not be decoded and were skipped

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc_info: object) -> None: ...


def _to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """RGB from a decoded image, in a new array.

    Not in the decoded image's own buffer (``dst=image_bgr``): OpenCV's
    conversion in place is five times slower, 0.24 against 0.05 ms for a
    640x360 frame here, allocation included.
    """
    if image_bgr.ndim == 2:
        return cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
    if image_bgr.shape[2] == 4:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


class VideoFileSource(ClosingContext):
    """Every frame of a video file, in order.

    ``max_consecutive_failures`` bounds how many undecodable frames in a row
    are skipped before the file is treated as ended (used when the container
    does not state its frame count). ``decode_ahead`` > 0 decodes up to that
    many frames ahead on a thread of its own while the consumer works on the
    current one (no frame is ever dropped); 0 decodes in the consumer's thread.
    It is read when iteration starts (``ers run`` sets it from
    ``decode_ahead_for``).
    ``decode_threads`` is how many threads FFmpeg decodes with (None: its own
    choice, one per core).
    """

    kind = SourceKind.VIDEO

    def __init__(
        self,
        path: Path | str,
        *,
        max_consecutive_failures: int = 25,
        decode_ahead: int = DECODE_AHEAD,
        decode_threads: int | None = DECODE_THREADS,
    ) -> None:
        if isinstance(decode_ahead, bool) or not isinstance(decode_ahead, int) or decode_ahead < 0:
            raise ConfigError(f"decode_ahead must be a whole number of frames >= 0; got {decode_ahead!r}")
        if decode_threads is not None and (
            isinstance(decode_threads, bool) or not isinstance(decode_threads, int) or decode_threads < 1
        ):
            raise ConfigError(f"decode_threads must be a whole number >= 1 or None; got {decode_threads!r}")
        self.path = Path(path)
        self.name = str(path)
        self.skipped_frames = 0
        self.decode_ahead = decode_ahead
        self.decode_threads = decode_threads
        self._max_failures = max_consecutive_failures
        self._stop = threading.Event()
        self._decoder: threading.Thread | None = None
        if not self.path.exists():
            raise SourceError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise SourceError(f"{self.path} is not a file")
        with quiet_native_stderr():
            if decode_threads is None:
                self._capture = cv2.VideoCapture(str(self.path))
            else:
                threads = [cv2.CAP_PROP_N_THREADS, decode_threads]
                self._capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY, threads)
            opened = self._capture.isOpened()
            ok, first = self._capture.read() if opened else (False, None)
        if not opened or not ok or first is None:
            self.close()
            reason = "cannot be opened as a video" if not opened else "opened, but no frame decodes"
            raise SourceError(
                f"{self.path} {reason}: not a video file, empty or damaged, or its codec is not "
                "supported by OpenCV's FFmpeg; re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`"
            )
        self._first: np.ndarray | None = first
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0.0 < fps <= 1000.0:
            logger.warning("%s states no usable frame rate (%s); assuming %s fps", self.path, fps, FALLBACK_FPS)
            fps = FALLBACK_FPS
        self.fps = fps
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = count if count > 0 else None
        self.frame_size = (int(first.shape[1]), int(first.shape[0]))

    def __iter__(self) -> Iterator[Frame]:
        if self.decode_ahead == 0:
            return self._decode()
        return self._decoded_ahead()

    def _decode(self) -> Iterator[Frame]:
        position = 0  # index of the next frame in the file, decodable or not
        failures = 0
        while self._capture is not None and not self._stop.is_set():
            if self._first is not None:
                ok, image = True, self._first
                self._first = None
            else:
                ok, image = self._capture.read()
            if ok and image is not None:
                if failures:
                    logger.warning("%s: skipped %d undecodable frame(s) before frame %d", self.name, failures, position)
                    self.skipped_frames += failures
                    failures = 0
                yield Frame(_to_rgb(image), position, round(position * 1000.0 / self.fps))
            else:
                failures += 1
                past_end = self.frame_count is not None and position + 1 >= self.frame_count
                if past_end:  # a stated frame count is often a frame or two high: not worth a word
                    return
                if failures >= self._max_failures:
                    # Without a stated frame count this is how every such file ends: nothing to report.
                    if self.frame_count is not None:
                        first_lost = position - failures + 1
                        self.skipped_frames += self.frame_count - first_lost
                        logger.warning(
                            "%s: no frame decodes from frame %d on (%d in a row), of the %d it states: the file is "
                            "damaged or cut short, or states more frames than it holds", self.name, first_lost,
                            failures, self.frame_count,
                        )
                    return
            position += 1

    def _decoded_ahead(self) -> Iterator[Frame]:
        """Frames from a decoder thread (``edge.overlap.Ahead``), ``decode_ahead`` frames ahead."""
        from edge.overlap import Ahead

        ahead = Ahead(self._decode(), self.decode_ahead, f"decode-{self.path.name}", stop=self._stop)
        self._decoder = ahead.thread
        try:
            yield from ahead
        finally:
            ahead.close()

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        decoder = getattr(self, "_decoder", None)
        if decoder is not None and decoder is not threading.current_thread():
            decoder.join()  # it stops within one frame; release only after its last read
        capture, self._capture = getattr(self, "_capture", None), None
        if capture is not None:
            capture.release()


class CameraSource(ClosingContext):
    """The newest frame of a webcam (``target`` an index) or a live stream (a URL).

    A background thread reads continuously and keeps only the latest frame;
    the iterator waits for a frame newer than the last one it gave. The
    stream ends when the device or stream fails ``max_consecutive_failures``
    times in a row.
    """

    kind = SourceKind.LIVE

    def __init__(
        self,
        target: int | str,
        *,
        open_timeout_s: float = 10.0,
        max_consecutive_failures: int = 50,
    ) -> None:
        if isinstance(target, int) and target < 0:  # OpenCV's "any camera" -1 crashes the process with none
            raise SourceError(f"camera index must be 0 or more; got {target}")
        self.target = target
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.skipped_frames = 0
        self.dropped_frames = 0
        self._max_failures = max_consecutive_failures
        self._condition = threading.Condition()
        self._latest: tuple[np.ndarray, int, int] | None = None  # (bgr, sequence, timestamp_ms)
        self._sequence = 0
        self._ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_in_thread = False
        what = f"no camera at index {target}" if isinstance(target, int) else f"cannot open stream {target}"
        with quiet_native_stderr():
            self._capture = cv2.VideoCapture(target)
            opened = self._capture.isOpened()
        if not opened:
            self.close()
            hint = (
                "check that a camera is connected and not used by another program (`ls /dev/video*`)"
                if isinstance(target, int)
                else "check the URL and that OpenCV's FFmpeg supports the protocol"
            )
            raise SourceError(f"{what}; {hint}")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps <= 240.0 else FALLBACK_FPS
        self._start_s = time.monotonic()
        self._thread = threading.Thread(target=self._grab, name=f"grab-{self.name}", daemon=True)
        self._thread.start()
        with self._condition:
            self._condition.wait_for(lambda: self._latest is not None or self._ended, open_timeout_s)
            got_frame = self._latest is not None
        if not got_frame:
            self.close()
            raise SourceError(f"{self.name} opened but gave no frame within {open_timeout_s:g} s")

    def _grab(self) -> None:
        capture = self._capture
        try:
            self._grab_from(capture)
        finally:
            with self._condition:
                self._ended = True
                release = self._release_in_thread  # close() gave up waiting for a blocked read
                self._condition.notify_all()
            if release:
                capture.release()

    def _grab_from(self, capture: cv2.VideoCapture) -> None:
        failures = 0
        last_timestamp_ms = -1
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                failures += 1
                if failures >= self._max_failures:
                    break
                time.sleep(0.01)
                continue
            failures = 0
            timestamp_ms = max(round((time.monotonic() - self._start_s) * 1000.0), last_timestamp_ms + 1)
            last_timestamp_ms = timestamp_ms
            with self._condition:
                self._latest = (image, self._sequence, timestamp_ms)
                self._sequence += 1
                self._condition.notify_all()

    def _has_frame_after(self, sequence: int) -> bool:
        return self._ended or (self._latest is not None and self._latest[1] > sequence)

    def __iter__(self) -> Iterator[Frame]:
        last_sequence = -1
        while True:
            with self._condition:
                self._condition.wait_for(lambda seen=last_sequence: self._has_frame_after(seen))
                if self._latest is None or self._latest[1] <= last_sequence:
                    return  # ended, and the newest frame was already given
                image, sequence, timestamp_ms = self._latest
            if last_sequence >= 0 and sequence > last_sequence + 1:
                self.dropped_frames += sequence - last_sequence - 1
            last_sequence = sequence
            yield Frame(_to_rgb(image), sequence, timestamp_ms)

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None
        capture, self._capture = getattr(self, "_capture", None), None
        if capture is None:
            return
        if thread is not None:
            # Releasing under a blocked read() can crash the decoder: the thread releases it instead.
            # Decided under the lock the thread ends under, so exactly one of the two releases it.
            with self._condition:
                self._release_in_thread = not self._ended
            if self._release_in_thread:
                logger.warning("%s: still waiting for a frame; it is released when the read returns", self.name)
                return
        capture.release()


class ImageSource(ClosingContext):
    """Still images, one frame each, in the given order (``from_file``, ``from_dir``)."""

    kind = SourceKind.IMAGES
    fps = 1000.0 / IMAGE_INTERVAL_MS

    def __init__(self, paths: Sequence[Path], *, name: str = "", strict: bool = False) -> None:
        self.paths = [Path(path) for path in paths]
        self.name = name or (str(self.paths[0]) if self.paths else "images")
        self.skipped_frames = 0
        self._strict = strict
        self._closed = False
        self._read_ahead: dict[int, np.ndarray] = {}

    @classmethod
    def from_file(cls, path: Path | str) -> ImageSource:
        """One image; an unreadable file is an error."""
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"image {path} does not exist")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path} cannot be read as an image (damaged, or not a format OpenCV reads)")
        source = cls([path], name=str(path), strict=True)
        source._read_ahead[0] = image  # decoded once: the check above is the first frame
        return source

    @classmethod
    def from_dir(cls, folder: Path | str) -> ImageSource:
        """The images of a folder (not its sub-folders), sorted by name; unreadable ones are skipped."""
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(
                f"no images in {folder}; expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}"
            )
        return cls(paths, name=str(folder))

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if self._closed:
                return
            image = self._read_ahead.pop(index, None)
            if image is None:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                if self._strict:
                    raise SourceError(f"{path} cannot be read as an image")
                logger.warning("skipping %s: not a readable image", path)
                self.skipped_frames += 1
                continue
            yield Frame(_to_rgb(image), index, index * IMAGE_INTERVAL_MS, name=path.name)
        if self.paths and self.skipped_frames == len(self.paths):  # skipping some is fine, all of them is not
            raise SourceError(
                f"none of the {len(self.paths)} images in {self.name} can be read (damaged, or not a format "
                "OpenCV reads)"
            )

    def close(self) -> None:
        self._closed = True


def open_source(arg: str | int | Path) -> VideoFileSource | CameraSource | ImageSource:
    """A source for a command-line argument.

    ``0`` (or any integer) is a webcam index, a URL is a live stream, a folder
    is a folder of images, a file with an image suffix is one image, and any
    other file is a video.
    """
    if isinstance(arg, int) or (isinstance(arg, str) and arg.strip().isdigit()):
        return CameraSource(int(arg))
    text = str(arg)
    if not text.strip():  # Path("") is the current folder, which nobody means by an empty name
        raise SourceError(
            "the source is an empty name; expected a webcam index like 0, a stream URL, a video file, "
            "an image or a folder of images"
        )
    if text.lower().startswith(URL_SCHEMES):
        return CameraSource(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageSource.from_dir(path)
    if not path.exists():
        raise SourceError(
            f"{text} does not exist; expected a webcam index like 0, a stream URL, a video file, "
            "an image or a folder of images"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource.from_file(path)
    return VideoFileSource(path)
