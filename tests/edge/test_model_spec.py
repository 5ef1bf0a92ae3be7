from __future__ import annotations

import pytest

from edge.errors import ManifestError
from edge.model_spec import ModelSpec

_BASE = {"labels": ["happy", "sad"], "input_height": 48, "input_width": 48}


@pytest.mark.parametrize(
    "change",
    [{"variants": []}, {"crop": [1.0]}, {"variants": {"int8": "model_int8.tflite"}}, {"labels": 5}],
)
def test_a_malformed_manifest_is_a_manifest_error(change):
    with pytest.raises(ManifestError, match="m.json is malformed"):
        ModelSpec.from_dict({**_BASE, **change}, source="m.json")
