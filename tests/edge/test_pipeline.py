from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import edge.pipeline as pipeline_module
from edge_testing import LABELS, FakeClassifier, FakeDetector
from edge.detector import FaceDetectorOptions
from edge.errors import ConfigError, DataError, ManifestError
from edge.model_spec import CropSpec
from edge.pipeline import Pipeline, PipelineOptions, resolve_model_dir, shipped_model_dir
from edge.tracking import FaceTracker, ScoreSmoother, SmoothingOptions
from edge.types import FaceResult, Frame, FrameResult, SourceKind


def _frame(index: int = 0, image: np.ndarray | None = None) -> Frame:
    if image is None:
        image = np.full((100, 160, 3), 80, np.uint8)
    return Frame(image, index, index * 33)


def test_no_face_gives_an_empty_result():
    pipeline = Pipeline(FakeDetector([]), FakeClassifier(), crop=CropSpec())
    result = pipeline.process(_frame())
    assert result == FrameResult(0, 0, (), LABELS)
    assert pipeline.classifier.batches == []  # the classifier is not even called


def test_all_faces_of_a_frame_are_classified_in_one_call_with_the_manifest_crop():
    detector = FakeDetector([(10, 10, 30, 30), (100, 50, 140, 90), (150, 80, 170, 100)])
    classifier = FakeClassifier()
    pipeline = Pipeline(detector, classifier, crop=CropSpec(scale=2.0))
    result = pipeline.process(_frame())
    assert len(classifier.batches) == 1
    assert [crop.shape for crop in classifier.batches[0]] == [
        (40, 40, 3),
        (70, 80, 3),
        (30, 20, 3),
    ]  # last two cut by the edges
    assert [face.track_id for face in result.faces] == [1, 2, 3]
    face = result.faces[0]
    assert isinstance(face, FaceResult)
    assert face.box_xyxy == (10, 10, 30, 30)
    assert len(face.raw_probs) == len(face.smoothed_probs) == len(LABELS)
    assert face.label == LABELS[int(np.argmax(face.smoothed_probs))]
    assert face.confidence == pytest.approx(max(face.smoothed_probs))


def test_analyse_in_steps_pauses_between_detecting_and_classifying_and_gives_the_same_analysis():
    boxes = [(10, 10, 30, 30), (100, 50, 140, 90)]
    detector, classifier = FakeDetector(boxes), FakeClassifier()
    steps = Pipeline(detector, classifier).analyse_steps(_frame())
    next(steps)  # paused after detecting: nothing classified yet
    assert detector.calls == 1 and classifier.batches == []
    with pytest.raises(StopIteration) as end:
        next(steps)
    stepped = end.value.value
    whole = Pipeline(FakeDetector(boxes), FakeClassifier()).analyse(_frame())
    assert stepped.detections == whole.detections
    np.testing.assert_array_equal(stepped.raw, whole.raw)
    no_face = Pipeline(FakeDetector([]), FakeClassifier()).analyse_steps(_frame())
    with pytest.raises(StopIteration):  # nothing to classify: no pause
        next(no_face)


def test_tracks_and_smoothing_carry_over_between_frames():
    detector = FakeDetector({0: [(10, 10, 50, 50)], 1: [(12, 11, 52, 51)]})
    pipeline = Pipeline(
        detector, FakeClassifier(), FaceTracker(), ScoreSmoother(SmoothingOptions(alpha=0.5)), crop=CropSpec()
    )
    first = pipeline.process(_frame(0, np.full((100, 160, 3), 80, np.uint8)))
    second = pipeline.process(_frame(1, np.full((100, 160, 3), 81, np.uint8)))
    assert first.faces[0].track_id == second.faces[0].track_id == 1
    expected = 0.5 * np.array(second.faces[0].raw_probs) + 0.5 * np.array(first.faces[0].smoothed_probs)
    np.testing.assert_allclose(second.faces[0].smoothed_probs, expected, rtol=1e-6)
    assert second.faces[0].raw_probs != second.faces[0].smoothed_probs


