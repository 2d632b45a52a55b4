"""The native engine (bundle -> merged LoRA pair -> denoise -> image) against the PyTorch reference pipeline.

The reference is diffusers on the folder the bundle was exported from, with the merged pair fused by diffusers'
own ``load_lora_weights`` + ``fuse_lora`` and the engine's Philox noise replayed (lorarar.pipeline), so the two
see identical random numbers. Tolerances: latents after every step within 1e-3 relative (fp32 programs vs eager,
different GEMM orders), decoded images within 2 levels of 255 per pixel.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from export_helpers import rel_err, write_lora
from lorarar import LoraFile
from lorarar._native import Context, Engine
from lorarar.errors import LoraError
from lorarar.pipeline import bundle_vae_tiling, load_reference, merged_lora, run_reference

PROMPT = "a sks bird in zwz style"


@pytest.fixture(scope="module")
def engine(xnnpack_bundle: Path) -> Engine:
    return Engine.load(str(xnnpack_bundle), n_threads=2)


def _reference(
    tiny_pipeline: Path,
    hypernet: Path | None,
    pair: tuple[Path, Path] | None,
    method: str,
    scheduler: str,
    steps: int,
    guidance: float,
    seed: int,
    tmp_path: Path,
) -> tuple[np.ndarray, list[np.ndarray]]:
    pipe = load_reference(tiny_pipeline, scheduler)
    lora = merged_lora(pair[0], pair[1], method, hypernet, tmp_path) if pair else None
    trace: list[np.ndarray] = []
    image = run_reference(pipe, lora, PROMPT, "", steps, guidance, seed, trace)
    return image, trace


@pytest.mark.parametrize(
    ("scheduler", "method", "steps", "guidance"),
    [("ddim", "direct", 6, 5.0), ("euler", "hypernet", 5, 4.0), ("lcm", "hypernet", 4, 1.0), ("ddim", "none", 4, 5.0)],
)
def test_engine_matches_reference_pipeline(
    engine: Engine,
    tiny_pipeline: Path,
    tiny_hypernet: Path,
    pair: tuple[Path, Path],
    scheduler: str,
    method: str,
    steps: int,
    guidance: float,
    tmp_path: Path,
) -> None:
    ctx = Context.create(engine)
    if method != "none":
        ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method=method)
    image, timings, latents = ctx.generate(
        PROMPT, steps=steps, guidance=guidance, scheduler=scheduler, seed=7, trace=True
    )
    ref_image, ref_trace = _reference(
        tiny_pipeline,
        tiny_hypernet,
        pair if method != "none" else None,
        method,
        scheduler,
        steps,
        guidance,
        7,
        tmp_path,
    )
    assert len(ref_trace) == steps
    trace = np.asarray(latents, dtype=np.float32).reshape(steps, *ref_trace[0].shape)  # flat, step after step
    for i, (ours, theirs) in enumerate(zip(trace, ref_trace, strict=True)):
        assert rel_err(ours, theirs) < 1e-3, f"step {i}"
    assert image.shape == ref_image.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - ref_image.astype(int)).max() <= 2
    assert timings["denoise_ms"] > 0 and timings["total_ms"] >= timings["denoise_ms"]


def test_tiled_decoding_matches_reference(
    tiled_bundle: Path, tiny_pipeline: Path, tiny_hypernet: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """A bundle exported with --vae-tile 4 (of an 8x8 latent: three tiles an axis) decodes tile by tile through one
    4x4 program and blends as lorarar.tiled_decode does, and the tiling is visible: the whole decode differs."""
    manifest = json.loads((tiled_bundle / "manifest.json").read_text())
    vae = manifest["programs"]["vae_decoder"]
    assert vae["tiling"] == {"tile": 4, "overlap": 1}
    assert vae["methods"]["forward"]["inputs"][0]["shape"] == [1, 4, 4, 4]
    assert vae["methods"]["forward"]["outputs"][0]["shape"] == [1, 3, 8, 8]
    assert bundle_vae_tiling(tiled_bundle) == (4, 1)

    ctx = Context.create(Engine.load(str(tiled_bundle), n_threads=2))
    ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method="direct")
    image, _, _ = ctx.generate(PROMPT, steps=4, guidance=5.0, scheduler="ddim", seed=7)
    pipe = load_reference(tiny_pipeline, "ddim")
    lora = merged_lora(pair[0], pair[1], "direct", tiny_hypernet, tmp_path)
    tiled = run_reference(pipe, lora, PROMPT, "", 4, 5.0, 7, vae_tiling=(4, 1))
    whole = run_reference(pipe, lora, PROMPT, "", 4, 5.0, 7)
    assert image.shape == tiled.shape == (16, 16, 3)
    assert np.abs(image.astype(int) - tiled.astype(int)).max() <= 2
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() > 2


@pytest.mark.parametrize("style_rank", [4, 8])
def test_hypernet_coefficients_match_torch(
    engine: Engine, tiny_hypernet: Path, tiny_pipeline: Path, pair: tuple[Path, Path], tmp_path: Path, style_rank: int
) -> None:
    """The exported hypernetwork program, fed by the native parser, against HyperNet in PyTorch: with a rank-4 pair
    the engine runs the rank-4 methods, with a rank-8 style LoRA the slot's max-rank ones."""
    from diffusers import UNet2DConditionModel

    from lorarar.merge.methods import hypernet_coefficients, load_hypernet

    style_path = pair[1]
    if style_rank != 4:
        unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet"))
        style_path = write_lora(unet, tmp_path / "style8.safetensors", rank=style_rank, alpha=4.0, seed=23)
    content, style = LoraFile.load(str(pair[0])), LoraFile.load(str(style_path))
    ours = Context.create(engine).hypernet_coefficients(content, style)
    theirs = hypernet_coefficients(load_hypernet(tiny_hypernet), content, style)
    assert sorted(ours) == sorted(theirs)
    assert theirs and all(m.endswith(("to_q", "to_out.0")) for m in theirs)
    for module, (m_c, m_s) in theirs.items():
        assert rel_err(np.asarray(ours[module][0]), m_c) < 1e-4, module
        assert rel_err(np.asarray(ours[module][1]), m_s) < 1e-4, module


