"""Bad input: exit status 2 and exactly one line, "error: <file>: <what is wrong>"; nothing written."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lorarar.cli.main import main

Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"


def raw(header: dict | str, data: bytes = b"", length: int | None = None) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    body = text.encode()
    return struct.pack("<Q", len(body) if length is None else length) + body + data


def tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def good_pair(rank: int = 2, n_in: int = 16, n_out: int = 16) -> dict[str, torch.Tensor]:
    return {f"unet.{Q}.lora_A.weight": torch.ones(rank, n_in), f"unet.{Q}.lora_B.weight": torch.ones(n_out, rank)}


CASES = [
    ("empty", b"", "file is empty"),
    ("truncated", b"\x10\x00\x00", "file is truncated: 3 bytes, shorter than the 8-byte header length"),
    ("header past end", raw("{}", length=4096), "header length 4096 runs past the end of the file (10 bytes)"),
    ("not json", raw("{'a': 1}"), "header is not JSON (invalid JSON at byte 1: expected a string key)"),
    (
        "offsets out of range",
        raw({"t": tensor("F32", [4], 0, 16)}, b"\0" * 8),
        'tensor "t": data_offsets [0, 16) out of range (data section is 8 bytes)',
    ),
    (
        "overlap",
        raw({"a": tensor("F32", [2], 0, 8), "b": tensor("F32", [2], 4, 12)}, b"\0" * 12),
        'tensors "a" and "b" overlap',
    ),
    ("unknown dtype", raw({"t": tensor("F7", [1], 0, 4)}, b"\0" * 4), 'tensor "t": unknown dtype "F7"'),
    (
        "size mismatch",
        raw({"t": tensor("F16", [3], 0, 4)}, b"\0" * 4),
        'tensor "t": shape [3] of F16 needs 6 bytes but data_offsets span 4',
    ),
]


@pytest.mark.parametrize(("label", "content", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_files(
    label: str, content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    assert main(["lora", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: {message}\n"


def write(tmp_path: Path, tensors: dict[str, torch.Tensor], name: str = "bad.safetensors") -> Path:
    path = tmp_path / name
    save_file(tensors, str(path))
    return path


def test_non_finite_and_rank_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = good_pair()
    t[f"unet.{Q}.lora_B.weight"][3, 1] = float("nan")
    path = write(tmp_path, t)
    assert main(["lora", "info", str(path)]) == 2
    assert capsys.readouterr().err == f'error: {path}: tensor "unet.{Q}.lora_B.weight" holds NaN at element 7\n'

    t = good_pair()
    t[f"unet.{Q}.lora_A.weight"] = torch.ones(3, 16)
    path = write(tmp_path, t)
    assert main(["lora", "info", str(path)]) == 2
    assert capsys.readouterr().err == (
        f'error: {path}: layer "unet.{Q}": A/B rank mismatch: down [3, 16] has rank 3, up [16, 2] has rank 2\n'
    )


def test_targets_and_shapes_against_the_base(
    unet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    path = write(
        tmp_path, {f"unet.{other}.lora_A.weight": torch.ones(2, 8), f"unet.{other}.lora_B.weight": torch.ones(8, 2)}
    )
    out = tmp_path / "fused"
    assert main(["fuse", "--base", str(unet_dir), "--lora", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f'error: {path}: targets "{other}", which the base model does not have\n'
    assert not out.exists()

    path = write(tmp_path, good_pair(n_in=12))
    assert main(["fuse", "--base", str(unet_dir), "--lora", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f'error: {path}: layer "unet.{Q}": in/out features 12 -> 16 do not fit the base layer "{Q}" (16 -> 16)\n'
    )
    assert not out.exists()


def test_unsupported_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = good_pair()
    t[f"unet.{Q}.lora_magnitude_vector"] = torch.ones(16)
    path = write(tmp_path, t)
    assert main(["lora", "info", str(path)]) == 2
    assert capsys.readouterr().err == (
        f'error: {path}: tensor "unet.{Q}.lora_magnitude_vector" is a DoRA magnitude tensor, '
        "which the engine does not apply\n"
    )


def test_merge_coefficient_errors_name_the_file(
    lora_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    coeffs = write(tmp_path, {f"{name}.content": torch.ones(15), f"{name}.style": torch.ones(15)}, "coeffs.safetensors")
    out = tmp_path / "merged.safetensors"
    args = [
        "merge",
        "--content",
        str(lora_files["content"]),
        "--style",
        str(lora_files["style"]),
        "--method",
        "columns",
        "--coeffs",
        str(coeffs),
        "--out",
        str(out),
    ]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f'error: {coeffs}: coefficients for "{name}" (content) have 15 entries, the layer has 16 input columns\n'
    )
    assert not out.exists()
    assert main([*args[:-4], "--out", str(out)]) == 2
    assert capsys.readouterr().err == "error: --method columns needs --coeffs FILE\n"


def test_console_script_prints_one_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    exe = Path(sys.executable).parent / "lorarar"
    result = subprocess.run([str(exe), "lora", "info", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {path}: file is empty\n"
    result = subprocess.run([str(exe), "merge", "--content", "x"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: lorarar merge: ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--methods", "direct,zip"],
            "unknown merge method 'zip' (direct, columns, hypernet, ziplora, peft-cat, peft-ties, peft-dare)",
        ),
        (
            ["--methods", "direct@1:x"],
            "'direct@1:x': the weights are written NAME@WC:WS, two numbers (e.g. direct@1:0.7)",
        ),
        (
            ["--methods", "ziplora"],
            "{bundle}: the native engine merges direct and hypernet, not ziplora (drop --bundle)",
        ),
        (
            ["--methods", "peft-ties"],
            "{bundle}: the native engine merges direct and hypernet, not peft-ties (drop --bundle)",
        ),
        (["--hypernet", "h"], "{bundle}: a bundle brings its own hypernetwork program (drop --hypernet)"),
    ],
)
def test_eval_on_a_bundle_refuses_what_a_bundle_cannot_do(
    extra: list[str], message: str, xnnpack_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--bundle", str(xnnpack_bundle), "--n", "1", "--pairs", "1", "--out", str(tmp_path / "r"), *extra]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {message.format(bundle=xnnpack_bundle)}\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flag", "name", "kind"), [("--content", "kestrel", "subject"), ("--style", "lagoon", "style")]
)
def test_world_sample_names_a_missing_library_lora(
    flag: str, name: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kestrel and lagoon are in the world (renders, classifiers) but not in the LoRA library."""
    from lorarar.world import catalog

    folder = "content" if kind == "subject" else "style"
    path = catalog.default_dir() / "loras" / folder / f"{name}.safetensors"
    assert main(["world", "sample", flag, name, "--n", "1", "--out", str(tmp_path / "out")]) == 2
    expected = (
        f"error: {path}: no such file (the library has no LoRA for the {kind} {name!r}; see 'lorarar world list')\n"
    )
    assert capsys.readouterr().err == expected
    assert not (tmp_path / "out").exists()


