"""The default world's catalogue: splits, prompts, and where its trained artifacts live.

Splits: the LoRA library (LIBRARY_SUBJECTS / LIBRARY_STYLES) covers every split. The hypernetwork trains on pairs
from the train split, picks its checkpoint on val, and is evaluated on test pairs it has never seen (unseen
subjects *and* unseen styles). The base model sees none of them: it trains on random class instances in plain
styles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lorarar.world.styles import NAMED_STYLES
from lorarar.world.subjects import NAMED_SUBJECT_PARAMS

CONTENT_TOKEN = "sks"  # DreamBooth's identifier for the subject
STYLE_TOKEN = "zwz"  # identifier for the style
# The classifier-free guidance scale the world's model samples at (facts, eval, demo). Measured on the LoRA library
# (style / content LoRA alone, 6 images each; the style LoRAs then had 400 steps): 1.5 -> 15/16 styles, 10/16
# subjects at >= 80%; 2 -> 15 / 13; 3 -> 13 / 14; 5 -> 10 / 12; 7.5 washes out most styles. A
# few-million-parameter model overshoots the backdrop's colour and fine patterns under strong guidance; 3 keeps
# subjects sharp without that.
GUIDANCE = 3.0

SUBJECT_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "pip",
        "kestrel",
        "goby",
        "bream",
        "cottage",
        "tower",
        "pine",
        "apple",
        "beetle",
        "racer",
        "bolt",
        "gizmo",
        "mug",
        "teacup",
        "daisy",
        "tulip",
    ),
    "val": ("wren", "minnow", "barn", "oak"),
    "test": ("truck", "servo", "beaker", "poppy"),
}
STYLE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "ember",
        "lagoon",
        "meadow",
        "blueprint",
        "candy",
        "noir",
        "sunset",
        "moss",
        "arctic",
        "tangerine",
        "plum",
        "circuit",
        "sepia",
        "ruby",
        "glacier",
        "honey",
    ),
    "val": ("lavender", "neon", "clay", "jade"),
    "test": ("denim", "lemon", "coral", "charcoal"),
}
SPLITS = ("train", "val", "test")

# The LoRA library: every val and test subject and style, and half of the train ones (one subject per class),
# which keeps the loras stage under an hour on two cores. The other train names are in the world (renders, ground
# truth, classifiers) and can be added to the library by training their LoRAs.
LIBRARY_SUBJECTS: dict[str, tuple[str, ...]] = {
    "train": SUBJECT_SPLITS["train"][::2],
    "val": SUBJECT_SPLITS["val"],
    "test": SUBJECT_SPLITS["test"],
}
LIBRARY_STYLES: dict[str, tuple[str, ...]] = {
    "train": STYLE_SPLITS["train"][::2],
    "val": STYLE_SPLITS["val"],
    "test": STYLE_SPLITS["test"],
}


# How much of the train split has LoRAs: "library" (the committed library above) or "all" (every train subject
# and style: 16 more LoRAs, trained on demand into a copy of the world, for training the hypernetwork on 16 x 16
# train pairs instead of 8 x 8; not committed, they would exceed the artifact budget).
TRAIN_SCOPES = ("library", "all")


def _scoped(library: dict[str, tuple[str, ...]], split_names: dict[str, tuple[str, ...]], scope: str) -> list[str]:
    if scope not in TRAIN_SCOPES:
        raise ValueError(f"unknown train scope {scope!r} ({', '.join(TRAIN_SCOPES)})")
    return [n for split in SPLITS for n in (split_names if split == "train" and scope == "all" else library)[split]]


def library_subjects(scope: str = "library") -> list[str]:
    return _scoped(LIBRARY_SUBJECTS, SUBJECT_SPLITS, scope)


def library_styles(scope: str = "library") -> list[str]:
    return _scoped(LIBRARY_STYLES, STYLE_SPLITS, scope)


# The class each style's single training image shows (varied, so no style is tied to one class).
STYLE_IMAGE_CLASS: dict[str, str] = {
    name: ("bird", "fish", "house", "tree", "car", "robot", "cup", "flower")[i % 8]
    for i, name in enumerate(NAMED_STYLES)
}


def subject_class(subject: str) -> str:
    return NAMED_SUBJECT_PARAMS[subject][0]


def content_prompt(subject: str) -> str:
    return f"a {CONTENT_TOKEN} {subject_class(subject)}"


def style_prompt(cls: str) -> str:
    return f"a {cls} in {STYLE_TOKEN} style"


def merged_prompt(subject: str) -> str:
    return f"a {CONTENT_TOKEN} {subject_class(subject)} in {STYLE_TOKEN} style"


def split_of_subject(subject: str) -> str:
    return next(split for split, names in SUBJECT_SPLITS.items() if subject in names)


def split_of_style(style: str) -> str:
    return next(split for split, names in STYLE_SPLITS.items() if style in names)


def pairs(split: str, scope: str = "library") -> list[tuple[str, str]]:
    """Every (content, style) pair of a split's LoRA library (of every train name with scope "all")."""
    subjects = set(library_subjects(scope))
    styles = set(library_styles(scope))
    return [(c, s) for c in SUBJECT_SPLITS[split] if c in subjects for s in STYLE_SPLITS[split] if s in styles]


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_dir() -> Path:
    """The committed default world (override with LORARAR_WORLD_DIR)."""
    return Path(os.environ.get("LORARAR_WORLD_DIR", repo_root() / "models" / "default"))


@dataclass(frozen=True)
class WorldPaths:
    root: Path

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline"

    def content_lora(self, subject: str) -> Path:
        return self.root / "loras" / "content" / f"{subject}.safetensors"

    def style_lora(self, style: str) -> Path:
        return self.root / "loras" / "style" / f"{style}.safetensors"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def hypernet(self) -> Path:
        return self.root / "hypernet"

    @property
    def facts(self) -> Path:
        return self.root / "world.json"


def paths(root: Path | None = None) -> WorldPaths:
    return WorldPaths(root or default_dir())


def assert_splits_disjoint() -> None:
    for splits in (SUBJECT_SPLITS, STYLE_SPLITS):
        seen: set[str] = set()
        for names in splits.values():
            assert not seen & set(names)
            seen |= set(names)
    assert set().union(*SUBJECT_SPLITS.values()) == set(NAMED_SUBJECT_PARAMS)
    assert set().union(*STYLE_SPLITS.values()) == set(NAMED_STYLES)
