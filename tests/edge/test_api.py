from __future__ import annotations

import subprocess
import sys

import pytest

import edge


@pytest.mark.parametrize("name", edge.__all__)
def test_public_names_resolve(name):
    assert getattr(edge, name) is not None


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        edge.no_such_thing  # noqa: B018


def test_importing_edge_is_light():
    code = (
        "import sys, edge, edge.model_spec; "
        "print(sorted(m for m in ('cv2', 'mediapipe', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
