"""Errors of ``export`` beyond the shared ones in ``edge.errors``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.errors import ErsError, ExportGateError

if TYPE_CHECKING:
    from export.api import ExportResult


class ConversionError(ErsError, ValueError):
    """A model cannot be loaded, traced or converted to TFLite."""


class ExportGateTripped(ExportGateError):
    """The export was written but a variant failed the gate; ``result`` holds the report."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result
