"""Teacher labels for knowledge distillation (``distill`` in the config).

A student learns more from a stronger model's full output distribution than
from the data's labels alone ("dark knowledge": which wrong classes are
nearly right). The teachers here are models this project already trained; on
a 2-core CPU there is no time to run them beside every training step, so
their predictions on the (un-augmented) training images are computed once,
averaged over the teachers and, with ``flip``, over each image and its mirror
image (the augmentation flips images, so a flip-averaged target fits either
view), and blended into the split's labels before the pipeline is built.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.config import TrainConfig

log = logging.getLogger(__name__)


def load_teachers(cfg: TrainConfig) -> list:
    """``cfg.distill.teachers`` as models, each checked against the config's input and classes."""
    from trainer.evaluate import load_checked_model

    return [load_checked_model(Path(path), cfg, role="teacher") for path in cfg.distill.teachers]


def teacher_predictions(cfg: TrainConfig, split) -> np.ndarray:
    """Mean class probabilities (N, C) of ``cfg.distill.teachers`` on ``split``'s images, in order."""
    from trainer.data import make_dataset
    from trainer.evaluate import mean_probabilities

    teachers = load_teachers(cfg)
    images = make_dataset(split, cfg, training=False).map(lambda x, y: x)  # same order, no augmentation
    probs = mean_probabilities(teachers, images, flip_average=cfg.distill.flip, verbose=0)
    log.info("teachers %s: predictions for %d training images", ", ".join(cfg.distill.teachers), len(split))
    return probs


def with_teacher_labels(cfg: TrainConfig, split):
    """``split`` with its labels blended with the teachers' predictions (unchanged without teachers or online)."""
    if not cfg.distill.teachers or cfg.distill.online:
        return split
    weight = cfg.distill.weight
    teachers = teacher_predictions(cfg, split)
    agreement = float((teachers.argmax(axis=1) == split.majority).mean())
    log.info("teachers agree with %.1f%% of the training labels' majority; blend weight %.2f",
             100.0 * agreement, weight)
    return replace(split, labels=((1.0 - weight) * split.labels + weight * teachers).astype(np.float32))


def online_teacher_labels(cfg: TrainConfig):
    """``fn(images, labels) -> (images, blended)`` for ``Dataset.map`` on training batches.

    The teachers run on the batch the student is about to see (augmented, mixed),
    so the target never disagrees with the image. They are loaded once.
    """
    import tensorflow as tf

    teachers = load_teachers(cfg)
    weight = cfg.distill.weight
    log.info("teachers %s run online on every training batch; blend weight %.2f",
             ", ".join(cfg.distill.teachers), weight)

    def blend(images, labels):
        taught = tf.add_n([tf.cast(teacher(images, training=False), tf.float32) for teacher in teachers])
        return images, (1.0 - weight) * labels + (weight / len(teachers)) * taught

    return blend