def _hypernet_folder(tmp_path: Path, config: str | None, weights: dict[str, torch.Tensor] | bytes | None) -> Path:
    folder = tmp_path / "hypernet"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config)
    if isinstance(weights, bytes):
        (folder / "hypernet.safetensors").write_bytes(weights)
    elif weights is not None:
        save_file(weights, str(folder / "hypernet.safetensors"))
    return folder


def _hypernet_state(hidden: int = 8) -> dict[str, torch.Tensor]:
    from lorarar.hypernet.model import HyperNet, HyperNetConfig

    return {k: v.clone() for k, v in HyperNet(HyperNetConfig(widths=(16,), hidden=hidden)).state_dict().items()}


GOOD_CONFIG = json.dumps({"widths": [16], "hidden": 8, "merged": ["to_q", "to_out.0"]})
NAN_STATE = _hypernet_state()
NAN_STATE["output.bias"][1] = float("nan")
HYPERNET_CASES = [
    ("no config", None, None, "config.json", "no such file (not a hypernetwork folder)"),
    ("config not json", "{widths", None, "config.json", "not JSON (Expecting property name enclosed in double quotes"),
    ("config no widths", "{}", None, "config.json", "no 'widths' (a list of positive integers)"),
    (
        "config bad hidden",
        json.dumps({"widths": [16], "hidden": -1, "merged": []}),
        None,
        "config.json",
        "'hidden' must be a positive integer, got -1",
    ),
    (
        "no weights",
        GOOD_CONFIG,
        None,
        "hypernet.safetensors",
        "no such file (a hypernetwork folder holds config.json + this file)",
    ),
    ("weights truncated", GOOD_CONFIG, b"\x10\x00", "hypernet.safetensors", "not a safetensors file ("),
    (
        "weights of another size",
        GOOD_CONFIG,
        _hypernet_state(hidden=4),
        "hypernet.safetensors",
        "does not match its config.json (wrong shape: inputs.16.bias, inputs.16.weight, output.weight)",
    ),
    ("weights nan", GOOD_CONFIG, NAN_STATE, "hypernet.safetensors", "tensor 'output.bias' holds NaN or Inf"),
]


