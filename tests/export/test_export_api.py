"""export_model end to end on a tiny trained CNN: numbers, gate, folder handling, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from export_testdata import CLASS_NAMES, make_images, write_class_folders
from sklearn.metrics import f1_score, top_k_accuracy_score

import export.api
from edge.errors import ConfigError, DataError, ErsError, ExportGateError
from edge.model_spec import ModelSpec, sha256_of
from export.api import export_model
from export.convert import convert_to_tflite, save_saved_model
from export.errors import ConversionError, ExportGateTripped
from export.options import Quantization

keras = pytest.importorskip("keras")

VARIANTS = ("float32", "float16", "dynamic", "int8")


def read_test_set(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test folders read independently of export.data: labels index the sorted folder names."""
    images, labels = [], []
    for label, name in enumerate(sorted(p.name for p in directory.iterdir())):
        for path in sorted((directory / name).glob("*.png")):
            images.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)[..., None])
            labels.append(label)
    return np.stack(images), np.array(labels)


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from a .tflite file, one image at a time, (de)quantizing by hand."""
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    rows = []
    for image in images.astype(np.float32):
        x = image[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        rows.append(y)
    return np.array(rows)


def test_all_variants_and_the_manifest_are_written(full_export):
    out = full_export.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"model_{v}.tflite" for v in VARIANTS] + ["manifest.json", "report.json", "report.md"]
    )
    assert full_export.passed
    spec = ModelSpec.load(out)
    assert spec == full_export.spec
    assert spec.labels == tuple(sorted(CLASS_NAMES))
    assert (spec.input_height, spec.input_width, spec.color_mode) == (16, 16, "grayscale")
    assert spec.input_range == (0.0, 255.0)
    assert spec.default_variant == "int8"
    assert list(spec.variants) == list(VARIANTS)
    int8 = spec.variants["int8"]  # its first convolution reads the image in float32 (float_first_conv)
    assert int8.quantization == "int8" and int8.input.dtype == int8.output.dtype == "float32"
    assert not int8.input.quantized
    assert spec.variants["float32"].input.dtype == "float32" and not spec.variants["float32"].input.quantized


def test_report_numbers_equal_an_independent_recomputation(full_export, model_path, dataset_dir):
    images, labels = read_test_set(dataset_dir / "test")
    keras_probs = keras.models.load_model(model_path, compile=False).predict(
        images.astype(np.float32), verbose=0
    )
    report = json.loads((full_export.out_dir / "report.json").read_text())
    spec = ModelSpec.load(full_export.out_dir)
    keras_accuracy = np.mean(keras_probs.argmax(1) == labels)
    assert report["test_images"] == len(labels) == 120
    assert report["keras"]["accuracy"] == pytest.approx(keras_accuracy, abs=1e-12)
    assert 0.8 < keras_accuracy < 0.95  # label noise keeps the numbers meaningful
    assert report["source_model_sha256"] == spec.source_model_sha256 == sha256_of(model_path)
    assert report["machine"]["usable_cores"] >= 1 and report["machine"]["cpu_model"]  # where latency was timed
    for name in VARIANTS:
        path = full_export.out_dir / f"model_{name}.tflite"
        probs = run_tflite(path, images)
        predicted = probs.argmax(1)
        expected = {
            "accuracy": np.mean(predicted == labels),
            "top3_accuracy": top_k_accuracy_score(labels, probs, k=3, labels=range(4)),
            "weighted_f1": f1_score(labels, predicted, average="weighted"),
        }
        measured = report["variants"][name]
        for key, value in expected.items():
            assert measured["metrics"][key] == pytest.approx(value, abs=1e-12), (name, key)
            assert spec.variants[name].metrics[key] == pytest.approx(value, abs=1e-12), (name, key)
        assert measured["agreement"] == pytest.approx(np.mean(predicted == keras_probs.argmax(1)), abs=1e-12)
        assert measured["max_abs_diff"] == pytest.approx(np.abs(probs - keras_probs).max(), abs=1e-5)
        assert measured["accuracy_drop_pp"] == pytest.approx((keras_accuracy - expected["accuracy"]) * 100)
        assert measured["size_bytes"] == path.stat().st_size == spec.variants[name].size_bytes
        assert spec.variants[name].sha256 == sha256_of(path)
        assert 0.0 < measured["latency_ms"] < 100.0
        assert measured["passed"] is True
    # the int8 variant really is quantized: close to Keras, but not bit-identical
    assert 0.0 < report["variants"]["int8"]["max_abs_diff"] < 0.1
    assert report["variants"]["float32"]["max_abs_diff"] < 1e-4


@pytest.fixture(scope="module")
def damaged_conversion(tmp_path_factory, untrained_model_path):
    """A convert_to_tflite that turns an untrained copy of the model into the int8 file."""
    saved = save_saved_model(
        keras.models.load_model(untrained_model_path, compile=False),
        tmp_path_factory.mktemp("damaged") / "saved_model",
    )

    def convert(saved_model_dir, quantization, representative_images=None, **options):
        if Quantization(quantization) is Quantization.INT8:
            saved_model_dir = saved
        return convert_to_tflite(saved_model_dir, quantization, representative_images, **options)

    return convert


def test_gate_trips_on_a_damaged_variant_and_still_writes_the_export(
    tmp_path, model_path, dataset_dir, fast_options, damaged_conversion, monkeypatch
):
    monkeypatch.setattr(export.api, "convert_to_tflite", damaged_conversion)
    out = tmp_path / "damaged"
    options = fast_options(dataset_dir, variants=("float32", "int8"))
    with pytest.raises(ExportGateTripped) as caught:
        export_model(model_path, out, options)
    assert isinstance(caught.value, ExportGateError)
    result = caught.value.result
    report = result.report
    int8 = report.variant("int8")
    drop = report.accuracy_drop_pp("int8")
    assert drop > 20 and int8.agreement < 0.7
    message = str(caught.value)
    assert message.startswith("export gate failed for int8:")
    assert f"int8: accuracy {int8.metrics.accuracy:.2%} is {drop:.2f} percentage points below Keras" in message
    assert f"int8: top-1 agrees with Keras on {int8.agreement:.2%}" in message
    assert "float32:" not in message
    # written anyway, and the report explains
    saved = json.loads((out / "report.json").read_text())
    assert saved["gate"]["passed"] is False
    assert [f["variant"] for f in saved["gate"]["failures"]] == ["int8", "int8"]
    assert saved["variants"]["float32"]["passed"] is True and saved["variants"]["int8"]["passed"] is False
    assert "FAIL" in (out / "report.md").read_text()
    written = ModelSpec.load(out)
    assert written.variants["int8"].metrics["accuracy_drop_pp"] == pytest.approx(drop)
    # the manifest says so too, for the runtime to warn about
    assert written.variants["float32"].passed_gate and not written.variants["int8"].passed_gate
    assert written.variants["int8"].gate_failures == tuple(str(f) for f in report.failures)


def test_gate_thresholds_come_from_the_options(
    tmp_path, model_path, dataset_dir, fast_options, damaged_conversion, monkeypatch
):
    monkeypatch.setattr(export.api, "convert_to_tflite", damaged_conversion)
    options = fast_options(dataset_dir, variants=("int8",), max_accuracy_drop=100.0, min_agreement=0.0)
    result = export_model(model_path, tmp_path / "loose", options)
    assert result.passed and result.report.accuracy_drop_pp("int8") > 20


def test_existing_export_is_not_overwritten_without_force(tmp_path, model_path, dataset_dir, fast_options):
    out = tmp_path / "out"
    export_model(model_path, out, fast_options(dataset_dir, variants=("float16",)))
    (out / ".DS_Store").write_bytes(b"\0")  # left by a file browser: no reason to refuse
    (out / "._manifest.json").write_bytes(b"\0")
    with pytest.raises(ConfigError, match=r"already exists and is not empty; pass --force"):
        export_model(model_path, out, fast_options(dataset_dir, variants=("float32",)))
    assert (out / "model_float16.tflite").is_file()
    result = export_model(model_path, out, fast_options(dataset_dir, variants=("float32",), force=True))
    assert result.passed
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model_float32.tflite",
                                                     "report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or backup left


def test_force_replaces_an_earlier_export_only(tmp_path, model_path, dataset_dir, fast_options):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_text("old")
    (out / ".gitattributes").write_text("*.tflite filter=lfs")
    (out / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"holds \.gitattributes, keep\.txt, sub/, which no export writes"):
        export_model(model_path, out, fast_options(dataset_dir, variants=("float32",), force=True))
    assert sorted(p.name for p in out.iterdir()) == [".gitattributes", "keep.txt", "manifest.json", "sub"]


def test_the_current_folder_is_refused_before_any_work(tmp_path, model_path, dataset_dir, fast_options, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for out in (Path("."), Path("..")):
        with pytest.raises(ConfigError, match=rf"--out-dir {re.escape(str(out))} is the current folder or holds it"):
            export_model(model_path, out, fast_options(dataset_dir, variants=("float32",), force=True))
    assert list(tmp_path.iterdir()) == [tmp_path / "here"] and not any((tmp_path / "here").iterdir())


def test_a_path_through_dot_dot_is_exported_where_it_points(tmp_path, model_path, dataset_dir, fast_options):
    (tmp_path / "a").mkdir()
    export_model(model_path, tmp_path / "a" / ".." / "out", fast_options(dataset_dir, variants=("float32",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "out"]
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_the_export_folder_has_the_permissions_of_a_new_folder(tmp_path, model_path, dataset_dir, fast_options):
    previous = os.umask(0o022)
    try:
        export_model(model_path, tmp_path / "out", fast_options(dataset_dir, variants=("float32",)))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_an_empty_existing_folder_is_used(tmp_path, model_path, dataset_dir, fast_options):
    (tmp_path / "out").mkdir()
    assert export_model(model_path, tmp_path / "out", fast_options(dataset_dir, variants=("float16",))).passed


def test_failed_conversion_leaves_no_half_written_folder(
    tmp_path, model_path, dataset_dir, fast_options, monkeypatch
):
    converted = []

    def fail_on_int8(saved_model_dir, quantization, representative_images=None, **options):
        if quantization is Quantization.INT8:
            raise ConversionError("int8 conversion failed: injected")
        converted.append(quantization)
        return convert_to_tflite(saved_model_dir, quantization, representative_images)

    monkeypatch.setattr(export.api, "convert_to_tflite", fail_on_int8)
    with pytest.raises(ConversionError, match="injected"):
        export_model(model_path, tmp_path / "new", fast_options(dataset_dir, variants=("float16", "int8")))
    assert converted == [Quantization.FLOAT16]  # one variant had been written before the failure
    assert list(tmp_path.iterdir()) == []

    # with --force, an old export survives a failed replacement untouched
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    with pytest.raises(ConversionError):
        export_model(model_path, old, fast_options(dataset_dir, variants=("int8",), force=True))
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert [p.name for p in old.iterdir()] == ["manifest.json"]


@keras.saving.register_keras_serializable(package="ers_tests")
class Spectrum(keras.layers.Layer):
    def call(self, inputs):
        import tensorflow as tf

        return tf.math.abs(tf.signal.fft2d(tf.cast(inputs[..., 0], tf.complex64)))[..., None]


@pytest.mark.parametrize("layer", ["Spectrum", "RandomRotation"])
def test_model_with_an_unconvertible_layer_fails_clearly_and_writes_nothing(
    tmp_path, dataset_dir, fast_options, layer
):
    inputs = keras.Input((16, 16, 1))
    x = Spectrum(name="spectrum")(inputs) if layer == "Spectrum" else keras.layers.RandomRotation(0.1)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    path = tmp_path / "run" / "model.keras"
    path.parent.mkdir()
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x)).save(path)
    expected = "FFT2D" if layer == "Spectrum" else "RandomRotation"
    with pytest.raises(ConversionError, match=expected):
        export_model(path, tmp_path / "out", fast_options(dataset_dir, variants=("float32",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.keras", "does not exist"),
        (lambda d: d, "is not a Keras model file"),
        (lambda d: (d / "model.keras").write_text("hello") and d / "model.keras", "a .keras file is a zip"),
        (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "is not a Keras model file"),
    ],
)
def test_a_path_that_is_not_a_keras_model_is_refused(tmp_path, dataset_dir, fast_options, make, match):
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(ConversionError, match=match):
        export_model(make(source), tmp_path / "out", fast_options(dataset_dir))
    assert not (tmp_path / "out").exists()


def test_a_model_without_softmax_output_is_refused(tmp_path, dataset_dir, fast_options):
    inputs = keras.Input((16, 16, 1))
    logits = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    path = tmp_path / "logits.keras"
    keras.Model(inputs, logits).save(path)
    with pytest.raises(ConversionError, match="not probabilities"):
        export_model(path, tmp_path / "out", fast_options(dataset_dir))


def test_test_set_with_another_class_count_is_refused(tmp_path, model_path, fast_options, dataset_dir):
    images, labels = make_images(2, seed=5)
    keep = labels < 3
    write_class_folders(tmp_path / "three", images[keep], labels[keep], CLASS_NAMES[:3])
    with pytest.raises(DataError, match=r"test set has 3 classes .* model outputs 4 probabilities"):
        export_model(model_path, tmp_path / "out", fast_options(dataset_dir, test_dir=tmp_path / "three"))


def test_empty_representative_folder_is_refused(tmp_path, model_path, dataset_dir, fast_options):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        export_model(model_path, tmp_path / "out",
                     fast_options(dataset_dir, representative_dir=tmp_path / "empty"))
    # float variants need no representative images at all
    options = fast_options(dataset_dir, representative_dir=tmp_path / "empty", variants=("dynamic",))
    assert export_model(model_path, tmp_path / "out", options).passed


def test_int8_without_any_representative_source_says_what_to_pass(tmp_path, model_path, dataset_dir, fast_options):
    with pytest.raises(ConfigError, match="--representative-dir"):
        export_model(model_path, tmp_path / "out", fast_options(dataset_dir, representative_dir=None))


def test_no_test_set_says_what_to_pass(tmp_path, model_path, fast_options, dataset_dir):
    with pytest.raises(ConfigError, match="no test set: pass .*--test-dir"):
        export_model(model_path, tmp_path / "out", fast_options(dataset_dir, test_dir=None))


def test_out_dir_holding_the_model_is_refused(model_path, dataset_dir, fast_options):
    with pytest.raises(ConfigError, match="contains the input"):
        export_model(model_path, model_path.parent, fast_options(dataset_dir, force=True))
    assert model_path.is_file()


@pytest.fixture
def trainer_config(monkeypatch, dataset_dir):
    """A fake trainer whose config's splits are the generated folders."""
    from export.data import load_class_folders

    state = types.SimpleNamespace(image_size=16, calls=[])

    def from_file(path):
        data = types.SimpleNamespace(class_names=CLASS_NAMES, color_mode="grayscale",
                                     image_size=state.image_size)
        return types.SimpleNamespace(data=data)

    def load_image_arrays(data, split, limit=None, seed=0):
        state.calls.append((split, limit))
        loaded = load_class_folders(dataset_dir / split, (16, 16, 1), data.class_names, limit=limit, seed=seed)
        return loaded.images, loaded.labels

    config_module = types.ModuleType("trainer.config")
    config_module.TrainConfig = types.SimpleNamespace(from_file=from_file)
    data_module = types.ModuleType("trainer.data")
    data_module.load_image_arrays = load_image_arrays
    monkeypatch.setitem(sys.modules, "trainer.config", config_module)
    monkeypatch.setitem(sys.modules, "trainer.data", data_module)
    return state


