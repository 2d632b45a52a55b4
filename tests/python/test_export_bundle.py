"""The bundle on disk: manifest contents and checksums, atomic writing, CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorarar.cli.main import main
from lorarar.export import bundle as bundle_mod
from lorarar.export import manifest
from lorarar.export.errors import ExportError


def test_manifest_describes_the_bundle(xnnpack_bundle: Path, tiny_pipeline: Path) -> None:
    m = manifest.verify(xnnpack_bundle)
    assert m["format"] == "lorarar-bundle" and m["format_version"] == 1
    assert m["backend"]["name"] == "xnnpack" and m["backend"]["runs_on_host"] is True
    assert m["model"]["latent_shape"] == [4, 8, 8] and m["model"]["image_size"] == [16, 16]
    assert m["model"]["scaling_factor"] == 0.5
    assert m["scheduler"]["config"] == json.loads((tiny_pipeline / "scheduler" / "scheduler_config.json").read_text())
    assert sorted(m["programs"]) == ["hypernet", "text_encoder", "unet", "vae_decoder"]
    assert {"torch", "executorch", "diffusers", "lorarar"} <= set(m["tool_versions"])
    for name in ("vocab.json", "merges.txt"):
        assert (xnnpack_bundle / "tokenizer" / name).read_bytes() == (tiny_pipeline / "tokenizer" / name).read_bytes()
        assert f"tokenizer/{name}" in m["tokenizers"]["tokenizer"]["files"]
    for program in m["programs"].values():
        for method in program["methods"]:
            assert program["files"][method] in m["files"]
            assert program["runs_on_host"] is True
    unet = m["programs"]["unet"]
    assert [t["name"] for t in unet["methods"]["forward"]["inputs"]] == [
        "sample",
        "timestep",
        "encoder_hidden_states",
        "lora_a",
        "lora_b",
    ]
    assert unet["methods"]["forward"]["outputs"] == [{"name": "noise_pred", "shape": [2, 4, 8, 8], "dtype": "float32"}]
    te = m["programs"]["text_encoder"]["methods"]["forward"]
    assert te["inputs"] == [{"name": "input_ids", "shape": [1, 77], "dtype": "int64"}]


def test_checksums_detect_damage(xnnpack_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(xnnpack_bundle, copy)
    manifest.verify(copy)
    with (copy / "vae_decoder.pte").open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ExportError, match=r"vae_decoder\.pte: sha256 does not match manifest\.json"):
        manifest.verify(copy)
    (copy / "stray.bin").write_bytes(b"x")
    (copy / "vae_decoder.pte").unlink()
    with pytest.raises(ExportError, match=r"listed in manifest\.json but missing"):
        manifest.verify(copy)


def test_interrupted_export_leaves_nothing(
    tiny_pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after one program was written: no bundle, no temporary folder; an older bundle survives."""
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("previous bundle")
    written: list[Path] = []

    def fake_lower(component: object, path: Path, *args: object, **kwargs: object) -> dict[str, object]:
        if written:
            raise KeyboardInterrupt
        path.write_bytes(b"program")
        written.append(path)
        return {"file": path.name}

    monkeypatch.setattr("lorarar.export.executorch_backend.lower", fake_lower)
    opts = bundle_mod.ExportOptions(
        model=tiny_pipeline,
        out=out,
        backend="xnnpack",
        max_rank=2,
        progress=False,
        components=("text_encoder", "vae_decoder"),
    )
    with pytest.raises(KeyboardInterrupt):
        bundle_mod.export_bundle(opts)
    assert written and not written[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_sigterm_leaves_no_bundle(tiny_pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    cmd = [
        sys.executable,
        "-m",
        "lorarar.cli.main",
        "export",
        "--model",
        str(tiny_pipeline),
        "--backend",
        "xnnpack",
        "--components",
        "unet",
        "--quiet",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 3600
    while not any(tmp_path.glob(".bundle.tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_cli_errors(tiny_pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    base = ["export", "--backend", "xnnpack", "--out", out, "--quiet"]
    assert _error(capsys, [*base, "--model", str(tmp_path / "nope")]) == (
        f"error: {tmp_path / 'nope'}: not a folder (expected a diffusers Stable Diffusion pipeline folder)"
    )
    half = tmp_path / "half"
    shutil.copytree(tiny_pipeline, half, ignore=shutil.ignore_patterns("vae"))
    assert _error(capsys, [*base, "--model", str(half)]) == (
        f"error: {half}: no vae/ folder (expected a diffusers Stable Diffusion pipeline folder)"
    )
    other = tmp_path / "other"
    shutil.copytree(tiny_pipeline, other)
    cfg = json.loads((other / "unet" / "config.json").read_text())
    cfg["_class_name"] = "UNet2DModel"
    (other / "unet" / "config.json").write_text(json.dumps(cfg))
    assert _error(capsys, [*base, "--model", str(other)]) == (
        f"error: {other / 'unet/config.json'}: unsupported UNet class 'UNet2DModel' "
        "(supported: UNet2DConditionModel of SD 1.x / 2.x / SDXL)"
    )
    cfg.update(_class_name="UNet2DConditionModel", class_embed_type="timestep")
    (other / "unet" / "config.json").write_text(json.dumps(cfg))
    assert "unsupported: class embeddings (class_embed_type='timestep')" in _error(
        capsys, [*base, "--model", str(other)]
    )
    assert _error(capsys, [*base, "--model", str(tiny_pipeline), "--quant", "palette4"]) == (
        "error: --quant: 'palette4' is not available for --backend xnnpack (choose from none, int8, w8a8)"
    )
    assert _error(capsys, [*base, "--model", str(tiny_pipeline), "--hypernet", str(tmp_path)]) == (
        f"error: {tmp_path / 'config.json'}: no such file (not a hypernetwork folder)"
    )
    # VAE tiling: refused before anything is exported (the tiny latent is 8x8).
    for flags, message in [
        (["--vae-tile", "9"], "--vae-tile: 9 is outside 1..8 (the latent's side)"),
        (["--vae-tile", "0"], "--vae-tile: 0 is outside 1..8 (the latent's side)"),
        (
            ["--vae-tile", "4", "--vae-tile-overlap", "4"],
            "--vae-tile-overlap: 4 is outside 0..3 (below the tile's side)",
        ),
        (["--vae-tile-overlap", "2"], "--vae-tile-overlap: needs --vae-tile"),
    ]:
        assert _error(capsys, [*base, "--model", str(tiny_pipeline), *flags]) == f"error: {message}"
    nosub = tmp_path / "noweights"
    shutil.copytree(tiny_pipeline, nosub)
    (nosub / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    assert _error(capsys, [*base, "--model", str(nosub), "--components", "unet"]).startswith(
        f"error: {nosub / 'unet'}: cannot load weights ("
    )
    assert not os.path.exists(out)


def test_unet_is_one_xnnpack_partition(xnnpack_bundle: Path) -> None:
    """The whole fp32 UNet step, slot included, is one XNNPACK delegate: no op left in portable kernels."""
    unet = manifest.verify(xnnpack_bundle)["programs"]["unet"]
    assert unet["delegation"]["forward"] == {"delegates": 1, "portable_ops": {}}, unet["delegation"]


def test_update_replaces_only_the_named_programs(xnnpack_bundle: Path, tiled_bundle: Path) -> None:
    """``--components vae_decoder --vae-tile 4 --update`` on a copy of a bundle: a new, tiled decoder; every other
    program, file and the LoRA slot exactly the bundle's; the result verifies."""
    before, after = manifest.read(xnnpack_bundle), manifest.verify(tiled_bundle)
    assert after["programs"]["vae_decoder"]["tiling"] == {"tile": 4, "overlap": 1}
    assert "tiling" not in before["programs"]["vae_decoder"]
    assert {k: v for k, v in after["programs"].items() if k != "vae_decoder"} == {
        k: v for k, v in before["programs"].items() if k != "vae_decoder"
    }
    assert after["lora_slot"] == before["lora_slot"]
    changed = {rel for rel in before["files"] if after["files"].get(rel) != before["files"][rel]}
    assert changed == {"vae_decoder.pte"} and set(after["files"]) == set(before["files"])


def test_update_refuses_another_bundle_before_exporting(
    xnnpack_bundle: Path, tiny_pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    shutil.copytree(xnnpack_bundle, out)
    original = (out / "manifest.json").read_bytes()
    base = ["export", "--backend", "xnnpack", "--components", "vae_decoder", "--update", "--quiet", "--out", str(out)]
    assert _error(capsys, [*base, "--model", str(tiny_pipeline), "--quant", "int8"]) == (
        f"error: --update: {out / 'manifest.json'} is --backend xnnpack --quant none, "
        "not --backend xnnpack --quant int8"
    )
    other = tmp_path / "other"
    shutil.copytree(tiny_pipeline, other)
    assert _error(capsys, [*base, "--model", str(other)]) == (
        f"error: --update: {out / 'manifest.json'} was exported from {tiny_pipeline.resolve()}, not {other.resolve()}"
    )
    assert _error(capsys, [*base[:4], "unet", *base[5:], "--model", str(tiny_pipeline)]) == (
        f"error: --update: {out / 'manifest.json'} has a LoRA slot of max rank 8, which its hypernet is built for: "
        "pass --max-rank 8"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(capsys, [*base[:-1], str(empty), "--model", str(tiny_pipeline)]) == (
        f"error: --update: {empty} holds no bundle to update (no manifest.json)"
    )
    (out / "unet.pte").write_bytes(b"damaged")
    assert _error(capsys, [*base, "--model", str(tiny_pipeline)]) == (
        f"error: {out / 'unet.pte'}: 7 bytes, manifest.json says {json.loads(original)['files']['unet.pte']['bytes']}"
    )
    assert (out / "manifest.json").read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle",
        "empty",
        "other",
    ]


def test_update_keeps_what_a_backend_writes_beside_a_program(
    onnx_bundle: Path, tiny_pipeline: Path, tmp_path: Path
) -> None:
    """Files the manifest lists but no program entry names, such as ONNX's ``<graph>.onnx.data`` beside graphs over
    1 GiB, stay with their program; the hypernetwork's one graph per method stays whole."""
    out = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, out)
    (out / "unet.onnx.data").write_bytes(b"external weights")
    manifest.write(out, manifest.read(out))
    before = manifest.verify(out)
    bundle_mod.export_bundle(
        bundle_mod.ExportOptions(
            model=tiny_pipeline, out=out, backend="onnx", components=("vae_decoder",), update=True, progress=False
        )
    )
    after = manifest.verify(out)
    assert (out / "unet.onnx.data").read_bytes() == b"external weights"
    assert {rel for rel in before["files"] if after["files"].get(rel) != before["files"][rel]} <= {"vae_decoder.onnx"}
    assert set(after["files"]) == set(before["files"])
