"""EmotionClassifier: crops go through the same quantization as ``predict``, batched or not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.classifier import EmotionClassifier, resize_to
from edge.model_spec import ModelSpec
from edge.pipeline import SHIPPED_MODELS, shipped_model_dir


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    with EmotionClassifier.from_dir(tiny_model_dir, num_threads=1) as model:
        yield model


def _crops(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (200, 300, 3), np.uint8)
    boxes = [(0, 0, 120, 130), (40, 50, 100, 110), (150, 60, 190, 90), (10, 100, 40, 130)]  # larger and smaller than 48
    return [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes[:count]]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_model_loads_with_the_same_input_contract(name):
    accurate = ModelSpec.load(shipped_model_dir())
    with EmotionClassifier.from_dir(shipped_model_dir(name), num_threads=1) as model:  # checks its sha256
        assert model.variant.quantization == "int8" and model.variant.passed_gate
        assert (model.spec.labels, model.spec.input_shape, model.spec.crop) == (
            accurate.labels, accurate.input_shape, accurate.crop
        )
        probabilities = model.classify(_crops(4))
    assert probabilities.shape == (4, len(accurate.labels))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.01)


def test_classify_equals_predict_on_prepared_crops(classifier):
    crops = _crops(4)
    prepared = np.stack([classifier.prepare(crop) for crop in crops])
    assert prepared.shape == (4, 48, 48, 1) and prepared.dtype == np.uint8
    np.testing.assert_array_equal(classifier.classify(crops), classifier.predict(prepared))
    # the float path of predict (no pixel table) gives the same numbers
    np.testing.assert_allclose(classifier.predict(prepared.astype(np.float32)), classifier.predict(prepared))


def test_batches_of_changing_size_match_one_face_at_a_time(classifier):
    crops = _crops(4, seed=1)
    one_by_one = np.concatenate([classifier.classify([crop]) for crop in crops])
    for size in (3, 1, 4, 2):
        np.testing.assert_allclose(classifier.classify(crops[:size]), one_by_one[:size], atol=1e-6)
    assert classifier.classify([]).shape == (0, len(classifier.labels))


def test_pixel_table_matches_the_quantization_formula(classifier):
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(classifier._pixel_table, classifier._quantize(pixels))


def test_bad_crops_are_refused(classifier):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        classifier.classify([np.zeros((10, 10), np.uint8)])


def test_a_closed_classifier_says_so(tiny_model_dir):
    model = EmotionClassifier.from_dir(tiny_model_dir, num_threads=1)
    model.close()
    model.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        model.classify(_crops(1))


def _texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Grey detail at every scale down to two pixels: what a resize that skips pixels gets wrong."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width), np.uint8).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 1.0)
    return np.clip((blurred - blurred.mean()) * 4 + 128, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width, height", [(60, 60), (150, 150), (207, 206), (500, 500), (800, 450), (400, 150)])
def test_resize_to_stays_close_to_the_direct_area_resize(width, height):
    image = _texture(width, height)
    resized = resize_to(image, (48, 48))
    direct = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA)
    difference = np.abs(resized.astype(np.int16) - direct)
    assert resized.shape == (48, 48) and resized.dtype == np.uint8
    # a plain bilinear resize lies 30 to 55 grey levels away on average from 200 pixels up
    assert difference.max() <= 8 and difference.mean() <= 2.0, (difference.max(), difference.mean())


def test_resize_to_enlarges_small_crops_bilinearly_and_keeps_colour():
    small = _texture(30, 40)
    np.testing.assert_array_equal(resize_to(small, (48, 48)), cv2.resize(small, (48, 48)))
    colour = np.dstack([_texture(300, 300, seed) for seed in range(3)])
    assert resize_to(colour, (48, 48)).shape == (48, 48, 3)
