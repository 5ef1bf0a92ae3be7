"""Exception types shared by every package of the project.

They subclass the builtin types callers already catch (``ValueError``,
``FileNotFoundError``), and ``ErsError`` marks the ones the CLI turns into a
one-line message with a non-zero exit code instead of a traceback.
"""

from __future__ import annotations


class ErsError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(ErsError, ValueError):
    """A configuration or option value is invalid."""


class DataError(ErsError, ValueError):
    """Input data (images, label files, folders) cannot be used."""


class ManifestError(ErsError, ValueError):
    """A model manifest is missing, malformed or does not match its model file."""


class SourceError(ErsError, OSError):
    """A video, camera or image source cannot be opened or read."""


class ExportGateError(ErsError):
    """A quantized variant lost more accuracy than the export gate allows."""


class SinkError(ErsError, OSError):
    """An output (video file, events file, window) cannot be written."""
