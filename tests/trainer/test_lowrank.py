"""Low-rank convolutions (``model.conv_ranks``): parsing, the SVD split, the network and a split fine-tune."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from trainer.config import TrainConfig
from trainer.lowrank import factorize_kernel, multiply_adds, parse_conv_ranks
from trainer.models import build_model

TINY = {"model": {"name": "vgg", "num_filters": 4, "dense1_units": 8},
        "data": {"image_size": 16, "color_mode": "grayscale"}}


def tiny(conv_ranks: str = "") -> TrainConfig:
    cfg = TrainConfig.from_dict(TINY)
    return cfg.replace({"model.conv_ranks": conv_ranks}) if conv_ranks else cfg


def test_ranks_parse_from_the_command_line_form_and_bad_entries_are_named():
    assert parse_conv_ranks(("block3_1:48", " block4_2 : 96 ")) == {"block3_1": 48, "block4_2": 96}
    assert tiny("block2_1:3,block3_2:5").model.conv_ranks == ("block2_1:3", "block3_2:5")
    for bad in ("block3_1", "block3_1:0", "block3_1:x", ":4"):
        with pytest.raises(ConfigError, match=f"entry '{bad}'"):
            parse_conv_ranks((bad,))
    with pytest.raises(ConfigError, match="names 'block3_1' twice"):
        parse_conv_ranks(("block3_1:4", "block3_1:5"))


def test_the_split_kernel_is_the_truncated_svd():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 6, 10)).astype(np.float32)
    matrix = kernel.reshape(-1, 10)
    singular = np.linalg.svd(matrix, compute_uv=False)
    for rank in (3, 10):
        reduce, expand = factorize_kernel(kernel, rank)
        assert reduce.shape == (3, 3, 6, rank) and expand.shape == (1, 1, rank, 10)
        error = np.linalg.norm(reduce.reshape(-1, rank) @ expand.reshape(rank, 10) - matrix)
        np.testing.assert_allclose(error, np.sqrt((singular[rank:] ** 2).sum()), atol=1e-4)


def test_split_convolutions_cost_the_multiply_adds_they_should():
    full, split = build_model(tiny(), (16, 16, 1), 8), build_model(tiny("block2_1:3"), (16, 16, 1), 8)
    names = {layer.name for layer in split.layers}
    assert {"block2_1_conv_reduce", "block2_1_conv_expand"} <= names and "block2_1_conv" not in names
    # block2_1 at 8x8: 3x3x4x8 becomes 3x3x4x3 + 3x8
    assert multiply_adds(full) - multiply_adds(split) == 8 * 8 * (3 * 3 * 4 * 8 - 3 * 3 * 4 * 3 - 3 * 8)


def test_ranks_that_name_no_convolution_or_do_not_reduce_it_are_refused():
    with pytest.raises(ConfigError, match="names 'block9_1'; the network's convolutions are block1_1, "):
        build_model(tiny("block9_1:2"), (16, 16, 1), 8)
    with pytest.raises(ConfigError, match="block2_1:8 must be below the layer's 8 filters"):
        build_model(tiny("block2_1:8"), (16, 16, 1), 8)


def test_a_pretrained_model_fine_tuned_into_split_convolutions_starts_from_its_svd(tmp_path: Path, caplog):
    from trainer.train import build_and_compile

    saved = build_model(tiny(), (16, 16, 1), 8)
    # a rank-2 kernel: its rank-2 split is exact, so the split network computes the same function
    rng = np.random.default_rng(1)
    conv = saved.get_layer("block3_2_conv")
    conv.set_weights([(rng.normal(size=(9 * 16, 2)) @ rng.normal(size=(2, 16))).reshape(3, 3, 16, 16)
                      .astype(np.float32) / 10])
    saved.save(tmp_path / "full.keras")
    with caplog.at_level(logging.INFO, logger="trainer.train"):
        split = build_and_compile(tiny("block3_2:2"), tmp_path / "full.keras")
    assert "splits block3_2_conv by SVD and drops nothing" in caplog.text
    images = rng.uniform(0, 255, (4, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(split.predict(images, verbose=0), saved.predict(images, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(split.get_layer("block2_1_conv").get_weights()[0],
                                  saved.get_layer("block2_1_conv").get_weights()[0])
