from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from export_testdata import build_tiny_model, make_images

from edge.errors import DataError
from export.convert import (
    convert_to_tflite,
    describe_converter_error,
    find_augmentation_layers,
    image_convolution,
    save_saved_model,
)
from export.errors import ConversionError
from export.options import Quantization

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    keras.utils.set_random_seed(0)
    return save_saved_model(build_tiny_model(), tmp_path_factory.mktemp("sm") / "saved_model")


@pytest.mark.parametrize(
    ("quantization", "io_dtype"),
    [("float32", np.float32), ("float16", np.float32), ("dynamic", np.float32), ("int8", np.int8)],
)
def test_each_quantization_gives_a_loadable_model(saved_model, quantization, io_dtype):
    images, _ = make_images(5, seed=0)
    content = convert_to_tflite(saved_model, quantization, images if quantization == "int8" else None,
                                float_first_conv=False)
    assert isinstance(content, bytes) and len(content) > 1000
    interpreter = Interpreter(model_content=content)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape"][1:]) == (16, 16, 1) and out["shape"][-1] == 4
    assert inp["dtype"] == io_dtype and out["dtype"] == io_dtype
    if quantization == "int8":
        assert inp["quantization"][0] > 0 and out["quantization"][0] > 0


def _ops_with_kernel_dtypes(content: bytes) -> list[tuple[str, str | None]]:
    """(op name, its weights' dtype for convolutions, else None), in graph order."""
    interpreter = Interpreter(model_content=content)
    dtypes = {detail["index"]: np.dtype(detail["dtype"]).name for detail in interpreter.get_tensor_details()}
    return [(op["op_name"], dtypes[op["inputs"][1]] if op["op_name"] == "CONV_2D" else None)
            for op in interpreter._get_ops_details()]


def test_int8_keeps_the_convolution_reading_the_image_in_float32(saved_model):
    images, _ = make_images(20, seed=0)
    content = convert_to_tflite(saved_model, "int8", images)
    ops = _ops_with_kernel_dtypes(content)
    assert ops[:2] == [("CONV_2D", "float32"), ("QUANTIZE", None)]  # then int8 from there on
    assert [dtype for name, dtype in ops[2:] if name == "CONV_2D"] == ["int8"]
    interpreter = Interpreter(model_content=content)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == out["dtype"] == np.float32
    # the same function as the all-int8 file, within int8 rounding
    mixed = _tflite_predict(content, images.astype(np.float32))
    whole = convert_to_tflite(saved_model, "int8", images, float_first_conv=False)
    whole_interpreter = Interpreter(model_content=whole)
    in_scale, in_zero_point = whole_interpreter.get_input_details()[0]["quantization"]
    scale, zero_point = whole_interpreter.get_output_details()[0]["quantization"]
    quantized = _tflite_predict(whole, np.round(images / in_scale + in_zero_point).astype(np.int8))
    assert _ops_with_kernel_dtypes(whole)[0] == ("CONV_2D", "int8")
    np.testing.assert_allclose(mixed, (quantized.astype(np.float32) - zero_point) * scale, atol=0.05)


@pytest.mark.parametrize("first", ["wide_conv", "dense", "conv_alone"])
def test_int8_stays_int8_throughout_when_no_image_convolution_can_stay_float32(tmp_path, first):
    keras.utils.set_random_seed(0)
    channels = 8 if first == "wide_conv" else 1  # 8 channels are not an image's
    inputs = keras.Input((16, 16, channels))
    if first == "conv_alone":  # the image's convolution is all there is to quantize
        outputs = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    else:
        x = keras.layers.Conv2D(4, 3)(inputs) if first == "wide_conv" else inputs
        outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    images = np.random.default_rng(0).integers(0, 256, (10, 16, 16, channels)).astype(np.uint8)
    content = convert_to_tflite(save_saved_model(keras.Model(inputs, outputs), tmp_path / "sm"), "int8", images)
    assert (image_convolution(content) is None) is (first != "conv_alone")
    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["dtype"] == interpreter.get_output_details()[0]["dtype"] == np.int8
    assert all(dtype in (None, "int8") for _, dtype in _ops_with_kernel_dtypes(content))


def test_float16_stores_float16_weights(saved_model):
    content = convert_to_tflite(saved_model, Quantization.FLOAT16)
    dtypes = {d["dtype"] for d in Interpreter(model_content=content).get_tensor_details()}
    assert np.float16 in dtypes


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (None, "needs representative images; got none"),
        (np.zeros((0, 16, 16, 1), np.uint8), "representative images are empty"),
        (np.zeros((16, 16, 1), np.uint8), r"shape \(N, height, width, channels\); got \(16, 16, 1\)"),
    ],
)
def test_int8_without_usable_representative_images_is_refused(saved_model, images, match):
    with pytest.raises(DataError, match=match):
        convert_to_tflite(saved_model, "int8", images)


def test_representative_images_of_the_wrong_size_fail_clearly(saved_model):
    with pytest.raises(ConversionError, match="int8 conversion failed: .*dimension"):
        convert_to_tflite(saved_model, "int8", np.zeros((3, 24, 24, 1), np.uint8))


def test_unknown_quantization_is_refused(saved_model):
    with pytest.raises(ValueError, match="unknown variant 'int4'"):
        convert_to_tflite(saved_model, "int4")


