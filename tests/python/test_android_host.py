"""The Android bindings' engine tests (android/src/test/java/ai/lorarar/EngineTest.java) on a real bundle.

``make android-host-test`` compiles the Java API, its JUnit tests and the JNI library for the host JVM, and runs
them; without a bundle it can only run the engine's error paths. This test reruns the engine class against the
session's XNNPACK bundle (load, LoRA pair, generate, progress, cancel, close during a generation) with
-Xcheck:jni. ``make test`` sets LORARAR_REQUIRE_JNI=1 (the build comes first), so there it cannot skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "build" / "android-host"
JNI_LIBRARY_DIR = ROOT / "build" / "host" / "android-jni"
JUNIT = ["/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar"]


@pytest.mark.parametrize("bundle_fixture", ["xnnpack_bundle", "tiled_bundle"])
def test_java_engine_tests_on_a_bundle(bundle_fixture: str, request: pytest.FixtureRequest) -> None:
    """The tiled bundle (its VAE decoded in 3 x 3 tiles) makes the decoder's progress reports a list."""
    bundle: Path = request.getfixturevalue(bundle_fixture)
    built = (HOST / "test-classes" / "ai" / "lorarar" / "EngineTest.class").exists() and JNI_LIBRARY_DIR.exists()
    if not built or shutil.which("java") is None:
        if os.environ.get("LORARAR_REQUIRE_JNI") == "1":
            pytest.fail(f"{HOST} or java is missing: make android-host-test should have built it")
        pytest.skip("the Android host build is missing (make android-host-test)")
    classpath = ":".join([str(HOST / "classes"), str(HOST / "test-classes"), *JUNIT])
    properties = [f"-Djava.library.path={JNI_LIBRARY_DIR}", f"-Dlorarar.test.bundle={bundle}"]
    run = subprocess.run(
        ["java", "-Xcheck:jni", *properties, "-cp", classpath, "ai.lorarar.HostTestRunner", "ai.lorarar.EngineTest"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "WARNING in native method" not in log
    assert " 0 skipped, 0 failed" in log, log[-3000:]
