"""Emotion classification of face crops with LiteRT, driven by the manifest.

This is the single inference path of the project: the live runtime calls it on
detector crops and ``export`` calls it to verify every exported variant, so the
accuracy measured at export time is the accuracy of the code that runs live.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edge.errors import ManifestError
from edge.model_spec import ModelSpec, TensorSpec, VariantSpec, sha256_of

_NUMPY_DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8}


def _check_tensor(detail: dict, expected: TensorSpec, what: str, model_path: Path) -> None:
    """Refuse a model whose tensor disagrees with the manifest."""
    actual_dtype = np.dtype(detail["dtype"]).name
    if actual_dtype != expected.dtype:
        raise ManifestError(
            f"{model_path.name} has {what} dtype {actual_dtype} but the manifest says "
            f"{expected.dtype}; re-export the model"
        )
    scale, zero_point = detail["quantization"]
    if expected.quantized and not np.isclose(scale, expected.scale, rtol=1e-5):
        raise ManifestError(
            f"{model_path.name} has {what} scale {scale} but the manifest says {expected.scale}"
        )
    if expected.quantized and int(zero_point) != expected.zero_point:
        raise ManifestError(
            f"{model_path.name} has {what} zero point {zero_point} but the manifest says "
            f"{expected.zero_point}"
        )


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height): area-averaged when shrinking, bilinear when enlarging.

    OpenCV's area resize by a fractional factor is slow: 0.05 ms for a
    207-pixel face to 48x48, three times its colour conversion, and 0.24 ms
    for a 500-pixel one (a 1080p camera's face), where halving is fast. A crop
    more than 4 times the size on both axes is therefore resized bilinearly to
    ``size`` times the power of two just below it (a factor of at most 2: every
    pixel still counts) and halved from there, 1.4 to 2.8 times faster (0.036
    and 0.085 ms) and within a few grey levels of the direct area resize
    (``tests/edge/test_classifier.py``). With one halving the bilinear step
    weighs pixels too unevenly for what it saves: smaller crops resize directly.
    """
    width, height = size
    image_height, image_width = image.shape[:2]
    if image_height <= height and image_width <= width:
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    halvings = 0
    while image_height > height << (halvings + 1) and image_width > width << (halvings + 1):
        halvings += 1
    first = (width << halvings, height << halvings)
    if halvings < 2 or image_width > 2 * first[0] or image_height > 2 * first[1]:  # small, or long and thin
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    image = cv2.resize(image, first, interpolation=cv2.INTER_LINEAR)
    for _ in range(halvings):
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


