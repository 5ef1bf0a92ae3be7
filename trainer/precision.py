"""Mixed-precision training that still saves plain float32 models.

``precision: mixed_bfloat16`` runs the convolutions in bfloat16 (about 1.4x
faster on CPUs with AMX or AVX512-BF16; ``mixed_float16`` is the GPU choice)
while Keras keeps float32 master weights. A mixed model would carry its
bfloat16 casts into the saved model and from there into TFLite, so every
model the trainer writes is first rebuilt under float32 with the same weights
(``float32_copy``); ``ers export`` does the same for a checkpoint saved
mid-run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from trainer.config import PRECISIONS


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Set Keras's global dtype policy to ``name`` for the ``with`` block, then restore it."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_config(config: Any) -> Any:
    """``config`` with every mixed dtype policy replaced by float32."""
    if isinstance(config, dict):
        name = str(config.get("config", {}).get("name", "")) if config.get("class_name") == "DTypePolicy" else ""
        if name.startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config


def all_layers(layer) -> Iterator[Any]:
    """``layer`` and every layer inside it, nested models included."""
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from all_layers(inner)


def is_mixed(model) -> bool:
    """Whether any layer of ``model`` (nested models included) computes in a dtype other than
    its variables'."""
    return any(layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
               for layer in all_layers(model))


def float32_copy(model, custom_objects: dict[str, Any] | None = None):
    """``model`` itself when it is float32 throughout, else a float32 rebuild with its weights."""
    import keras

    if not is_mixed(model):
        return model
    config = _float32_config(model.get_config())
    with precision_policy("float32"), keras.utils.custom_object_scope(custom_objects or {}):
        copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


__all__ = ["PRECISIONS", "precision_policy", "float32_copy", "is_mixed", "all_layers"]
