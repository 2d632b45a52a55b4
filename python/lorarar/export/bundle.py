"""``export_bundle``: one SD folder -> one bundle folder, written atomically.

Components are converted one at a time (text encoder(s), UNet with the LoRA slot, VAE decoder, hypernetwork) and
each is freed before the next, so peak memory is about one fp32 component and its lowering. Everything is written
into a hidden temporary folder beside the target; ``manifest.json`` is written last, and the folder is renamed to
the target only when complete. An exception, Ctrl-C or SIGTERM (the CLI turns it into SystemExit) removes the
temporary folder; a SIGKILL leaves only a ``.<name>.tmp-*`` folder, never a complete-looking bundle.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorarar.export import manifest as manifest_mod
from lorarar.export import source as source_mod
from lorarar.export.errors import ExportError
from lorarar.export.program import Component
from lorarar.formats.atomic import atomic_dir

# --backend value -> (format, ExecuTorch partitioner)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "xnnpack": ("executorch", "xnnpack"),
    "executorch-coreml": ("executorch", "coreml"),
    "executorch-qnn": ("executorch", "qnn"),
    "executorch-vulkan": ("executorch", "vulkan"),
    "coreml": ("coreml", None),
    "onnx": ("onnx", None),
}
QUANT_MODES = {
    "xnnpack": ("none", "int8", "w8a8"),
    "executorch-coreml": ("none",),
    "executorch-qnn": ("none",),
    "executorch-vulkan": ("none",),
    "coreml": ("none", "int8", "palette6", "palette4"),
    "onnx": ("none", "int8"),
}
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "hypernet")
DEVICES = {
    "xnnpack": "CPU (ExecuTorch + XNNPACK): Android, iOS, Linux, macOS; runs on this host",
    "executorch-coreml": "Apple devices (ExecuTorch + Core ML delegate); lowered here, runs on macOS/iOS only",
    "executorch-qnn": "Qualcomm Snapdragon (ExecuTorch + QNN delegate); lowered here, runs on device only",
    "executorch-vulkan": "Vulkan GPUs (ExecuTorch + Vulkan delegate); lowered here, runs on device only",
    "coreml": "Apple devices (Core ML); converted here, prediction needs macOS/iOS",
    "onnx": "ONNX Runtime (CPU here; any ONNX Runtime execution provider elsewhere)",
}
DEFAULT_MAX_RANK = 32


@dataclass
class ExportOptions:
    model: Path
    out: Path
    backend: str = "xnnpack"
    quant: str = "none"
    max_rank: int = DEFAULT_MAX_RANK
    hypernet: Path | None = None
    components: tuple[str, ...] = COMPONENTS
    vae_tile: int | None = None  # latent side of one VAE decoder tile (None: the whole latent)
    vae_tile_overlap: int | None = None  # least overlap of neighbouring tiles (default: a quarter of the tile)
    update: bool = False  # keep the programs of the bundle at `out` that `components` does not name
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def runs_here(backend: str) -> bool:
    return backend in ("xnnpack", "onnx")


def check_options(opts: ExportOptions) -> None:
    if opts.backend not in BACKENDS:
        raise ExportError(f"--backend: unknown backend {opts.backend!r} (choose from {', '.join(BACKENDS)})")
    if opts.quant not in QUANT_MODES[opts.backend]:
        raise ExportError(
            f"--quant: {opts.quant!r} is not available for --backend {opts.backend} "
            f"(choose from {', '.join(QUANT_MODES[opts.backend])})"
        )
    if opts.max_rank < 1:
        raise ExportError(f"--max-rank: must be >= 1, got {opts.max_rank}")
    unknown = sorted(set(opts.components) - set(COMPONENTS))
    if unknown:
        raise ExportError(f"--components: unknown component {unknown[0]!r} (choose from {', '.join(COMPONENTS)})")


class _Progress:
    """A progress bar over the components (tqdm on stderr), its description following the current stage."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, leave=True)
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text[:60])

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _export_component(component: Component, tmp: Path, opts: ExportOptions, progress: _Progress) -> dict[str, Any]:
    fmt, partitioner = BACKENDS[opts.backend]
    quant = opts.quant if component.name in ("unet", "text_encoder", "text_encoder_2", "vae_decoder") else "none"
    if fmt == "executorch":
        from lorarar.export import executorch_backend

        assert partitioner is not None
        name = f"{component.name}.pte"
        facts = executorch_backend.lower(component, tmp / name, partitioner, quant, progress.say)
        files = {m.name: name for m in component.methods}
        facts.pop("file")
    elif fmt == "onnx":
        from lorarar.export import onnx_backend

        facts = onnx_backend.export(component, tmp, quant, progress.say)
        files = facts.pop("files")
    else:
        from lorarar.export import coreml_backend

        facts = coreml_backend.export(component, tmp, quant, progress.say)
        files = facts.pop("files")
    entry: dict[str, Any] = {
        "files": files,
        "methods": {m.name: m.io_json() for m in component.methods},
        "runs_on_host": runs_here(opts.backend),
        "quantization": quant,
        "graph_forms": component.forms,
    }
    entry.update(facts)
    info = dict(component.info)
    for name, extra in info.pop("methods", {}).items():  # per-method facts (the hypernet's layer lists)
        entry["methods"][name].update(extra)
    entry.update(info)
    return entry


