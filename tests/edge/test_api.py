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


def test_mediapipe_is_imported_only_through_the_guard():
    import re
    from pathlib import Path

    pattern = re.compile(r"^\s*(import mediapipe|from mediapipe)", re.MULTILINE)
    offenders = [
        path.name
        for path in Path(edge.__file__).parent.glob("*.py")
        if path.name != "_mediapipe.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "import mediapipe through edge._mediapipe.import_mediapipe()"