@pytest.mark.parametrize(
    ("label", "config", "weights", "file", "message"), HYPERNET_CASES, ids=[c[0] for c in HYPERNET_CASES]
)
def test_bad_hypernetwork_folders_name_the_file(
    label: str,
    config: str | None,
    weights: dict[str, torch.Tensor] | bytes | None,
    file: str,
    message: str,
    lora_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _hypernet_folder(tmp_path, config, weights)
    out = tmp_path / "merged.safetensors"
    args = ["merge", "--content", str(lora_files["content"]), "--style", str(lora_files["style"])]
    assert main([*args, "--method", "hypernet", "--hypernet", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / file}: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_mutated_hypernetwork_folders_load_or_raise_lora_error(tmp_path: Path) -> None:
    """Fuzz: 400 byte-level mutations of a good config.json and hypernet.safetensors."""
    import random

    from lorarar.errors import LoraError
    from lorarar.hypernet.model import HyperNet

    good = _hypernet_folder(tmp_path, GOOD_CONFIG, _hypernet_state())
    files = {name: (good / name).read_bytes() for name in ("config.json", "hypernet.safetensors")}
    rng = random.Random(7)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(400):
        name = rng.choice(sorted(files))
        data = bytearray(files[name])
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.5:
                data[at] = rng.randrange(256)
            elif action < 0.75:
                del data[at : at + rng.randint(1, 16)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        (good / name).write_bytes(bytes(data))
        try:
            HyperNet.load(good)
            outcomes["loaded"] += 1
        except LoraError as e:
            assert str(e).startswith(f"{good / name}: "), str(e)
            outcomes["refused"] += 1
        (good / name).write_bytes(files[name])
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 0, outcomes


def _published_state() -> dict[str, torch.Tensor]:
    """The published SDXL hypernetwork's layout (input_N per width, output.1), at width 16, hidden 8."""
    g = torch.Generator().manual_seed(0)
    shapes = {"input_1.weight": (8, 32), "input_1.bias": (8,), "output.1.weight": (2, 8), "output.1.bias": (2,)}
    return {k: torch.randn(*s, generator=g) for k, s in shapes.items()}


def test_published_hypernetwork_layout_is_imported(tmp_path: Path) -> None:
    from lorarar.hypernet.model import HyperNet

    state = _published_state()
    path = write(tmp_path, state, "published.safetensors")
    net = HyperNet.from_published(path)
    assert net.config.widths == (16,) and net.config.hidden == 8
    assert torch.equal(net.inputs["16"].weight, state["input_1.weight"])
    assert torch.equal(net.output.bias, state["output.1.bias"])


PUBLISHED_CASES = [
    ("garbage", b"garbage!!", "not a safetensors file (Error while deserializing header: header too large)"),
    ("a lora", "lora", "not a LoRA.rar hypernetwork (expected input_N.weight and output.1.weight)"),
    ("no output bias", "no-bias", "does not match the published layout (missing: output.bias)"),
    (
        "hidden mismatch",
        "hidden",
        "does not match the published layout (wrong shape: inputs.16.bias, inputs.16.weight)",
    ),
]


@pytest.mark.parametrize(("label", "content", "message"), PUBLISHED_CASES, ids=[c[0] for c in PUBLISHED_CASES])
def test_bad_published_hypernetwork_files_name_the_file(
    label: str,
    content: bytes | str,
    message: str,
    lora_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "published.safetensors"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "lora":
        path.write_bytes(lora_files["content"].read_bytes())
    else:
        state = _published_state()
        if content == "no-bias":
            del state["output.1.bias"]
        else:
            state["output.1.weight"] = torch.ones(2, 8)
            state["input_1.weight"] = torch.ones(4, 32)  # hidden 4 in the first layer, 8 in the output layer
            state["input_1.bias"] = torch.ones(4)
        save_file(state, str(path))
    out = tmp_path / "merged.safetensors"
    args = ["merge", "--content", str(lora_files["content"]), "--style", str(lora_files["style"])]
    assert main([*args, "--method", "hypernet", "--hypernet", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('{"format": 3', "{dir}/manifest.json: not valid JSON (Expecting ',' delimiter: line 2 column 1 (char 13))"),
        (
            '{"format": "lorarar-bundle", "format_version": 1}',
            "{dir}/manifest.json: no source.path (the model the bundle came from)",
        ),
        (
            '{"format": "lorarar-bundle", "format_version": 1, "source": {"path": "/nowhere"}}',
            "{dir}: the model it was exported from (/nowhere) is not on this machine",
        ),
    ],
)
def test_torch_engine_on_a_bad_bundle_names_the_file(
    manifest: str, message: str, lora_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(manifest + "\n")
    out = tmp_path / "img.png"
    args = ["generate", "--bundle", str(bundle), "--content", str(lora_files["content"]), "--style"]
    args += [str(lora_files["style"]), "--prompt", "a cup", "--engine", "torch", "--out", str(out)]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {message.format(dir=bundle)}\n"
    assert not out.exists()


def _png(width: int, height: int, idat: bytes) -> bytes:
    """A PNG signature, IHDR (8-bit RGB) and one IDAT chunk holding ``idat``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", idat)
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_png(64, 64, zlib.compress(b"\0" * 100)), "image file is truncated"),
        (_png(100_000, 100_000, b""), "Image size (10000000000 pixels) exceeds limit of 178956970 pixels"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "cannot identify image file"),
    ],
    ids=["truncated", "decompression bomb", "not a png"],
)
def test_world_score_names_an_unreadable_image(
    data: bytes, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.png").write_bytes(data)
    assert main(["world", "score", str(tmp_path), "--content", "truck", "--style", "denim", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'a.png'}: not a readable image (") and reason in err, err
    assert err.count("\n") == 1
