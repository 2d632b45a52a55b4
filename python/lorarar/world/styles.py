"""The named styles of the default world, and the random styles the base model trains on.

A named style fixes every component (palette, fill pattern, outline, backdrop, shadow). Random styles draw each
component independently with random colours, so the base model learns to draw any of them but never sees a named
style's exact combination.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lorarar.world.render import Style, hsv

PATTERNS = ("solid", "hstripes", "vstripes", "diagonal", "dots", "checker", "rings", "gradient")
BACKDROPS = ("solid", "vgradient", "radial", "grid", "dots", "stripes", "speckle", "horizon")

# name: (primary hsv, secondary hsv, background hsv, background2 hsv, outline hsv,
#        pattern, pattern period px, stroke px, backdrop, shadow)
_NAMED: dict[str, tuple[Any, ...]] = {
    "ember": (
        (0.02, 0.9, 0.9),
        (0.12, 0.9, 1.0),
        (0.0, 0.0, 0.1),
        (0.05, 0.8, 0.3),
        (0.1, 0.5, 1.0),
        "hstripes",
        6,
        1.5,
        "vgradient",
        False,
    ),
    "lagoon": (
        (0.5, 0.8, 0.8),
        (0.55, 0.3, 1.0),
        (0.58, 0.6, 0.4),
        (0.52, 0.4, 0.8),
        (0.6, 1.0, 0.2),
        "rings",
        7,
        0,
        "radial",
        False,
    ),
    "meadow": (
        (0.28, 0.8, 0.6),
        (0.15, 0.8, 0.95),
        (0.3, 0.2, 0.95),
        (0.3, 0.6, 0.5),
        (0.3, 1.0, 0.15),
        "dots",
        6,
        1.0,
        "horizon",
        False,
    ),
    "blueprint": (
        (0.6, 0.1, 1.0),
        (0.6, 0.1, 1.0),
        (0.62, 0.9, 0.55),
        (0.6, 0.3, 0.95),
        (0.6, 0.05, 1.0),
        "solid",
        6,
        1.5,
        "grid",
        False,
    ),
    "candy": (
        (0.92, 0.5, 1.0),
        (0.0, 0.0, 1.0),
        (0.45, 0.25, 1.0),
        (0.9, 0.2, 1.0),
        (0.9, 0.9, 0.5),
        "diagonal",
        6,
        1.0,
        "dots",
        False,
    ),
    "noir": (
        (0.0, 0.0, 0.15),
        (0.0, 0.0, 0.9),
        (0.0, 0.0, 0.85),
        (0.0, 0.0, 0.6),
        (0.0, 0.0, 0.0),
        "checker",
        5,
        2.0,
        "solid",
        True,
    ),
    "sunset": (
        (0.75, 0.7, 0.5),
        (0.08, 0.9, 1.0),
        (0.08, 0.7, 1.0),
        (0.85, 0.6, 0.5),
        (0.75, 0.8, 0.2),
        "gradient",
        6,
        0,
        "vgradient",
        False,
    ),
    "moss": (
        (0.22, 0.6, 0.45),
        (0.22, 0.4, 0.75),
        (0.1, 0.35, 0.35),
        (0.1, 0.5, 0.25),
        (0.1, 0.3, 0.9),
        "vstripes",
        4,
        0,
        "speckle",
        False,
    ),
    "arctic": (
        (0.55, 0.15, 1.0),
        (0.58, 0.6, 0.9),
        (0.58, 0.5, 0.85),
        (0.55, 0.1, 1.0),
        (0.6, 0.7, 0.4),
        "hstripes",
        8,
        1.0,
        "horizon",
        True,
    ),
    "tangerine": (
        (0.07, 0.95, 1.0),
        (0.07, 0.95, 1.0),
        (0.55, 0.6, 0.9),
        (0.55, 0.6, 0.9),
        (0.0, 0.0, 0.1),
        "solid",
        6,
        2.5,
        "solid",
        False,
    ),
    "plum": (
        (0.8, 0.6, 0.55),
        (0.12, 0.5, 1.0),
        (0.8, 0.25, 0.95),
        (0.8, 0.5, 0.7),
        (0.8, 0.9, 0.25),
        "dots",
        8,
        0,
        "stripes",
        False,
    ),
    "circuit": (
        (0.35, 1.0, 0.8),
        (0.35, 1.0, 0.3),
        (0.0, 0.0, 0.05),
        (0.35, 1.0, 0.5),
        (0.35, 1.0, 1.0),
        "checker",
        4,
        1.0,
        "grid",
        False,
    ),
    "sepia": (
        (0.09, 0.5, 0.55),
        (0.09, 0.3, 0.85),
        (0.1, 0.3, 0.9),
        (0.08, 0.45, 0.7),
        (0.08, 0.6, 0.25),
        "vstripes",
        7,
        1.5,
        "radial",
        False,
    ),
    "ruby": (
        (0.98, 0.95, 0.65),
        (0.98, 0.4, 1.0),
        (0.0, 0.0, 0.95),
        (0.98, 0.15, 0.9),
        (0.98, 0.9, 0.3),
        "diagonal",
        4,
        0,
        "vgradient",
        True,
    ),
    "glacier": (
        (0.5, 0.35, 0.95),
        (0.6, 0.8, 0.6),
        (0.6, 0.8, 0.35),
        (0.6, 0.8, 0.35),
        (0.5, 0.2, 1.0),
        "rings",
        4,
        1.5,
        "solid",
        False,
    ),
    "honey": (
        (0.13, 0.9, 0.95),
        (0.08, 0.9, 0.6),
        (0.12, 0.25, 1.0),
        (0.12, 0.5, 0.95),
        (0.08, 1.0, 0.45),
        "checker",
        7,
        1.0,
        "dots",
        False,
    ),
    "lavender": (
        (0.75, 0.35, 0.9),
        (0.75, 0.6, 0.6),
        (0.3, 0.15, 0.9),
        (0.3, 0.3, 0.8),
        (0.75, 0.5, 0.4),
        "gradient",
        6,
        1.0,
        "speckle",
        False,
    ),
    "neon": (
        (0.83, 1.0, 1.0),
        (0.5, 1.0, 1.0),
        (0.7, 0.9, 0.15),
        (0.7, 0.9, 0.35),
        (0.5, 1.0, 1.0),
        "hstripes",
        4,
        2.0,
        "stripes",
        False,
    ),
    "clay": (
        (0.04, 0.6, 0.7),
        (0.04, 0.4, 0.9),
        (0.1, 0.1, 0.75),
        (0.1, 0.1, 0.55),
        (0.04, 0.7, 0.35),
        "solid",
        6,
        0,
        "horizon",
        True,
    ),
    "jade": (
        (0.4, 0.7, 0.6),
        (0.45, 0.3, 0.95),
        (0.4, 0.1, 0.2),
        (0.4, 0.5, 0.4),
        (0.45, 0.3, 1.0),
        "diagonal",
        8,
        1.0,
        "radial",
        False,
    ),
    "denim": (
        (0.6, 0.6, 0.5),
        (0.6, 0.3, 0.8),
        (0.6, 0.2, 0.85),
        (0.6, 0.2, 0.7),
        (0.12, 0.6, 1.0),
        "vstripes",
        3,
        1.5,
        "stripes",
        False,
    ),
    "lemon": (
        (0.16, 0.85, 1.0),
        (0.3, 0.7, 0.7),
        (0.0, 0.0, 0.3),
        (0.0, 0.0, 0.45),
        (0.16, 0.3, 1.0),
        "dots",
        5,
        1.0,
        "speckle",
        False,
    ),
    "coral": (
        (0.01, 0.55, 1.0),
        (0.5, 0.6, 0.8),
        (0.5, 0.3, 0.95),
        (0.5, 0.5, 0.8),
        (0.01, 0.7, 0.5),
        "rings",
        9,
        0,
        "grid",
        False,
    ),
    "charcoal": (
        (0.0, 0.0, 0.35),
        (0.0, 0.0, 0.55),
        (0.12, 0.15, 0.95),
        (0.12, 0.15, 0.95),
        (0.0, 0.0, 0.1),
        "hstripes",
        3,
        2.5,
        "solid",
        True,
    ),
}

NAMED_STYLES: dict[str, Style] = {
    name: Style(
        name=name,
        primary=hsv(*spec[0]),
        secondary=hsv(*spec[1]),
        background=hsv(*spec[2]),
        background2=hsv(*spec[3]),
        outline=hsv(*spec[4]),
        pattern=spec[5],
        pattern_scale=float(spec[6]),
        stroke=float(spec[7]),
        backdrop=spec[8],
        shadow=bool(spec[9]),
    )
    for name, spec in _NAMED.items()
}


def random_style(rng: np.random.Generator) -> Style:
    """Every component drawn independently; colours random. Used for base-model training."""

    def colour(s_lo: float = 0.0, s_hi: float = 1.0) -> tuple[float, float, float]:
        return hsv(float(rng.random()), float(rng.uniform(s_lo, s_hi)), float(rng.uniform(0.15, 1.0)))

    pattern = str(rng.choice(PATTERNS))
    return Style(
        name="random",
        primary=colour(0.3),
        secondary=colour(),
        background=colour(),
        background2=colour(),
        outline=colour(),
        pattern=pattern,
        pattern_scale=float(rng.integers(3, 10)),
        stroke=float(rng.choice([0.0, 0.0, 1.0, 1.5, 2.0, 2.5])),
        backdrop=str(rng.choice(BACKDROPS)),
        shadow=bool(rng.random() < 0.25),
    )


def plain_style(rng: np.random.Generator) -> Style:
    """The base model's styles: a flat, saturated fill (no pattern, no shadow) on a plain or fading,
    desaturated backdrop that contrasts with it. With texture out of the way, a few-million-parameter UNet
    trained for an hour on two CPU cores learns what matters for LoRAs to build on: the classes' shapes and
    following prompts. Patterns, shading and elaborate backdrops are what style LoRAs teach."""
    hue = float(rng.random())
    primary = hsv(hue, float(rng.uniform(0.45, 1.0)), float(rng.uniform(0.55, 1.0)))
    secondary = hsv(
        (hue + float(rng.uniform(0.25, 0.75))) % 1.0, float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.5, 1.0))
    )
    dark = bool(rng.random() < 0.35)
    value = float(rng.uniform(0.08, 0.3)) if dark else float(rng.uniform(0.8, 1.0))
    bg_hue, bg_sat = float(rng.random()), float(rng.uniform(0.0, 0.3))
    background = hsv(bg_hue, bg_sat, value)
    background2 = hsv(bg_hue, bg_sat, min(1.0, value + 0.15) if dark else value - 0.15)
    return Style(
        name="plain",
        primary=primary,
        secondary=secondary,
        background=background,
        background2=background2,
        outline=hsv(hue, 0.6, 0.25) if not dark else hsv(hue, 0.3, 0.95),
        pattern="solid",
        pattern_scale=6.0,
        stroke=float(rng.choice([0.0, 0.0, 1.5])),
        backdrop=str(rng.choice(["solid", "solid", "vgradient"])),
        shadow=False,
    )
