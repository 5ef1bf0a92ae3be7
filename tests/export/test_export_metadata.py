"""The manifest written by export: round trip, and the runtime's refusal of one that lies."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from edge.classifier import EmotionClassifier
from edge.errors import ManifestError
from edge.model_spec import CropSpec, ModelSpec, TensorSpec
from export.metadata import build_model_spec, build_variant_spec, color_mode_of, default_variant_of
from export.options import Quantization


@pytest.fixture
def export_copy(full_export, tmp_path):
    """A private copy of the full export that a test may tamper with."""
    return shutil.copytree(full_export.out_dir, tmp_path / "export")


def test_manifest_round_trips(full_export, tmp_path):
    spec = full_export.spec
    assert ModelSpec.load(full_export.out_dir) == spec
    assert ModelSpec.load(spec.save(tmp_path)) == spec
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_manifest_records_tensors_hashes_and_metrics(full_export):
    spec = full_export.spec
    for name, variant in spec.variants.items():
        assert variant.file == f"model_{name}.tflite" and variant.quantization == name
        assert set(variant.metrics) >= {"accuracy", "top3_accuracy", "weighted_f1", "agreement",
                                        "max_abs_diff", "latency_ms", "accuracy_drop_pp"}
        assert variant == build_variant_spec(full_export.out_dir / variant.file, Quantization(name),
                                             variant.metrics)
    assert spec.crop == CropSpec()
    assert len(spec.source_model_sha256) == 64


def test_every_variant_opens_in_the_runtime_classifier(full_export):
    for name in full_export.spec.variants:
        with EmotionClassifier.from_dir(full_export.out_dir, name) as classifier:
            probabilities = classifier.predict(np.zeros((2, 16, 16, 1), np.uint8))
        assert probabilities.shape == (2, 4)


def rewrite_manifest(export_dir, **changes) -> ModelSpec:
    spec = dataclasses.replace(ModelSpec.load(export_dir), **changes)
    spec.save(export_dir)
    return ModelSpec.load(export_dir)


def test_classifier_refuses_a_manifest_with_the_wrong_label_count(export_copy):
    rewrite_manifest(export_copy, labels=("a", "b", "c"))
    with pytest.raises(ManifestError, match="outputs 4 classes but the manifest lists 3 labels"):
        EmotionClassifier.from_dir(export_copy)


def test_classifier_refuses_a_manifest_with_the_wrong_input_size(export_copy):
    rewrite_manifest(export_copy, input_height=20, input_width=20)
    with pytest.raises(ManifestError, match=r"expects input \(16, 16, 1\) but the manifest says \(20, 20, 1\)"):
        EmotionClassifier.from_dir(export_copy, "float32")


def test_classifier_refuses_a_manifest_with_the_wrong_colour_mode(export_copy):
    rewrite_manifest(export_copy, color_mode="rgb")
    with pytest.raises(ManifestError, match=r"manifest says \(16, 16, 3\)"):
        EmotionClassifier.from_dir(export_copy)


def test_classifier_refuses_a_tampered_model_file(export_copy):
    path = export_copy / "model_int8.tflite"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="does not match the sha256 in its manifest"):
        EmotionClassifier.from_dir(export_copy, "int8")
    EmotionClassifier.from_dir(export_copy, "float32").close()  # the others are untouched


def test_classifier_refuses_a_variant_entry_pointing_at_another_file(export_copy):
    spec = ModelSpec.load(export_copy)
    swapped = dataclasses.replace(spec.variants["int8"], file="model_float32.tflite")
    rewrite_manifest(export_copy, variants={**spec.variants, "int8": swapped})
    with pytest.raises(ManifestError, match="sha256"):
        EmotionClassifier.from_dir(export_copy, "int8")


@pytest.fixture(scope="module")
def int8_throughout(tmp_path_factory, model_path, dataset_dir, fast_options):
    """The tiny model's int8 variant with int8 input and output tensors (no float first convolution)."""
    from export.api import export_model

    out_dir = tmp_path_factory.mktemp("exports") / "int8"
    return export_model(model_path, out_dir, fast_options(dataset_dir, variants=("int8",), float_first_conv=False))


@pytest.mark.parametrize(
    ("tensor", "change", "match"),
    [
        ("input", {"dtype": "float32", "scale": 0.0, "zero_point": 0}, "input dtype int8 but the manifest says float32"),
        ("input", {"scale": 0.5}, "input scale .* but the manifest says 0.5"),
        ("output", {"zero_point": 3}, "output zero point -128 but the manifest says 3"),
    ],
)
def test_classifier_refuses_wrong_quantization_parameters(int8_throughout, tmp_path, tensor, change, match):
    export_copy = shutil.copytree(int8_throughout.out_dir, tmp_path / "export")
    spec = ModelSpec.load(export_copy)
    variant = spec.variants["int8"]
    wrong = dataclasses.replace(getattr(variant, tensor), **change)
    rewrite_manifest(export_copy, variants={**spec.variants, "int8": dataclasses.replace(variant, **{tensor: wrong})})
    with pytest.raises(ManifestError, match=match):
        EmotionClassifier.from_dir(export_copy, "int8")


def test_classifier_refuses_a_float_input_the_manifest_calls_int8(export_copy):
    spec = ModelSpec.load(export_copy)
    variant = spec.variants["int8"]  # float32 input: its first convolution is float
    wrong = TensorSpec(dtype="int8", scale=1.0, zero_point=-128)
    rewrite_manifest(export_copy, variants={**spec.variants, "int8": dataclasses.replace(variant, input=wrong)})
    with pytest.raises(ManifestError, match="input dtype float32 but the manifest says int8"):
        EmotionClassifier.from_dir(export_copy, "int8")


def test_variant_spec_of_a_file_that_is_not_tflite_is_refused(tmp_path):
    (tmp_path / "model_int8.tflite").write_bytes(b"garbage")
    with pytest.raises(ManifestError, match="not a loadable TFLite model"):
        build_variant_spec(tmp_path / "model_int8.tflite", Quantization.INT8)


@pytest.mark.parametrize(
    ("names", "default"),
    [
        (("float32", "float16", "dynamic", "int8"), "int8"),
        (("float32", "float16", "dynamic"), "dynamic"),
        (("float32", "float16"), "float16"),
        (("float32",), "float32"),
    ],
)
def test_default_variant(names, default):
    assert default_variant_of(names) == default


@pytest.mark.parametrize(("channels", "mode"), [(1, "grayscale"), (3, "rgb")])
def test_color_mode_of(channels, mode):
    assert color_mode_of(channels) == mode


def test_color_mode_of_other_channel_counts_is_refused():
    with pytest.raises(ManifestError, match="got 4"):
        color_mode_of(4)


def test_build_model_spec_carries_the_crop_contract(full_export):
    crop = CropSpec(scale=1.3, shift_y=0.1)
    spec = build_model_spec(labels=("a", "b", "c", "d"), input_shape=(16, 16, 1), crop=crop,
                            source_model_sha256="0" * 64, variants=full_export.spec.variants)
    assert spec.crop == crop and spec.default_variant == "int8"
    assert spec.variants["int8"].input == TensorSpec(**dataclasses.asdict(full_export.spec.variants["int8"].input))
