"""tools/compare_events.py: two runs' faces paired by their boxes and compared."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tool_scripts import loaded_tool


@pytest.fixture(scope="module")
def tool():
    with loaded_tool("compare_events") as module:
        yield module


def _face(box, label="happy", score=0.9, happy=0.8):
    probs = {"happy": happy, "sad": round(1.0 - happy, 3)}
    top = max(probs, key=probs.get)
    return {"track_id": 1, "box_xyxy": list(box), "detection_score": score, "label": label,
            "confidence": probs[top], "raw_probs": probs, "smoothed_probs": probs}


def _write(path, frames):
    path.write_text("".join(json.dumps({"frame_index": index, "timestamp_ms": 40 * index, "faces": faces}) + "\n"
                            for index, faces in frames.items()))
    return path


def test_faces_are_paired_by_their_boxes_not_their_order(tool, tmp_path):
    left, right = (10, 10, 110, 110), (300, 10, 400, 110)
    a = _write(tmp_path / "a.jsonl", {
        0: [_face(left), _face(right, label="sad", happy=0.3)],
        1: [_face(left)],
        2: [_face(left)],  # a frame the other run does not have
    })
    b = _write(tmp_path / "b.jsonl", {
        0: [_face((302, 12, 401, 110), label="sad", happy=0.55, score=0.88), _face((11, 10, 110, 111))],
        1: [],  # the face was missed
    })
    figures = tool.compare(tool.read_events(a), tool.read_events(b)).to_dict()
    assert (figures["frames"], figures["faces_a"], figures["faces_b"], figures["paired"]) == (2, 3, 2, 2)
    assert figures["corner_px_max"] == 2 and figures["corner_px_mean"] == 1.5
    assert figures["corner_of_side_max"] == 0.02 and figures["score_max"] == 0.02
    assert figures["probability_max"] == 0.25 and figures["same_label"] == 2
    assert figures["same_top_class"] == 1  # happy on top of one frame: the smoothed label did not follow

    result = CliRunner().invoke(tool.main, [str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "2 frames in both runs; faces 3 in A, 2 in B, 2 paired" in result.output
    assert "labels: the same for 2 of 2 (100.0%)" in result.output


def test_boxes_that_barely_overlap_are_not_the_same_face(tool):
    a, b = [_face((0, 0, 100, 100))], [_face((60, 60, 160, 160))]
    assert tool.pair_faces(a, b, 0.5) == [] and len(tool.pair_faces(a, b, 0.05)) == 1


def test_a_file_that_is_not_events_is_named_with_its_line(tool, tmp_path):
    good = _write(tmp_path / "good.jsonl", {0: []})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"frame_index": 0, "faces": []}\n{"summary": true}\n')
    result = CliRunner().invoke(tool.main, [str(good), str(bad)])
    assert result.exit_code == 1 and "bad.jsonl, line 2: not an event of `ers run`" in result.output
    assert "Traceback" not in result.output
