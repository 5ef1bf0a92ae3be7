"""Distillation on an accelerator machine that has Keras' JAX or PyTorch backend but no TensorFlow.

``ers train`` needs TensorFlow (``tf.data``, ``tf.distribute``). GPU hosts
often carry only JAX or PyTorch, and TensorFlow's GPU build is too large to
bring along. This module trains the same ``trainer.nets`` networks there with
backend-agnostic Keras, in two steps:

1. ``pack`` (``pack.py``, here, with the project's loaders): the training images with
   their vote distributions and the deduplicated validation images with their
   majority labels, exactly as ``ers train`` reads them, into one ``.npz``
   (images losslessly WebP-encoded as mosaics, so FER+ fits in about 45 MB).
2. ``distill`` (``distill.py``, on the accelerator, ``KERAS_BACKEND=jax``): a wider teacher on
   the vote distributions, then the recipe's network distilled from it. Both
   see the recipe's augmentation, done on the accelerator inside the training
   step (``augment.py``), and the student learns from the teacher's predictions on the very
   batch it sees (the same augmented images), which is what makes a teacher
   worth having: fixed predictions on un-augmented training images (``distill``
   in the config) barely add to the votes the teacher was trained on.

The student is saved as a float32 ``.keras`` model of the recipe's
architecture, which ``ers evaluate`` and ``ers export`` read like any model of
``ers train``. Random layers stay in the training wrapper, never in the saved
networks, so TFLite conversion is unaffected.

Run it as ``python -m trainer.portable pack|distill`` (nothing to install on the
accelerator but the keras wheels; the pack is read with OpenCV or, where it is
missing, Pillow) or, in a full install, ``ers pack`` and ``ers distill``.
"""

from trainer.portable.distill import DistillOptions, train_distilled
from trainer.portable.pack import load_pack, pack

__all__ = ["DistillOptions", "load_pack", "pack", "train_distilled"]
