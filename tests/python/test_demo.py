"""``make demo``'s cached default bundle: exported once, reused while its sources are unchanged, re-exported when
the model, the hypernetwork or the exporter's own code changes. The export itself is replaced by a recorder (the
real one is tested in test_export_*.py); everything else is the demo's code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lorarar.export.bundle
from lorarar import demo
from lorarar.world import catalog


def test_default_bundle_is_exported_once_per_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    exports: list[Any] = []

    def fake_export(options: Any) -> None:
        exports.append(options)
        options.out.mkdir(parents=True, exist_ok=True)

    world = catalog.default_dir()
    monkeypatch.setattr(lorarar.export.bundle, "export_bundle", fake_export)
    monkeypatch.setattr(catalog, "repo_root", lambda: tmp_path)
    bundle = demo.default_bundle(world, quiet=True)
    assert bundle == tmp_path / ".cache" / "bundles" / "default-xnnpack"
    assert len(exports) == 1 and exports[0].backend == "xnnpack" and exports[0].model == world / "pipeline"
    assert exports[0].hypernet == world / "hypernet"
    assert demo.default_bundle(world, quiet=True) == bundle and len(exports) == 1  # cached
    # Another source (here: a stale stamp, as after an exporter change) re-exports.
    stamp = bundle.with_name("default-xnnpack.source.sha256")
    stamp.write_text("stale")
    packed = demo.packed_cache_dir(bundle)
    assert packed == tmp_path / ".cache" / "bundles" / "default-xnnpack.packed"
    packed.mkdir()
    (packed / "lorarar-0123.xnnpack").write_bytes(b"weights of the previous export")
    demo.default_bundle(world, quiet=True)
    assert len(exports) == 2 and stamp.read_text() == demo.default_bundle_digest(world / "pipeline", world / "hypernet")
    assert not packed.exists()  # the previous export's packed weights go with it


def test_bundle_digest_covers_the_exporter_source() -> None:
    paths = catalog.paths()
    exporter = Path(demo.__file__).parent / "export"
    assert (exporter / "graph_forms.py").exists()
    digest = demo.default_bundle_digest(paths.pipeline, paths.hypernet)
    assert digest == demo.default_bundle_digest(paths.pipeline, paths.hypernet)
    assert digest.endswith(demo.source_digest(exporter, "*.py"))
    assert digest.startswith(demo.source_digest(paths.pipeline) + demo.source_digest(paths.hypernet))
