"""tools/thread_cost.py: one frame loop alone, two in threads and two in processes, each timed."""

from __future__ import annotations

import os
import re

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from edge_testing import synthetic_frames, write_video

from tool_scripts import TOOLS, loaded_tool

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="the tool keeps each loop to one of 2 cores (Linux's sched_setaffinity)",
)


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("thread_cost") as module:
        yield module


def test_every_arrangement_prints_its_loops_times(tool, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))  # a spawned process imports the loop from the tool by name
    # 30 frames: the worker processes loop it under the real MIN_PLAY_FRAMES, not the tests' lowered one
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64) * 5, fps=10.0)
    result = CliRunner().invoke(tool.main, ["--clip", str(clip), "--detector-engine", "litert",
                                            "--frames", "100", "--warmup", "2", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"^(\w+)\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+)$", result.output, flags=re.M)
    assert [row[0] for row in rows] == ["alone", "threads", "processes"]
    for _, p50, p95, sleeps in rows:
        assert 0 < float(p50) <= float(p95) and float(sleeps) >= 0
    rounds = re.findall(r"^round 1/1, (\w+): (.*)$", result.output, flags=re.M)
    loops = [(name, times.count("p50")) for name, times in rounds]
    assert loops == [("alone", 1), ("threads", 2), ("processes", 2)]


def test_one_loop_times_its_frames_on_its_core(tool, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64), fps=10.0)
    core = sorted(os.sched_getaffinity(0))[-1]
    times = tool.frame_loop(core, clip, "litert", frames=20, warmup=4, start=None)  # the clip plays 4 times
    assert 0 < times.p50_ms <= times.p95_ms
    assert times.sleeps_per_frame is None or times.sleeps_per_frame >= 0


def test_a_thread_whose_loop_fails_is_named_and_the_other_stops_waiting(tool, tmp_path, monkeypatch):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64), fps=10.0)
    cores = tuple(sorted(os.sched_getaffinity(0))[:2])
    real_pinned = tool.pinned

    def pinned(core):
        if core == cores[1]:
            raise RuntimeError("no such core")
        return real_pinned(core)

    monkeypatch.setattr(tool, "pinned", pinned)
    with pytest.raises(click.ClickException, match=rf"core {cores[1]}: RuntimeError: no such core") as failed:
        tool.run_arrangement("threads", cores, clip, "litert", 100, 0)
    assert f"core {cores[0]}: BrokenBarrierError" in str(failed.value)  # it waited for the other at the start


@pytest.mark.parametrize("arrangement", ["alone", "processes"])
def test_a_loop_that_fails_alone_or_in_a_process_says_why(tool, tmp_path, monkeypatch, arrangement):
    monkeypatch.syspath_prepend(str(TOOLS))
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64), fps=10.0)
    cores = tuple(sorted(os.sched_getaffinity(0))[:2])
    with pytest.raises(click.ClickException, match=r"a frame loop failed: core \d+: .*bad engine"):
        tool.run_arrangement(arrangement, cores, clip, "bad engine", 100, 0)


@pytest.fixture()
def call_clock_restored(tool, monkeypatch):
    """The tool wraps OpenCV's and LiteRT's calls for good in its process; here, for one test."""
    for name in tool.TIMED_OPENCV:
        monkeypatch.setattr(tool.cv2, name, getattr(tool.cv2, name))
    monkeypatch.setattr(tool.Interpreter, "invoke", tool.Interpreter.invoke)


def test_by_call_splits_a_frame_into_the_calls_that_let_go_of_the_gil(tool, tmp_path, call_clock_restored):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64), fps=10.0)
    core = sorted(os.sched_getaffinity(0))[-1]
    times = tool.frame_loop(core, clip, "litert", frames=20, warmup=4, start=None, by_call=True)
    assert list(times.calls_ms) == list(tool.CALLS)
    # no face in these frames: the letterbox's warpAffine and the detector's invoke are all there is to time
    assert times.calls_ms["decode"] > 0 and times.calls_ms["opencv"] > 0 and times.calls_ms["invoke"] > 0
    assert times.calls_ms["rest"] > 0
    wrapped = tool.cv2.resize
    tool.install_call_clock()  # once a process: no wrapper around a wrapper
    assert tool.cv2.resize is wrapped and wrapped.counted
    tool.cv2.resize(np.zeros((8, 8), np.uint8), (4, 4))  # a call outside a counting loop is not counted
    assert tool._clock.seconds is None
    assert tool.frame_loop(core, clip, "litert", frames=20, warmup=4, start=None).calls_ms is None


def test_by_call_prints_each_arrangements_calls(tool, tmp_path, call_clock_restored):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64) * 5, fps=10.0)
    result = CliRunner().invoke(tool.main, ["--clip", str(clip), "--detector-engine", "litert", "--frames", "100",
                                            "--warmup", "2", "--rounds", "1", "--by-call",
                                            "--arrangement", "alone", "--arrangement", "threads"])
    assert result.exit_code == 0, result.output
    assert "decode    OpenCV    invoke  the rest" in result.output
    rows = re.findall(r"^(alone|threads)((?:\s+[\d.]+){4})$", result.output, flags=re.M)
    assert [name for name, _ in rows] == ["alone", "threads"]
    assert all(float(value) > 0 for _, values in rows for value in values.split())


def test_faces_loops_the_clip_with_its_face_tiled(tool, tmp_path, media, call_clock_restored):
    clip = tmp_path / "face.mp4"
    frames = [cv2.cvtColor(cv2.imread(str(media / "single_face.jpg")), cv2.COLOR_BGR2RGB)] * 30
    write_video(clip, frames, fps=10.0)
    result = CliRunner().invoke(tool.main, ["--clip", str(clip), "--detector-engine", "litert", "--frames", "100",
                                            "--warmup", "2", "--rounds", "1", "--faces", "3",
                                            "--arrangement", "alone"])
    assert result.exit_code == 0, result.output
    assert "face_faces3.mp4, detector on litert" in result.output
    assert re.search(r"^alone\s+[\d.]+ ms", result.output, flags=re.M)


def test_faces_names_a_clip_without_a_face(tool, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(6, 96, 64) * 5, fps=10.0)
    result = CliRunner().invoke(tool.main, ["--clip", str(clip), "--detector-engine", "litert", "--faces", "2"])
    assert result.exit_code != 0 and f"no face found in {clip}" in result.output and "Traceback" not in result.output
