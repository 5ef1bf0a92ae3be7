"""EmotionClassifier: crops go through the same quantization as ``predict``, batched or not."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classifier import EmotionClassifier


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    with EmotionClassifier.from_dir(tiny_model_dir, num_threads=1) as model:
        yield model


def _crops(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (200, 300, 3), np.uint8)
    boxes = [(0, 0, 120, 130), (40, 50, 100, 110), (150, 60, 190, 90), (10, 100, 40, 130)]  # larger and smaller than 48
    return [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes[:count]]


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
