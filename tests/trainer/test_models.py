from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError
from trainer.config import TrainConfig, resolve_config
from trainer.models import MODEL_BUILDERS, build_model
from trainer.train import compile_model

SEED_LENET_LAYERS = [
    ("Resizing", None), ("Rescaling", None),
    ("Conv2D", 6), ("BatchNormalization", None), ("MaxPooling2D", None), ("Dropout", None),
    ("Conv2D", 12), ("BatchNormalization", None), ("MaxPooling2D", None),
    ("Flatten", None),
    ("Dense", 1024), ("Dropout", None), ("Dense", 128),
    ("Dense", 8),
]


def describe(model):
    out = []
    for layer in model.layers:
        width = getattr(layer, "filters", None) or getattr(layer, "units", None)
        out.append((type(layer).__name__, width))
    return out


def test_seed_lenet_layers_and_parameter_count():
    model = build_model(TrainConfig(), (256, 256, 3), 8)
    assert describe(model) == SEED_LENET_LAYERS
    # conv1 168 + bn1 24 + conv2 660 + bn2 48 + dense1 (61*61*12)*1024+1024 + dense2 131200 + out 1032
    assert model.count_params() == 45_857_804
    assert model.get_layer("pool1").strides == (2, 2) and model.get_layer("pool1").pool_size == (3, 3)
    assert model.get_layer("probs").activation.__name__ == "softmax"
    assert model.input_shape == (None, 256, 256, 3) and model.output_shape == (None, 8)


def test_registry_and_unknown_model():
    assert {"lenet", "vit"} <= set(MODEL_BUILDERS)
    with pytest.raises(ConfigError, match="did you mean 'lenet'"):
        build_model(resolve_config(None, ["model.name=lenat"]), (32, 32, 3), 8)


@pytest.mark.parametrize(("size", "overrides"), [(8, []), (16, ["model.pool_size=20"])])
def test_images_too_small_for_the_layers_are_a_config_error(size, overrides):
    with pytest.raises(ConfigError, match=f"model 'lenet' cannot take {size}x{size} images"):
        build_model(resolve_config(None, [f"data.image_size={size}", *overrides]), (size, size, 3), 8)


def one_step(cfg: TrainConfig, shape):
    model = compile_model(build_model(cfg, shape, 8), cfg)
    x = np.random.default_rng(0).uniform(0, 255, (4, *shape)).astype("float32")
    y = np.eye(8, dtype="float32")[[0, 1, 2, 3]]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    return model, history


def test_vit_builds_and_trains_one_step():
    cfg = resolve_config(None, ["model.name=vit", "ImageSize=32", "PatchSize=8", "ProjDim=24",
                                "model.vit_layers=2", "model.vit_heads=2", "model.vit_mlp_dim=32"])
    model, history = one_step(cfg, (32, 32, 1))
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("patch_embed").strides == (8, 8)


def test_small_lenet_trains_one_step_with_adamw():
    cfg = resolve_config(None, ["ImageSize=24", "NoOfUDense1=16", "NoOfUDense2=8", "optim.optimizer=adamw",
                                "RegularizationRate=0.01", "label_smoothing=0.1"])
    model, history = one_step(cfg, (24, 24, 3))
    assert type(model.optimizer).__name__ == "AdamW"
    assert [m.name for m in model.metrics][-1] == "compile_metrics"
    assert {"accuracy", "top3_accuracy"} <= set(history.history)


def test_small_lenet_trains_one_step_with_nesterov_sgd():
    cfg = resolve_config(None, ["ImageSize=24", "NoOfUDense1=16", "NoOfUDense2=8", "optim.optimizer=sgd",
                                "optim.learning_rate=0.05", "optim.momentum=0.8", "optim.weight_decay=5e-4"])
    model, history = one_step(cfg, (24, 24, 3))
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert optimizer.nesterov and optimizer.momentum == pytest.approx(0.8)
    assert optimizer.weight_decay == pytest.approx(5e-4)
    assert np.isfinite(history.history["loss"][0])


def test_momentum_outside_zero_to_one_names_the_key():
    with pytest.raises(ConfigError, match="optim.momentum must be in"):
        resolve_config(None, ["optim.optimizer=sgd", "optim.momentum=1.0"])


def test_vgg_at_a_lower_input_size_resizes_first_and_ends_on_the_same_grid():
    import keras

    from trainer.lowrank import multiply_adds

    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 48, "color_mode": "grayscale"}})
    full = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    low = build_model(cfg.replace({"model.input_size": 40}), cfg.data.input_shape, cfg.data.num_classes)
    assert low.input_shape == full.input_shape == (None, 48, 48, 1)  # the runtime's crop contract is unchanged
    assert low.get_layer("resize").output.shape[1:3] == (40, 40)
    assert low.get_layer("block4_pool").output.shape[1:3] == full.get_layer("block4_pool").output.shape[1:3] == (3, 3)
    assert [w.shape for w in low.weights] == [w.shape for w in full.weights]
    assert multiply_adds(low) < 0.75 * multiply_adds(full)
    low.set_weights(full.get_weights())
    image = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
    assert low.predict(image, verbose=0).shape == (1, 8)
    assert isinstance(low.get_layer("resize"), keras.layers.Resizing)


