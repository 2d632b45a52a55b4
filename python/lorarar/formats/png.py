"""PNG output for every image the package writes (CLI, demo, reports): atomic, optionally enlarged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from lorarar.formats.atomic import atomic_file


def to_uint8(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """[0, 1] floats -> RGB8, rounded."""
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(image: npt.NDArray[np.uint8], path: Path, zoom: int = 1) -> None:
    """Writes an RGB8 image (h, w, 3), each pixel repeated `zoom` x `zoom` (64x64 images are small to look at)."""
    from PIL import Image

    picture = Image.fromarray(image)
    if zoom != 1:
        picture = picture.resize((image.shape[1] * zoom, image.shape[0] * zoom), Image.NEAREST)
    with atomic_file(path) as tmp:
        picture.save(tmp, format="PNG")
