from __future__ import annotations

import re

import pytest

from edge.errors import ManifestError
from edge.model_spec import ModelSpec

_BASE = {"labels": ["happy", "sad"], "input_height": 48, "input_width": 48}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"variants": []}, "variants must be a JSON object; got []"),
        ({"crop": [1.0]}, "crop: must be a JSON object; got [1.0]"),
        ({"variants": {"int8": "model_int8.tflite"}}, "variant 'int8': must be a JSON object"),
        ({"labels": 5}, "labels must be a JSON list; got 5"),
        ({"labels": "abcdefgh"}, "labels must be a JSON list"),
        ({"labels": ["happy", 3]}, "labels must be a list of class names"),
        ({"input_range": "ab"}, "input_range must be a JSON list"),
        ({"input_range": [0]}, "input_range must be [low, high] with low < high; got [0]"),
        ({"input_range": [1, float("nan")]}, "input_range must be [low, high]"),
        ({"input_height": "48"}, "input_height and input_width must be whole numbers"),
        ({"crop": {"scale": "x"}}, "crop.scale must be a number; got 'x'"),
        ({"crop": {"square": "yes"}}, "crop.square must be true or false"),
        ({"crop": {"size": 2}}, "crop: unknown keys ['size']"),
        ({"default_variant": 3}, "default_variant must be text"),
        ({"extra": 1}, "unknown keys ['extra']"),
    ],
)
def test_a_malformed_manifest_is_a_manifest_error_naming_the_field(change, says):
    with pytest.raises(ManifestError, match=re.escape(f"m.json: {says}")):
        ModelSpec.from_dict({**_BASE, **change}, source="m.json")


def test_a_missing_key_is_named():
    with pytest.raises(ManifestError, match=re.escape("m.json: missing 'input_width'")):
        ModelSpec.from_dict({"labels": ["happy", "sad"], "input_height": 48}, source="m.json")


_VARIANT = {
    "file": "model_int8.tflite", "quantization": "int8", "size_bytes": 10, "sha256": "",
    "input": {"dtype": "int8", "scale": 1.0, "zero_point": -128}, "output": {"dtype": "int8", "scale": 0.00390625},
}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"file": None}, "file must name a file in the model folder; got None"),
        ({"file": "."}, "file must name a file in the model folder; got '.'"),
        ({"file": "../model_int8.tflite"}, "file must name a file in the model folder"),
        ({"input": {"dtype": "int8", "scale": "x"}}, "input scale must be a number >= 0; got 'x'"),
        ({"output": {"dtype": "int4"}}, "output dtype must be one of"),
        ({"output": {"dtype": "int8", "zero_point": 1.5}}, "output zero_point must be a whole number"),
        ({"output": "int8"}, "output must be a JSON object"),
        ({"size_bytes": -1}, "size_bytes must be a whole number >= 0"),
        ({"quantization": "int4"}, "variant quantization must be one of"),
    ],
)
def test_a_malformed_variant_is_named_with_its_field(change, says):
    variants = {"int8": {**_VARIANT, **change}}
    with pytest.raises(ManifestError, match=re.escape(f"m.json: variant 'int8': {says}")):
        ModelSpec.from_dict({**_BASE, "variants": variants}, source="m.json")


def test_a_variant_without_its_hash_is_named():
    variant = {key: value for key, value in _VARIANT.items() if key != "sha256"}
    with pytest.raises(ManifestError, match=re.escape("m.json: variant 'int8': missing 'sha256'")):
        ModelSpec.from_dict({**_BASE, "variants": {"int8": variant}}, source="m.json")


def test_a_well_formed_manifest_round_trips():
    spec = ModelSpec.from_dict({**_BASE, "variants": {"int8": _VARIANT}, "default_variant": "int8"})
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert "gate_failures" not in spec.to_dict()["variants"]["int8"]  # as manifests were before the field
    failed = ModelSpec.from_dict({**_BASE, "variants": {"int8": {**_VARIANT, "gate_failures": ["too far"]}}})
    assert failed.to_dict()["variants"]["int8"]["gate_failures"] == ["too far"]
    assert ModelSpec.from_dict(failed.to_dict()) == failed
    assert spec.variant().input.quantized and spec.variant().output.zero_point == 0
