"""The default world's measured facts: does each LoRA do its job alone, is the base model at chance, and does the
direct merge show the known failure (one side dominating)?

Writes benchmarks/results/world_facts.{json,md} and world_grid.png (rows: base model, content LoRA alone, style
LoRA alone, direct merge, ground truth).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lorarar.formats.atomic import atomic_file
from lorarar.formats.png import save_png, to_uint8
from lorarar.world import catalog, data
from lorarar.world.evaluate import RESULTS
from lorarar.world.metrics import STYLES, SUBJECTS, Scorer
from lorarar.world.sample import load_pipeline, sample


def measure(n: int = 8, seed: int = 0, root: Path | None = None, out_dir: Path = RESULTS) -> dict[str, Any]:
    pipe = load_pipeline(root)
    scorer = Scorer(root)
    content_rows, style_rows, base_rows, direct_rows = [], [], [], []
    grid: list[list[np.ndarray]] = []
    subjects = catalog.library_subjects()
    styles = catalog.library_styles()
    for subject in tqdm(subjects, desc="content LoRAs alone"):
        images = sample(subject, None, "content", n, seed, root, pipe)
        score = scorer.score(images, subject, None)
        content_rows.append({"content": subject, "content_fidelity": score["content_fidelity"]})
        base = sample(subject, None, "none", n, seed, root, pipe)
        base_rows.append(
            {"content": subject, "content_fidelity": scorer.score(base, subject, None)["content_fidelity"]}
        )
    for style in tqdm(styles, desc="style LoRAs alone"):
        images = sample(None, style, "style", n, seed, root, pipe)
        style_rows.append({"style": style, "style_fidelity": scorer.score(images, None, style)["style_fidelity"]})
        base = sample(None, style, "none", n, seed, root, pipe)
        base_rows.append({"style": style, "style_fidelity": scorer.score(base, None, style)["style_fidelity"]})
    for i, (content, style) in enumerate(tqdm(catalog.pairs("test"), desc="direct merges")):
        images = sample(content, style, "direct", n, seed, root, pipe)
        score = scorer.score(images, content, style)
        direct_rows.append(
            {k: v for k, v in score.items() if not k.startswith("predicted")} | {"content": content, "style": style}
        )
        if i % 5 == 0 and len(grid) < 4:
            grid.append(
                [
                    sample(content, style, "none", 1, seed, root, pipe)[0],
                    sample(content, None, "content", 1, seed, root, pipe)[0],
                    sample(None, style, "style", 1, seed, root, pipe)[0],
                    images[0],
                    data.ground_truth(content, style, seed, 1)[0],
                ]
            )
    c_fid = [r["content_fidelity"] for r in content_rows]
    s_fid = [r["style_fidelity"] for r in style_rows]
    dominated = sum(1 for r in direct_rows if abs(r["content_fidelity"] - r["style_fidelity"]) >= 0.5)
    facts = {
        "n_per_lora": n,
        "content_alone": {
            "mean": float(np.mean(c_fid)),
            "min": float(np.min(c_fid)),
            "at_least_80pct": int(sum(f >= 0.8 for f in c_fid)),
            "of": len(c_fid),
        },
        "style_alone": {
            "mean": float(np.mean(s_fid)),
            "min": float(np.min(s_fid)),
            "at_least_80pct": int(sum(f >= 0.8 for f in s_fid)),
            "of": len(s_fid),
        },
        "base_model": {
            "content_fidelity": float(np.mean([r["content_fidelity"] for r in base_rows if "content" in r])),
            "style_fidelity": float(np.mean([r["style_fidelity"] for r in base_rows if "style" in r])),
            "chance_content": 1 / len(SUBJECTS),
            "chance_style": 1 / len(STYLES),
        },
        "direct_merge_test_pairs": {
            "content_fidelity": float(np.mean([r["content_fidelity"] for r in direct_rows])),
            "style_fidelity": float(np.mean([r["style_fidelity"] for r in direct_rows])),
            "both_correct": float(np.mean([r["both_correct"] for r in direct_rows])),
            "pairs_one_side_dominating": dominated,
            "pairs": len(direct_rows),
        },
        "per_lora": {"content": content_rows, "style": style_rows, "direct": direct_rows},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_dir / "world_facts.json") as tmp:
        tmp.write_text(json.dumps(facts, indent=2))
    if grid:
        rows = [np.concatenate(r, axis=1) for r in grid]
        save_png(to_uint8(np.concatenate(rows, axis=0)), out_dir / "world_grid.png", zoom=2)
    return facts
