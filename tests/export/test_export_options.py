from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.model_spec import CropSpec
from export.options import ALL_VARIANTS, ExportOptions, Quantization, parse_variants


def test_defaults_are_the_recommended_settings():
    options = ExportOptions()
    assert options.variants == ALL_VARIANTS == tuple(Quantization)
    assert options.representative_count == 300
    assert options.max_accuracy_drop == 1.0
    assert options.min_agreement == 0.98
    assert options.crop == CropSpec()
    assert options.force is False
    assert options.float_first_conv is True
    assert options.needs_representative_data


def test_variant_names_are_plain_strings_and_file_names():
    assert [q.value for q in Quantization] == ["float32", "float16", "dynamic", "int8"]
    assert Quantization("int8").file_name == "model_int8.tflite"
    assert Quantization.FLOAT16 == "float16"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float32", (Quantization.FLOAT32,)),
        ("float32, int8", (Quantization.FLOAT32, Quantization.INT8)),
        ("dynamic,float16,", (Quantization.DYNAMIC, Quantization.FLOAT16)),
        ("", ()),
    ],
)
def test_parse_variants(text, expected):
    assert parse_variants(text) == expected


def test_parse_variants_names_the_unknown_one():
    with pytest.raises(ConfigError, match=r"unknown variant 'int4'.*float32"):
        parse_variants("float32,int4")


def test_strings_become_quantizations_and_paths_become_paths():
    options = ExportOptions(variants=("int8", "float32"), test_dir="some/dir")
    assert options.variants == (Quantization.INT8, Quantization.FLOAT32)
    assert options.test_dir == Path("some/dir")
    assert not ExportOptions(variants=("float16",)).needs_representative_data


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"variants": ()}, "variants must name at least one"),
        ({"variants": ("int8", "int8")}, "must not repeat"),
        ({"variants": ("int4",)}, "unknown variant 'int4'"),
        ({"representative_count": 0}, "representative_count must be an integer >= 1; got 0"),
        ({"representative_count": 2.5}, "representative_count"),
        ({"test_limit": 0}, "test_limit"),
        ({"max_accuracy_drop": -0.5}, r"max_accuracy_drop .* got -0.5"),
        ({"min_agreement": 1.01}, r"min_agreement .* got 1.01.*did you mean"),
        ({"min_agreement": -0.1}, "min_agreement"),
        ({"num_threads": 0}, "num_threads"),
        ({"latency_runs": 0}, "latency_runs"),
        ({"warmup_runs": -1}, "warmup_runs"),
        ({"crop": {"scale": 1.2}}, "crop must be a CropSpec"),
        ({"float_first_conv": "no"}, "float_first_conv must be true or false; got 'no'"),
    ],
)
def test_invalid_options_name_the_field_and_value(overrides, match):
    with pytest.raises(ConfigError, match=match):
        ExportOptions(**overrides)


def test_replace_revalidates():
    with pytest.raises(ConfigError, match="max_accuracy_drop"):
        replace(ExportOptions(), max_accuracy_drop=500.0)


def test_options_module_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, export.options; assert 'tensorflow' not in sys.modules, 'TF imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
