package ai.lorarar;

/**
 * A bundle made by {@code lorarar export}: text encoder, UNet with a LoRA slot, VAE decoder and the LoRA.rar
 * hypernetwork as ExecuTorch programs, plus tokenizer and scheduler files ({@code lorarar_engine}).
 *
 * <p>Load it once (seconds: it maps the programs and, by default, checks every file's sha256) and share it: an Engine
 * is immutable and thread-safe. Generate through a {@link Context} per thread ({@link #newContext()}); contexts keep
 * the engine's native state alive, so closing the Engine while contexts are open is safe.
 *
 * <pre>{@code
 * try (Engine engine = Engine.load(bundleDir);
 *     Context ctx = engine.newContext();
 *     LoraFile content = LoraFile.load(contentPath);
 *     LoraFile style = LoraFile.load(stylePath)) {
 *   ctx.setLoras(content, style);
 *   Image image = ctx.generate(GenerateParams.builder("a sks dog in zwz style").build(), (step, total) -> true);
 * }
 * }</pre>
 */
public final class Engine implements AutoCloseable {
  final NativeHandle handle;
  private final String bundleDir;
  private final EngineInfo info;

  private Engine(String bundleDir, long pointer, EngineInfo info) {
    this.bundleDir = bundleDir;
    this.info = info;
    this.handle = new NativeHandle(this, "Engine", pointer, NativeBridge::engineFree);
  }

  /**
   * Loads a bundle with the C API's defaults (one thread per core, checksums verified, contexts
   * sharing one activation workspace).
   */
  public static Engine load(String bundleDir) {
    int[] defaults = NativeBridge.engineDefaults();
    return load(bundleDir, defaults[0], defaults[1] != 0, defaults[2] != 0);
  }

  /** Loads a bundle whose contexts share one activation workspace (the least memory). */
  public static Engine load(String bundleDir, int threads, boolean verifyChecksums) {
    return load(bundleDir, threads, verifyChecksums, false);
  }

  /**
   * Loads a bundle ({@code lorarar_engine_load}).
   *
   * @param threads threads for the programs; 0: one per hardware thread
   * @param verifyChecksums check the sha256 of every bundle file against the manifest
   * @param parallelContexts give each context its own activation workspace, so contexts generate
   *     in parallel at more memory each; false: they share one and take turns per delegate call
   */
  public static Engine load(
      String bundleDir, int threads, boolean verifyChecksums, boolean parallelContexts) {
    return load(bundleDir, threads, verifyChecksums, parallelContexts, null);
  }

  /**
   * Loads a bundle ({@code lorarar_engine_load}) keeping XNNPACK's packed weights in a folder.
   *
   * @param packedCacheDir an existing folder private to the app (e.g. {@code
   *     context.getCacheDir()}): the first load writes each program's packed weights there, later
   *     loads map them (no repacking; clean file pages the OS can evict instead of heap); null:
   *     packed on the heap at every load
   */
  public static Engine load(
      String bundleDir,
      int threads,
      boolean verifyChecksums,
      boolean parallelContexts,
      String packedCacheDir) {
    Checks.notNull(bundleDir, "bundleDir");
    long pointer =
        NativeBridge.engineLoad(bundleDir, threads, verifyChecksums, parallelContexts, packedCacheDir);
    EngineInfo info;
    try {
      info = NativeBridge.engineInfo(pointer);
    } catch (Throwable t) {
      NativeBridge.engineFree(pointer);
      throw t;
    }
    return new Engine(bundleDir, pointer, info);
  }

  /** The bundle folder. */
  public String bundleDir() {
    return bundleDir;
  }

  /** Image size, LoRA slot, backend... (read once at load). */
  public EngineInfo info() {
    return info;
  }

  /**
   * Checks that every layer of the LoRA is in the bundle's LoRA slot with a matching shape; throws a {@link
   * LorararException} naming the first one that is not.
   */
  public void checkLora(LoraFile lora) {
    Checks.notNull(lora, "lora");
    long l = lora.handle.acquire();
    try {
      long h = handle.acquire();
      try {
        NativeBridge.engineCheckLora(h, l);
      } finally {
        handle.release();
      }
    } finally {
      lora.handle.release();
    }
  }

  /** A new context (scratch memory, a LoRA slot holding no LoRA) for one thread's generations. */
  public Context newContext() {
    long h = handle.acquire();
    try {
      return new Context(NativeBridge.contextCreate(h), info);
    } finally {
      handle.release();
    }
  }

  /** Frees the engine (idempotent); open contexts keep its native state until they close. */
  @Override
  public void close() {
    handle.close();
  }

  @Override
  public String toString() {
    return "Engine(" + bundleDir + ": " + info + ")";
  }
}
