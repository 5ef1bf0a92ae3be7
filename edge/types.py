"""The typed values that flow through the runtime: frames in, results out.

All are frozen dataclasses. Boxes are pixel ``xyxy`` ints (x1, y1 inclusive,
x2, y2 exclusive, so ``image[y1:y2, x1:x2]`` is the box). Probabilities are
tuples in the order of the model's labels, which every ``FrameResult``
carries, so a sink never needs the model to name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from edge.errors import ConfigError

BoxXyxy = tuple[int, int, int, int]


class SourceKind(str, Enum):
    """``live``: newest frame of a camera or stream; ``video``: every frame of a file;
    ``images``: unrelated stills (no tracking or smoothing across them)."""

    LIVE = "live"
    VIDEO = "video"
    IMAGES = "images"

    @classmethod
    def _missing_(cls, value: object) -> SourceKind:
        raise ConfigError(f"source kind must be one of {[kind.value for kind in cls]}; got {value!r}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One RGB image of a source.

    ``image_rgb`` is HxWx3 uint8 RGB; ``index`` counts frames of the source
    (for live sources, gaps mark frames dropped to stay real-time);
    ``timestamp_ms`` increases strictly from frame to frame. ``name`` is the
    file name for image sources, empty otherwise.
    """

    image_rgb: np.ndarray
    index: int
    timestamp_ms: int
    name: str = ""

    @property
    def width(self) -> int:
        return int(self.image_rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.image_rgb.shape[0])


@dataclass(frozen=True, slots=True)
class FaceDetection:
    """One face box found by the detector, with its confidence in [0, 1]."""

    box_xyxy: BoxXyxy
    score: float

    @property
    def width(self) -> int:
        return self.box_xyxy[2] - self.box_xyxy[0]

    @property
    def height(self) -> int:
        return self.box_xyxy[3] - self.box_xyxy[1]


@dataclass(frozen=True, slots=True)
class FaceResult:
    """One tracked face of a frame and its emotion.

    ``raw_probs`` are this frame's class probabilities, ``smoothed_probs``
    the track's probabilities smoothed over time; ``label`` and
    ``confidence`` come from the smoothed ones (what a viewer sees).
    """

    track_id: int
    box_xyxy: BoxXyxy
    detection_score: float
    raw_probs: tuple[float, ...]
    smoothed_probs: tuple[float, ...]
    label: str
    confidence: float

    def to_dict(self, labels: tuple[str, ...], digits: int = 5) -> dict[str, Any]:
        """JSON-ready form with probabilities keyed by label."""
        return {
            "track_id": self.track_id,
            "box_xyxy": list(self.box_xyxy),
            "detection_score": round(self.detection_score, digits),
            "label": self.label,
            "confidence": round(self.confidence, digits),
            "raw_probs": {k: round(v, digits) for k, v in zip(labels, self.raw_probs)},
            "smoothed_probs": {k: round(v, digits) for k, v in zip(labels, self.smoothed_probs)},
        }


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything found in one frame; ``faces`` is empty when there is no face."""

    frame_index: int
    timestamp_ms: int
    faces: tuple[FaceResult, ...] = ()
    labels: tuple[str, ...] = ()

    def to_dict(self, digits: int = 5) -> dict[str, Any]:
        """JSON-ready form: one line of ``events.jsonl`` (where a frame of an image source also gets
        the image's file name, ``"image"``, which the result does not hold)."""
        return {
            "frame_index": self.frame_index,
            "timestamp_ms": self.timestamp_ms,
            "faces": [face.to_dict(self.labels, digits) for face in self.faces],
        }


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """One face track over a whole run.

    ``dominant_label`` is the smoothed label shown most often (ties go to the
    higher mean smoothed probability, then to the label listed first); the
    means are over the frames the track was seen in.
    """

    track_id: int
    frames_seen: int
    first_frame: int
    last_frame: int
    dominant_label: str
    mean_raw_probs: tuple[float, ...]
    mean_smoothed_probs: tuple[float, ...]

    def to_dict(self, labels: tuple[str, ...], digits: int = 5) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "frames_seen": self.frames_seen,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "dominant_label": self.dominant_label,
            "mean_raw_probs": {k: round(v, digits) for k, v in zip(labels, self.mean_raw_probs)},
            "mean_smoothed_probs": {k: round(v, digits) for k, v in zip(labels, self.mean_smoothed_probs)},
        }


class ClosingContext:
    """``with`` support shared by sources and sinks: leaving the block calls ``close()``."""

    def close(self) -> None:  # pragma: no cover - every source and sink overrides it
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - returns the concrete source or sink
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