def test_seed_determines_the_image(engine: Engine, pair: tuple[Path, Path]) -> None:
    ctx = Context.create(engine)
    ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method="direct")
    a = ctx.generate(PROMPT, steps=3, seed=1)[0]
    b = ctx.generate(PROMPT, steps=3, seed=1)[0]
    c = ctx.generate(PROMPT, steps=3, seed=2)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pairs_swap_without_reload(engine: Engine, pair: tuple[Path, Path]) -> None:
    """Swapping pairs in a context gives the same image as a fresh context with that pair: nothing of the
    previous pair survives in the slot, and the base weights are never touched."""
    content, style = (LoraFile.load(str(p)) for p in pair)
    ctx = Context.create(engine)
    ctx.set_loras(content, style, method="hypernet")
    merged = ctx.generate(PROMPT, steps=3, seed=3)[0]
    ctx.set_loras(content, None, method="single")
    ctx.set_loras(None, None)
    plain = ctx.generate(PROMPT, steps=3, seed=3)[0]
    fresh = Context.create(engine).generate(PROMPT, steps=3, seed=3)[0]
    assert np.array_equal(plain, fresh)
    ctx.set_loras(content, style, method="hypernet")
    assert np.array_equal(ctx.generate(PROMPT, steps=3, seed=3)[0], merged)


