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

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import NamedTuple, Protocol

import numpy as np

from edge.cores import pinned, worker_cores
from edge.crop import crop_face
from edge.detector import DetectorEngine, FaceDetectorOptions
from edge.errors import ConfigError, DataError, ManifestError
from edge.model_spec import MANIFEST_NAME, CropSpec
from edge.overlap import DeliveringWorkers, Processed, finish, processed_ahead
from edge.tracking import FaceTracker, ScoreSmoother, SmoothingOptions, TrackingOptions
from edge.types import FaceDetection, FaceResult, Frame, FrameResult, SourceKind

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "emotion"
FAST_MODEL_DIR = DEFAULT_MODEL_DIR.with_name("emotion_fast")
# The emotion models shipped in the package, by name (``ers run --model NAME``): the default, and one that
# takes about a quarter less time a face for about half a point of accuracy (docs/model.md).
SHIPPED_MODELS = ("accurate", "fast")
DEFAULT_MODEL = "accurate"
WORKERS = 2  # frames analysed at once in an overlapped run, one detector and classifier each: main thread + one
MAX_MODEL_THREADS = 2  # threads for one small model; more were not measured


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def model_threads_for(
    workers: int,
    kind: SourceKind | str = SourceKind.VIDEO,
    cores: int | None = None,
    engine: DetectorEngine | str = DetectorEngine.MEDIAPIPE,
) -> int:
    """Threads for each worker's emotion model and LiteRT face detector, for a kind of source.

    The usable cores shared among the workers, 1 to ``MAX_MODEL_THREADS``. On 2
    cores an overlapped run's 2 workers get 1 each: a second thread per model
    only waits for the core the other worker holds (the classifier took 0.58-0.62
    ms a face against 0.43). A sequential run of a file gets both: with the
    litert detector, frame p50 fell from 3.4-3.6 to 2.7-2.9 ms and p95 from
    4.8-5.3 to 4.2-4.7 ms (``ers bench --no-overlap --decode-ahead 0``).
    mediapipe's detector keeps threads of its own busy on a core after each
    frame, so beside it the models share one core fewer: on 2 cores a
    sequential run's classifier with a second thread took 0.51-0.55 ms a face
    against 0.31 with one, and the frame p95 was 3.1-3.6 ms against 2.8-2.9
    (Intel Xeon, AMX). A live source gets 1: at camera rate the second thread
    has to be woken for every frame, which cost more than it saved (``ers bench
    --realtime``, litert: p50 4.1-4.5 ms against 5.0).
    """
    if SourceKind(kind) is SourceKind.LIVE:
        return 1
    cores = usable_cores() if cores is None else cores
    if DetectorEngine(engine) is DetectorEngine.MEDIAPIPE:
        cores -= 1
    return max(1, min(MAX_MODEL_THREADS, cores // max(workers, 1)))


def overlap_for(kind: SourceKind | str, overlap: bool | None = None) -> bool:
    """Whether a source of ``kind`` runs overlapped (``overlap`` None) or what was asked.

    Files (video, images) are read as fast as the pipeline goes: decoding,
    detecting and classifying the next frames on worker threads keeps the
    cores busy. A camera or stream delivers a frame every 33 ms or so, far
    slower than the pipeline: there is nothing to overlap, and one thread (no
    hand-offs between threads) gave the same latency for less CPU per frame
    (``ers bench --realtime``).
    """
    if overlap is not None:
        return overlap
    return SourceKind(kind) is not SourceKind.LIVE


def shipped_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """The folder of the emotion model shipped in the package as ``name`` (``SHIPPED_MODELS``)."""
    folders = {"accurate": DEFAULT_MODEL_DIR, "fast": FAST_MODEL_DIR}  # read here: tests move them
    if name not in folders:
        raise ConfigError(f"no emotion model is shipped as {name!r}; the shipped ones are {', '.join(SHIPPED_MODELS)}")
    folder = folders[name]
    if not (folder / MANIFEST_NAME).is_file():
        which = "default" if name == DEFAULT_MODEL else repr(name)
        raise ManifestError(
            f"no {which} emotion model is installed ({folder / MANIFEST_NAME} is missing); export one with "
            f"`ers export` and pass its folder with --model-dir DIR (or copy that folder to {folder})"
        )
    return folder


def resolve_model_dir(model_dir: Path | str | None) -> Path:
    """The emotion model folder to use: ``model_dir``, or the default one shipped in the package."""
    if model_dir is None:
        return shipped_model_dir(DEFAULT_MODEL)
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        what = "is a file" if model_dir.exists() else "does not exist"
        raise ManifestError(f"model folder {model_dir} {what}; pass a folder written by `ers export`")
    return model_dir


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """Everything needed to build the real pipeline; only ``model_dir`` is usually set.

    ``model_dir`` None means the model shipped in ``edge/models/emotion``
    (``shipped_model_dir("fast")``: the faster one shipped beside it);
    ``variant`` None means the manifest's default variant; ``num_threads``
    is each worker's emotion model's and LiteRT face detector's (None:
    ``model_threads_for(workers, source kind, detector engine)``: 1 each for 2
    workers on 2 cores, 2 for a sequential run of a file beside the litert
    detector, else 1); ``workers`` is
    how many frames an overlapped run analyses at once, each worker with a
    detector and classifier of its own; ``caller_works``: the calling thread
    is the first of them, else each has a thread (``Pipeline.deliver`` and
    ``Pipeline.frames_and_results`` say what that changes).
    """

    model_dir: Path | None = None
    variant: str | None = None
    detector: FaceDetectorOptions = field(default_factory=FaceDetectorOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    num_threads: int | None = None
    workers: int = WORKERS
    caller_works: bool = True

    def __post_init__(self) -> None:
        if self.model_dir is not None:
            if not isinstance(self.model_dir, (str, os.PathLike)):
                raise ConfigError(f"model_dir must be a folder path or None; got {self.model_dir!r}")
            object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.variant is not None and not isinstance(self.variant, str):
            raise ConfigError(f"variant must be a variant name or None; got {self.variant!r}")
        for name, kind in (("detector", FaceDetectorOptions), ("tracking", TrackingOptions),
                           ("smoothing", SmoothingOptions)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name} must be a {kind.__name__}; got {getattr(self, name)!r}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1
        ):
            raise ConfigError(f"num_threads must be a whole number >= 1 or None; got {self.num_threads!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be a whole number >= 1; got {self.workers!r}")
        if not isinstance(self.caller_works, bool):
            raise ConfigError(f"caller_works must be True or False; got {self.caller_works!r}")


class Detector(Protocol):
    def detect(self, frame: Frame) -> Sequence[FaceDetection]: ...


class Classifier(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def classify(self, crops_rgb: Sequence[np.ndarray]) -> np.ndarray: ...


def _independent(frames: Iterable[Frame], independent: bool | None) -> bool:
    """Whether frames share no tracks: as given, else true for an image source."""
    if independent is None:
        return getattr(frames, "kind", None) == SourceKind.IMAGES
    return independent


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


class Analysis(NamedTuple):
    """What a frame gives without knowledge of earlier frames: faces and their raw probabilities."""

    detections: Sequence[FaceDetection]
    raw: np.ndarray | None  # (faces, classes) float32; None when there is no face
    detect_s: float
    preprocess_s: float
    classify_s: float


class Pipeline:
    """Turns frames into ``FrameResult``s with the stages it is given.

    ``crop`` defaults to the classifier manifest's ``CropSpec``
    (``classifier.spec.crop``); pass it when the classifier has no spec.
    ``extra_workers`` (more ``(detector, classifier)`` pairs like the first)
    let an overlapped run analyse several frames at once, one pair per
    worker; ``caller_works`` says whether the calling thread is the first of
    them (``deliver``, ``frames_and_results``); ``cores``, one per worker,
    keeps each worker's thread on its core while it analyses frames, and a
    sequential run's on the first (``edge.cores``; ``from_options`` picks
    them and builds each worker's stages there).

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
        extra_workers: Sequence[tuple[Detector, Classifier]] = (),
        caller_works: bool = True,
        cores: Sequence[int] | None = None,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.extra_workers = tuple(extra_workers)
        self.caller_works = caller_works
        if cores is not None and len(cores) != len(self.workers):
            raise ValueError(f"cores gives {len(cores)} cores for {len(self.workers)} workers")
        self.cores = tuple(cores) if cores is not None else None
        self.tracker = tracker or FaceTracker()
        self.smoother = smoother or ScoreSmoother()
        spec = getattr(classifier, "spec", None)
        self.crop = crop or (spec.crop if spec is not None else CropSpec())
        self.labels = tuple(classifier.labels)
        self.timings: dict[str, float] | None = None
        self.model_threads: int | None = None  # set by from_options
        self._owned: list = []

    @property
    def trims_letterbox(self) -> bool:
        """Whether its face detector runs on the trimmed letterbox (``FaceDetector.trims_letterbox``):
        what was done, not what was asked; False for a detector that has no letterbox to trim."""
        return bool(getattr(self.detector, "trims_letterbox", False))

    @property
    def workers(self) -> tuple[tuple[Detector, Classifier], ...]:
        """The ``(detector, classifier)`` pairs of an overlapped run; the first is used sequentially."""
        return ((self.detector, self.classifier), *self.extra_workers)

    @classmethod
    def from_options(
        cls, options: PipelineOptions | None = None, source_kind: SourceKind | str = SourceKind.VIDEO
    ) -> Pipeline:
        """The real pipeline for a kind of source; it owns its detectors and classifiers."""
        from edge._mediapipe import quiet_native_stderr
        from edge.classifier import EmotionClassifier  # LiteRT loads only when a real pipeline is built
        from edge.detector import FaceDetector

        options = options or PipelineOptions()
        model_dir = resolve_model_dir(options.model_dir)
        detector_options = options.detector.resolve(source_kind)
        threads = options.num_threads
        if threads is None:
            threads = model_threads_for(options.workers, source_kind, engine=detector_options.engine)
        owned: list = []  # everything opened so far, closed again if a later part fails
        pairs = []
        cores = worker_cores(options.workers, detector_threads=detector_options.engine is DetectorEngine.MEDIAPIPE)
        try:
            for worker in range(options.workers):
                with pinned(cores[worker] if cores else None):  # the threads they start keep to the worker's core
                    with quiet_native_stderr():  # LiteRT announces its CPU delegate
                        classifier = EmotionClassifier.from_dir(model_dir, options.variant, num_threads=threads)
                    owned.append(classifier)
                    detector = FaceDetector(detector_options, num_threads=threads)
                    owned.append(detector)
                pairs.append((detector, classifier))
        except BaseException:
            for part in owned:
                part.close()
            raise
        pipeline = cls(
            *pairs[0],
            FaceTracker(options.tracking),
            ScoreSmoother(options.smoothing),
            extra_workers=pairs[1:],
            caller_works=options.caller_works,
            cores=cores,
        )
        pipeline._owned = owned
        pipeline.model_threads = threads
        variant = pairs[0][1].variant
        if not variant.passed_gate:
            logger.warning(
                "%s: its %s variant failed the export gate, so it is not fit to deploy (%s); see report.md there",
                model_dir, variant.quantization, "; ".join(variant.gate_failures),
            )
        return pipeline

    def process(self, frame: Frame) -> FrameResult:
        """Detect, classify, track and smooth every face of one frame (on the first worker's core)."""
        with pinned(self.cores[0] if self.cores else None):
            analysis = self.analyse(frame)
        return self._track(frame, analysis)

    def analyse(self, frame: Frame, worker: int = 0) -> Analysis:
        """Detect and classify the faces of one frame with the stages of ``worker`` (no tracking)."""
        return finish(self.analyse_steps(frame, worker))

    def analyse_steps(self, frame: Frame, worker: int = 0) -> Generator[None, None, Analysis]:
        """``analyse`` in two steps, detect then crop and classify, with a pause between them
        (``edge.overlap.Work``): an overlapped run's calling thread hands on a frame another worker
        finished meanwhile rather than let it wait for the second step."""
        check_frame(frame)
        detector, classifier = self.workers[worker]
        start = perf_counter()
        detections = detector.detect(frame)
        detected = perf_counter()
        if not detections:
            return Analysis(detections, None, detected - start, 0.0, 0.0)
        yield
        resumed = perf_counter()
        image = frame.image_rgb
        crop = self.crop
        crops = [crop_face(image, detection.box_xyxy, crop) for detection in detections]
        load, infer = getattr(classifier, "load", None), getattr(classifier, "infer", None)
        if load is None or infer is None:  # a classifier without the split: all of it is "classify"
            prepared = perf_counter()
            raw = classifier.classify(crops)
        else:
            load(crops)
            prepared = perf_counter()
            raw = infer()
        raw = np.asarray(raw, np.float32)
        return Analysis(detections, raw, detected - start, prepared - resumed, perf_counter() - prepared)

    def _track(self, frame: Frame, analysis: Analysis) -> FrameResult:
        """Track and smooth the analysed faces of ``frame``: the work that needs the frames before it."""
        start = perf_counter()
        detections, raw = analysis.detections, analysis.raw
        timings = self.timings
        if timings is not None:
            timings["detect"] = analysis.detect_s
            timings["preprocess"] = analysis.preprocess_s
            timings["classify"] = analysis.classify_s
        if raw is None:
            self.tracker.update(())
            self.smoother.retain(self.tracker.active_ids)
            result = FrameResult(frame.index, frame.timestamp_ms, (), self.labels)
            if timings is not None:
                timings["track"] = perf_counter() - start
            return result
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

        ``overlap`` reads, detects and classifies the next frames on worker
        threads while this thread tracks this one and hands it on
        (``edge.overlap``): more frames per second on two or more cores, the
        same results in the same order. One pair of ``workers`` works on a
        thread of its own; with several, each other pair has a thread and,
        when ``caller_works``, this thread works with the first pair whenever
        the next result is not ready: the most frames per second, but a frame
        another worker finished meanwhile waits for the step this thread is
        in (``analyse_steps``: detect, then crop and classify).
        Otherwise the first pair has a thread too and this one only tracks
        and hands on: frames come out after their own time, a lower p95
        latency for a few % fewer frames per second. ``deliver`` hands
        frames on sooner than either, where no window is drawn.
        ``timings`` then also gets ``decode`` (reading the frame) and
        ``started`` (``perf_counter()`` when the frame was asked for).
        """
        independent = _independent(frames, independent)
        if not overlap:
            for frame in frames:
                if independent:
                    self.reset()
                yield frame, self.process(frame)
            return
        for item in processed_ahead(frames, self._works(), in_caller=self.caller_works, cores=self.cores):
            yield item.frame, self._track_processed(item, independent)

    def deliver(
        self,
        frames: Iterable[Frame],
        handle: Callable[[Frame, FrameResult], None],
        *,
        independent: bool | None = None,
        overlap: bool = False,
        in_this_thread: bool = False,
    ) -> None:
        """Call ``handle(frame, result)`` for every frame of a source, in order, one call at a time.

        Sequentially, overlapped with one worker, or ``in_this_thread`` (a live
        window is drawn by the thread that opened it), it does what iterating
        ``frames_and_results`` does, in this thread. Otherwise, overlapped with
        several workers, each frame is tracked and handed to ``handle`` by
        whichever worker finished it (this thread or a worker's), as soon as
        the frames before it are (``edge.overlap.DeliveringWorkers``): a
        finished frame waits neither for the step this thread is in nor for a
        thread to wake up, so frames come out sooner for the same frames per
        second; ``handle`` must then be safe to call from a worker thread, and
        ``caller_works`` only says whether this thread is one of the workers or
        waits for them. An error raised by ``handle`` stops the workers before
        it is raised here.
        """
        independent = _independent(frames, independent)
        if not overlap or len(self.workers) == 1 or in_this_thread:
            results = self.frames_and_results(frames, independent=independent, overlap=overlap)
            with contextlib.closing(results):  # the workers stop before an error of handle leaves here
                for frame, result in results:
                    handle(frame, result)
            return

        def track_and_handle(item: Processed[Analysis]) -> None:
            handle(item.frame, self._track_processed(item, independent))

        DeliveringWorkers(frames, self._works(), track_and_handle, in_caller=self.caller_works,
                          cores=self.cores).run()

    def _works(self) -> list[Callable[[Frame], Generator[None, None, Analysis]]]:
        """One work function per worker for ``edge.overlap``: ``analyse_steps`` with its stages."""
        return [functools.partial(self.analyse_steps, worker=index) for index in range(len(self.workers))]

    def _track_processed(self, item: Processed[Analysis], independent: bool) -> FrameResult:
        """Track a frame a worker analysed; ``timings`` also gets when it was asked for and its decode."""
        if independent:
            self.reset()
        if self.timings is not None:
            self.timings.update(decode=item.decode_s, started=item.started)
        return self._track(item.frame, item.value)

    def reset(self) -> None:
        """Forget tracks and smoothing state (before an unrelated stream)."""
        self.tracker.reset()
        self.smoother.reset()

    def close(self) -> None:
        """Release the detectors and classifiers built by ``from_options``; safe to call twice."""
        owned, self._owned = self._owned, []
        for part in owned:
            part.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
