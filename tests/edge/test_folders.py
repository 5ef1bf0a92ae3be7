"""Output folders: created where they can be, and a file in the way named where they cannot."""

from __future__ import annotations

import re

import pytest

from edge.errors import SinkError
from edge.folders import make_folder
from edge.pipeline import PipelineOptions
from edge.runner import RunOptions, new_run_dir, run
from edge.sinks import ImageDirSink, JsonlSink, VideoFileSink, write_json


def test_a_folder_is_created_with_its_parents_and_one_already_there_is_fine(tmp_path):
    folder = tmp_path / "a" / "b"
    assert make_folder(folder, "x") == folder and folder.is_dir()
    assert make_folder(str(folder), "x") == folder


@pytest.mark.parametrize("below", ["", "b", "b/c"])
def test_a_file_on_the_path_is_named_whatever_its_depth(tmp_path, below):
    blocking = tmp_path / "a_file"
    blocking.write_text("x")
    folder = blocking / below if below else blocking
    says = f"cannot write the things {folder}: {blocking} is a file, not a folder"
    with pytest.raises(SinkError, match=f"^{re.escape(says)}$"):
        make_folder(folder, f"the things {folder}")
    assert blocking.read_text() == "x"


def test_every_output_of_the_runtime_names_the_file_in_its_way(tmp_path, tiny_model_dir, five_frame_video):
    blocking = tmp_path / "a_file"
    blocking.write_text("x")
    says = f"{blocking} is a file, not a folder"
    for opening in (lambda: JsonlSink(blocking / "events.jsonl"), lambda: VideoFileSink(blocking / "v.mp4", 30.0),
                    lambda: ImageDirSink(blocking / "images"), lambda: write_json(blocking / "r.json", {}, "the report"),
                    lambda: new_run_dir(blocking / "runs")):
        with pytest.raises(SinkError, match=re.escape(says)):
            opening()
    for out_dir in (blocking, blocking / "run"):
        options = RunOptions(out_dir=out_dir, pipeline=PipelineOptions(model_dir=tiny_model_dir), display=False)
        with pytest.raises(SinkError, match=re.escape(f"cannot write the output folder {out_dir}: {says}")):
            run(five_frame_video, options)
