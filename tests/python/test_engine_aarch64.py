"""The engine on 64-bit ARM: the C example (runtime/examples/lorarar_generate.c) cross-compiled by
``make native-aarch64`` generates under qemu-aarch64 from the same bundle and pair as the host engine.

ARM runs other kernels (NEON fold, XNNPACK's aarch64 GEMMs), so the images agree to a PSNR bound, not bit for bit.
``make test`` builds the ARM binary before the Python tests and sets LORARAR_REQUIRE_AARCH64=1, so there this test
cannot skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export_helpers import psnr
from lorarar import LoraFile
from lorarar._native import Context, Engine

ROOT = Path(__file__).resolve().parents[2]
ARM_BINARY = ROOT / "build" / "aarch64" / "runtime" / "lorarar_generate"
HOST_BINARY = ROOT / "build" / "host" / "runtime" / "lorarar_generate"


def read_ppm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    magic, size, maxval, pixels = data.split(b"\n", 3)
    assert magic == b"P6" and maxval == b"255", path
    width, height = (int(v) for v in size.split())
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3)


def _need(binary: Path) -> None:
    if not binary.exists():
        if os.environ.get("LORARAR_REQUIRE_AARCH64") == "1":
            pytest.fail(f"{binary} is missing: make native-aarch64 / native-test should have built it")
        pytest.skip(f"{binary} not built (make native-aarch64)")


@pytest.mark.parametrize("method", ["hypernet", "direct"])
def test_arm_engine_matches_host(xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path, method: str) -> None:
    _need(ARM_BINARY)
    if shutil.which("qemu-aarch64") is None:
        pytest.fail("qemu-aarch64 is missing (make system-deps installs qemu-user)")
    out = tmp_path / "arm.ppm"
    args = [str(xnnpack_bundle), str(pair[0]), str(pair[1]), str(out)]
    args += ["--method", method, "--steps", "4", "--seed", "5", "--threads", "1"]
    run = subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(ARM_BINARY), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    timings = json.loads(run.stdout.strip().splitlines()[-1])
    assert timings["backend"] == "xnnpack" and timings["step_ms_median"] > 0
    arm = read_ppm(out)

    engine = Engine.load(str(xnnpack_bundle), n_threads=1)
    ctx = Context.create(engine)
    ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method=method)
    host = ctx.generate("a sks bird in zwz style", steps=4, seed=5)[0]
    assert arm.shape == host.shape
    assert psnr(arm, host) > 35.0


@pytest.mark.parametrize("bundle_fixture", ["xnnpack_bundle", "tiled_bundle"])
def test_host_c_example_equals_bindings(
    bundle_fixture: str, pair: tuple[Path, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The plain-C program and the Python bindings run the same library: identical images. Its decode_progress
    callback is called once per decoder run: once, or per VAE tile (3 x 3 of the tiled bundle's 8x8 latent)."""
    _need(HOST_BINARY)
    bundle: Path = request.getfixturevalue(bundle_fixture)
    out = tmp_path / "host.ppm"
    run = subprocess.run(
        [str(HOST_BINARY), str(bundle), str(pair[0]), str(pair[1]), str(out), "--steps", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    tiles = 9 if bundle_fixture == "tiled_bundle" else 1
    assert (report["vae_tiles"], report["decode_runs"]) == (tiles, tiles)
    ctx = Context.create(Engine.load(str(bundle)))
    ctx.set_loras(LoraFile.load(str(pair[0])), LoraFile.load(str(pair[1])), method="hypernet")
    assert np.array_equal(read_ppm(out), ctx.generate("a sks bird in zwz style", steps=3, seed=0)[0])


def test_c_example_reports_bad_files(xnnpack_bundle: Path, pair: tuple[Path, Path], tmp_path: Path) -> None:
    _need(HOST_BINARY)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    run = subprocess.run(
        [str(HOST_BINARY), str(xnnpack_bundle), str(bad), str(pair[1]), str(tmp_path / "x.ppm")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.startswith(f"error: {bad}: ")
    assert not (tmp_path / "x.ppm").exists()
