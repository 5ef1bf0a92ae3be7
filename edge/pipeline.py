"""The runtime loop: detect, crop, classify (batched), track, smooth, per frame.

``Pipeline`` composes the stages it is given, so tests can pass fakes; every
stage is created once and reused for every frame. ``Pipeline.from_options``
builds the real stages (shipped face detector, exported emotion model) and
owns them: use it as a context manager.

    with open_source("clip.mp4") as source, \\
            Pipeline.from_options(PipelineOptions(model_dir=...), source.kind) as pipeline:
        for result in pipeline.run(source):
            ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Protocol

import numpy as np

from edge.crop import crop_face
from edge.detector import FaceDetectorOptions
from edge.errors import ConfigError, DataError, ManifestError
from edge.model_spec import MANIFEST_NAME, CropSpec
from edge.tracking import FaceTracker, ScoreSmoother, SmoothingOptions, TrackingOptions
from edge.types import FaceDetection, FaceResult, Frame, FrameResult, SourceKind

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "emotion"
CLASSIFIER_THREADS = 1
DETECT_WORKERS = 2  # detectors (one thread each) of an overlapped run: detection is the largest stage


def overlap_for(kind: SourceKind | str, overlap: bool | None = None) -> bool:
    """Whether a source of ``kind`` runs overlapped (``overlap`` None) or what was asked.

    Files (video, images) are read as fast as the pipeline goes: overlapping
    decode + detect with the rest keeps both cores busy. A camera or stream
    delivers a frame every 33 ms or so, far slower than the pipeline: there
    is nothing to overlap, and one thread hands each frame on soonest (no
    thread hand-offs, warm caches).
    """
    if overlap is not None:
        return overlap
    return SourceKind(kind) is not SourceKind.LIVE


def resolve_model_dir(model_dir: Path | str | None) -> Path:
    """The emotion model folder to use: ``model_dir``, or the one shipped in the package."""
    if model_dir is None:
        if not (DEFAULT_MODEL_DIR / MANIFEST_NAME).is_file():
            raise ManifestError(
                f"no default emotion model is installed ({DEFAULT_MODEL_DIR / MANIFEST_NAME} is "
                "missing); export one with `ers export` and pass its folder with --model-dir DIR "
                f"(or copy that folder to {DEFAULT_MODEL_DIR})"
            )
        return DEFAULT_MODEL_DIR
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ManifestError(f"model folder {model_dir} does not exist; pass a folder written by `ers export`")
    return model_dir


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """Everything needed to build the real pipeline; only ``model_dir`` is usually set.

    ``model_dir`` None means the model shipped in ``edge/models/emotion``;
    ``variant`` None means the manifest's default variant; ``num_threads``
    is the emotion model's (``CLASSIFIER_THREADS``: at 0.3 ms per face one
    thread is fastest and leaves the other core to decoding and detection;
    None lets LiteRT choose); ``detect_workers`` is how many face detectors,
    each on its own thread, an overlapped run uses (``Pipeline.frames_and_results``).
    """

    model_dir: Path | None = None
    variant: str | None = None
    detector: FaceDetectorOptions = field(default_factory=FaceDetectorOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    num_threads: int | None = CLASSIFIER_THREADS
    detect_workers: int = DETECT_WORKERS

    def __post_init__(self) -> None:
        if self.model_dir is not None:
            object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise ConfigError(f"num_threads must be a whole number >= 1 or None; got {self.num_threads!r}")
        if isinstance(self.detect_workers, bool) or not isinstance(self.detect_workers, int) or self.detect_workers < 1:
            raise ConfigError(f"detect_workers must be a whole number >= 1; got {self.detect_workers!r}")


class Detector(Protocol):
    def detect(self, frame: Frame) -> Sequence[FaceDetection]: ...


class Classifier(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def classify(self, crops_rgb: Sequence[np.ndarray]) -> np.ndarray: ...


def check_frame(frame: Frame) -> None:
    """Refuse a frame whose image is not HxWx3 uint8 (the contract every stage relies on)."""
    image = frame.image_rgb
    if not isinstance(image, np.ndarray):
        raise DataError(f"frame {frame.index}: image_rgb must be a numpy array; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"frame {frame.index}: image_rgb must be uint8; got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"frame {frame.index}: image_rgb must be HxWx3 RGB; got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"frame {frame.index}: image_rgb is empty; got shape {image.shape}")


class Pipeline:
    """Turns frames into ``FrameResult``s with the stages it is given.

    ``crop`` defaults to the classifier manifest's ``CropSpec``
    (``classifier.spec.crop``); pass it when the classifier has no spec.
    ``extra_detectors`` (more instances like ``detector``) let an overlapped
    run detect several frames at once, one detector per worker thread.

    ``timings``: set it to a dict and ``process`` records there the seconds
    each stage of the last frame took (``STAGES``: ``detect``, ``preprocess``
    = crops resized and quantized into the model input, ``classify`` = the
    model, ``track`` = tracking, smoothing and the result); ``None`` (the
    default) measures nothing. ``ers bench`` reads it.
    """

    STAGES = ("detect", "preprocess", "classify", "track")

    def __init__(
        self,
        detector: Detector,
        classifier: Classifier,
        tracker: FaceTracker | None = None,
        smoother: ScoreSmoother | None = None,
        *,
        crop: CropSpec | None = None,
        extra_detectors: Sequence[Detector] = (),
    ) -> None:
        self.detector = detector
        self.detectors = (detector, *extra_detectors)
        self.classifier = classifier
        self.tracker = tracker or FaceTracker()
        self.smoother = smoother or ScoreSmoother()
        spec = getattr(classifier, "spec", None)
        self.crop = crop or (spec.crop if spec is not None else CropSpec())
        self.labels = tuple(classifier.labels)
        self.timings: dict[str, float] | None = None
        self._owned: list = []

    @classmethod
    def from_options(
        cls, options: PipelineOptions | None = None, source_kind: SourceKind | str = SourceKind.VIDEO
    ) -> Pipeline:
        """The real pipeline for a kind of source; it owns its detector and classifier."""
        from edge._mediapipe import quiet_native_stderr
        from edge.classifier import EmotionClassifier  # LiteRT loads only when a real pipeline is built
        from edge.detector import FaceDetector

        options = options or PipelineOptions()
        model_dir = resolve_model_dir(options.model_dir)
        with quiet_native_stderr():  # LiteRT announces its CPU delegate
            classifier = EmotionClassifier.from_dir(model_dir, options.variant, num_threads=options.num_threads)
        detectors: list[FaceDetector] = []
        try:
            for _ in range(options.detect_workers):
                detectors.append(FaceDetector(options.detector.resolve(source_kind)))
        except BaseException:
            for part in (*detectors, classifier):
                part.close()
            raise
        pipeline = cls(
            detectors[0],
            classifier,
            FaceTracker(options.tracking),
            ScoreSmoother(options.smoothing),
            extra_detectors=detectors[1:],
        )
        pipeline._owned = [*detectors, classifier]
        return pipeline

    def process(self, frame: Frame) -> FrameResult:
        """Detect, classify, track and smooth every face of one frame."""
        check_frame(frame)
        timings = self.timings
        start = perf_counter()
        detections = self.detector.detect(frame)
        if timings is not None:
            now = perf_counter()
            timings["detect"], start = now - start, now
        return self._finish(frame, detections, start)

    @staticmethod
    def _checked(detector: Detector) -> Callable[[Frame], Sequence[FaceDetection]]:
        def checked_detect(frame: Frame) -> Sequence[FaceDetection]:
            check_frame(frame)
            return detector.detect(frame)

        return checked_detect

    def _finish(self, frame: Frame, detections: Sequence[FaceDetection], start: float) -> FrameResult:
        """Crop, classify, track and smooth the detected faces of ``frame``."""
        timings = self.timings
        if not detections:
            self.tracker.update(())
            self.smoother.retain(self.tracker.active_ids)
            result = FrameResult(frame.index, frame.timestamp_ms, (), self.labels)
            if timings is not None:
                timings["preprocess"] = timings["classify"] = 0.0
                timings["track"] = perf_counter() - start
            return result
        image = frame.image_rgb
        crop = self.crop
        crops = [crop_face(image, detection.box_xyxy, crop) for detection in detections]
        if timings is None:
            raw = self.classifier.classify(crops)
        else:
            raw = self._classify_timed(crops, timings, start)
            start = perf_counter()
        raw = np.asarray(raw, np.float32)
        track_ids = self.tracker.update([detection.box_xyxy for detection in detections])
        smoothed = self.smoother.update(track_ids, raw)
        self.smoother.retain(self.tracker.active_ids)
        best = smoothed.argmax(axis=1).tolist()
        raw_rows, smoothed_rows = raw.tolist(), smoothed.tolist()
        labels = self.labels
        faces = tuple(
            FaceResult(
                track_id=track_ids[i],
                box_xyxy=detection.box_xyxy,
                detection_score=detection.score,
                raw_probs=tuple(raw_rows[i]),
                smoothed_probs=tuple(smoothed_rows[i]),
                label=labels[best[i]],
                confidence=smoothed_rows[i][best[i]],
            )
            for i, detection in enumerate(detections)
        )
        result = FrameResult(frame.index, frame.timestamp_ms, faces, labels)
        if timings is not None:
            timings["track"] = perf_counter() - start
        return result

    def _classify_timed(self, crops: list[np.ndarray], timings: dict[str, float], start: float) -> np.ndarray:
        """``classify``, split into preprocessing and the model when the classifier allows it."""
        classifier = self.classifier
        load, infer = getattr(classifier, "load", None), getattr(classifier, "infer", None)
        if load is None or infer is None:  # a classifier without the split: all of it is "classify"
            now = perf_counter()
            timings["preprocess"] = now - start
            raw = classifier.classify(crops)
            timings["classify"] = perf_counter() - now
            return raw
        load(crops)
        now = perf_counter()
        timings["preprocess"] = now - start
        raw = infer()
        timings["classify"] = perf_counter() - now
        return raw

    def run(
        self, frames: Iterable[Frame], *, independent: bool | None = None, overlap: bool = False
    ) -> Iterator[FrameResult]:
        """Results for every frame of a source, lazily (see ``frames_and_results``)."""
        for _, result in self.frames_and_results(frames, independent=independent, overlap=overlap):
            yield result

    def frames_and_results(
        self, frames: Iterable[Frame], *, independent: bool | None = None, overlap: bool = False
    ) -> Iterator[tuple[Frame, FrameResult]]:
        """``(frame, result)`` for every frame of a source, lazily, in order.

        ``independent`` frames (default: true for an image source) share no
        tracks or smoothing: each starts from a reset tracker and smoother.

        ``overlap`` reads and detects the next frames on worker threads (one
        per detector of ``detectors``) while this one is classified and handed
        on (``edge.overlap``): more frames per second on two or more cores,
        the same results in the same order.
        ``timings`` then also gets ``decode`` (reading the frame) and
        ``started`` (``perf_counter()`` when the frame was asked for).
        """
        if independent is None:
            independent = getattr(frames, "kind", None) == SourceKind.IMAGES
        if not overlap:
            for frame in frames:
                if independent:
                    self.reset()
                yield frame, self.process(frame)
            return
        from edge.overlap import detected_ahead

        detects = [self._checked(detector) for detector in self.detectors]
        for item in detected_ahead(frames, detects[0] if len(detects) == 1 else detects):
            if independent:
                self.reset()
            if self.timings is not None:
                self.timings.update(decode=item.decode_s, detect=item.detect_s, started=item.started)
            yield item.frame, self._finish(item.frame, item.detections, perf_counter())

    def reset(self) -> None:
        """Forget tracks and smoothing state (before an unrelated stream)."""
        self.tracker.reset()
        self.smoother.reset()

    def close(self) -> None:
        """Release the detector and classifier built by ``from_options``; safe to call twice."""
        owned, self._owned = self._owned, []
        for part in owned:
            part.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
