"""Object classes as parametric part assemblies, and the named subjects of the default world.

Each class maps identity parameters (counts and proportions) to parts. Named subjects fix the parameters at
values far apart from each other; the base model trains on random instances, whose parameters are drawn from the
class ranges, and never on a named subject's exact identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lorarar.world.render import Part, Subject

Params = dict[str, float]


def _tri(*pts: tuple[float, float], accent: bool = False) -> Part:
    return Part("polygon", 0, 0, 0, 0, accent=accent, points=tuple(pts))


def _line(x0: float, y0: float, x1: float, y1: float, w: float = 0.07, accent: bool = False) -> Part:
    return Part("capsule", 0, 0, w, w, accent=accent, points=((x0, y0), (x1, y1)))


def bird(p: Params) -> tuple[Part, ...]:
    bw, bh = 0.62 * p["body"], 0.42 * p["body"] / p["aspect"] * 1.3
    head_r = 0.26 * p["head"]
    hx, hy = bw * 0.78, -bh * 0.9
    beak = 0.18 + 0.3 * p["beak"]
    parts = [
        _line(-0.15, bh * 0.8, -0.2, 0.95, 0.05),
        _line(0.15, bh * 0.8, 0.2, 0.95, 0.05),
        _tri((-bw * 0.8, 0.0), (-bw - 0.45 * p["tail"], -0.35 * p["tail"]), (-bw - 0.45 * p["tail"], 0.3)),
        Part("ellipse", 0, 0, bw, bh),
        Part("ellipse", hx, hy, head_r, head_r),
        _tri(
            (hx + head_r * 0.8, hy - 0.08),
            (hx + head_r * 0.8 + beak, hy + 0.02),
            (hx + head_r * 0.8, hy + 0.1),
            accent=True,
        ),
        Part("ellipse", hx + head_r * 0.25, hy - head_r * 0.2, 0.06, 0.06, accent=True),
    ]
    if p["crest"] > 0.5:
        parts.append(_tri((hx - 0.1, hy - head_r * 0.8), (hx, hy - head_r - 0.3), (hx + 0.1, hy - head_r * 0.8)))
    parts.append(Part("ellipse", -bw * 0.1, -bh * 0.05, bw * 0.5, bh * 0.45, angle=-15, accent=p["wing"] > 0.5))
    return tuple(parts)


def fish(p: Params) -> tuple[Part, ...]:
    bw, bh = 0.72, 0.42 * p["height"]
    tail = 0.3 + 0.35 * p["tail"]
    parts = [
        _tri((-bw * 0.85, 0.0), (-bw - tail, -tail * 0.9), (-bw - tail, tail * 0.9)),
        _tri((-0.1, -bh * 0.9), (0.25, -bh - 0.3 * p["fin"]), (0.35, -bh * 0.8)),
        Part("ellipse", 0, 0, bw, bh),
        Part("ellipse", bw * 0.6, -bh * 0.25, 0.07, 0.07, accent=True),
    ]
    for i in range(int(p["stripes"])):
        x = -0.35 + 0.28 * i
        parts.append(Part("rect", x, 0, 0.045, bh * 0.8, accent=True))
    return tuple(parts)


def house(p: Params) -> tuple[Part, ...]:
    w, h = 0.62 * p["width"], 0.45 * p["height"]
    roof = 0.35 + 0.45 * p["roof"]
    parts = []
    if p["chimney"] > 0.5:
        parts.append(Part("rect", w * 0.5, -h - roof * 0.45, 0.08, roof * 0.4))
    parts += [
        Part("rect", 0, 0.2, w, h),
        _tri((-w - 0.12, 0.2 - h), (w + 0.12, 0.2 - h), (0.0, 0.2 - h - roof)),
        Part("rect", 0 if int(p["windows"]) % 2 == 0 else -w * 0.55, 0.2 + h - 0.2, 0.11, 0.2, accent=True),
    ]
    n = int(p["windows"])
    for i in range(n):
        x = -w * 0.6 + (1.2 * w) * (i + 0.5) / n
        parts.append(Part("rect", x, 0.2 - h * 0.35, 0.09, 0.09, accent=True))
    return tuple(parts)


def tree(p: Params) -> tuple[Part, ...]:
    trunk_h = 0.3 + 0.25 * p["trunk"]
    parts = [Part("rect", 0, 0.95 - trunk_h, 0.09 + 0.06 * p["girth"], trunk_h)]
    layers = int(p["layers"])
    if p["conifer"] > 0.5:
        for i in range(layers):
            top = -0.95 + i * 0.45
            width = 0.35 + 0.22 * (i + 1)
            parts.append(_tri((-width, top + 0.7), (width, top + 0.7), (0, top)))
    else:
        crown_y = 0.95 - 2 * trunk_h - 0.3
        for i in range(layers):
            ang = -math.pi / 2 + (i - (layers - 1) / 2) * 1.0
            r = 0.42 + 0.1 * p["girth"]
            parts.append(
                Part("ellipse", 0.35 * math.cos(ang) * (layers > 1), crown_y + 0.3 * math.sin(ang) * 0.4, r, r * 0.9)
            )
        for i in range(int(p["fruit"])):
            parts.append(Part("ellipse", -0.25 + 0.25 * i, crown_y + 0.1 * ((i % 2) * 2 - 1), 0.07, 0.07, accent=True))
    return tuple(parts)


def car(p: Params) -> tuple[Part, ...]:
    w, h = 0.85, 0.22 * p["height"]
    cab_w = 0.3 + 0.25 * p["cabin"]
    parts = [
        _tri((-cab_w, -h), (cab_w, -h), (cab_w * 0.7, -h - 0.35), (-cab_w * 0.6, -h - 0.35)),
        Part("rect", 0, 0.1, w, h),
        Part("rect", 0.0, -h - 0.15, cab_w * 0.45, 0.09, accent=True),
    ]
    n = int(p["wheels"])
    for i in range(n):
        x = -w * 0.7 + (1.4 * w) * i / (n - 1)
        parts.append(
            Part("ellipse", x, 0.1 + h, 0.17 + 0.05 * p["wheel_size"], 0.17 + 0.05 * p["wheel_size"], accent=True)
        )
    if p["spoiler"] > 0.5:
        parts.append(Part("rect", -w + 0.05, -h - 0.05, 0.08, 0.15))
    return tuple(parts)


def robot(p: Params) -> tuple[Part, ...]:
    bw, bh = 0.45 * p["body"], 0.45
    head = 0.25 + 0.1 * p["head"]
    parts = [
        _line(-bw - 0.05, -0.1, -bw - 0.3, 0.35 - 0.5 * p["arms"]),
        _line(bw + 0.05, -0.1, bw + 0.3, 0.35 - 0.5 * p["arms"]),
        _line(-bw * 0.5, bh + 0.2, -bw * 0.5, 0.95, 0.08),
        _line(bw * 0.5, bh + 0.2, bw * 0.5, 0.95, 0.08),
        Part("rect", 0, 0.2, bw, bh),
    ]
    hy = 0.2 - bh - head - 0.05
    if p["round_head"] > 0.5:
        parts.append(Part("ellipse", 0, hy, head * 1.1, head))
    else:
        parts.append(Part("rect", 0, hy, head * 1.1, head * 0.9))
    eyes = int(p["eyes"])
    for i in range(eyes):
        x = (i - (eyes - 1) / 2) * 0.22
        parts.append(Part("ellipse", x, hy - 0.02, 0.07, 0.07, accent=True))
    for i in range(int(p["antennas"])):
        x = (i - (int(p["antennas"]) - 1) / 2) * 0.3
        parts += [
            _line(x, hy - head, x, hy - head - 0.25, 0.035),
            Part("ellipse", x, hy - head - 0.28, 0.07, 0.07, accent=True),
        ]
    parts.append(Part("rect", 0, 0.1, bw * 0.5, 0.12, accent=True))
    return tuple(parts)


def cup(p: Params) -> tuple[Part, ...]:
    w, h = 0.38 + 0.12 * p["width"], 0.35 + 0.2 * p["height"]
    parts = []
    if p["saucer"] > 0.5:
        parts.append(Part("ellipse", 0, h + 0.05, w + 0.35, 0.1))
    parts.append(Part("ring", w + 0.12, 0, 0.18 + 0.08 * p["handle"], 0.22 + 0.05 * p["handle"]))
    parts.append(_tri((-w, -h), (w, -h), (w * (1 - 0.3 * p["taper"]), h), (-w * (1 - 0.3 * p["taper"]), h)))
    parts.append(Part("ellipse", 0, -h, w, 0.07, accent=True))
    if p["steam"] > 0.5:
        parts += [_line(-0.12, -h - 0.15, -0.18, -h - 0.5, 0.035), _line(0.12, -h - 0.15, 0.18, -h - 0.5, 0.035)]
    return tuple(parts)


def flower(p: Params) -> tuple[Part, ...]:
    petals = int(p["petals"])
    cy = -0.3
    plen = 0.22 + 0.12 * p["petal_len"]
    parts = [_line(0, cy, 0, 0.95, 0.05)]
    if p["leaves"] > 0.5:
        parts += [Part("ellipse", -0.2, 0.45, 0.2, 0.08, angle=30), Part("ellipse", 0.2, 0.6, 0.2, 0.08, angle=-30)]
    for i in range(petals):
        a = 2 * math.pi * i / petals
        parts.append(
            Part(
                "ellipse",
                math.cos(a) * plen,
                cy + math.sin(a) * plen,
                plen * 0.75,
                0.11 + 0.05 * p["petal_w"],
                angle=math.degrees(a),
            )
        )
    parts.append(Part("ellipse", 0, cy, 0.14 + 0.06 * p["center"], 0.14 + 0.06 * p["center"], accent=True))
    return tuple(parts)


@dataclass(frozen=True)
class ObjectClass:
    name: str
    build: Callable[[Params], tuple[Part, ...]]
    # parameter -> (low, high, integer?)
    ranges: dict[str, tuple[float, float, bool]]

    def random_params(self, rng: np.random.Generator) -> Params:
        out = {}
        for key, (lo, hi, integer) in self.ranges.items():
            out[key] = float(rng.integers(int(lo), int(hi) + 1)) if integer else float(rng.uniform(lo, hi))
        return out


CLASSES: dict[str, ObjectClass] = {
    c.name: c
    for c in (
        ObjectClass(
            "bird",
            bird,
            {
                "body": (0.8, 1.15, False),
                "aspect": (1.0, 1.6, False),
                "head": (0.8, 1.25, False),
                "beak": (0.0, 1.0, False),
                "tail": (0.5, 1.3, False),
                "crest": (0, 1, True),
                "wing": (0, 1, True),
            },
        ),
        ObjectClass(
            "fish",
            fish,
            {"height": (0.7, 1.4, False), "tail": (0.0, 1.0, False), "fin": (0.2, 1.0, False), "stripes": (0, 3, True)},
        ),
        ObjectClass(
            "house",
            house,
            {
                "width": (0.8, 1.2, False),
                "height": (0.8, 1.3, False),
                "roof": (0.0, 1.0, False),
                "chimney": (0, 1, True),
                "windows": (1, 3, True),
            },
        ),
        ObjectClass(
            "tree",
            tree,
            {
                "trunk": (0.0, 1.0, False),
                "girth": (0.0, 1.0, False),
                "layers": (1, 3, True),
                "conifer": (0, 1, True),
                "fruit": (0, 3, True),
            },
        ),
        ObjectClass(
            "car",
            car,
            {
                "height": (0.8, 1.4, False),
                "cabin": (0.0, 1.0, False),
                "wheels": (2, 3, True),
                "wheel_size": (0.0, 1.0, False),
                "spoiler": (0, 1, True),
            },
        ),
        ObjectClass(
            "robot",
            robot,
            {
                "body": (0.8, 1.25, False),
                "head": (0.0, 1.0, False),
                "arms": (0.0, 1.0, False),
                "round_head": (0, 1, True),
                "eyes": (1, 3, True),
                "antennas": (0, 2, True),
            },
        ),
        ObjectClass(
            "cup",
            cup,
            {
                "width": (0.0, 1.0, False),
                "height": (0.0, 1.0, False),
                "handle": (0.0, 1.0, False),
                "taper": (0.0, 1.0, False),
                "saucer": (0, 1, True),
                "steam": (0, 1, True),
            },
        ),
        ObjectClass(
            "flower",
            flower,
            {
                "petals": (4, 8, True),
                "petal_len": (0.0, 1.0, False),
                "petal_w": (0.0, 1.0, False),
                "center": (0.0, 1.0, False),
                "leaves": (0, 1, True),
            },
        ),
    )
}

# Three named subjects per class, chosen to differ in counts and silhouettes.
NAMED_SUBJECT_PARAMS: dict[str, tuple[str, Params]] = {
    "pip": ("bird", {"body": 0.85, "aspect": 1.0, "head": 1.25, "beak": 0.1, "tail": 0.5, "crest": 1, "wing": 1}),
    "kestrel": ("bird", {"body": 1.15, "aspect": 1.6, "head": 0.8, "beak": 1.0, "tail": 1.3, "crest": 0, "wing": 0}),
    "wren": ("bird", {"body": 1.0, "aspect": 1.2, "head": 1.0, "beak": 0.5, "tail": 1.0, "crest": 0, "wing": 1}),
    "goby": ("fish", {"height": 0.7, "tail": 1.0, "fin": 0.2, "stripes": 3}),
    "bream": ("fish", {"height": 1.4, "tail": 0.0, "fin": 1.0, "stripes": 0}),
    "minnow": ("fish", {"height": 1.0, "tail": 0.6, "fin": 0.6, "stripes": 1}),
    "cottage": ("house", {"width": 1.2, "height": 0.8, "roof": 0.2, "chimney": 1, "windows": 3}),
    "tower": ("house", {"width": 0.8, "height": 1.3, "roof": 1.0, "chimney": 0, "windows": 1}),
    "barn": ("house", {"width": 1.0, "height": 1.0, "roof": 0.6, "chimney": 0, "windows": 2}),
    "pine": ("tree", {"trunk": 0.2, "girth": 0.2, "layers": 3, "conifer": 1, "fruit": 0}),
    "apple": ("tree", {"trunk": 0.6, "girth": 0.9, "layers": 1, "conifer": 0, "fruit": 3}),
    "oak": ("tree", {"trunk": 1.0, "girth": 0.5, "layers": 3, "conifer": 0, "fruit": 0}),
    "beetle": ("car", {"height": 1.4, "cabin": 1.0, "wheels": 2, "wheel_size": 1.0, "spoiler": 0}),
    "racer": ("car", {"height": 0.8, "cabin": 0.0, "wheels": 2, "wheel_size": 0.0, "spoiler": 1}),
    "truck": ("car", {"height": 1.2, "cabin": 0.4, "wheels": 3, "wheel_size": 0.5, "spoiler": 0}),
    "bolt": ("robot", {"body": 0.8, "head": 0.0, "arms": 1.0, "round_head": 0, "eyes": 1, "antennas": 2}),
    "gizmo": ("robot", {"body": 1.25, "head": 1.0, "arms": 0.0, "round_head": 1, "eyes": 2, "antennas": 0}),
    "servo": ("robot", {"body": 1.0, "head": 0.5, "arms": 0.5, "round_head": 0, "eyes": 3, "antennas": 1}),
    "mug": ("cup", {"width": 1.0, "height": 1.0, "handle": 1.0, "taper": 0.0, "saucer": 0, "steam": 1}),
    "teacup": ("cup", {"width": 0.6, "height": 0.0, "handle": 0.0, "taper": 0.8, "saucer": 1, "steam": 0}),
    "beaker": ("cup", {"width": 0.0, "height": 1.0, "handle": 0.5, "taper": 0.2, "saucer": 0, "steam": 0}),
    "daisy": ("flower", {"petals": 8, "petal_len": 1.0, "petal_w": 0.0, "center": 0.3, "leaves": 1}),
    "tulip": ("flower", {"petals": 4, "petal_len": 0.3, "petal_w": 1.0, "center": 0.0, "leaves": 0}),
    "poppy": ("flower", {"petals": 5, "petal_len": 0.6, "petal_w": 0.6, "center": 1.0, "leaves": 1}),
}


def make_subject(name: str, cls: str, params: Params) -> Subject:
    return Subject(name=name, cls=cls, parts=CLASSES[cls].build(params))


def named_subject(name: str) -> Subject:
    cls, params = NAMED_SUBJECT_PARAMS[name]
    return make_subject(name, cls, params)


def random_instance(cls: str, rng: np.random.Generator) -> Subject:
    """A random member of a class, kept away from every named subject's exact parameters."""
    while True:
        params = CLASSES[cls].random_params(rng)
        if all(_distance(params, p) > 0.15 for c, p in NAMED_SUBJECT_PARAMS.values() if c == cls):
            return make_subject(f"random-{cls}", cls, params)


def _distance(a: Params, b: Params) -> float:
    return max(abs(a[k] - b[k]) for k in a)
