"""The exporter's bad-input error: reported by the CLI as ``error: <path>: <what>`` with exit status 2."""

from __future__ import annotations

from lorarar.errors import LoraError


class ExportError(LoraError):
    """A model folder, option or adapter the exporter cannot use. str(e) is "<path>: <what is wrong>"."""
