"""Low-rank convolutions: fewer multiply-adds for the same receptive field.

The int8 classifier is compute-bound (issue 7): its time per face follows its
multiply-adds. A k x k convolution from C_in to C_out channels costs
k²·C_in·C_out per output pixel; split into a k x k convolution to r channels
and a 1x1 one to C_out (``model.conv_ranks``) it costs k²·C_in·r + r·C_out.
A trained convolution is split by a truncated SVD of its kernel seen as a
(k²·C_in) x C_out matrix, the closest rank-r matrix to it (Eckart-Young), so
a fine-tune starts from nearly the trained network instead of from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import ConfigError


def parse_conv_ranks(entries: Sequence[str]) -> dict[str, int]:
    """``("block3_1:48", ...)`` as ``{"block3_1": 48}``, refusing malformed entries by name."""
    ranks: dict[str, int] = {}
    for entry in entries:
        name, sep, rank = str(entry).partition(":")
        if not sep or not name.strip() or not rank.strip().isdigit() or int(rank) < 1:
            raise ConfigError(f"model.conv_ranks entry {entry!r} is not LAYER:RANK with a positive rank "
                              "(e.g. block3_1:48)")
        if name.strip() in ranks:
            raise ConfigError(f"model.conv_ranks names {name.strip()!r} twice")
        ranks[name.strip()] = int(rank)
    return ranks


def factorize_kernel(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a (k, k, C_in, C_out) kernel into (k, k, C_in, rank) and (1, 1, rank, C_out) ones.

    Their composition is the best rank-``rank`` approximation of ``kernel``; the
    singular values are shared evenly (square roots) so both halves keep
    similar scales for the optimizer.
    """
    *spatial, c_out = kernel.shape
    u, s, vt = np.linalg.svd(kernel.reshape(-1, c_out).astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    reduce = (u[:, :rank] * root).reshape(*spatial, rank)
    expand = (root[:, None] * vt[:rank]).reshape(1, 1, rank, c_out)
    return reduce.astype(kernel.dtype), expand.astype(kernel.dtype)


def multiply_adds(model) -> int:
    """Multiply-adds of one image through ``model``'s convolutions and dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            total += int(np.prod(layer.kernel.shape)) * height * width
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total