@pytest.mark.parametrize("parallel_contexts", [False, True])
def test_contexts_run_concurrently(xnnpack_bundle: Path, pair: tuple[Path, Path], parallel_contexts: bool) -> None:
    """One engine, one context per thread: results equal the sequential ones, whether the contexts share one
    activation workspace (taking turns per delegate call) or each has its own."""
    engine = Engine.load(str(xnnpack_bundle), n_threads=2, parallel_contexts=parallel_contexts)
    content, style = (LoraFile.load(str(p)) for p in pair)
    expected = {}
    for seed in (4, 5):
        ctx = Context.create(engine)
        ctx.set_loras(content, style, method="direct")
        expected[seed] = ctx.generate(PROMPT, steps=3, seed=seed)[0]
    results: dict[int, np.ndarray] = {}

    def work(seed: int) -> None:
        ctx = Context.create(engine)
        ctx.set_loras(content, style, method="direct")
        results[seed] = ctx.generate(PROMPT, steps=3, seed=seed)[0]

    threads = [threading.Thread(target=work, args=(s,)) for s in (4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (4, 5):
        assert np.array_equal(results[seed], expected[seed])


def packed_cache_files(bundle: Path) -> dict[str, str]:
    """Program -> the file name the engine gives its packed weights (lorarar-<program sha256>.xnnpack)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {
        f"{program}.{method}": f"lorarar-{manifest['files'][f]['sha256']}.xnnpack"
        for program, p in manifest["programs"].items()
        for method, f in p["files"].items()
    }


def pair_image(e: Engine, pair: tuple[Path, Path], method: str, steps: int, seed: int) -> np.ndarray:
    ctx = Context.create(e)
    ctx.set_loras(*(LoraFile.load(str(p)) for p in pair), method=method)
    return ctx.generate(PROMPT, steps=steps, seed=seed)[0]


def test_packed_weight_cache_gives_the_same_images(
    engine: Engine, xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """packed_cache_dir: one file per program named by its sha256, written by the first load and mapped by the
    next; a damaged file is rewritten. Every load gives the heap-packed engine's image, bit for bit."""

    def image(e: Engine) -> np.ndarray:
        return pair_image(e, pair, "hypernet", steps=3, seed=6)

    want = image(engine)
    cache = tmp_path / "packed"
    cache.mkdir()
    names = packed_cache_files(xnnpack_bundle)
    assert np.array_equal(image(Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))), want)
    assert {f.name for f in cache.iterdir()} == set(names.values())
    unet = cache / names["unet.forward"]
    written = unet.read_bytes()
    assert np.array_equal(image(Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))), want)
    for damage in (written[: len(written) // 2], b"not a cache", written[:-8] + b"\xff" * 8):
        unet.write_bytes(damage)
        again = Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))
        assert np.array_equal(image(again), want)
        assert unet.read_bytes() == written
    with pytest.raises(LoraError) as e:
        Engine.load(str(xnnpack_bundle), packed_cache_dir=str(tmp_path / "missing"))
    assert str(e.value) == f"{tmp_path / 'missing'}: packed_cache_dir is not a folder"


def test_contexts_created_at_once_share_one_packed_cache(
    engine: Engine, xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Contexts created by four threads at once on an engine whose packed weight cache is still empty: one file
    per program, written once, and every thread's image is the heap-packed engine's; a later engine maps them."""

    def image(e: Engine) -> np.ndarray:
        return pair_image(e, pair, "direct", steps=2, seed=8)

    want = image(engine)
    cache = tmp_path / "packed"
    cache.mkdir()
    shared = Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = image(shared)
        except BaseException as e:  # a thread's exception does not reach the test by itself
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(np.array_equal(results[i], want) for i in range(4))
    assert {f.name for f in cache.iterdir()} == set(packed_cache_files(xnnpack_bundle).values())
    assert np.array_equal(image(Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))), want)


# One app process of the cross-process test: waits for the go file, loads the engine on the shared cache folder and
# saves its image. argv: bundle, cache, content, style, go file, out .npy.
_PROCESS = """
import sys, time, numpy as np
from lorarar import LoraFile
from lorarar._native import Context, Engine
bundle, cache, content, style, go, out = sys.argv[1:]
while not __import__("os").path.exists(go):
    time.sleep(0.001)
ctx = Context.create(Engine.load(bundle, n_threads=1, packed_cache_dir=cache))
ctx.set_loras(LoraFile.load(content), LoraFile.load(style), method="direct")
np.save(out, ctx.generate(%r, steps=2, seed=8)[0])
"""


def test_processes_loading_at_once_share_one_packed_cache(
    engine: Engine, xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Four processes (an app's activity and services) load the bundle at once on an empty packed-cache folder:
    ExecuTorch writes each file under an exclusive flock and maps it under a shared one. Every image is the
    heap-packed engine's, one file per program is left, and a later engine maps them."""
    want = pair_image(engine, pair, "direct", steps=2, seed=8)
    cache, go = tmp_path / "packed", tmp_path / "go"
    cache.mkdir()
    script = _PROCESS % PROMPT
    outs = [tmp_path / f"image{i}.npy" for i in range(4)]
    args = [str(xnnpack_bundle), str(cache), *map(str, pair), str(go)]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *args, str(out)], stderr=subprocess.PIPE, text=True)
        for out in outs
    ]
    time.sleep(1.5)  # let all four import and reach the wait
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert all(np.array_equal(np.load(out), want) for out in outs)
    assert {f.name for f in cache.iterdir()} == set(packed_cache_files(xnnpack_bundle).values())
    later = Engine.load(str(xnnpack_bundle), n_threads=2, packed_cache_dir=str(cache))
    assert np.array_equal(pair_image(later, pair, "direct", steps=2, seed=8), want)


