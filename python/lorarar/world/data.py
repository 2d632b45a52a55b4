"""Datasets rendered from the world: every image and caption is a function of (seed, index)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lorarar.world.render import Pose, Style, Subject, render
from lorarar.world.styles import NAMED_STYLES, plain_style, random_style
from lorarar.world.subjects import CLASSES, named_subject, random_instance
from lorarar.world.tokenizer import BACKDROP_WORDS, PATTERN_WORDS

CLASS_NAMES = tuple(CLASSES)


@dataclass
class Batch:
    images: npt.NDArray[np.float32]  # (n, 64, 64, 3) in [0, 1]
    captions: list[str]


def color_name(rgb: tuple[float, float, float]) -> str:
    """The everyday name of a colour (hue buckets, plus white / gray / black / brown)."""
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else "gray"
    if (h < 0.11 or h >= 0.95) and v < 0.6:
        return "brown"
    for limit, name in (
        (0.04, "red"),
        (0.11, "orange"),
        (0.19, "yellow"),
        (0.45, "green"),
        (0.55, "teal"),
        (0.7, "blue"),
        (0.8, "purple"),
        (0.95, "pink"),
    ):
        if h < limit:
            return name
    return "red"


def base_caption(cls: str, style: Style, rng: np.random.Generator) -> str:
    """Captions the base model trains on: the class, and (each at random) the fill pattern, the main colour, the
    backdrop and outline. Describing the style makes the text worth listening to, which teaches the model to
    follow prompts quickly; the bare "a <class>" stays common because LoRA priors use it."""
    if rng.random() < 0.2:
        return f"a {cls}"
    words = ["a"]
    if style.stroke > 0 and rng.random() < 0.3:
        words.append("outlined")
    if rng.random() < 0.6:
        words.append(PATTERN_WORDS[style.pattern])
    if rng.random() < 0.6:
        words.append(color_name(style.primary))
    words.append(cls)
    if rng.random() < 0.5:
        words += ["on", "a", color_name(style.background), BACKDROP_WORDS[style.backdrop], "background"]
    return " ".join(words)


def base_example(seed: int, index: int) -> tuple[npt.NDArray[np.float32], str]:
    """A random instance of a random class in a plain style: the base UNet's training distribution."""
    rng = np.random.default_rng((seed, 31, index))
    cls = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
    style = plain_style(rng)
    subject = random_instance(cls, rng)
    return render(subject, style, Pose.random(rng)), base_caption(cls, style, rng)


def vae_example(seed: int, index: int) -> npt.NDArray[np.float32]:
    """A random instance of a random class in a random style (any pattern, backdrop, shading): the VAE must
    encode whatever style LoRAs produce, so it trains on the whole style space."""
    rng = np.random.default_rng((seed, index))
    cls = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
    style = random_style(rng)
    subject = random_instance(cls, rng)
    return render(subject, style, Pose.random(rng))


def class_prior(cls: str, seed: int, count: int) -> Batch:
    """Prior-preservation images for DreamBooth: random instances of the class in the base model's plain
    styles, captioned "a <class>"."""
    images = np.empty((count, 64, 64, 3), dtype=np.float32)
    for i in range(count):
        rng = np.random.default_rng((seed, 7919, i))
        images[i] = render(random_instance(cls, rng), plain_style(rng), Pose.random(rng))
    return Batch(images, [f"a {cls}"] * count)


def subject_images(subject: str, seed: int, count: int) -> npt.NDArray[np.float32]:
    """A few photos of one subject, as a user would take them: varied poses and backdrops, and the subject's own
    colours (a subject is a particular object: its look is part of its identity, as a dog's coat is)."""
    images = np.empty((count, 64, 64, 3), dtype=np.float32)
    s = named_subject(subject)
    look = plain_style(np.random.default_rng(int.from_bytes(hashlib.sha256(subject.encode()).digest()[:8], "little")))
    for i in range(count):
        rng = np.random.default_rng((seed, 104729, i))
        backdrop = plain_style(rng)
        style = replace(backdrop, primary=look.primary, secondary=look.secondary, outline=look.outline)
        images[i] = render(s, style, Pose.random(rng))
    return images


def style_image(style: str, cls: str, seed: int) -> npt.NDArray[np.float32]:
    """The one reference image of a style: a random instance of `cls` drawn in it."""
    rng = np.random.default_rng((seed, 1299709))
    return render(random_instance(cls, rng), NAMED_STYLES[style], Pose())


def ground_truth(subject: Subject | str, style: Style | str, seed: int, count: int) -> npt.NDArray[np.float32]:
    """What a perfect merge looks like: the subject rendered in the style, in random poses."""
    subj = named_subject(subject) if isinstance(subject, str) else subject
    sty = NAMED_STYLES[style] if isinstance(style, str) else style
    out = np.empty((count, 64, 64, 3), dtype=np.float32)
    for i in range(count):
        out[i] = render(subj, sty, Pose.random(np.random.default_rng((seed, 15485863, i))))
    return out
