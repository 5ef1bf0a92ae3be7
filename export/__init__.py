"""Convert a trained Keras model to verified TFLite variants with a manifest.

Public API: ``export.api.export_model`` with ``export.options.ExportOptions``;
``export.convert.convert_to_tflite`` for a single conversion. Importing this
package does not import TensorFlow.
"""