def test_config_beside_the_model_supplies_labels_test_and_representative_sets(
    tmp_path, model_path, trainer_config
):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model_path, run / "model.keras")
    (run / "config.yaml").write_text("data: {}\n")
    from export.options import ExportOptions

    options = ExportOptions(variants=("float32", "int8"), representative_count=50, test_limit=80,
                            latency_runs=5, warmup_runs=1)
    result = export_model(run / "model.keras", tmp_path / "out", options)
    assert result.spec.labels == CLASS_NAMES  # the config's order, not the folders'
    assert sorted(trainer_config.calls) == [("test", 80), ("train", 50)]
    assert result.report.test_images == 80 and result.report.representative_images == 50
    assert "test split of" in result.report.test_source


def test_config_that_does_not_fit_the_model_is_refused(tmp_path, model_path, trainer_config):
    trainer_config.image_size = 48
    config = tmp_path / "config.yaml"
    config.write_text("data: {}\n")
    from export.options import ExportOptions

    with pytest.raises(ConfigError, match=r"says 48x48 grayscale input but the model takes 16x16x1"):
        export_model(model_path, tmp_path / "out", ExportOptions(config_path=config))


def test_a_real_trainer_model_and_config_export(tmp_path, dataset_dir):
    """With the real trainer installed (skipped otherwise): its LeNet, its config, its loader."""
    config = pytest.importorskip("trainer.config")
    models = pytest.importorskip("trainer.models")
    cfg = config.TrainConfig.from_dict({"data": {
        "data_dir": str(dataset_dir), "image_size": 16, "color_mode": "grayscale",
        "class_names": list(CLASS_NAMES),
    }, "model": {"name": "lenet"}})
    keras.utils.set_random_seed(0)
    model = models.build_model(cfg, (16, 16, 1), len(CLASS_NAMES))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images, labels = make_images(20, seed=1)
    model.fit(images.astype(np.float32), labels, epochs=2, verbose=0)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    cfg.save(run / "config.yaml")
    from export.options import ExportOptions

    options = ExportOptions(variants=("float32", "int8"), representative_count=50, latency_runs=5,
                            max_accuracy_drop=100.0, min_agreement=0.0)
    result = export_model(run / "model.keras", tmp_path / "out", options)
    assert result.spec.labels == CLASS_NAMES
    assert result.report.variant("float32").agreement == 1.0  # BatchNorm/Dropout in inference mode
    assert result.report.variant("float32").max_abs_diff < 1e-4


def test_an_unwritable_out_dir_is_a_clear_error(tmp_path, model_path, dataset_dir, fast_options):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "out"
    with pytest.raises(ErsError, match=re.escape(f"export folder {out}: {tmp_path / 'a_file'} is a file, not a folder")):
        export_model(model_path, out, fast_options(dataset_dir, variants=("float16",)))