def export_bundle(opts: ExportOptions) -> dict[str, Any]:
    """Exports and returns the manifest. Raises ExportError for bad input (nothing is written then)."""
    check_options(opts)
    src = source_mod.open_source(opts.model)
    from lorarar.export import vae_decoder

    vae_tiling = vae_decoder.tiling_of(opts.vae_tile, opts.vae_tile_overlap, src.latent_size)  # fail early
    kept = _kept_programs(opts, src) if opts.update else None
    hypernet_net = None
    if "hypernet" in opts.components and opts.hypernet is not None:
        from lorarar.export import hypernet as hypernet_mod

        hypernet_net = hypernet_mod.load(opts.hypernet)  # fail early on a bad folder
    components = [c for c in opts.components if c != "text_encoder"]
    if "text_encoder" in opts.components:
        components = [info.folder for info in src.text_encoders] + components
    progress = _Progress(len(components) + 1, opts.progress)
    started = time.perf_counter()
    programs: dict[str, Any] = {}
    layout = None
    try:
        with atomic_dir(opts.out) as tmp:
            for info in src.text_encoders if "text_encoder" in opts.components else []:
                from lorarar.export import text_encoder

                progress.say(f"{info.folder}: load")
                comp = text_encoder.convert(src.load_text_encoder(info), info)
                programs[info.folder] = _export_component(comp, tmp, opts, progress)
                del comp
                gc.collect()
                progress.step()
            if "unet" in opts.components or "hypernet" in opts.components:
                from lorarar.export import unet as unet_mod

                progress.say("unet: load")
                model = src.load_unet()
                layout = unet_mod.slot_layout(model, opts.max_rank)
                if "unet" in opts.components:
                    comp = unet_mod.convert(model, layout)
                    programs["unet"] = _export_component(comp, tmp, opts, progress)
                    del comp
                    progress.step()
                del model
                gc.collect()
            if "vae_decoder" in opts.components:
                progress.say("vae_decoder: load")
                comp = vae_decoder.convert(src.load_vae(), src.latent_size, tiling=vae_tiling)
                programs["vae_decoder"] = _export_component(comp, tmp, opts, progress)
                del comp
                gc.collect()
                progress.step()
            if "hypernet" in opts.components:
                from lorarar.export import hypernet as hypernet_mod

                assert layout is not None
                if hypernet_net is None:
                    from lorarar.hypernet.model import HyperNetConfig

                    probe = HyperNetConfig(widths=())
                    widths = [lay.out_features for lay in layout.layers if probe.is_merged(lay.module)]
                    hypernet_net = hypernet_mod.random_hypernet(widths)
                    origin = "random (untrained; widths of this UNet's merged layers)"
                else:
                    origin = str(opts.hypernet)
                comp = hypernet_mod.convert(hypernet_net, layout, origin)
                programs["hypernet"] = _export_component(comp, tmp, opts, progress)
                progress.step()
            slot = dict(layout.to_json(), dtype="float32") if layout is not None else None
            if kept is not None:
                slot = _keep(kept, programs, slot, opts, tmp)
            progress.say("manifest")
            doc = _manifest(src, opts, programs, slot, tmp, time.perf_counter() - started)
            progress.step()
    finally:
        progress.close()
    return doc


def _kept_programs(opts: ExportOptions, src: source_mod.ModelSource) -> dict[str, Any]:
    """The manifest of the bundle ``--update`` adds to, checked (files included) to come from the same model,
    backend and quantization, before anything is exported."""
    if not (opts.out / manifest_mod.MANIFEST).exists():
        raise ExportError(f"--update: {opts.out} holds no bundle to update (no {manifest_mod.MANIFEST})")
    old = manifest_mod.verify(opts.out)
    where = opts.out / manifest_mod.MANIFEST
    source = old.get("source", {}).get("path")
    if source != str(src.path.resolve()):
        raise ExportError(f"--update: {where} was exported from {source}, not {src.path.resolve()}")
    backend, quant = old.get("backend", {}).get("name"), old.get("quantization", {}).get("mode")
    if (backend, quant) != (opts.backend, opts.quant):
        raise ExportError(
            f"--update: {where} is --backend {backend} --quant {quant}, "
            f"not --backend {opts.backend} --quant {opts.quant}"
        )
    slot_users = {"unet", "hypernet"} & set(opts.components)
    slot_rank = old.get("lora_slot", {}).get("max_rank")
    if slot_users and slot_users != {"unet", "hypernet"} and slot_rank != opts.max_rank:
        raise ExportError(
            f"--update: {where} has a LoRA slot of max rank {slot_rank}, which its "
            f"{({'unet', 'hypernet'} - slot_users).pop()} is built for: pass --max-rank {slot_rank}"
        )
    return old