class EmotionClassifier:
    """Classifies batches of face images with one exported variant.

    ``predict`` takes images already at the model's input size and colour mode
    (the form of a training set); ``classify`` takes RGB face crops of any size
    and resizes and converts them first (the form the detector produces).
    """

    def __init__(
        self,
        model_path: Path,
        spec: ModelSpec,
        variant: VariantSpec,
        *,
        num_threads: int | None = None,
        verify_hash: bool = True,
    ) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ManifestError(f"model file {model_path} named in the manifest does not exist")
        if verify_hash and variant.sha256 and sha256_of(model_path) != variant.sha256:
            raise ManifestError(
                f"{model_path} does not match the sha256 in its manifest; the file was changed "
                "after export or belongs to another export"
            )
        self.spec = spec
        self.variant = variant
        self.model_path = model_path
        try:
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        except ValueError as error:
            raise ManifestError(f"{model_path} is not a loadable TFLite model: {error}") from None
        self._interpreter.allocate_tensors()
        input_detail = self._interpreter.get_input_details()[0]
        output_detail = self._interpreter.get_output_details()[0]
        expected_input = (spec.input_height, spec.input_width, spec.channels)
        if tuple(input_detail["shape"][1:]) != expected_input:
            raise ManifestError(
                f"{model_path.name} expects input {tuple(int(v) for v in input_detail['shape'][1:])} "
                f"but the manifest says {expected_input}; re-export the model"
            )
        if int(output_detail["shape"][-1]) != spec.num_classes:
            raise ManifestError(
                f"{model_path.name} outputs {int(output_detail['shape'][-1])} classes but the "
                f"manifest lists {spec.num_classes} labels"
            )
        _check_tensor(input_detail, variant.input, "input", model_path)
        _check_tensor(output_detail, variant.output, "output", model_path)
        self._input_index = input_detail["index"]
        self._output_index = output_detail["index"]
        self._input_dtype = _NUMPY_DTYPES[variant.input.dtype]
        self._batch_size = int(input_detail["shape"][0])
        low, high = spec.input_range
        # Pixel p in [0, 255] maps to the model's input range, then to its quantized form.
        self._pixel_scale = (high - low) / 255.0
        self._pixel_offset = low
        # ... which depends on p alone: one table of 256 entries turns uint8 pixels into the input tensor.
        self._pixel_table = self._quantize(np.arange(256, dtype=np.uint8))
        self._input_tensor = self._interpreter.tensor(self._input_index)  # a view of the input buffer
        self._size = (spec.input_width, spec.input_height)

    @classmethod
    def from_dir(
        cls, model_dir: Path, variant: str | None = None, *, num_threads: int | None = None
    ) -> EmotionClassifier:
        """Open a variant of the export in ``model_dir`` (its manifest picks the default)."""
        model_dir = Path(model_dir)
        spec = ModelSpec.load(model_dir)
        chosen = spec.variant(variant)
        return cls(model_dir / chosen.file, spec, chosen, num_threads=num_threads)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def _quantize(self, pixels: np.ndarray) -> np.ndarray:
        values = pixels.astype(np.float32)
        if self._pixel_scale != 1.0 or self._pixel_offset != 0.0:
            values = values * self._pixel_scale + self._pixel_offset
        tensor = self.variant.input
        if tensor.quantized:
            info = np.iinfo(self._input_dtype)
            values = np.clip(np.round(values / tensor.scale + tensor.zero_point), info.min, info.max)
        return values.astype(self._input_dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        tensor = self.variant.output
        if tensor.quantized:
            return (raw.astype(np.float32) - tensor.zero_point) * tensor.scale
        return raw.astype(np.float32, copy=False)  # get_tensor() already returned a copy

    def _ensure_batch(self, size: int) -> None:
        if self._interpreter is None:
            raise RuntimeError(f"{self.model_path.name}: the classifier is closed")
        # Re-allocating happens only when the number of faces changes.
        if size != self._batch_size:
            self._interpreter.resize_tensor_input(
                self._input_index, [size, *self.spec.input_shape], strict=False
            )
            self._interpreter.allocate_tensors()
            self._input_tensor = self._interpreter.tensor(self._input_index)
            self._batch_size = size

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, num_classes) for images of shape (N, H, W[, C]) in 0..255."""
        images = np.asarray(images)
        if images.ndim == 3 and self.spec.channels == 1:
            images = images[..., np.newaxis]
        if images.ndim != 4 or images.shape[1:] != self.spec.input_shape:
            raise ValueError(
                f"predict expects images of shape (N, {', '.join(map(str, self.spec.input_shape))}); "
                f"got {images.shape}"
            )
        if len(images) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        self._ensure_batch(len(images))
        if images.dtype == np.uint8:
            self._interpreter.set_tensor(self._input_index, self._pixel_table[images])
        else:
            self._interpreter.set_tensor(self._input_index, self._quantize(images))
        return self.infer()

    def prepare(self, crop_rgb: np.ndarray) -> np.ndarray:
        """Resize an RGB uint8 face crop and convert it to the model's colour mode: (H, W, C) uint8."""
        if crop_rgb.ndim != 3 or crop_rgb.shape[2] != 3 or crop_rgb.dtype != np.uint8:
            raise ValueError(
                f"face crops must be HxWx3 uint8 RGB; got shape {crop_rgb.shape} {crop_rgb.dtype}"
            )
        if self.spec.channels == 1:
            # Grey first, then resize: both are weighted means of pixels, so the order changes
            # only rounding, and the resize then moves a third of the data.
            grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
            return resize_to(grey, self._size)[..., np.newaxis]
        return resize_to(crop_rgb, self._size)

    def load(self, crops_rgb: Sequence[np.ndarray]) -> None:
        """Prepare RGB face crops and write them, quantized, into the interpreter's input batch."""
        self._ensure_batch(len(crops_rgb))
        table = self._pixel_table
        batch = self._input_tensor()
        try:
            for row, crop in enumerate(crops_rgb):
                np.take(table, self.prepare(crop), out=batch[row])
        finally:
            del batch  # LiteRT refuses to run while a view of its buffers is alive

    def infer(self) -> np.ndarray:
        """Run the model on the loaded batch: class probabilities (N, num_classes) float32."""
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output_index))

    def classify(self, crops_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities for RGB face crops of any size, all in one interpreter call."""
        if len(crops_rgb) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        self.load(crops_rgb)
        return self.infer()

    def close(self) -> None:
        """Release the interpreter; safe to call twice."""
        self._input_tensor = None
        self._interpreter = None

    def __enter__(self) -> EmotionClassifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
