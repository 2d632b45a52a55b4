"""``manifest.json``: what a bundle holds and how to call it (documented in export/BUNDLE.md).

Written last, after every program; ``files`` lists each other file with its sha256 and size, so a reader can
tell a complete bundle from a damaged one. ``verify`` re-checks a bundle on disk.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from lorarar.export.errors import ExportError

FORMAT = "lorarar-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOOLS = (
    "lorarar",
    "torch",
    "executorch",
    "torchao",
    "coremltools",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "diffusers",
    "transformers",
    "numpy",
)


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_table(root: Path) -> dict[str, dict[str, Any]]:
    """Every file under root except the manifest, by POSIX relative path (folders such as .mlpackage included)."""
    table = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST:
            table[rel] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    return table


def write(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = dict(manifest)
    manifest["files"] = file_table(root)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{root}: no {MANIFEST} (not a bundle, or an unfinished export)") from None
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExportError(f"{path}: not a {FORMAT} manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: format_version {data.get('format_version')!r}, this tool reads {FORMAT_VERSION}")
    return data


def verify(root: Path) -> dict[str, Any]:
    """Reads the manifest and checks every listed file's size and sha256, and that no file is unlisted."""
    data = read(root)
    listed: dict[str, Any] = data.get("files", {})
    for rel, entry in listed.items():
        path = root / rel
        if not path.is_file():
            raise ExportError(f"{path}: listed in {MANIFEST} but missing")
        if path.stat().st_size != entry["bytes"]:
            raise ExportError(f"{path}: {path.stat().st_size} bytes, {MANIFEST} says {entry['bytes']}")
        if sha256(path) != entry["sha256"]:
            raise ExportError(f"{path}: sha256 does not match {MANIFEST}")
    extra = sorted(set(file_table(root)) - set(listed))
    if extra:
        raise ExportError(f"{root / extra[0]}: not listed in {MANIFEST}")
    return data
