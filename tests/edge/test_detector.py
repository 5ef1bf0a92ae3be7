from __future__ import annotations

import numpy as np
import pytest

from edge.detector import (
    DETECTOR_MODELS,
    DetectorModelName,
    FaceDetector,
    FaceDetectorOptions,
    RunningMode,
    load_detector_model,
)
from edge.errors import ConfigError, ManifestError
from edge.model_spec import sha256_of
from edge.types import Frame, SourceKind


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_detection_confidence": 1.5}, "min_detection_confidence"),
        ({"min_detection_confidence": -0.1}, "min_detection_confidence"),
        ({"min_suppression_threshold": 2}, "min_suppression_threshold"),
        ({"min_face_size": -1}, "min_face_size"),
        ({"min_face_size": 2.5}, "min_face_size"),
        ({"min_face_size": True}, "min_face_size"),
        ({"min_detection_confidence": True}, "min_detection_confidence"),
        ({"model": "tiny"}, "model"),
        ({"running_mode": "stream"}, "running_mode"),
        ({"engine": "tflite"}, "engine"),
        ({"engine": "litert", "trim_letterbox": "yes"}, "trim_letterbox"),
        ({"trim_letterbox": True}, "trim_letterbox needs the litert engine"),
    ],
)
def test_options_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        FaceDetectorOptions(**kwargs)


def test_options_accept_plain_strings_and_resolve_auto_per_source_kind():
    options = FaceDetectorOptions(model="auto", running_mode="auto")
    assert options.model is DetectorModelName.AUTO
    video = options.resolve(SourceKind.VIDEO)
    images = options.resolve("images")
    assert (video.model, video.running_mode) == (DetectorModelName.SHORT, RunningMode.VIDEO)
    assert (images.model, images.running_mode) == (DetectorModelName.FULL, RunningMode.IMAGE)
    explicit = FaceDetectorOptions(model="short").resolve(SourceKind.IMAGES)
    assert explicit.model is DetectorModelName.SHORT  # an explicit choice is kept


@pytest.mark.parametrize("name", [DetectorModelName.SHORT, DetectorModelName.FULL])
def test_shipped_models_match_their_pinned_hashes(name):
    model = DETECTOR_MODELS[name]
    assert model.path.is_file(), "run `python tools/fetch_blazeface.py`"
    assert sha256_of(model.path) == model.sha256
    assert (model.path.parent / "NOTICE").is_file()


def test_a_damaged_model_is_refused(tmp_path, monkeypatch):
    import edge.detector as detector_module

    (tmp_path / DETECTOR_MODELS[DetectorModelName.SHORT].file).write_bytes(b"tampered")
    monkeypatch.setattr(detector_module, "DETECTOR_MODELS_DIR", tmp_path)
    with pytest.raises(ManifestError, match="sha256"):
        load_detector_model(FaceDetectorOptions(model="short"))


def test_missing_custom_model_path_is_reported(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_detector_model(FaceDetectorOptions(model_path=tmp_path / "nope.tflite"))


@pytest.mark.parametrize("engine", ["mediapipe", "litert"])
def test_blank_frame_has_no_face_and_detector_closes_twice(engine):
    detector = FaceDetector(FaceDetectorOptions(engine=engine))
    assert detector.model is DetectorModelName.SHORT
    assert detector.detect(Frame(np.zeros((120, 160, 3), np.uint8), 0, 0)) == []
    detector.close()
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector.detect(Frame(np.zeros((120, 160, 3), np.uint8), 1, 1))


@pytest.mark.parametrize("engine", ["mediapipe", "litert"])
def test_video_mode_refuses_timestamps_that_do_not_increase(engine):
    with FaceDetector(FaceDetectorOptions(running_mode="video", engine=engine)) as detector:
        detector.detect(Frame(np.zeros((64, 64, 3), np.uint8), 0, 100))
        with pytest.raises(ValueError, match="timestamps must increase"):
            detector.detect(Frame(np.zeros((64, 64, 3), np.uint8), 1, 100))


@pytest.mark.parametrize("engine", ["mediapipe", "litert"])
def test_non_contiguous_frames_are_accepted(engine):
    image = np.zeros((64, 128, 3), np.uint8)[:, ::2]
    with FaceDetector(FaceDetectorOptions(running_mode="image", engine=engine)) as detector:
        assert detector.detect(Frame(image, 0, 0)) == []


def test_direct_c_calls_and_the_public_api_agree_on_real_faces(media):
    """The detector calls mediapipe's C functions itself; the public task API gives the same boxes."""
    import cv2

    from edge.detector import _DirectCalls

    names = ("multi_face.jpg", "single_face.jpg")
    images = [cv2.cvtColor(cv2.imread(str(media / name)), cv2.COLOR_BGR2RGB) for name in names]
    capture = cv2.VideoCapture(str(media / "single_face.mp4"))
    for _ in range(3):
        images.append(cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB))
    capture.release()
    for model in ("short", "full"):
        options = FaceDetectorOptions(model=model, running_mode="image")
        with FaceDetector(options) as direct, FaceDetector(options) as public:
            assert isinstance(direct._direct, _DirectCalls)
            public._direct = None  # the fallback: mediapipe's own Python API
            for index, image in enumerate(images):
                frame = Frame(image, index, index)
                assert direct.detect(frame) == public.detect(frame)
    with FaceDetector(FaceDetectorOptions(model="full", running_mode="image")) as detector:
        assert len(detector.detect(Frame(images[0], 0, 0))) == 5


def test_without_the_direct_entry_points_the_public_api_is_used(monkeypatch):
    from edge.detector import _DirectCalls

    monkeypatch.setattr(_DirectCalls, "__init__", lambda self, *args: (_ for _ in ()).throw(AttributeError("moved")))
    with FaceDetector(FaceDetectorOptions(running_mode="video")) as detector:
        assert detector._direct is None
        assert detector.detect(Frame(np.zeros((64, 64, 3), np.uint8), 0, 0)) == []
        with pytest.raises(ValueError, match="timestamps must increase"):
            detector.detect(Frame(np.zeros((64, 64, 3), np.uint8), 1, 0))
