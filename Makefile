# lorarar: `make demo` and `make test` set everything up on a fresh machine
# (a .venv with the pinned stack, the native build) and then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
CMAKE := $(BIN)/cmake
NINJA := $(BIN)/ninja
JOBS ?= $(shell nproc)
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
PY_DIRS := $(wildcard python tests/python benchmarks export)
NATIVE_SOURCES := $(shell find runtime python/bindings tests/native tests/fuzz -type f -name '*.cc' -o -name '*.h' -o -name 'CMakeLists.txt') CMakeLists.txt
SYSTEM_PACKAGES := g++-aarch64-linux-gnu qemu-user clang-14 libclang-rt-14-dev clang-format-14 \
                   default-jdk-headless junit4 libhamcrest-java
CMAKE_COMMON := -G Ninja -DCMAKE_MAKE_PROGRAM=$(NINJA) -DLORARAR_BUILD_PYTHON=OFF -DPython_EXECUTABLE=$(BIN)/python
ET_AARCH64 := .cache/et-aarch64/sdk/executorch

.PHONY: all setup system-deps build demo test lint format stubs native-test native-asan native-aarch64 fuzz \
        python-test android-host-test bench bench-export clean

all: build

# ---------------------------------------------------------------- set-up
$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	@$(BIN)/python -c "import torch, sys; sys.exit('a CUDA build of torch was installed; expected the CPU build' if torch.version.cuda else 0)"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# Cross compiler, qemu and clang (fuzzing, formatting) from Debian's packages.
system-deps:
	@missing=(); for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing+=($$p); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing $${missing[*]}"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $${missing[*]}; \
	fi

# The Python package with its native extension, installed editable into .venv.
build/.python-$(LOCK_HASH): $(STAMP) $(NATIVE_SOURCES) pyproject.toml
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	@mkdir -p build && touch $@

build: build/.python-$(LOCK_HASH)

# ---------------------------------------------------------------- run
demo: build
	$(BIN)/python -m lorarar.demo

bench: build
	$(BIN)/python benchmarks/merge_fuse.py
	$(BIN)/python benchmarks/hypernet_lowrank.py
	$(BIN)/python benchmarks/quantized_fidelity.py
	$(BIN)/python benchmarks/merge_headroom.py
	$(BIN)/python benchmarks/vae_tiling.py
	$(BIN)/python benchmarks/train_parallel.py

# UNet export at SD 1.5 scale (random weights): export time, peak memory, sizes, per-step latency of every
# variant at 1 and 2 threads. About an hour here (exports of 1-8 min and up to 11 GB, steps of 4-20 s); the
# --work cache lets an interrupted run resume.
bench-export: build
	$(BIN)/python benchmarks/export_unet.py --preset sd15 --work .cache/sd15

# ---------------------------------------------------------------- tests
test: export LORARAR_REQUIRE_AARCH64 = 1
test: export LORARAR_REQUIRE_JNI = 1
test: system-deps lint native-test android-host-test native-asan native-aarch64 fuzz python-test

lint: build
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy
	clang-format-14 --dry-run --Werror $$(git ls-files '*.c' '*.cc' '*.h' | grep -v '^python/lorarar/')
	$(BIN)/python -m nanobind.stubgen -q -m lorarar._native -o build/_native.pyi && \
	  diff -u python/lorarar/_native.pyi build/_native.pyi || (echo "stale stub: run 'make stubs'"; exit 1)

format: build
	$(BIN)/ruff format $(PY_DIRS)
	$(BIN)/ruff check --fix $(PY_DIRS)
	clang-format-14 -i $$(git ls-files '*.c' '*.cc' '*.h')

stubs: build
	$(BIN)/python -m nanobind.stubgen -q -m lorarar._native -o python/lorarar/_native.pyi

native-test: $(STAMP)
	$(CMAKE) -S . -B build/host $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build build/host -j $(JOBS)
	cd build/host && $(BIN)/ctest --output-on-failure

native-asan: $(STAMP)
	$(CMAKE) -S . -B build/asan $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Debug -DLORARAR_SANITIZE=ON >/dev/null
	$(CMAKE) --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BIN)/ctest --output-on-failure

# ExecuTorch's aarch64 wheel is the same SDK for ARM64 (headers, libraries, CMake package).
$(ET_AARCH64)/share/cmake/executorch-config.cmake: | $(STAMP)
	mkdir -p .cache/et-aarch64
	$(BIN)/pip download -q --no-deps --platform manylinux_2_28_aarch64 --only-binary=:all: --python-version 3.11 \
	  executorch==$$($(BIN)/python -c "import importlib.metadata as m; print(m.version('executorch').split('+')[0])") \
	  -d .cache/et-aarch64
	cd .cache/et-aarch64 && $(BIN)/python -m zipfile -e executorch-*-manylinux_2_28_aarch64.whl sdk
	touch $@

native-aarch64: $(STAMP) system-deps $(ET_AARCH64)/share/cmake/executorch-config.cmake
	$(CMAKE) -S . -B build/aarch64 $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(abspath cmake/aarch64-linux-gnu.cmake) \
	  -DLORARAR_EXECUTORCH_ROOT=$(abspath $(ET_AARCH64)) >/dev/null
	$(CMAKE) --build build/aarch64 -j $(JOBS)
	cd build/aarch64 && $(BIN)/ctest --output-on-failure