def test_run_resets_state_between_independent_images():
    class Images(list):
        kind = SourceKind.IMAGES

    detector = FakeDetector([(10, 10, 50, 50)])
    pipeline = Pipeline(detector, FakeClassifier(), crop=CropSpec())
    results = list(pipeline.run(Images([_frame(0), _frame(1)])))
    assert [r.faces[0].track_id for r in results] == [1, 2]  # no identity across unrelated images
    assert results[1].faces[0].raw_probs == results[1].faces[0].smoothed_probs
    video = list(Pipeline(detector, FakeClassifier(), crop=CropSpec()).run([_frame(0), _frame(1)]))
    assert [r.faces[0].track_id for r in video] == [1, 1]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10), np.uint8), "HxWx3"),
        (np.zeros((10, 10, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_frames_are_refused_at_process(image, message):
    pipeline = Pipeline(FakeDetector([]), FakeClassifier(), crop=CropSpec())
    with pytest.raises(DataError, match=message):
        pipeline.process(Frame(image, 3, 0))


def test_resolve_model_dir_without_a_shipped_model(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_module, "DEFAULT_MODEL_DIR", tmp_path / "emotion")
    with pytest.raises(ManifestError, match="no default emotion model is installed.*--model-dir"):
        resolve_model_dir(None)
    with pytest.raises(ManifestError, match="does not exist"):
        resolve_model_dir(tmp_path / "nowhere")
    assert resolve_model_dir(tmp_path) == tmp_path


def test_shipped_models_by_name(tmp_path, monkeypatch):
    assert shipped_model_dir() == shipped_model_dir("accurate") == resolve_model_dir(None)
    assert shipped_model_dir("fast") == pipeline_module.FAST_MODEL_DIR
    with pytest.raises(ConfigError, match="'quick'.*accurate, fast"):
        shipped_model_dir("quick")
    monkeypatch.setattr(pipeline_module, "FAST_MODEL_DIR", tmp_path / "emotion_fast")
    with pytest.raises(ManifestError, match="no 'fast' emotion model is installed"):
        shipped_model_dir("fast")


def test_pipeline_options_are_validated():
    with pytest.raises(ConfigError, match="num_threads"):
        PipelineOptions(num_threads=0)
    for workers in (0, 1.5, True):
        with pytest.raises(ConfigError, match="workers"):
            PipelineOptions(workers=workers)
    with pytest.raises(ConfigError, match="caller_works must be True or False; got 'no'"):
        PipelineOptions(caller_works="no")
    assert PipelineOptions(model_dir="some/dir").model_dir == Path("some/dir")


@pytest.mark.parametrize(
    ("kind", "asked", "expected"),
    [
        (SourceKind.VIDEO, None, True),
        (SourceKind.IMAGES, None, True),
        (SourceKind.LIVE, None, False),  # frames come at camera rate: one thread, least latency
        ("live", True, True),
        (SourceKind.VIDEO, False, False),
    ],
)
def test_overlap_for_a_kind_of_source(kind, asked, expected):
    assert pipeline_module.overlap_for(kind, asked) is expected


def test_from_options_builds_a_detector_and_classifier_per_worker_and_closes_them(tiny_model_dir):
    with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, workers=3, caller_works=False)) as pipeline:
        assert pipeline.caller_works is False
        workers = pipeline.workers
        assert len(workers) == 3 and workers[0] == (pipeline.detector, pipeline.classifier)
        assert len({id(part) for pair in workers for part in pair}) == 6
        results = list(pipeline.run((_frame(i) for i in range(6)), overlap=True))
    assert [result.frame_index for result in results] == list(range(6))
    with pytest.raises(RuntimeError, match="closed"):
        workers[2][0].detect(_frame(7))
    with pytest.raises(RuntimeError, match="closed"):
        workers[2][1].classify([np.zeros((20, 20, 3), np.uint8)])


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [(2, 2, 1), (1, 2, 2), (1, 1, 1), (3, 2, 1), (1, 16, 2), (2, 8, 2)],
)
def test_each_model_gets_the_cores_shared_among_the_workers_at_most_two(workers, cores, threads):
    assert pipeline_module.model_threads_for(workers, SourceKind.VIDEO, cores, "litert") == threads
    assert pipeline_module.model_threads_for(workers, "images", cores, "litert") == threads
    assert pipeline_module.model_threads_for(workers, SourceKind.LIVE, cores, "litert") == 1  # camera rate


@pytest.mark.parametrize(("workers", "cores", "threads"), [(1, 2, 1), (2, 2, 1), (1, 3, 2), (2, 5, 2), (1, 16, 2)])
def test_beside_mediapipe_the_models_share_one_core_fewer(workers, cores, threads):
    assert pipeline_module.model_threads_for(workers, SourceKind.VIDEO, cores, "mediapipe") == threads
    assert pipeline_module.model_threads_for(workers, SourceKind.VIDEO, cores) == threads  # the default engine


