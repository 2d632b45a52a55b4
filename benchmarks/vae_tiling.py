"""VAE tiling benchmark: what decoding in tiles (``lorarar export --vae-tile``) costs in image quality, and saves in
memory, against decoding the whole latent at once, in one run.

- quality (the default world's trained VAE): world renders (half labelled by subject, half by style, as the world
  recognisers were tested) are encoded, then decoded whole and tiled with the tiling reference the engine is held
  to (``lorarar.tiled_decode``; the native decode matches it within 2/255, tests/python/test_engine.py). Rows: PSNR
  of the tiled image against the whole decode, both against the render, the recognisers' accuracy on each, the
  decode time ratio (eager PyTorch, batch 1) and how many latent pixels the tiles decode per image pixel.
- memory (``--sd15-work DIR``: SD 1.5's VAE configuration, random weights, int8 XNNPACK programs exported into DIR
  on first use, a minute each; with ``--sd15-bundle``, the decoders of the bundle and its tiled copies): peak RSS,
  planned memory and XNNPACK workspace of the native loader running the whole decoder and one tile
  (runtime/tools/lorarar_program_memory), and the decode time (one run per tile);
  with ``--sd15-bundle B`` (an int8 bundle of that pipeline), the whole engine on B and on B with each tiled
  decoder added (``--update``): peak RSS against the bundle's size, and the decode time, runs interleaved.

    .venv/bin/python benchmarks/vae_tiling.py [--images N] [--tilings 12:3,10:4,8:2]
        [--sd15-work DIR [--sd15-tiles 32,40] [--sd15-bundle B [--rounds 3]]]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rows import stats

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_MEMORY = ROOT / "build" / "host" / "runtime" / "lorarar_program_memory"


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image, images in [0, 1] (N, H, W, 3); capped at 100 dB for identical images."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return np.minimum(100.0, 10 * np.log10(1.0 / np.maximum(mse, 1e-10)))


def quality_rows(n_images: int, tilings: list[tuple[int, int]]) -> list[dict[str, Any]]:
    from diffusers import AutoencoderKL

    from lorarar.tiled_decode import tile_origins, tiled_decode
    from lorarar.world import catalog
    from lorarar.world.metrics import Scorer, _example

    vae = AutoencoderKL.from_pretrained(str(catalog.paths().pipeline / "vae")).eval()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    scorer = Scorer()
    examples = [_example("subject" if i % 2 == 0 else "style", 7, i) for i in range(n_images)]
    renders = np.stack([img for img, _ in examples]).astype(np.float32)
    kinds = ["subject" if i % 2 == 0 else "style" for i in range(n_images)]
    labels = np.array([label for _, label in examples])

    def decode(z: torch.Tensor) -> torch.Tensor:
        return vae.decode(z, return_dict=False)[0].clamp(-1.0, 1.0)

    def to_images(x: torch.Tensor) -> np.ndarray:
        return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()

    def accuracy(images: np.ndarray) -> float:
        pred = scorer.predict(images)
        return float(np.mean([pred[k][i] == labels[i] for i, k in enumerate(kinds)]))

    with torch.no_grad():
        x = torch.from_numpy(renders).permute(0, 3, 1, 2) * 2 - 1
        latents = vae.encode(x).latent_dist.mean
        side = int(latents.shape[-1])
        start = time.perf_counter()
        whole = to_images(torch.cat([decode(z[None]) for z in latents]))
        whole_ms = (time.perf_counter() - start) * 1e3 / n_images
    rows = [
        stats(
            "vae_tiling/world/whole/psnr_vs_render",
            "dB",
            psnr(whole, renders).tolist(),
            recognised=round(accuracy(whole), 4),
            latent=side,
            decode_ms=round(whole_ms, 2),
        )
    ]
    for tile, overlap in tilings:
        with torch.no_grad():
            start = time.perf_counter()
            tiled = to_images(torch.cat([tiled_decode(decode, z[None], tile, overlap, factor) for z in latents]))
            tiled_ms = (time.perf_counter() - start) * 1e3 / n_images
        tiles = len(tile_origins(side, tile, overlap)) ** 2
        seams = np.abs(tiled - whole).max(axis=(1, 2, 3))
        rows.append(
            stats(
                f"vae_tiling/world/tile{tile}_overlap{overlap}/psnr_vs_whole",
                "dB",
                psnr(tiled, whole).tolist(),
                tiles=tiles,
                decoded_area_ratio=round(tiles * tile * tile / side**2, 2),
                max_abs_difference_median=round(float(np.median(seams)) * 255, 1),
                psnr_vs_render=round(float(np.median(psnr(tiled, renders))), 2),
                whole_psnr_vs_render=round(float(np.median(psnr(whole, renders))), 2),
                recognised=round(accuracy(tiled), 4),
                whole_recognised=round(accuracy(whole), 4),
                decode_ms=round(tiled_ms, 2),
                vs=round(whole_ms, 2),
                time_ratio=round(tiled_ms / whole_ms, 2),
            )
        )
    return rows


def export_sd15_decoder(work: Path, tile: int | None) -> Path:
    """The SD 1.5-configuration VAE decoder as an int8 XNNPACK program (cached in ``work``)."""
    from lorarar.export.bundle import ExportOptions, export_bundle
    from lorarar.export.source import write_preset_pipeline

    pipeline = work / "sd15-pipeline"
    if not (pipeline / "unet" / "diffusion_pytorch_model.safetensors").exists():  # written last
        write_preset_pipeline(pipeline, "sd15")
    out = work / (f"vae-int8-tile{tile}" if tile else "vae-int8-whole")
    if not (out / "manifest.json").exists():
        print(f"# exporting {out.name} (minutes)", file=sys.stderr)
        opts = ExportOptions(
            model=pipeline, out=out, backend="xnnpack", quant="int8", components=("vae_decoder",), vae_tile=tile
        )
        export_bundle(opts)
    return out


def memory_rows(decoders: dict[int, Path]) -> list[dict[str, Any]]:
    """``decoders``: tile (0: whole) -> a bundle folder holding that vae_decoder.pte."""
    from lorarar.tiled_decode import tile_origins

    if not PROGRAM_MEMORY.exists():
        print(f"# {PROGRAM_MEMORY} not built (make native-test): no memory rows", file=sys.stderr)
        return []
    reports: dict[int, dict[str, Any]] = {}
    for tile, folder in decoders.items():
        pte = folder / "vae_decoder.pte"
        run = subprocess.run([str(PROGRAM_MEMORY), str(pte)], check=True, capture_output=True, text=True)
        reports[tile] = json.loads(run.stdout.strip().splitlines()[-1])
    whole = reports[0]
    rows = []
    for tile, report in reports.items():
        manifest = json.loads((decoders[tile] / "manifest.json").read_text())
        side = manifest["model"]["latent_shape"][-1]
        overlap = manifest["programs"]["vae_decoder"].get("tiling", {}).get("overlap", 0)
        count = len(tile_origins(side, tile, overlap)) ** 2 if tile else 1
        loaded, after = report["rss_kb"]["method_loaded"], report["rss_kb"]["after_run"]
        rows.append(
            stats(
                f"vae_tiling/sd15_int8/{f'tile{tile}_overlap{overlap}' if tile else 'whole'}/peak_rss",
                "MB",
                [report["peak_rss_kb"] / 1024],
                vs=round(whole["peak_rss_kb"] / 1024, 1),
                ratio=round(report["peak_rss_kb"] / whole["peak_rss_kb"], 3),
                program_mb=round(report["program_kb"] / 1024, 1),
                planned_mb=round(report["planned_kb"] / 1024, 1),
                step_workspace_mb=round((after["anon"] - loaded["anon"]) / 1024, 1),
                tiles=count,
                decode_ms=round(report["run_ms"][0] * count),
                whole_decode_ms=round(whole["run_ms"][0]),
                time_ratio=round(report["run_ms"][0] * count / whole["run_ms"][0], 2),
            )
        )
    return rows


GENERATE = ROOT / "build" / "host" / "runtime" / "lorarar_generate"


def random_loras(bundle: Path, out: Path) -> tuple[Path, Path]:
    """Rank-4 content and style LoRAs (diffusers/peft keys) with random factors on every layer of the bundle's slot."""
    from safetensors.torch import save_file

    layers = json.loads((bundle / "manifest.json").read_text())["lora_slot"]["layers"]
    files = []
    for seed, name in enumerate(("content", "style")):
        g = torch.Generator().manual_seed(seed)
        tensors = {}
        for layer in layers:
            key = f"unet.{layer['module']}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(4, layer["in_features"], generator=g) * 0.01
            tensors[f"{key}.lora_B.weight"] = torch.randn(layer["out_features"], 4, generator=g) * 0.01
        files.append(out / f"{name}.safetensors")
        save_file(tensors, str(files[-1]))
    return files[0], files[1]