def test_contexts_interleave(engine: Engine, pair: tuple[Path, Path]) -> None:
    """Contexts share packed weights and a workspace, and each context's programs share one planned-memory
    arena: generating in one context between two generations of another changes neither."""
    content, style = (LoraFile.load(str(p)) for p in pair)
    first, second = Context.create(engine), Context.create(engine)
    first.set_loras(content, style, method="hypernet")
    second.set_loras(content, None, method="single")
    a = first.generate(PROMPT, steps=3, seed=6)[0]
    b = second.generate(PROMPT, steps=3, seed=6)[0]
    assert np.array_equal(first.generate(PROMPT, steps=3, seed=6)[0], a)
    assert not np.array_equal(a, b)
    del first
    assert np.array_equal(second.generate(PROMPT, steps=3, seed=6)[0], b)


def test_progress_callback_cancels(engine: Engine) -> None:
    ctx = Context.create(engine)
    seen: list[tuple[int, int]] = []

    def progress(step: int, total: int) -> bool:
        seen.append((step, total))
        return step < 2

    with pytest.raises(LoraError, match="cancelled"):
        ctx.generate(PROMPT, steps=5, seed=0, progress=progress)
    assert seen == [(1, 5), (2, 5)]
    # The context stays usable after a cancellation.
    assert ctx.generate(PROMPT, steps=2, seed=0)[0].shape[2] == 3


def _check_decode_progress(engine: Engine, total: int) -> None:
    ctx = Context.create(engine)
    events: list[tuple[str, int, int]] = []

    def on_step(step: int, steps: int) -> bool:
        events.append(("step", step, steps))
        return True

    def on_tile(tile: int, tiles: int) -> bool:
        events.append(("tile", tile, tiles))
        return True

    image = ctx.generate(PROMPT, steps=2, seed=3, progress=on_step, decode_progress=on_tile)[0]
    assert events == [("step", 1, 2), ("step", 2, 2)] + [("tile", i, total) for i in range(1, total + 1)]
    assert np.array_equal(image, ctx.generate(PROMPT, steps=2, seed=3)[0])

    seen: list[int] = []

    def stop_at_second(tile: int, tiles: int) -> bool:
        seen.append(tile)
        return tile < min(2, tiles)

    with pytest.raises(LoraError, match="cancelled"):
        ctx.generate(PROMPT, steps=2, seed=3, decode_progress=stop_at_second)
    assert seen == list(range(1, min(2, total) + 1))
    assert np.array_equal(ctx.generate(PROMPT, steps=2, seed=3)[0], image)


def test_decode_progress_reports_each_decoder_run(engine: Engine, tiled_bundle: Path) -> None:
    """decode_progress(tile, total) after each VAE decoder run: once for a whole-latent decoder, per tile (3 x 3 of
    an 8x8 latent in 4x4 tiles) for a tiled one, after the last step; returning False cancels, mid-decode too."""
    tiled = Engine.load(str(tiled_bundle), n_threads=2)
    assert (engine.vae_tiling, engine.vae_tiles) == (None, 1)
    assert (tiled.vae_tiling, tiled.vae_tiles) == ((4, 1), 9)
    _check_decode_progress(engine, 1)
    _check_decode_progress(tiled, 9)