@pytest.mark.parametrize("engine", ["mediapipe", "litert"])
def test_from_options_gives_a_sequential_pipeline_the_rule_s_model_threads_unless_told(tiny_model_dir, engine):
    detector = FaceDetectorOptions(engine=engine)
    with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, workers=1, detector=detector)) as pipeline:
        assert pipeline.model_threads == pipeline_module.model_threads_for(1, engine=engine)
        assert len(list(pipeline.run(_frame(i) for i in range(2)))) == 2
    with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, workers=1, detector=detector),
                               SourceKind.LIVE) as pipeline:
        assert pipeline.model_threads == 1
    told = PipelineOptions(model_dir=tiny_model_dir, workers=1, num_threads=1, detector=detector)
    with Pipeline.from_options(told) as pipeline:
        assert pipeline.model_threads == 1


def test_from_options_with_a_folder_without_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no model manifest"):
        Pipeline.from_options(PipelineOptions(model_dir=tmp_path))


def test_real_pipeline_on_synthetic_frames(tiny_model_dir):
    with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, num_threads=1)) as pipeline:
        assert pipeline.labels == LABELS
        assert pipeline.crop == CropSpec(scale=1.1, shift_y=0.05, square=True)
        results = list(pipeline.run(_frame(i) for i in range(3)))
        # the real classifier, fed crops from a fake box, in one batch
        pipeline.detector = FakeDetector([(10, 10, 60, 60), (70, 20, 120, 70)])
        result = pipeline.process(_frame(3))
    assert all(r.faces == () for r in results)
    assert len(result.faces) == 2
    assert sum(result.faces[0].raw_probs) == pytest.approx(1.0, abs=1e-4)
    pipeline.close()  # idempotent


def test_timings_record_every_stage_only_when_asked():
    pipeline = Pipeline(FakeDetector({1: [(10, 10, 50, 50)]}), FakeClassifier(), crop=CropSpec())
    assert pipeline.timings is None
    pipeline.process(_frame(0))  # nothing recorded, nothing fails
    pipeline.timings = timings = {}
    pipeline.process(_frame(1))
    assert set(timings) == set(Pipeline.STAGES) and all(value >= 0.0 for value in timings.values())
    pipeline.process(_frame(2, np.full((100, 160, 3), 80, np.uint8)))  # no face in frame 2
    assert timings["preprocess"] == timings["classify"] == 0.0 and timings["detect"] >= 0.0


def test_timings_split_a_real_classifier_into_preprocessing_and_the_model(tiny_model_dir):
    with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, num_threads=1)) as pipeline:
        pipeline.detector = FakeDetector([(10, 10, 60, 60), (70, 20, 120, 70)])
        untimed = pipeline.process(_frame(0))
        pipeline.reset()
        pipeline.timings = timings = {}
        timed = pipeline.process(_frame(0))
    # measuring changes nothing (but the track ids, which keep counting after reset)
    assert [(f.box_xyxy, f.raw_probs, f.label) for f in timed.faces] == [
        (f.box_xyxy, f.raw_probs, f.label) for f in untimed.faces
    ]
    assert timings["preprocess"] > 0.0 and timings["classify"] > 0.0


def test_a_variant_that_failed_the_export_gate_is_run_with_a_warning(tiny_model_dir, tmp_path, caplog):
    failed = tmp_path / "failed"
    shutil.copytree(tiny_model_dir, failed)
    manifest = json.loads((failed / "manifest.json").read_text())
    manifest["variants"]["float32"]["gate_failures"] = ["float32: accuracy 40.00% is 50.00 points below Keras"]
    (failed / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="edge.pipeline"):
        with Pipeline.from_options(PipelineOptions(model_dir=failed, workers=2)):
            pass
        with Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir, workers=2)):
            pass
    warnings = [record.getMessage() for record in caplog.records if record.name == "edge.pipeline"]
    assert warnings == [f"{failed}: its float32 variant failed the export gate, so it is not fit to deploy "
                        "(float32: accuracy 40.00% is 50.00 points below Keras); see report.md there"]


@pytest.mark.parametrize(("options", "says"), [
    ({"detector": {"model": "full"}}, "detector must be a FaceDetectorOptions"),
    ({"smoothing": 0.4}, "smoothing must be a SmoothingOptions"),
    ({"model_dir": 3}, "model_dir must be a folder path"),
    ({"num_threads": True}, "num_threads must be a whole number"),
])
def test_pipeline_options_of_the_wrong_type_are_refused(options, says):
    with pytest.raises(ConfigError, match=says):
        PipelineOptions(**options)


def test_a_model_dir_that_is_a_file_and_an_unknown_source_kind_say_so(tmp_path, tiny_model_dir):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ManifestError, match="a_file is a file"):
        resolve_model_dir(tmp_path / "a_file")
    with pytest.raises(ConfigError, match="source kind must be one of"):
        Pipeline.from_options(PipelineOptions(model_dir=tiny_model_dir), "movie")