@keras.saving.register_keras_serializable(package="ers_tests")
class Spectrum(keras.layers.Layer):
    """A layer using FFT2D, an op the TFLite builtin runtime does not have."""

    def call(self, inputs):
        return tf.math.abs(tf.signal.fft2d(tf.cast(inputs[..., 0], tf.complex64)))[..., None]


def model_with(layer) -> object:
    inputs = keras.Input((16, 16, 1))
    x = layer(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_unsupported_op_is_named_without_a_traceback(tmp_path):
    saved = save_saved_model(model_with(Spectrum(name="spectrum")), tmp_path / "sm")
    with pytest.raises(ConversionError) as caught:
        convert_to_tflite(saved, "float32")
    message = str(caught.value)
    assert "float32 conversion failed" in message
    assert "FFT2D" in message and "spectrum" in message
    assert "loc(" not in message and "Traceback" not in message and len(message) < 400


def test_augmentation_layers_are_refused_before_conversion(tmp_path):
    model = model_with(keras.layers.RandomRotation(0.1, name="rotate"))
    assert find_augmentation_layers(model) == ["rotate (RandomRotation)"]
    with pytest.raises(ConversionError, match=r"augmentation layers \['rotate \(RandomRotation\)'\]"):
        save_saved_model(model, tmp_path / "sm")


def test_augmentation_nested_in_a_sequential_is_found():
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal", name="flip")], name="augment")
    assert find_augmentation_layers(model_with(augment)) == ["flip (RandomFlip)"]


def test_untraceable_model_is_reported(tmp_path):
    untraceable = keras.layers.Lambda(
        lambda t: tf.py_function(lambda a: a * 2, [t], tf.float32), output_shape=(16, 16, 1)
    )
    with pytest.raises(ConversionError, match="cannot be traced for export"):
        save_saved_model(model_with(untraceable), tmp_path / "sm")


def test_a_folder_that_is_not_a_saved_model_is_refused(tmp_path):
    with pytest.raises(ConversionError, match="not a loadable SavedModel"):
        convert_to_tflite(tmp_path, "float32")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "<unknown>:0: error: loc(callsite(fused[\"Tan:\", \"model_1/random_rotation_1/Tan@__inference\"]"
            " at x)): 'tf.Tan' op is neither a custom op nor a flex op\n",
            "TFLite has no builtin kernel for the ops ['Tan'] (in layers ['random_rotation'])",
        ),
        ("<unknown>:0: error: something odd happened\nmore", "something odd happened"),
        ("plain failure", "plain failure"),
    ],
)
def test_describe_converter_error(message, expected):
    assert describe_converter_error(message).startswith(expected)


def _tflite_predict(content: bytes, images: np.ndarray) -> np.ndarray:
    """The float32 TFLite model's output for a whole batch of float32 images."""
    interpreter = Interpreter(model_content=content)
    interpreter.resize_tensor_input(0, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_batchnorm_and_dropout_are_exported_in_inference_mode(tmp_path):
    """Regression: ``model.export`` traced BatchNorm in training mode behind a Resizing layer."""
    keras.utils.set_random_seed(0)
    images, labels = make_images(8, seed=0, size=20)
    # Resizing first, then BatchNorm, like the trainer's LeNet; 20 to 16 pixels, because export
    # leaves a size-keeping Resizing out and the regression needs the layer in the graph.
    model = keras.Sequential([
        keras.Input((20, 20, 1)),
        keras.layers.Resizing(16, 16),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images.astype(np.float32), labels, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    content = convert_to_tflite(save_saved_model(loaded, tmp_path / "sm"), "float32")
    tflite = _tflite_predict(content, images.astype(np.float32))
    np.testing.assert_allclose(tflite, loaded.predict(images.astype(np.float32), verbose=0), atol=1e-5)


def _op_names(content: bytes) -> set[str]:
    return {op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()}


@pytest.mark.parametrize(("input_size", "kept"), [(16, False), (20, True)])
def test_a_resizing_layer_that_keeps_the_size_is_left_out_of_the_tflite_model(tmp_path, input_size, kept):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((input_size, input_size, 1))
    x = keras.layers.Resizing(16, 16, name="resize")(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).integers(0, 256, (4, input_size, input_size, 1)).astype(np.float32)
    content = convert_to_tflite(save_saved_model(model, tmp_path / "sm"), "float32")
    assert ("RESIZE_BILINEAR" in _op_names(content)) is kept
    np.testing.assert_allclose(_tflite_predict(content, images), model.predict(images, verbose=0), atol=1e-5)
    assert model.get_layer("resize").__class__.__name__ == "Resizing"  # the caller's model is untouched


def test_a_centre_crop_converts_to_a_slice_that_agrees_with_keras(tmp_path):
    from trainer.config import TrainConfig
    from trainer.models import build_model

    keras.utils.set_random_seed(0)
    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8,
                                           "input_size": 40, "input_fit": "crop"},
                                 "data": {"image_size": 48, "color_mode": "grayscale"}})
    model = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    content = convert_to_tflite(save_saved_model(model, tmp_path / "sm"), "float32")
    assert "RESIZE_BILINEAR" not in _op_names(content)
    np.testing.assert_allclose(_tflite_predict(content, images), model.predict(images, verbose=0), atol=1e-5)
