"""Model registry: ``MODEL_BUILDERS[name](cfg, input_shape, num_classes) -> keras.Model``.

Every model takes raw pixels in [0, 255] (float32) of shape
``(image_size, image_size, channels)`` and does its own preprocessing
(``Resizing`` + ``Rescaling(1/255)``), as the seed does, so exported models
need no extra normalisation. Other modules add builders by inserting into
``MODEL_BUILDERS``; a builder takes the whole ``TrainConfig``.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
from keras import layers, regularizers

from edge.errors import ConfigError
from trainer.config import VGG_OPTIONS, ModelConfig, TrainConfig
from trainer.nets import build_vgg


def _model_config(cfg: TrainConfig | ModelConfig) -> ModelConfig:
    return cfg.model if isinstance(cfg, TrainConfig) else cfg


def _image_size(cfg: TrainConfig | ModelConfig, input_shape: tuple[int, int, int]) -> int:
    return cfg.data.image_size if isinstance(cfg, TrainConfig) else int(input_shape[0])


def _refuse_vgg_options(m: ModelConfig) -> None:
    """The vgg's architecture options mean nothing to the other builders: refuse them, not ignore them."""
    defaults = ModelConfig()
    for name in VGG_OPTIONS:
        if getattr(m, name) != getattr(defaults, name):
            raise ConfigError(f"model.{name} applies to model.name 'vgg' only; model {m.name!r} has no such option "
                              f"(got {getattr(m, name)!r})")


def build_lenet(cfg: TrainConfig | ModelConfig, input_shape: tuple[int, int, int], num_classes: int):
    """The seed's LeNet-style CNN (Model-3), layer for layer.

    ``Resizing(ImageSize) -> Rescaling(1/255) ->
    Conv2D(NoOfFilters, KernelSize, NoOfStrides, relu, L2) -> BatchNormalization ->
    MaxPool2D(PoolSize, strides=2*NoOfStrides) -> Dropout(DropOutRate) ->
    Conv2D(2*NoOfFilters, ...) -> BatchNormalization -> MaxPool2D -> Flatten ->
    Dense(NoOfUDense1, relu, L2) -> Dropout -> Dense(NoOfUDense2, relu, L2) ->
    Dense(num_classes, softmax)``.

    The seed lists the second convolution without its filter count; this uses
    the standard LeNet reading (the filter count doubles: ``2 * NoOfFilters``).
    Convolutions and pools use ``valid`` padding (Keras defaults). With the
    seed config at 256x256x3 and 8 classes the model has 45,857,804 parameters.
    """
    m = _model_config(cfg)
    _refuse_vgg_options(m)
    size = _image_size(cfg, input_shape)
    reg = regularizers.L2(m.regularization_rate)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Resizing(size, size, name="resize"),
            layers.Rescaling(1.0 / 255, name="rescale"),
            layers.Conv2D(m.num_filters, m.kernel_size, strides=m.strides, activation="relu",
                          kernel_regularizer=reg, name="conv1"),
            layers.BatchNormalization(name="bn1"),
            layers.MaxPool2D(m.pool_size, strides=2 * m.strides, name="pool1"),
            layers.Dropout(m.dropout_rate, name="drop1"),
            layers.Conv2D(2 * m.num_filters, m.kernel_size, strides=m.strides, activation="relu",
                          kernel_regularizer=reg, name="conv2"),
            layers.BatchNormalization(name="bn2"),
            layers.MaxPool2D(m.pool_size, strides=2 * m.strides, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(m.dense1_units, activation="relu", kernel_regularizer=reg, name="dense1"),
            layers.Dropout(m.dropout_rate, name="drop2"),
            layers.Dense(m.dense2_units, activation="relu", kernel_regularizer=reg, name="dense2"),
            layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32"),
        ],
        name="lenet",
    )


@keras.saving.register_keras_serializable(package="ers")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per token position to (batch, tokens, dim) inputs."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, inputs):
        return inputs + self.embedding


def build_vit(cfg: TrainConfig | ModelConfig, input_shape: tuple[int, int, int], num_classes: int):
    """A small Vision Transformer using the seed's ``PatchSize`` and ``ProjDim``.

    Patch embedding (Conv2D, kernel = stride = PatchSize, ProjDim filters),
    learned position embedding, ``vit_layers`` pre-norm Transformer blocks
    (MultiHeadAttention with ``vit_heads`` heads, GELU MLP of ``vit_mlp_dim``),
    LayerNorm, global average pooling, Dropout, softmax.
    """
    m = _model_config(cfg)
    _refuse_vgg_options(m)
    size = _image_size(cfg, input_shape)
    if size < m.patch_size:
        raise ConfigError(f"model.patch_size {m.patch_size} is larger than data.image_size {size}")
    grid = size // m.patch_size
    dim = m.projection_dim
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Resizing(size, size, name="resize")(inputs)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = layers.Conv2D(dim, m.patch_size, strides=m.patch_size, name="patch_embed")(x)
    x = layers.Reshape((grid * grid, dim), name="tokens")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    for index in range(m.vit_layers):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_norm1")(x)
        h = layers.MultiHeadAttention(m.vit_heads, key_dim=max(1, dim // m.vit_heads),
                                      dropout=m.dropout_rate, name=f"block{index}_attn")(h, h)
        x = layers.Add(name=f"block{index}_add1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_norm2")(x)
        h = layers.Dense(m.vit_mlp_dim, activation="gelu", name=f"block{index}_mlp1")(h)
        h = layers.Dropout(m.dropout_rate, name=f"block{index}_drop")(h)
        h = layers.Dense(dim, name=f"block{index}_mlp2")(h)
        x = layers.Add(name=f"block{index}_add2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dropout(m.dropout_rate, name="head_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="vit")


MODEL_BUILDERS: dict[str, Callable[..., Any]] = {
    "lenet": build_lenet,
    "vit": build_vit,
    "vgg": build_vgg,
}


def build_model(cfg: TrainConfig | ModelConfig, input_shape: tuple[int, int, int], num_classes: int):
    """Build the model named by ``cfg.model.name`` (or ``cfg.name`` for a ``ModelConfig``)."""
    name = _model_config(cfg).name
    if name not in MODEL_BUILDERS:
        import difflib

        close = difflib.get_close_matches(name, list(MODEL_BUILDERS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model {name!r}; registered: {sorted(MODEL_BUILDERS)}{hint}")
    try:
        return MODEL_BUILDERS[name](cfg, tuple(input_shape), num_classes)
    except ValueError as error:  # Keras, when a layer's output would have no pixels left
        if "negative" not in str(error) and "zero" not in str(error):
            raise
        height, width = input_shape[:2]
        raise ConfigError(
            f"model {name!r} cannot take {height}x{width} images: its layers would shrink them to nothing; "
            "raise data.image_size, or lower model.kernel_size / pool_size / strides"
        ) from None


def custom_objects() -> dict[str, Any]:
    """Objects needed to load saved models of this registry (registration happens on import)."""
    return {"PositionEmbedding": PositionEmbedding}