def test_vgg_cropping_to_a_lower_input_size_keeps_the_centre_pixels_as_they_are():
    import keras

    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8,
                                           "input_size": 40, "input_fit": "crop"},
                                 "data": {"image_size": 48, "color_mode": "grayscale"}})
    cropped = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    resized = build_model(cfg.replace({"model.input_fit": "resize"}), cfg.data.input_shape, cfg.data.num_classes)
    assert cropped.input_shape == (None, 48, 48, 1)
    assert isinstance(cropped.get_layer("crop"), keras.layers.CenterCrop)
    assert [w.shape for w in cropped.weights] == [w.shape for w in resized.weights]
    image = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
    centre = keras.Model(cropped.input, cropped.get_layer("crop").output).predict(image, verbose=0)
    np.testing.assert_array_equal(centre, image[:, 4:44, 4:44])
    cropped.set_weights(resized.get_weights())
    assert cropped.predict(image, verbose=0).shape == (1, 8)


def test_vgg_crop_larger_than_the_image_is_refused_naming_both_keys():
    cfg = resolve_config(None, ["model.name=vgg", "data.image_size=48", "model.input_size=56", "model.input_fit=crop"])
    with pytest.raises(ConfigError, match="model.input_size 56 must not exceed data.image_size 48"):
        build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)


def test_vgg_strided_first_block_drops_its_pool_and_takes_the_pooled_networks_weights():
    from trainer.lowrank import multiply_adds

    cfg = TrainConfig.from_dict({"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
                                 "data": {"image_size": 48, "color_mode": "grayscale"}})
    pooled = build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
    strided = build_model(cfg.replace({"model.first_block_downsample": "stride"}), cfg.data.input_shape,
                          cfg.data.num_classes)
    names = [layer.name for layer in strided.layers]
    assert "block1_pool" not in names and "block2_pool" in names
    assert strided.get_layer("block1_1_conv").strides == (1, 1)
    assert strided.get_layer("block1_2_conv").output.shape[1:3] == (24, 24)
    assert strided.get_layer("block4_pool").output.shape[1:3] == (3, 3)
    assert [w.shape for w in strided.weights] == [w.shape for w in pooled.weights]
    # block1_2 (3x3, 4 to 4 filters) computes a quarter of its 48x48 outputs; nothing else changes
    assert multiply_adds(pooled) - multiply_adds(strided) == 3 * 24 * 24 * 9 * 4 * 4
    strided.set_weights(pooled.get_weights())
    image = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
    assert strided.predict(image, verbose=0).shape == (1, 8)
    split = build_model(cfg.replace({"model.first_block_downsample": "stride", "model.conv_ranks": ("block1_2:2",)}),
                        cfg.data.input_shape, cfg.data.num_classes)
    assert split.get_layer("block1_2_conv_reduce").strides == (2, 2)  # the split pair's 3x3 half strides
    assert split.get_layer("block1_2_conv_expand").output.shape[1:3] == (24, 24)


def test_unknown_first_block_downsample_is_refused():
    with pytest.raises(ConfigError, match="model.first_block_downsample must be one of pool, stride; got 'avg'"):
        resolve_config(None, ["model.first_block_downsample=avg"])


def test_unknown_input_fit_is_refused():
    with pytest.raises(ConfigError, match="model.input_fit must be one of resize, crop; got 'pad'"):
        resolve_config(None, ["model.input_fit=pad"])


def test_vgg_input_size_must_not_be_negative():
    with pytest.raises(ConfigError, match="model.input_size must be a whole number >= 0"):
        resolve_config(None, ["model.input_size=-8"])


def test_vgg_input_size_below_four_poolings_is_refused_naming_the_key():
    cfg = resolve_config(None, ["model.name=vgg", "data.image_size=48", "model.input_size=8"])
    with pytest.raises(ConfigError, match="model.input_size"):
        build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)


@pytest.mark.parametrize("name, override", [
    ("lenet", "model.input_size=40"),
    ("lenet", "model.first_block_convs=1"),
    ("vit", "model.conv_ranks=block2_1:16"),
    ("vit", "model.input_fit=crop"),
    ("lenet", "model.first_block_downsample=stride"),
])
def test_vgg_only_options_are_refused_by_other_models_naming_the_key(name, override):
    cfg = resolve_config(None, [f"model.name={name}", "data.image_size=48", override])
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} applies to model.name 'vgg' only; model '{name}'"):
        build_model(cfg, cfg.data.input_shape, cfg.data.num_classes)
