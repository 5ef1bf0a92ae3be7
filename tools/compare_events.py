"""How far two runs of ``ers run`` on the same source disagree, face by face.

Two settings that should give nearly the same output (two detector engines,
``--trim-letterbox``, two model variants) are compared on their
``events.jsonl``: each frame's faces are paired by their boxes (the best
overlap first, IoU at least ``--min-iou``), and the pairs' box corners, scores,
labels and probabilities are compared.

    ers run clip.mp4 --detector-engine litert --no-video --out-dir runs/square
    ers run clip.mp4 --detector-engine litert --trim-letterbox --no-video --out-dir runs/trimmed
    python tools/compare_events.py runs/square/events.jsonl runs/trimmed/events.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from edge.tracking import iou_matrix


def read_events(path: Path) -> dict[int, list[dict[str, Any]]]:
    """The faces of every frame of an ``events.jsonl``, by frame index."""
    frames: dict[int, list[dict[str, Any]]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
            frames[int(event["frame_index"])] = list(event["faces"])
        except (ValueError, KeyError, TypeError):
            raise click.ClickException(f"{path}, line {number}: not an event of `ers run` (events.jsonl)") from None
    return frames


def pair_faces(faces_a: list[dict[str, Any]], faces_b: list[dict[str, Any]], min_iou: float
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Faces of one frame paired across the runs, the most overlapping pair first."""
    if not faces_a or not faces_b:
        return []
    overlaps = iou_matrix([face["box_xyxy"] for face in faces_a], [face["box_xyxy"] for face in faces_b])
    pairs = []
    while overlaps.size and overlaps.max() >= min_iou:
        a, b = np.unravel_index(int(overlaps.argmax()), overlaps.shape)
        pairs.append((faces_a[a], faces_b[b]))
        overlaps[a, :] = overlaps[:, b] = -1.0
    return pairs


@dataclass
class Comparison:
    """What the paired faces of two runs differ by."""

    frames: int = 0  # frames in both runs
    faces_a: int = 0
    faces_b: int = 0
    corner_px: list[float] = field(default_factory=list)  # largest corner difference per pair
    sides_px: list[float] = field(default_factory=list)  # the first run's box width per pair
    score: list[float] = field(default_factory=list)
    probability: list[float] = field(default_factory=list)  # largest raw probability difference per pair
    same_label: int = 0
    same_top_class: int = 0

    def add(self, face_a: dict[str, Any], face_b: dict[str, Any]) -> None:
        self.corner_px.append(max(abs(a - b) for a, b in zip(face_a["box_xyxy"], face_b["box_xyxy"])))
        self.sides_px.append(face_a["box_xyxy"][2] - face_a["box_xyxy"][0])
        self.score.append(abs(face_a["detection_score"] - face_b["detection_score"]))
        raw_a, raw_b = face_a["raw_probs"], face_b["raw_probs"]
        self.probability.append(max(abs(raw_a[name] - raw_b.get(name, 0.0)) for name in raw_a))
        self.same_label += face_a["label"] == face_b["label"]
        self.same_top_class += max(raw_a, key=raw_a.get) == max(raw_b, key=raw_b.get)

    def to_dict(self) -> dict[str, Any]:
        pairs = len(self.corner_px)
        corner = np.asarray(self.corner_px or [0.0])
        return {
            "frames": self.frames, "faces_a": self.faces_a, "faces_b": self.faces_b, "paired": pairs,
            "corner_px_mean": round(float(corner.mean()), 2), "corner_px_max": float(corner.max()),
            "corner_of_side_max": round(float(max((c / s for c, s in zip(self.corner_px, self.sides_px) if s > 0),
                                                  default=0.0)), 4),
            "score_max": round(max(self.score, default=0.0), 4),
            "probability_max": round(max(self.probability, default=0.0), 4),
            "probability_mean": round(float(np.mean(self.probability)) if pairs else 0.0, 4),
            "same_label": self.same_label, "same_top_class": self.same_top_class,
        }


def compare(frames_a: dict[int, list[dict[str, Any]]], frames_b: dict[int, list[dict[str, Any]]],
            min_iou: float = 0.5) -> Comparison:
    """The faces of the frames both runs have, paired and compared."""
    result = Comparison()
    for index in sorted(frames_a.keys() & frames_b.keys()):
        result.frames += 1
        result.faces_a += len(frames_a[index])
        result.faces_b += len(frames_b[index])
        for face_a, face_b in pair_faces(frames_a[index], frames_b[index], min_iou):
            result.add(face_a, face_b)
    return result


@click.command()
@click.argument("events_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("events_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--min-iou", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="Least overlap of two boxes taken for the same face.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(events_a: Path, events_b: Path, min_iou: float, as_json: bool) -> None:
    """Compare the faces of two runs' events.jsonl (EVENTS_A against EVENTS_B)."""
    figures = compare(read_events(events_a), read_events(events_b), min_iou).to_dict()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    paired = figures["paired"] or 1
    click.echo(
        f"{figures['frames']} frames in both runs; faces {figures['faces_a']} in A, {figures['faces_b']} in B, "
        f"{figures['paired']} paired (IoU >= {min_iou:g})\n"
        f"box corners: {figures['corner_px_mean']:.2f} px apart on average, at most {figures['corner_px_max']:g} "
        f"({100 * figures['corner_of_side_max']:.1f}% of the box's width at most)\n"
        f"detection scores: at most {figures['score_max']:.4f} apart\n"
        f"labels: the same for {figures['same_label']} of {figures['paired']} "
        f"({100 * figures['same_label'] / paired:.1f}%); most probable class before smoothing: the same for "
        f"{figures['same_top_class']} ({100 * figures['same_top_class'] / paired:.1f}%)\n"
        f"probabilities: at most {figures['probability_max']:.3f} apart ({figures['probability_mean']:.3f} "
        "on average, the largest class difference of each face)"
    )


if __name__ == "__main__":
    main()
