"""Who is who across frames, and emotion scores smoothed per face over time.

``FaceTracker`` gives each face a stable ``track_id`` by matching this frame's
boxes to the tracks of previous frames on IoU (greedy, best pairs first). A
track that finds no box for more than ``max_missed`` frames ends; ids are
never reused by the same tracker, even after ``reset()``.

``ScoreSmoother`` smooths each track's class probabilities: an exponential
moving average (``method="ema"``, weight ``alpha`` on the newest frame) or
the mean of the last ``window`` frames (``method="window"``). Either way the
result is still a probability vector.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from edge.errors import ConfigError
from edge.types import BoxXyxy


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``boxes_a`` (N, 4) with every box in ``boxes_b`` (M, 4)."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    area_a = np.prod(np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """``iou_matrix`` for one pair, in plain floats (a face or two per frame: no array overhead)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    intersection = (width if width > 0.0 else 0.0) * (height if height > 0.0 else 0.0)
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - intersection
    return intersection / union if union > 0.0 else 0.0


@dataclass(frozen=True, kw_only=True)
class TrackingOptions:
    """Matching a face to its track: minimum IoU, and frames a track may go unseen."""

    iou_threshold: float = 0.3
    max_missed: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError(f"iou_threshold must be in (0, 1]; got {self.iou_threshold!r}")
        if not isinstance(self.max_missed, int) or self.max_missed < 0:
            raise ConfigError(f"max_missed must be a whole number >= 0; got {self.max_missed!r}")


class FaceTracker:
    """Assigns stable ids to face boxes across frames."""

    def __init__(self, options: TrackingOptions | None = None) -> None:
        self.options = options or TrackingOptions()
        self._next_id = 1
        self._ids: list[int] = []
        self._boxes: list[tuple[float, float, float, float]] = []
        self._missed: list[int] = []

    @classmethod
    def from_options(cls, options: TrackingOptions | None = None) -> FaceTracker:
        return cls(options)

    @property
    def active_ids(self) -> tuple[int, ...]:
        """Ids of the tracks still alive (seen within the last ``max_missed`` frames)."""
        return tuple(self._ids)

    def update(self, boxes_xyxy: Sequence[BoxXyxy]) -> list[int]:
        """Track ids for this frame's boxes, in the same order; new faces get new ids."""
        boxes = [tuple(map(float, box)) for box in boxes_xyxy]
        count = len(boxes)
        assigned = [0] * count
        matched_tracks: set[int] = set()
        if count and self._ids:
            threshold = self.options.iou_threshold
            # Greedy: take the best remaining (track, box) pair until none passes the threshold
            # (equal overlaps: the later pair first, as a stable sort of the flat IoU matrix reversed).
            pairs = []
            for track, track_box in enumerate(self._boxes):
                for box, face_box in enumerate(boxes):
                    if (face_box[0] >= track_box[2] or track_box[0] >= face_box[2]
                            or face_box[1] >= track_box[3] or track_box[1] >= face_box[3]):
                        continue  # apart: no overlap, under any threshold (> 0); most pairs with several faces
                    overlap = _iou(track_box, face_box)
                    if overlap >= threshold:
                        pairs.append((overlap, track * count + box))
            pairs.sort(reverse=True)
            for _, flat in pairs:
                track, box = divmod(flat, count)
                if track in matched_tracks or assigned[box]:
                    continue
                matched_tracks.add(track)
                assigned[box] = self._ids[track]
        ids, kept_boxes, missed = [], [], []
        max_missed = self.options.max_missed
        for track, track_id in enumerate(self._ids):
            if track in matched_tracks:
                continue
            if self._missed[track] + 1 <= max_missed:
                ids.append(track_id)
                kept_boxes.append(self._boxes[track])
                missed.append(self._missed[track] + 1)
        for box in range(count):
            if not assigned[box]:
                assigned[box] = self._next_id
                self._next_id += 1
            ids.append(assigned[box])
            kept_boxes.append(boxes[box])
            missed.append(0)
        self._ids = ids
        self._boxes = kept_boxes
        self._missed = missed
        return assigned

    def reset(self) -> None:
        """Forget every track (a new, unrelated stream or image); ids keep counting up."""
        self._ids, self._missed, self._boxes = [], [], []


class SmoothingMethod(str, Enum):
    EMA = "ema"
    WINDOW = "window"


@dataclass(frozen=True, kw_only=True)
class SmoothingOptions:
    """``ema``: s = alpha * p + (1 - alpha) * s (alpha 1 = no smoothing); ``window``: mean of the last frames."""

    method: SmoothingMethod = SmoothingMethod.EMA
    alpha: float = 0.4
    window: int = 8

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", SmoothingMethod(self.method))
        except ValueError:
            raise ConfigError(
                f"smoothing method must be one of {[m.value for m in SmoothingMethod]}; got {self.method!r}"
            ) from None
        if not isinstance(self.alpha, (int, float)) or not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"smoothing alpha must be in (0, 1]; got {self.alpha!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"smoothing window must be a whole number >= 1; got {self.window!r}")


class ScoreSmoother:
    """Per-track smoothing of class probabilities."""

    def __init__(self, options: SmoothingOptions | None = None) -> None:
        self.options = options or SmoothingOptions()
        self._ema: dict[int, np.ndarray] = {}
        self._windows: dict[int, deque[np.ndarray]] = {}

    @classmethod
    def from_options(cls, options: SmoothingOptions | None = None) -> ScoreSmoother:
        return cls(options)

    def update(self, track_ids: Sequence[int], probs: np.ndarray) -> np.ndarray:
        """Smoothed probabilities (N, C) for this frame's tracks and raw probabilities (N, C)."""
        probs = np.asarray(probs, np.float32)
        if len(track_ids) != len(probs):
            raise ValueError(f"got {len(track_ids)} track ids for {len(probs)} probability rows")
        smoothed = np.empty_like(probs)
        if self.options.method is SmoothingMethod.EMA:
            alpha = np.float32(self.options.alpha)
            for row, track_id in enumerate(track_ids):
                previous = self._ema.get(track_id)
                value = probs[row].copy() if previous is None else alpha * probs[row] + (1 - alpha) * previous
                self._ema[track_id] = smoothed[row] = value
        else:
            for row, track_id in enumerate(track_ids):
                window = self._windows.get(track_id)
                if window is None:
                    window = self._windows[track_id] = deque(maxlen=self.options.window)
                window.append(probs[row].copy())
                smoothed[row] = np.mean(window, axis=0)
        return smoothed

    def retain(self, track_ids: Iterable[int]) -> None:
        """Drop the state of every track not in ``track_ids`` (tracks that ended)."""
        keep = set(track_ids)
        for state in (self._ema, self._windows):
            for track_id in [t for t in state if t not in keep]:
                del state[track_id]

    def reset(self) -> None:
        self._ema.clear()
        self._windows.clear()