# FUZZ_SECONDS in all, split between the three targets.
FUZZ_SECONDS ?= 30
FUZZ_THIRD = $(shell echo $$(( ($(FUZZ_SECONDS) + 2) / 3 )))
fuzz: $(STAMP) system-deps
	$(CMAKE) -S . -B build/fuzz $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLORARAR_FUZZ=ON \
	  -DLORARAR_BUILD_TESTS=OFF -DLORARAR_WITH_EXECUTORCH=OFF -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
	$(CMAKE) --build build/fuzz -j $(JOBS)
	rm -rf build/fuzz/corpus build/fuzz/corpus_clip_tokenizer build/fuzz/corpus_bundle_manifest
	mkdir -p build/fuzz/corpus build/fuzz/corpus_clip_tokenizer build/fuzz/corpus_bundle_manifest
	cp tests/fuzz/corpus/* build/fuzz/corpus/ && cp tests/fuzz/corpus_clip_tokenizer/* build/fuzz/corpus_clip_tokenizer/
	cp tests/fuzz/corpus_bundle_manifest/* build/fuzz/corpus_bundle_manifest/
	build/fuzz/tests/fuzz/fuzz_lora_parser -max_total_time=$(FUZZ_THIRD) -max_len=4096 \
	  -dict=tests/fuzz/safetensors.dict build/fuzz/corpus >build/fuzz/log.txt 2>&1 || (tail -50 build/fuzz/log.txt; exit 1)
	@tail -1 build/fuzz/log.txt
	build/fuzz/tests/fuzz/fuzz_clip_tokenizer -max_total_time=$(FUZZ_THIRD) -max_len=4096 \
	  -dict=tests/fuzz/clip_tokenizer.dict build/fuzz/corpus_clip_tokenizer >build/fuzz/log_clip_tokenizer.txt 2>&1 || \
	  (tail -50 build/fuzz/log_clip_tokenizer.txt; exit 1)
	@tail -1 build/fuzz/log_clip_tokenizer.txt
	build/fuzz/tests/fuzz/fuzz_bundle_manifest -max_total_time=$(FUZZ_THIRD) -max_len=32768 \
	  build/fuzz/corpus_bundle_manifest >build/fuzz/log_bundle_manifest.txt 2>&1 || \
	  (tail -50 build/fuzz/log_bundle_manifest.txt; exit 1)
	@tail -1 build/fuzz/log_bundle_manifest.txt

python-test: build
	$(BIN)/python -m pytest -q tests/python

# The Android bindings on the host JVM: liblorarar_jni.so built for the host
# (android/src/main/cpp, linked to build/host's liblorarar.so), the Java API
# and its JUnit tests compiled with javac (no Gradle, no Android SDK) and run
# with -Xcheck:jni. LORARAR_TEST_BUNDLE=DIR adds the engine tests (load,
# LoRA pair, generate, cancel). Shares build/host with native-test: run
# serially (make test does).
JAVAC ?= javac
JAVA ?= java
JAVAC_FLAGS := --release 8 -Xlint:all -Werror
JUNIT_CP := /usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
ANDROID_HOST := build/android-host
ANDROID_JAVA := $(wildcard android/src/main/java/ai/lorarar/*.java)
ANDROID_TESTS := $(subst /,.,$(patsubst android/src/test/java/%.java,%,$(wildcard android/src/test/java/ai/lorarar/*Test.java)))
LORARAR_TEST_BUNDLE ?=
android-host-test: $(STAMP) system-deps
	$(CMAKE) -S . -B build/host $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=Release -DLORARAR_BUILD_JNI=ON >/dev/null
	$(CMAKE) --build build/host -j $(JOBS) --target lorarar_jni
	rm -rf $(ANDROID_HOST) && mkdir -p $(ANDROID_HOST)/classes $(ANDROID_HOST)/android-classes $(ANDROID_HOST)/test-classes
	$(JAVAC) $(JAVAC_FLAGS) -d $(ANDROID_HOST)/classes $(ANDROID_JAVA)
	@# Android-only code: type-checked against a stub of the android.graphics API it calls, never run here.
	$(JAVAC) $(JAVAC_FLAGS) -cp $(ANDROID_HOST)/classes -d $(ANDROID_HOST)/android-classes \
	  android/src/hostStubs/java/android/graphics/Bitmap.java android/src/main/java/ai/lorarar/android/*.java
	$(JAVAC) $(JAVAC_FLAGS) -cp $(ANDROID_HOST)/classes:$(JUNIT_CP) -d $(ANDROID_HOST)/test-classes \
	  android/src/test/java/ai/lorarar/*.java
	LC_ALL=C.UTF-8 $(JAVA) -Xcheck:jni -Djava.library.path=build/host/android-jni \
	  -Dlorarar.test.bundle=$(LORARAR_TEST_BUNDLE) -cp $(ANDROID_HOST)/classes:$(ANDROID_HOST)/test-classes:$(JUNIT_CP) \
	  ai.lorarar.HostTestRunner $(ANDROID_TESTS) 2>&1 | tee $(ANDROID_HOST)/log.txt; test $${PIPESTATUS[0]} -eq 0
	@if grep -n "WARNING in native method" $(ANDROID_HOST)/log.txt; then echo "-Xcheck:jni warnings"; exit 1; fi

clean:
	rm -rf build
