"""ers runtime: faces in frames -> emotions, with LiteRT and MediaPipe only (never TensorFlow).

The public API, importable from ``edge`` directly (each name loads its module
on first use, so ``import edge.model_spec`` stays light)::

    from edge import FaceDetectorOptions, Pipeline, PipelineOptions, RunOptions, open_source, run

    report = run("clip.mp4", RunOptions(out_dir="runs/demo", pipeline=PipelineOptions(model_dir="exports/m")))
    print(report.summary())

    with open_source("0") as source, \\
            Pipeline.from_options(PipelineOptions(model_dir="exports/m"), source.kind) as pipeline:
        for result in pipeline.run(source):   # FrameResult per frame
            ...

``PipelineOptions(model_dir=shipped_model_dir("fast"))`` runs the faster of the
two shipped emotion models (``ers run --model fast``).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    # sources and frames
    "open_source": "edge.sources",
    "CameraSource": "edge.sources",
    "VideoFileSource": "edge.sources",
    "ImageSource": "edge.sources",
    "Frame": "edge.types",
    "FaceDetection": "edge.types",
    "FaceResult": "edge.types",
    "FrameResult": "edge.types",
    "SourceKind": "edge.types",
    "TrackSummary": "edge.types",
    # stages
    "FaceDetector": "edge.detector",
    "FaceDetectorOptions": "edge.detector",
    "EmotionClassifier": "edge.classifier",
    "FaceTracker": "edge.tracking",
    "TrackingOptions": "edge.tracking",
    "ScoreSmoother": "edge.tracking",
    "SmoothingOptions": "edge.tracking",
    "Pipeline": "edge.pipeline",
    "PipelineOptions": "edge.pipeline",
    "shipped_model_dir": "edge.pipeline",
    "annotate": "edge.draw",
    # outputs and the whole run
    "JsonlSink": "edge.sinks",
    "VideoFileSink": "edge.sinks",
    "ImageDirSink": "edge.sinks",
    "WindowSink": "edge.sinks",
    "SummarySink": "edge.sinks",
    "RunOptions": "edge.runner",
    "RunReport": "edge.runner",
    "run": "edge.runner",
    "ModelSpec": "edge.model_spec",
    # benchmark
    "BenchOptions": "edge.bench",
    "BenchReport": "edge.benchreport",
    "benchmark": "edge.bench",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
