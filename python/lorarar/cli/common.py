"""Argument helpers shared by the commands."""

from __future__ import annotations

import argparse
import math

from lorarar._native import BaseModel, LoraFile


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def open_base(path: str | None) -> BaseModel | None:
    return BaseModel.open(path) if path else None


def load_lora(path: str, base: BaseModel | None) -> LoraFile:
    return LoraFile.load(path, base=base)
