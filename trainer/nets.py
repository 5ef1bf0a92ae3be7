"""Stronger, edge-sized architectures for the registry in ``trainer.models``.

``vgg`` is the shipped model's network: four VGG blocks (two 3x3
conv-BN-ReLU layers, max-pool, dropout) whose widths double from
``model.num_filters``, then one BN-ReLU dense layer of ``model.dense1_units``
and the softmax; ``model.first_block_convs`` sets the first block's depth and
``model.conv_ranks`` splits convolutions into cheaper pairs (``trainer.lowrank``);
``model.input_size`` has it work at a lower resolution than its input, or on its
centre (``model.input_fit``); ``model.first_block_downsample: stride`` replaces the
first block's pool with a stride in its last convolution. At
48x48 grayscale with 32 base filters and 128 dense units it has about 1.5 M
parameters (int8: about 1.5 MB) and costs about 0.12 GMAC per face, which
fits the edge budget while keeping the capacity FER+ needs.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from edge.errors import ConfigError
from trainer.config import ModelConfig, TrainConfig
from trainer.lowrank import parse_conv_ranks

VGG_BLOCKS = 4


def _conv_bn_relu(x, filters: int, kernel_size: int, reg, name: str, rank: int | None = None, strides: int = 1):
    if rank is None:
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(rank, kernel_size, strides=strides, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"{name}_conv_reduce")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, kernel_regularizer=reg, name=f"{name}_conv_expand")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _vgg_blocks(m: ModelConfig) -> list[list[tuple[str, int]]]:
    """Per block, its convolutions' (name, filters): the names ``model.conv_ranks`` uses."""
    return [[(f"block{block + 1}_{layer + 1}", m.num_filters * 2**block)
             for layer in range(m.first_block_convs if block == 0 else 2)] for block in range(VGG_BLOCKS)]


def build_vgg(cfg: TrainConfig | ModelConfig, input_shape: tuple[int, int, int], num_classes: int):
    """VGG-style CNN for small face crops (see the module docstring).

    Dropout grows with depth from ``dropout_rate / 4`` to ``dropout_rate / 2``
    in the convolutional blocks and is ``dropout_rate`` before the classifier.
    The first layer resizes the image to ``model.input_size`` (default: the
    input's size) or, with ``model.input_fit: crop``, takes its centre. Pools
    pad an odd side, so a 40x40 network ends on the same 3x3 grid as a 48x48
    one and takes a 48x48 model's weights as they are.
    """
    m = cfg.model if isinstance(cfg, TrainConfig) else cfg
    image_size = cfg.data.image_size if isinstance(cfg, TrainConfig) else int(input_shape[0])
    size = m.input_size or image_size
    if m.input_fit == "crop" and size > image_size:
        raise ConfigError(f"model.input_fit 'crop' takes the centre of the image: model.input_size {size} "
                          f"must not exceed data.image_size {image_size}")
    if size < 2**VGG_BLOCKS:
        raise ConfigError(f"model 'vgg' needs an input of at least {2**VGG_BLOCKS} pixels a side "
                          f"(data.image_size, model.input_size); got {size}")
    reg = regularizers.L2(m.regularization_rate) if m.regularization_rate else None
    ranks = parse_conv_ranks(m.conv_ranks)
    blocks = _vgg_blocks(m)
    convs = dict(conv for block in blocks for conv in block)
    for name, rank in ranks.items():
        if name not in convs:
            raise ConfigError(f"model.conv_ranks names {name!r}; the network's convolutions are {', '.join(convs)}")
        if rank >= convs[name]:
            raise ConfigError(f"model.conv_ranks {name}:{rank} must be below the layer's {convs[name]} filters")
    inputs = keras.Input(shape=input_shape, name="image")
    if m.input_fit == "crop":
        x = layers.CenterCrop(size, size, name="crop")(inputs)
    else:
        x = layers.Resizing(size, size, name="resize")(inputs)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    strided = m.first_block_downsample == "stride"
    for block, block_convs in enumerate(blocks):
        for layer, (name, filters) in enumerate(block_convs):
            stride = 2 if strided and block == 0 and layer == len(block_convs) - 1 else 1
            x = _conv_bn_relu(x, filters, m.kernel_size, reg, name, ranks.get(name), stride)
        if not (strided and block == 0):
            x = layers.MaxPool2D(2, padding="same", name=f"block{block + 1}_pool")(x)
        rate = m.dropout_rate * (0.25 + 0.25 * block / (VGG_BLOCKS - 1))
        x = layers.Dropout(rate, name=f"block{block + 1}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(m.dense1_units, use_bias=False, kernel_regularizer=reg, name="dense1")(x)
    x = layers.BatchNormalization(name="dense1_bn")(x)
    x = layers.ReLU(name="dense1_relu")(x)
    x = layers.Dropout(m.dropout_rate, name="head_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="vgg")
