"""Training side of ``ers``: TensorFlow/Keras; ``edge`` never imports it.

Public API (import TensorFlow lazily; ``trainer.config`` does not):

* ``trainer.config``: ``TrainConfig`` (``DataConfig``, ``AugmentConfig``, ``CutMixConfig``,
  ``ModelConfig``, ``OptimConfig``), ``TrainConfig.from_file``, ``resolve_config``.
* ``trainer.data``: ``load_datasets(cfg)``, ``load_split(data, split)``, ``make_dataset``,
  ``load_image_arrays(data, split, limit=None, seed=0)``.
* ``trainer.models``: ``MODEL_BUILDERS``, ``build_model(cfg, input_shape, num_classes)``.
* ``trainer.train``: ``train(cfg, ...) -> TrainResult``, ``build_and_compile``, ``get_strategy``.
* ``trainer.distribute``: ``create_strategy(name, logical_devices)`` (``default``, ``mirrored``,
  ``multiworker``), ``read_tf_config() -> ClusterTask``, ``worker_temp_dir``; docs/distributed.md.
* ``trainer.evaluate``: ``evaluate(model_path, cfg, split, out_dir) -> EvalReport``,
  ``evaluate_model``, ``compute_metrics``, ``load_model``.
* ``trainer.convert``: ``convert_dataset(source, out_dir, ...)`` (``ers data``).
* ``trainer.portable``: ``pack(cfg, out_path)``, ``load_pack``, ``train_distilled(cfg, pack_path, out_dir,
  DistillOptions(...))`` (``ers pack``, ``ers distill``): Keras on any backend, no TensorFlow needed.
"""
