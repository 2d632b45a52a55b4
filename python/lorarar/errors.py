"""The one exception type the engine raises for bad input."""

from __future__ import annotations

# Status codes shared with the C API (lorarar_status).
CODE_NAMES = {
    1: "invalid argument",
    2: "invalid file",
    3: "unsupported",
    4: "not found",
    5: "i/o error",
    6: "out of memory",
    7: "cancelled",
    8: "internal error",
}


class LoraError(ValueError):
    """A file or argument the engine cannot use. str(e) is "<file>: <what is wrong>"."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, "error")
