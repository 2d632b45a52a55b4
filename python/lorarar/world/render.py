"""A deterministic renderer of subjects in styles, the ground truth of the embedded default world.

A *subject* is an object of a class (bird, house, ...) with a fixed identity: which parts it has, how many, and
their proportions. A *style* is a way of drawing anything: palette, fill pattern, outline, shading and background.
``render(subject, style, pose)`` draws one 64x64 RGB image; the same arguments always give the same pixels.

Shapes are rasterised as anti-aliased coverage masks on a 2x supersampled grid, then box-filtered down.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SIZE = 64
SUPERSAMPLE = 2

Array = npt.NDArray[Any]


def _f32(x: Any) -> Array:
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Part:
    """One primitive of a subject, in the subject's unit frame (x right, y down, the subject spans about [-1, 1])."""

    shape: str  # ellipse | rect | polygon (convex) | capsule | ring
    x: float
    y: float
    w: float  # half-width (ellipse/rect/ring: radius in x; capsule: thickness)
    h: float  # half-height
    angle: float = 0.0  # degrees
    accent: bool = False  # drawn in the secondary colour (eyes, windows, beaks ...)
    points: tuple[tuple[float, float], ...] = ()  # polygon vertices / capsule endpoints


@dataclass(frozen=True)
class Subject:
    name: str
    cls: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Style:
    name: str
    primary: tuple[float, float, float]
    secondary: tuple[float, float, float]
    background: tuple[float, float, float]
    background2: tuple[float, float, float]
    outline: tuple[float, float, float]
    pattern: str  # solid | hstripes | vstripes | diagonal | dots | checker | rings | gradient
    pattern_scale: float  # period in pixels
    stroke: float  # outline width in pixels, 0 for none
    backdrop: str  # solid | vgradient | radial | grid | dots | stripes | speckle | horizon
    shadow: bool = False


@dataclass(frozen=True)
class Pose:
    """Where and how the subject sits in the frame."""

    dx: float = 0.0  # centre offset in pixels
    dy: float = 0.0
    scale: float = 1.0  # subject half-extent = 22 px * scale
    angle: float = 0.0  # degrees
    flip: bool = False
    seed: int = 0  # texture noise (speckle backgrounds)

    @staticmethod
    def random(rng: np.random.Generator) -> Pose:
        return Pose(
            dx=float(rng.uniform(-7, 7)),
            dy=float(rng.uniform(-6, 6)),
            scale=float(rng.uniform(0.78, 1.02)),
            angle=float(rng.uniform(-12, 12)),
            flip=bool(rng.random() < 0.5),
            seed=int(rng.integers(0, 2**31 - 1)),
        )


@dataclass
class _Canvas:
    n: int = SIZE * SUPERSAMPLE
    xs: Array = field(init=False)
    ys: Array = field(init=False)

    def __post_init__(self) -> None:
        c = (np.arange(self.n, dtype=np.float32) + 0.5) / SUPERSAMPLE
        self.xs, self.ys = np.meshgrid(c, c)


_CANVAS = _Canvas()


def _coverage(sd: Array) -> Array:
    """Signed distance (pixels, negative inside) to an anti-aliased coverage in [0, 1]."""
    return np.clip(0.5 - sd * SUPERSAMPLE, 0.0, 1.0)


def _local(part: Part, pose: Pose) -> tuple[Array, Array, float]:
    """Canvas pixels mapped into the part's frame; returns (u, v, pixels-per-unit)."""
    unit = 22.0 * pose.scale
    cx, cy = SIZE / 2 + pose.dx, SIZE / 2 + pose.dy
    x = (_CANVAS.xs - cx) / unit
    y = (_CANVAS.ys - cy) / unit
    if pose.flip:
        x = -x
    a = math.radians(pose.angle)
    x, y = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    x, y = x - part.x, y - part.y
    b = math.radians(part.angle)
    u = x * math.cos(b) + y * math.sin(b)
    v = -x * math.sin(b) + y * math.cos(b)
    return u, v, unit