def tiled_bundle(bundle: Path, work: Path, tile: int) -> Path:
    """``bundle`` with tiled decoding added as a user adds it: a hard-linked copy, then ``lorarar export
    --components vae_decoder --vae-tile N --update`` (the UNet is not exported again). Cached in ``work``."""
    import os
    import shutil

    from lorarar.export.bundle import ExportOptions, export_bundle

    out = work / f"bundle-tile{tile}"
    manifest = out / "manifest.json"
    if (
        manifest.exists()
        and json.loads(manifest.read_text())["programs"]["vae_decoder"].get("tiling", {}).get("tile") == tile
    ):
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(bundle, out, copy_function=os.link)
    print(f"# adding --vae-tile {tile} to a copy of {bundle} (a minute)", file=sys.stderr)
    original = json.loads((bundle / "manifest.json").read_text())
    model, quant = Path(original["source"]["path"]), original["quantization"]["mode"]
    export_bundle(
        ExportOptions(model=model, out=out, quant=quant, components=("vae_decoder",), vae_tile=tile, update=True)
    )
    return out


def engine_rows(variants: dict[int, Path], work: Path, rounds: int) -> list[dict[str, Any]]:
    """The C engine (runtime/examples/lorarar_generate, one 512x512 step, packed weights mapped from a cache the
    warm-up run wrote) on each bundle of ``variants`` (tile, 0: whole -> bundle), runs interleaved."""
    if not GENERATE.exists():
        print(f"# {GENERATE} not built (make native-test): no engine rows", file=sys.stderr)
        return []
    bundle = variants[0]
    content, style = random_loras(bundle, work)
    bundle_mb = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()) / 2**20
    reports: dict[int, list[dict[str, Any]]] = {t: [] for t in variants}
    for i in range(rounds + 1):  # round 0 writes the packed weight caches
        for tile, folder in variants.items():
            cache = work / f"packed-{tile}"
            cache.mkdir(exist_ok=True)
            argv = [str(GENERATE), str(folder), str(content), str(style), str(work / "image.ppm"), "--steps", "1"]
            run = subprocess.run([*argv, "--packed-cache", str(cache)], check=True, capture_output=True, text=True)
            if i > 0:
                reports[tile].append(json.loads(run.stdout.strip().splitlines()[-1]))
    whole_peak = [r["peak_rss_kb"] / 1024 for r in reports[0]]
    whole_decode = [r["decode_ms"] for r in reports[0]]
    rows = []
    for tile, runs in reports.items():
        label = f"tile{tile}" if tile else "whole"
        peak = [r["peak_rss_kb"] / 1024 for r in runs]
        decode = [r["decode_ms"] for r in runs]
        rows.append(
            stats(
                f"vae_tiling/sd15_int8_engine/{label}/peak_rss",
                "MB",
                peak,
                bundle_mb=round(bundle_mb, 1),
                ratio_to_bundle=round(float(np.median(peak)) / bundle_mb, 3),
                vs=round(float(np.median(whole_peak)), 1),
                anon_mb=round(runs[0]["rss_kb"]["first_image"]["anon"] / 1024, 1),
                file_mb=round(runs[0]["rss_kb"]["first_image"]["file"] / 1024, 1),
            )
        )
        rows.append(
            stats(
                f"vae_tiling/sd15_int8_engine/{label}/decode",
                "ms",
                decode,
                vs=round(float(np.median(whole_decode))),
                time_ratio=round(float(np.median(decode)) / float(np.median(whole_decode)), 2),
                step_ms=round(float(np.median([r["step_ms_median"] for r in runs]))),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=256, help="world renders decoded (half subject, half style)")
    parser.add_argument("--tilings", default="12:3,10:4,8:2", help="tile:overlap pairs, latent pixels (of 16)")
    parser.add_argument("--sd15-work", type=Path, help="folder for the SD 1.5-configuration decoder programs")
    parser.add_argument("--sd15-tiles", default="32,40")
    parser.add_argument(
        "--sd15-bundle",
        type=Path,
        help="an int8 XNNPACK bundle of the --sd15-work pipeline (lorarar export --model DIR/sd15-pipeline --backend "
        "xnnpack --quant int8): adds the whole engine's peak RSS and decode time with each decoder",
    )
    parser.add_argument("--rounds", type=int, default=3, help="engine runs per decoder (interleaved)")
    args = parser.parse_args()
    tilings = [(int(a), int(b)) for a, b in (t.split(":") for t in args.tilings.split(","))]
    for row in quality_rows(args.images, tilings):
        print(json.dumps(row), flush=True)
    if args.sd15_work is not None:
        args.sd15_work.mkdir(parents=True, exist_ok=True)
        tiles = [int(t) for t in args.sd15_tiles.split(",")]
        work, bundle = args.sd15_work, args.sd15_bundle
        # Each decoder exported once: into the bundle's copies when there is a bundle, on its own otherwise.
        if bundle is not None:
            decoders = {0: bundle} | {t: tiled_bundle(bundle, work, t) for t in tiles}
        else:
            decoders = {t: export_sd15_decoder(work, t or None) for t in [0, *tiles]}
        for row in memory_rows(decoders):
            print(json.dumps(row), flush=True)
        if bundle is not None:
            for row in engine_rows(decoders, work, args.rounds):
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