def test_lora_errors_name_the_problem(
    engine: Engine, tiny_pipeline: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet"))
    big = write_lora(unet, tmp_path / "big.safetensors", rank=12, alpha=12.0, seed=5)
    ctx = Context.create(engine)
    content, style = (LoraFile.load(str(p)) for p in pair)
    ctx.set_loras(content, style, method="direct")
    before = ctx.generate(PROMPT, steps=2, seed=0)[0]
    expected = (
        f'{big}: layer "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k" has rank 12, above the slot\'s '
        "max rank 8 (export with a larger --max-rank)"
    )
    with pytest.raises(LoraError) as error:
        ctx.set_loras(LoraFile.load(str(big)), None, method="single")
    assert str(error.value) == expected
    # A refused pair leaves the context's previous pair in place.
    assert np.array_equal(ctx.generate(PROMPT, steps=2, seed=0)[0], before)


def test_bundle_errors_name_the_file(xnnpack_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(LoraError, match=re.escape(str(tmp_path / "missing"))):
        Engine.load(str(tmp_path / "missing"))
    damaged = tmp_path / "damaged"
    shutil.copytree(xnnpack_bundle, damaged)
    with open(damaged / "unet.pte", "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(LoraError, match=r"unet\.pte.*(sha256|checksum)"):
        Engine.load(str(damaged))
    manifest = json.loads((xnnpack_bundle / "manifest.json").read_text())
    manifest["format"] = "something-else"
    broken = tmp_path / "broken"
    shutil.copytree(xnnpack_bundle, broken)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LoraError, match=re.escape(str(broken / "manifest.json"))):
        Engine.load(str(broken))
    manifest = json.loads((xnnpack_bundle / "manifest.json").read_text())
    name = sorted(manifest["programs"]["hypernet"]["methods"])[0]
    manifest["programs"]["hypernet"]["methods"][name]["rank"] = 99
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LoraError) as error:
        Engine.load(str(broken))
    assert str(error.value) == (
        f"{broken / 'manifest.json'}: programs.hypernet.methods.{name}.rank is 99, outside 1..8 (the hypernetwork's "
        "rank)"
    )


def _edit(m: dict, path: str, value: object) -> None:
    *keys, last = path.split("/")
    for k in keys:
        m = m[int(k)] if isinstance(m, list) else m[k]
    if isinstance(m, list):
        m[int(last)] = value
    else:
        m[last] = value


MANIFEST_CASES = [
    # A type the reader did not check (the engine crashed: a null array dereferenced).
    ("programs/hypernet/config/merged", 1, "programs.hypernet.config.merged is not an array"),
    # Shapes the engine builds tensor views of its own buffers from: a disagreement would have a program read past them.
    (
        "programs/unet/methods/forward/inputs/0/shape",
        [2, 4, 64, 64],
        "programs.unet.methods.forward.inputs[0] does not hold two latents of model.latent_shape",
    ),
    (
        "programs/unet/methods/forward/inputs/3/shape",
        [7],
        "programs.unet.methods.forward.inputs[3] does not hold lora_slot's A factors",
    ),
    ("lora_slot/layers/0/rank", 9, "lora_slot.layers[0].rank is 9, outside 1..8"),
    # VAE tiling: the tile must fit the latent and be what the decoder program takes.
    (
        "programs/vae_decoder/tiling",
        {"tile": 4, "overlap": 1},
        "programs.vae_decoder.methods.forward.inputs[0] does not hold one tile of programs.vae_decoder.tiling",
    ),
    (
        "programs/vae_decoder/tiling",
        {"tile": 9, "overlap": 1},
        "programs.vae_decoder.tiling.tile is 9, larger than the latent (model.latent_shape)",
    ),
    (
        "programs/vae_decoder/tiling",
        {"tile": 4, "overlap": 4},
        "programs.vae_decoder.tiling.overlap is 4, outside 0..3",
    ),
    (
        "programs/vae_decoder/methods/forward/outputs/0/shape",
        [1, 3, 8, 8],
        "programs.vae_decoder.methods.forward.outputs[0] does not hold one RGB image of model.image_size",
    ),
    ("model/image_size", [16, 24], "model.image_size is not one whole multiple of model.latent_shape on both axes"),
    ("lora_slot/layers/0/in_features", 2**40, "lora_slot.layers[0].in_features is 1099511627776, outside 1..1048576"),
    ("model/latent_shape", [4, 16, 0], "model has an image_size or latent_shape outside 1..65536"),
    ("programs/vae_decoder/methods/forward/outputs", [], "programs.vae_decoder.methods.forward.outputs is empty"),
    (
        "programs/text_encoder/methods/forward/inputs/0/shape",
        [2**30, 2**30],
        "programs.text_encoder.methods.forward.inputs[0].shape is too large",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_fields_are_checked_before_use(
    xnnpack_bundle: Path, tmp_path: Path, path: str, value: object, message: str
) -> None:
    """Every manifest field the engine indexes or sizes buffers by is typed and bounded at load (the fuzzer
    tests/fuzz/fuzz_bundle_manifest.cc holds the parser to that on arbitrary text)."""
    broken = tmp_path / "broken"
    shutil.copytree(xnnpack_bundle, broken)
    manifest = json.loads((xnnpack_bundle / "manifest.json").read_text())
    _edit(manifest, path, value)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LoraError) as error:
        Engine.load(str(broken))
    assert str(error.value) == f"{broken / 'manifest.json'}: {message}"


def test_generate_command_writes_the_engines_image(
    engine: Engine, xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lorarar generate --engine native`` writes the image the Context API gives, with or without --packed-cache
    (first run writes the cache, second maps it); its --json names the prompt and the timings."""
    from PIL import Image

    from lorarar.cli.main import main

    ctx = Context.create(engine)
    ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method="direct")
    want = np.asarray(ctx.generate(PROMPT, "", 3, 5.0, "ddim", 8)[0])
    cache = tmp_path / "packed"
    cache.mkdir()
    common = ["generate", "--bundle", str(xnnpack_bundle), "--content", str(pair[0]), "--style", str(pair[1])]
    common += ["--method", "direct", "--prompt", PROMPT, "--steps", "3", "--seed", "8", "--threads", "2", "--json"]
    for run, extra in enumerate(([], ["--packed-cache", str(cache)], ["--packed-cache", str(cache)])):
        out = tmp_path / f"{run}.png"
        assert main([*common, *extra, "--out", str(out)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["engine"] == "native" and report["prompt"] == PROMPT and report["merge_ms"] > 0
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), want)
    assert len(list(cache.glob("lorarar-*.xnnpack"))) == len(list(xnnpack_bundle.glob("*.pte")))
    assert main([*common, "--engine", "torch", "--packed-cache", str(cache), "--out", str(tmp_path / "t.png")]) == 2
    assert capsys.readouterr().err == "error: --packed-cache is for the native engine (--engine native)\n"


def test_generate_command_shows_the_steps_then_each_decoder_run(
    tiled_bundle: Path, pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress bar (stderr, when a terminal) counts the steps, then the tiled decoder's 9 runs."""
    from lorarar.cli import generate_cmd
    from lorarar.cli.main import main

    bars: list[Bar] = []

    class Bar:
        def __init__(self, total: int, disable: bool | None, **kwargs: object) -> None:
            self.total, self.disable, self.updates, self.descriptions = total, disable, 0, list[str]()
            bars.append(self)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            self.updates += n

        def set_description(self, text: str, refresh: bool = True) -> None:
            self.descriptions.append(text)

    monkeypatch.setattr(generate_cmd, "tqdm", Bar)
    args = ["generate", "--bundle", str(tiled_bundle), "--content", str(pair[0]), "--style", str(pair[1])]
    assert main([*args, "--prompt", PROMPT, "--steps", "3", "--out", str(tmp_path / "i.png")]) == 0
    assert len(bars) == 1 and bars[0].total == bars[0].updates == 3 + 9 and bars[0].disable is None
    assert bars[0].descriptions == [f"decode {i}/9" for i in range(1, 10)]