def _signed_distance(part: Part, pose: Pose) -> Array:
    u, v, unit = _local(part, pose)
    if part.shape == "ellipse":
        # Scaled-circle approximation of the ellipse distance (exact for circles).
        k = np.sqrt((u / part.w) ** 2 + (v / part.h) ** 2)
        return (k - 1.0) * min(part.w, part.h) * unit
    if part.shape == "ring":
        k = np.sqrt((u / part.w) ** 2 + (v / part.h) ** 2)
        thickness = 0.28
        return (np.abs(k - 1.0) - thickness) * min(part.w, part.h) * unit
    if part.shape == "rect":
        qx, qy = np.abs(u) - part.w, np.abs(v) - part.h
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return _f32((outside + np.minimum(np.maximum(qx, qy), 0)) * unit)
    if part.shape == "polygon":
        pts = part.points
        n = len(pts)
        d = np.full(u.shape, -np.inf, dtype=np.float32)
        # A convex polygon is the intersection of its edges' half-planes, whichever the winding.
        area = sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n))
        sign = 1.0 if area > 0 else -1.0
        for i in range(n):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
            ex, ey = x1 - x0, y1 - y0
            length = math.hypot(ex, ey)
            dist = sign * ((u - x0) * ey - (v - y0) * ex) / length
            d = np.maximum(d, dist)
        return d * unit
    if part.shape == "capsule":
        (x0, y0), (x1, y1) = part.points
        ex, ey = x1 - x0, y1 - y0
        t = np.clip(((u - x0) * ex + (v - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        return (np.sqrt((u - x0 - t * ex) ** 2 + (v - y0 - t * ey) ** 2) - part.w) * unit
    raise ValueError(f"unknown shape {part.shape!r}")


def accent_colour_of(style: Style) -> Array:
    primary = np.array(style.primary, dtype=np.float32)
    for candidate in (style.secondary, style.outline, style.background):
        c = np.array(candidate, dtype=np.float32)
        if float(np.abs(c - primary).sum()) > 0.6:
            return c
    return (1.0 - primary).astype(np.float32)


def _pattern(style: Style, base: Array, accent: Array, pose: Pose) -> Array:
    """Per-pixel mix weight in [0, 1] of the secondary colour inside the subject."""
    xs, ys = _CANVAS.xs, _CANVAS.ys
    p = style.pattern_scale
    if style.pattern == "solid":
        w = np.zeros_like(xs)
    elif style.pattern == "hstripes":
        w = (np.sin(ys * 2 * math.pi / p) > 0).astype(np.float32)
    elif style.pattern == "vstripes":
        w = (np.sin(xs * 2 * math.pi / p) > 0).astype(np.float32)
    elif style.pattern == "diagonal":
        w = (np.sin((xs + ys) * 2 * math.pi / (p * 1.41)) > 0).astype(np.float32)
    elif style.pattern == "checker":
        w = ((np.floor(xs / p) + np.floor(ys / p)) % 2).astype(np.float32)
    elif style.pattern == "dots":
        gx, gy = (xs % p) - p / 2, (ys % p) - p / 2
        w = (gx * gx + gy * gy < (p * 0.3) ** 2).astype(np.float32)
    elif style.pattern == "rings":
        cx, cy = SIZE / 2 + pose.dx, SIZE / 2 + pose.dy
        w = (np.sin(np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) * 2 * math.pi / p) > 0).astype(np.float32)
    elif style.pattern == "gradient":
        w = np.clip((ys - (SIZE / 2 + pose.dy - 20)) / 40, 0, 1).astype(np.float32)
    else:
        raise ValueError(f"unknown pattern {style.pattern!r}")
    return np.where(accent > 0, 1.0, w).astype(np.float32)


def _backdrop(style: Style, pose: Pose) -> Array:
    xs, ys = _CANVAS.xs, _CANVAS.ys
    c1 = np.array(style.background, dtype=np.float32)
    c2 = np.array(style.background2, dtype=np.float32)
    if style.backdrop == "solid":
        t = np.zeros_like(xs)
    elif style.backdrop == "vgradient":
        t = ys / SIZE
    elif style.backdrop == "radial":
        t = np.clip(np.sqrt((xs - SIZE / 2) ** 2 + (ys - SIZE / 2) ** 2) / (SIZE * 0.7), 0, 1)
    elif style.backdrop == "grid":
        t = (((xs % 8) < 1.0) | ((ys % 8) < 1.0)).astype(np.float32)
    elif style.backdrop == "dots":
        t = ((((xs % 10) - 5) ** 2 + ((ys % 10) - 5) ** 2) < 2.5).astype(np.float32)
    elif style.backdrop == "stripes":
        t = (np.sin((xs - ys) * 2 * math.pi / 12) > 0.3).astype(np.float32)
    elif style.backdrop == "speckle":
        rng = np.random.default_rng(pose.seed)
        coarse = rng.random((SIZE // 4, SIZE // 4)).astype(np.float32)
        t = np.kron(coarse, np.ones((4 * SUPERSAMPLE, 4 * SUPERSAMPLE), dtype=np.float32)) > 0.6
        t = t.astype(np.float32)
    elif style.backdrop == "horizon":
        t = (ys > SIZE * 0.62).astype(np.float32)
    else:
        raise ValueError(f"unknown backdrop {style.backdrop!r}")
    return _f32(c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None])


def render(subject: Subject, style: Style, pose: Pose) -> Array:
    """One image, float32 (64, 64, 3) in [0, 1]."""
    img = _backdrop(style, pose)
    body = np.zeros(img.shape[:2], dtype=np.float32)
    accent = np.zeros_like(body)
    sd_union = np.full(body.shape, np.inf, dtype=np.float32)
    for part in subject.parts:
        sd = _signed_distance(part, pose)
        sd_union = np.minimum(sd_union, sd)
        cov = _coverage(sd)
        if part.accent:
            accent = np.maximum(accent, cov)
        else:
            body = np.maximum(body, cov)
            accent = accent * (1 - cov)  # later body parts cover earlier accents
    if style.shadow:
        shifted = np.roll(np.roll(np.maximum(body, accent), 3 * SUPERSAMPLE, axis=0), 3 * SUPERSAMPLE, axis=1)
        img = img * (1 - 0.45 * shifted[..., None])
    primary = np.array(style.primary, dtype=np.float32)
    secondary = np.array(style.secondary, dtype=np.float32)
    body_mix = _pattern(style, body, np.zeros_like(accent), pose)[..., None]
    fill = primary * (1 - body_mix) + secondary * body_mix
    # Accent parts carry identity (eyes, windows, wheels): draw them in a colour that contrasts with the body.
    accent_colour = accent_colour_of(style)
    a = accent[..., None]
    fill = fill * (1 - a) + accent_colour * a
    cover = np.maximum(body, accent)[..., None]
    img = img * (1 - cover) + fill * cover
    if style.stroke > 0:
        edge = _coverage(np.abs(sd_union) - style.stroke / 2)[..., None]
        img = img * (1 - edge) + np.array(style.outline, dtype=np.float32) * edge
    # Box filter down to the output size.
    img = img.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return _f32(np.clip(img, 0.0, 1.0))


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (r, g, b)


def to_uint8(img: Array) -> npt.NDArray[np.uint8]:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