def _keep(
    old: dict[str, Any], programs: dict[str, Any], slot: dict[str, Any] | None, opts: ExportOptions, tmp: Path
) -> dict[str, Any] | None:
    """Hard-links (or copies) into ``tmp`` the files of every program of ``old`` that was not exported again, adds
    their entries to ``programs``, and returns the manifest's LoRA slot: the new one, which must be the kept
    programs' (the UNet's slot inputs and the hypernetwork's methods are sized by it), or the old one."""
    import os

    old_slot = old.get("lora_slot")
    kept = {name: entry for name, entry in old["programs"].items() if name not in programs}
    if slot is not None and old_slot is not None and slot != old_slot and kept.keys() & {"unet", "hypernet"}:
        raise ExportError(
            f"--update: the LoRA slot changed (--max-rank {opts.max_rank} against the bundle's "
            f"{old_slot.get('max_rank')}): export the unet and hypernet together"
        )
    # A program's files, as the manifest's file table lists them: each named file, and what a backend writes beside
    # or under it (ONNX's <file>.onnx.data, a .mlpackage's contents).
    roots = [f for entry in kept.values() for f in [*entry.get("files", {}).values(), entry.get("data_file")] if f]
    for rel in old["files"]:
        if any(rel == f or rel.startswith((f + ".", f + "/")) for f in roots):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(opts.out / rel, tmp / rel)
            except OSError:
                shutil.copy2(opts.out / rel, tmp / rel)
    programs.update(kept)
    if "hypernet" not in opts.components and (opts.out / "hypernet_config.json").exists():
        shutil.copyfile(opts.out / "hypernet_config.json", tmp / "hypernet_config.json")
    return slot if slot is not None else old_slot


def _manifest(
    src: source_mod.ModelSource,
    opts: ExportOptions,
    programs: dict[str, Any],
    slot: dict[str, Any] | None,
    tmp: Path,
    seconds: float,
) -> dict[str, Any]:
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(src.scheduler_config, indent=2))
    tokenizers = {}
    for info in src.text_encoders:
        files = source_mod.copy_tokenizer(src, info, tmp / info.tokenizer)
        tokenizers[info.tokenizer] = {
            "text_encoder": info.folder,
            "files": [f.relative_to(tmp).as_posix() for f in files],
            "max_length": 77,
        }
    if opts.hypernet is not None and "hypernet" in opts.components and "hypernet" in programs:
        shutil.copyfile(opts.hypernet / "config.json", tmp / "hypernet_config.json")
    fmt, partitioner = BACKENDS[opts.backend]
    doc: dict[str, Any] = {
        "format": manifest_mod.FORMAT,
        "format_version": manifest_mod.FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "export_seconds": round(seconds, 1),
        "tool_versions": manifest_mod.tool_versions(),
        "source": {"path": str(src.path.resolve()), "family": src.family},
        "model": {
            "family": src.family,
            "image_size": [src.image_size, src.image_size],
            "latent_shape": [src.latent_channels, src.latent_size, src.latent_size],
            "vae_scale_factor": src.vae_scale_factor,
            "scaling_factor": src.scaling_factor,
            "cross_attention_dim": src.cross_attention_dim,
            "text_max_length": 77,
            "guidance_batch": 2,
            "guidance_batch_order": ["uncond", "cond"],
        },
        "backend": {
            "name": opts.backend,
            "format": fmt,
            "partitioner": partitioner,
            "runs_on_host": runs_here(opts.backend),
            "devices": DEVICES[opts.backend],
        },
        "quantization": {"mode": opts.quant, "applies_to": ["unet", "text_encoder", "text_encoder_2", "vae_decoder"]},
        "scheduler": {"file": "scheduler/scheduler_config.json", "config": src.scheduler_config},
        "tokenizers": tokenizers,
        "programs": programs,
    }
    if slot is not None:
        doc["lora_slot"] = slot
    return manifest_mod.write(tmp, doc)


def random_source(out: Path, size: str = "world", seed: int = 0) -> Path:
    """A same-config pipeline with random weights (the default world's until the trained one exists)."""
    with atomic_dir(out) as tmp:
        source_mod.write_random_pipeline(tmp, size, seed)
    return out


def default_model() -> Path:
    from lorarar.world import catalog

    return catalog.paths().pipeline
