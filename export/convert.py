"""Keras model -> SavedModel -> TFLite flatbuffer bytes, one quantization at a time.

Keras 3 models go through a SavedModel with one serving signature (a
``keras.export.ExportArchive`` calling the model with ``training=False``) and
``tf.lite.TFLiteConverter.from_saved_model``, the path that converts reliably. Converter failures become a ``ConversionError`` naming the
ops and layers TFLite cannot run, never a raw TensorFlow traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError

from edge.errors import DataError
from export.errors import ConversionError
from export.options import Quantization

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNSUPPORTED_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_OP_LOCATION = re.compile(r'fused\["(\w+):", "([^"@]+)@')
_LAYER_SUFFIX = re.compile(r"_\d+$")
IMAGE_CHANNELS = 4  # a first convolution reading at most this many channels reads the image


def find_augmentation_layers(model: tf.keras.Model | object) -> list[str]:
    """Names of Keras ``Random*`` layers (training-time augmentation) anywhere in ``model``."""
    found: list[str] = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__.startswith("Random"):
            found.append(f"{layer.name} ({type(layer).__name__})")
        found.extend(find_augmentation_layers(layer))
    return found


def without_identity_resizing(model: object) -> object:
    """``model`` with every ``Resizing`` layer that keeps its input's size replaced by ``Identity``.

    The trainer's models start with ``Resizing(image_size)``, as the seed's
    do, and their input already has that size: the layer changes nothing, yet
    TFLite keeps it as a RESIZE_BILINEAR op that the edge runtime would pay
    for on every face (about 4% of the int8 ``vgg``'s time). The copy shares
    every other layer, and so its weights, with ``model``; a model that cannot
    be cloned (subclassed) comes back as it is.
    """
    import keras

    def identity_if_unchanged(layer):
        if isinstance(layer, keras.layers.Resizing):
            try:
                size = tuple(layer.input.shape[-3:-1])
            except (AttributeError, ValueError):  # not called yet, or called on several inputs
                return layer
            if size == (layer.height, layer.width):
                return keras.layers.Identity(name=layer.name)
        return layer

    if not any(isinstance(layer, keras.layers.Resizing) for layer in getattr(model, "layers", [])):
        return model
    try:
        return keras.models.clone_model(model, clone_function=identity_if_unchanged)
    except (ValueError, TypeError):
        return model


def save_saved_model(model: object, directory: Path) -> Path:
    """Write the model's inference graph as a SavedModel into ``directory``.

    The serving function calls the model with ``training=False`` explicitly.
    Plain ``model.export`` (Keras 3.15) traces BatchNormalization in training
    mode when a Resizing layer precedes it, as in the trainer's models, and
    keeps MultiHeadAttention's dropout ops in the graph: the TFLite model then
    disagrees with Keras, or does not convert at all. Resizing layers that
    keep the size are left out (``without_identity_resizing``).
    """
    augmentation = find_augmentation_layers(model)
    if augmentation:
        raise ConversionError(
            f"the model contains augmentation layers {augmentation}, whose random ops TFLite "
            "cannot run; keep augmentation in the tf.data pipeline and save a model without them"
        )
    import keras

    model = without_identity_resizing(model)
    input_shape = tuple(model.inputs[0].shape)
    archive = keras.export.ExportArchive()
    archive.track(model)
    try:
        archive.add_endpoint(
            name="serve",
            fn=lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, *input_shape[1:]), tf.float32, name="images")],
        )
        archive.write_out(str(directory), verbose=False)
    except (ValueError, TypeError, NotImplementedError) as error:
        first_line = next((line for line in _ANSI.sub("", str(error)).splitlines() if line.strip()
                           and not line.startswith("Exception encountered")), str(error))
        raise ConversionError(
            f"the model cannot be traced for export ({type(error).__name__}: {first_line.strip()}); "
            "layers that call Python (py_function, numpy) or need unknown shapes cannot be exported"
        ) from None
    return Path(directory)


def _representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[np.newaxis].astype(np.float32)]

    return generate


def _check_representative(images: np.ndarray | None) -> np.ndarray:
    if images is None:
        raise DataError("int8 quantization needs representative images; got none")
    images = np.asarray(images)
    if images.ndim != 4:
        raise DataError(
            f"representative images must have shape (N, height, width, channels); got {images.shape}"
        )
    if len(images) == 0:
        raise DataError("representative images are empty; int8 calibration needs at least one image")
    return images


def _configure_float32(converter: tf.lite.TFLiteConverter, images: np.ndarray | None) -> None:
    return None


def _configure_float16(converter: tf.lite.TFLiteConverter, images: np.ndarray | None) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _configure_dynamic(converter: tf.lite.TFLiteConverter, images: np.ndarray | None) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _configure_int8(converter: tf.lite.TFLiteConverter, images: np.ndarray | None) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(_check_representative(images))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


_CONFIGURE = {
    Quantization.FLOAT32: _configure_float32,
    Quantization.FLOAT16: _configure_float16,
    Quantization.DYNAMIC: _configure_dynamic,
    Quantization.INT8: _configure_int8,
}


def describe_converter_error(message: str) -> str:
    """A one-paragraph account of a converter failure: unsupported ops and their layers."""
    message = _ANSI.sub("", message)
    ops = sorted(set(_UNSUPPORTED_OP.findall(message)))
    if ops:
        layers = sorted({
            _LAYER_SUFFIX.sub("", path.split("/")[1]) if path.count("/") >= 1 else path
            for op, path in _OP_LOCATION.findall(message) if op in ops
        })
        where = f" (in layers {layers})" if layers else ""
        return (
            f"TFLite has no builtin kernel for the ops {ops}{where}; replace those layers with "
            "TFLite-compatible ones (Keras Random* augmentation belongs in tf.data, not the model)"
        )
    lines = [line.strip() for line in message.splitlines() if "error:" in line]
    detail = lines[0].split("error:", 1)[1].strip() if lines else message.strip().splitlines()[0]
    return detail[:500]


def image_convolution(model_content: bytes) -> str | None:
    """The output tensor name of ``model_content``'s first CONV_2D when it reads at most
    ``IMAGE_CHANNELS`` channels (the image: grey, RGB or RGBA), else None."""
    from ai_edge_litert.interpreter import Interpreter  # the runtime's interpreter reads the graph

    interpreter = Interpreter(model_content=model_content)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():  # the public API lists tensors, not which op reads them
        if op["op_name"] == "CONV_2D":
            kernel_channels = int(tensors[op["inputs"][1]]["shape"][-1])  # kernels are OHWI
            return tensors[op["outputs"][0]]["name"] if kernel_channels <= IMAGE_CHANNELS else None
    return None


def _int8_with_float_image_convolution(converter: tf.lite.TFLiteConverter) -> bytes | None:
    """int8 conversion that keeps the convolution reading the image in float32; None when the
    model has none (its first convolution reads more than ``IMAGE_CHANNELS`` channels, or there is
    no convolution) or nothing else to quantize. The model then takes and gives float32 tensors.

    The converter calibrates once (``QuantizationDebugger``); the calibrated
    graph names the convolution, which is then left out of quantization.
    """
    debug = tf.lite.experimental
    debugger = debug.QuantizationDebugger(
        converter=converter, debug_dataset=converter.representative_dataset,
        debug_options=debug.QuantizationDebugOptions(model_debug_metrics=None),
    )
    name = image_convolution(debugger.calibrated_model)
    if name is None:
        return None
    try:
        debugger.options = debug.QuantizationDebugOptions(denylisted_nodes=[name], model_debug_metrics=None)
    except ValueError:  # it finds no quantized op to check: the convolution was all there was to quantize
        return None
    return debugger.get_nondebug_quantized_model()


def convert_to_tflite(
    saved_model_dir: Path,
    quantization: Quantization | str,
    representative_images: np.ndarray | None = None,
    *,
    float_first_conv: bool = True,
) -> bytes:
    """The ``.tflite`` flatbuffer of a SavedModel at the given quantization.

    ``representative_images`` (N, H, W, C), pixel values in 0..255, calibrate
    int8 activation ranges. int8 variants get int8 input and output tensors,
    except with ``float_first_conv`` when the first convolution reads the image
    (at most ``IMAGE_CHANNELS`` channels): that one stays float32, and so do the
    model's input and output tensors. XNNPACK's int8 kernels pad a
    convolution's kh x kw x channels (9 for a grey 3x3) to the width of their
    SIMD or AMX tiles: on an Intel Xeon with AMX the shipped network's first
    convolution (48x48 grey) took 78 us in int8 against 15 in float32, a
    quarter of the int8 file's 0.30 ms (``tools/layer_times.py``).
    """
    quantization = Quantization.parse(quantization)

    def configured() -> tf.lite.TFLiteConverter:
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        except (OSError, ValueError) as error:
            raise ConversionError(f"{saved_model_dir} is not a loadable SavedModel: {error}") from None
        _CONFIGURE[quantization](converter, representative_images)
        return converter

    converter = configured()
    try:
        if quantization is Quantization.INT8 and float_first_conv:
            content = _int8_with_float_image_convolution(converter)
            if content is not None:
                return bytes(content)
            converter = configured()  # calibrating changed the converter's settings
        return bytes(converter.convert())
    except (ConverterError, ValueError, RuntimeError) as error:
        # MLIR conversion raises ConverterError, int8 calibration RuntimeError/ValueError;
        # each becomes one message without the MLIR dump.
        raise ConversionError(
            f"{quantization.value} conversion failed: {describe_converter_error(str(error))}"
        ) from None
