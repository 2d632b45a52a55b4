package ai.lorarar;

/**
 * The JNI library's functions ({@code lorarar_jni.cc}, registered in {@code JNI_OnLoad}). One static native per C API
 * call; handles are the C pointers as {@code long}s (a context's is the JNI wrapper that also holds its cancel flag).
 * Every function throws {@link LorararException} on failure and never crashes on a null or zero argument; it cannot
 * tell a freed pointer from a live one, which is what {@link NativeHandle} is for.
 */
final class NativeBridge {
  // Class initialisation is the JVM's once-only, thread-safe lock: the first use of any native loads the library.
  static {
    System.loadLibrary("lorarar_jni");
    int library = apiVersion();
    int bindings = bindingsApiVersion();
    if (library != Lorarar.API_VERSION || bindings != Lorarar.API_VERSION) {
      throw new UnsatisfiedLinkError(
          "lorarar API version mismatch: liblorarar.so has "
              + library
              + ", liblorarar_jni.so was built for "
              + bindings
              + ", the Java classes for "
              + Lorarar.API_VERSION);
    }
  }

  private NativeBridge() {}

  /** Does nothing; calling it runs the static initialiser above once. */
  static void init() {}

  // ---------------------------------------------------------------- library
  static native String version();

  static native int apiVersion();

  /** LORARAR_API_VERSION of the header the JNI library was compiled against. */
  static native int bindingsApiVersion();

  static native String statusString(int status);

  // ---------------------------------------------------------------- base model
  static native long baseOpenUnet(String dir);

  static native long baseNumLayers(long base);

  static native void baseFree(long base);

  // ---------------------------------------------------------------- LoRA files
  static native long loraLoad(String path, long base, boolean checkValues);

  static native long loraLoadFromMemory(
      byte[] data, String name, String adapterConfigJson, long base, boolean checkValues);

  static native String loraFormat(long lora);

  static native long loraNumTextEncoderTensors(long lora);

  static native LayerInfo[] loraLayers(long lora);

  static native void loraFree(long lora);

  // ---------------------------------------------------------------- column coefficients
  static native long coeffsCreate();

  static native long coeffsLoad(String path);

  static native void coeffsSet(long coeffs, String module, float[] content, float[] style);

  static native void coeffsSave(long coeffs, String path);

  static native void coeffsFree(long coeffs);

  // ---------------------------------------------------------------- merging
  static native long merge(long content, long style, int method, float contentScale, float styleScale, long coeffs);

  static native long adapterFromLora(long lora, float scale);

  static native LayerInfo[] adapterLayers(long adapter);

  static native void adapterMaterialize(long adapter, int index, float[] a, float[] b);

  static native void adapterSave(long adapter, String path, int dtype);

  static native void adapterFree(long adapter);

  // ---------------------------------------------------------------- fusing
  /** lorarar_fuse_default_params(): {scale, n_threads}. */
  static native float[] fuseDefaultNumbers();

  /** lorarar_fuse_default_params().kernel. */
  static native String fuseDefaultKernel();

  /** Fuses into a copy of {@code weight} (out x in floats, checked) and writes it back on success. */
  static native void fuseWeightsF32(
      long adapter,
      String module,
      float[] weight,
      long outFeatures,
      long inFeatures,
      float scale,
      int threads,
      String kernel);

  /** The same for F16 or BF16 weights ({@code dtype}) as bit patterns. */
  static native void fuseWeights16(
      long adapter,
      String module,
      short[] weight,
      int dtype,
      long outFeatures,
      long inFeatures,
      float scale,
      int threads,
      String kernel);

  static native void fuseUnetDir(long base, long adapter, String outDir, float scale, int threads, String kernel);

  // ---------------------------------------------------------------- engine
  /** lorarar_engine_default_params(): {n_threads, verify_checksums, parallel_contexts}. */
  static native int[] engineDefaults();

  static native long engineLoad(
      String bundleDir,
      int threads,
      boolean verifyChecksums,
      boolean parallelContexts,
      String packedCacheDir);

  static native EngineInfo engineInfo(long engine);

  static native void engineCheckLora(long engine, long lora);

  static native void engineFree(long engine);

  static native long contextCreate(long engine);

  /** Returns {hypernet_ms, fold_ms, total_ms}. */
  static native double[] contextSetLoras(
      long context, long content, long style, int method, float contentScale, float styleScale);

  static native void contextSetAdapter(long context, long adapter);

  /** lorarar_apply_default_params(): {method, content_scale, style_scale}. */
  static native float[] applyDefaults();

  /** lorarar_generate_default_params(): {steps, guidance, scheduler}. */
  static native double[] generateDefaultNumbers();

  static native long generateDefaultSeed();

  /** lorarar_generate_default_params(): {prompt, negative_prompt}. */
  static native String[] generateDefaultPrompts();

  /**
   * Writes the image into {@code rgb} and returns {text_encoder_ms, denoise_ms, step_ms_median, decode_ms, total_ms}.
   * {@code listener} may be null; it runs on the calling thread after each step.
   */
  static native double[] generate(
      long context,
      String prompt,
      String negativePrompt,
      int steps,
      float guidance,
      int scheduler,
      long seed,
      ProgressListener listener,
      byte[] rgb);

  /**
   * Sets the context's cancel flag and calls lorarar_context_cancel. With {@code closing}, the flag stays set for good:
   * a generate that has not started yet stops too.
   */
  static native void contextCancel(long context, boolean closing);

  static native void contextFree(long context);
}
