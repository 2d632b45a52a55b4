package ai.lorarar;

/**
 * One thread's generation state: the current LoRA pair, folded into the engine's LoRA slot, and scratch memory
 * ({@code lorarar_context}). Switching the pair never reloads base weights: {@link #setLoras} takes milliseconds.
 *
 * <h2>Threads</h2>
 *
 * Use one Context per thread that generates; to generate in parallel, make several from one shared {@link Engine}.
 * Calls on one Context are serialised (a second thread blocks until the first returns), except:
 *
 * <ul>
 *   <li>{@link #cancel()}, safe from any thread: stops the generation running on this context after its current step;
 *   <li>{@link #close()}, safe from any thread: cancels a running generation and frees the context once it returns.
 * </ul>
 *
 * The {@link ProgressListener} runs on the generating thread, so it must not block on work that waits for this
 * context.
 */
public final class Context implements AutoCloseable {
  final NativeHandle handle;
  private final EngineInfo info;
  private final Object callLock = new Object();

  Context(long pointer, EngineInfo info) {
    this.handle = new NativeHandle(this, "Context", pointer, NativeBridge::contextFree);
    this.info = info;
  }

  /** The engine's info: image size, LoRA slot... */
  public EngineInfo engineInfo() {
    return info;
  }

  /**
   * Merges the pair with the C API's defaults ({@code lorarar_apply_default_params()}: LoRA.rar's hypernetwork, both
   * scales 1) and loads it into the LoRA slot.
   */
  public MergeTimings setLoras(LoraFile content, LoraFile style) {
    float[] d = NativeBridge.applyDefaults();
    return setLoras(content, style, ApplyMethod.fromCode((int) d[0]), d[1], d[2]);
  }

  /**
   * Merges the pair and loads it into this context's LoRA slot ({@code lorarar_context_set_loras}). The LoRA files are
   * not needed afterwards.
   *
   * @param content the content LoRA; null (with {@link ApplyMethod#SINGLE}) empties the slot
   * @param style the style LoRA; may be null with {@link ApplyMethod#SINGLE}
   * @return how long merging and folding took
   * @throws LorararException e.g. a LoRA layer the bundle's slot lacks (the message names the file and layer), ranks
   *     over the slot's {@link EngineInfo#maxRank()}
   */
  public MergeTimings setLoras(
      LoraFile content, LoraFile style, ApplyMethod method, float contentScale, float styleScale) {
    Checks.notNull(method, "method");
    if (method != ApplyMethod.SINGLE) {
      Checks.notNull(content, "content");
      Checks.notNull(style, "style");
    }
    long c = content == null ? 0 : content.handle.acquire();
    try {
      long s = style == null ? 0 : style.handle.acquire();
      try {
        synchronized (callLock) {
          long h = handle.acquire();
          try {
            return new MergeTimings(NativeBridge.contextSetLoras(h, c, s, method.code, contentScale, styleScale));
          } finally {
            handle.release();
          }
        }
      } finally {
        if (style != null) style.handle.release();
      }
    } finally {
      if (content != null) content.handle.release();
    }
  }

  /** Empties the LoRA slot: generations use the base model alone. */
  public void clearLoras() {
    setLoras(null, null, ApplyMethod.SINGLE, 1.0f, 1.0f);
  }

  /** Loads an already merged adapter into the LoRA slot ({@code lorarar_context_set_adapter}). */
  public void setAdapter(Adapter adapter) {
    Checks.notNull(adapter, "adapter");
    long a = adapter.handle.acquire();
    try {
      synchronized (callLock) {
        long h = handle.acquire();
        try {
          NativeBridge.contextSetAdapter(h, a);
        } finally {
          handle.release();
        }
      }
    } finally {
      adapter.handle.release();
    }
  }

  /** Generates an image without progress reports. */
  public Image generate(GenerateParams params) {
    return generate(params, null);
  }

  /**
   * Generates an image ({@code lorarar_generate}): blocks for the whole generation, so call it off the UI thread.
   *
   * @param listener told after each step, on this thread; may be null. Returning false cancels.
   * @throws LorararException status CANCELLED ("generation cancelled") when {@link #cancel()}, {@link #close()} or the
   *     listener stopped it; INVALID_ARGUMENT for bad parameters ("steps must be 1..1000")
   */
  public Image generate(GenerateParams params, ProgressListener listener) {
    byte[] rgb = new byte[info.imageBytes()];
    GenerateTimings timings = generateInto(params, listener, rgb);
    return new Image(info.imageWidth(), info.imageHeight(), rgb, timings);
  }

  /**
   * Generates into a caller-owned array of at least {@link EngineInfo#imageBytes()} bytes (RGB8, row-major), e.g. to
   * reuse one buffer (a longer array is fine: the image fills its start). The array is written only when the
   * generation completes.
   */
  public GenerateTimings generateInto(GenerateParams params, ProgressListener listener, byte[] rgb) {
    Checks.notNull(params, "params");
    Checks.notNull(rgb, "rgb");
    synchronized (callLock) {
      long h = handle.acquire();
      try {
        return new GenerateTimings(
            NativeBridge.generate(
                h,
                params.prompt(),
                params.negativePrompt(),
                params.steps(),
                params.guidance(),
                params.scheduler().code,
                params.seed(),
                listener,
                rgb));
      } finally {
        handle.release();
      }
    }
  }

  /**
   * Asks a generation running on this context to stop after its current step ({@code lorarar_context_cancel}); it
   * then throws a {@link LorararException} with status CANCELLED. Safe from any thread, including the listener's. A
   * cancel when no generation runs does nothing: it does not carry over to the next one. Never throws, even after
   * {@link #close()}.
   */
  public void cancel() {
    cancel(false);
  }

  private void cancel(boolean closing) {
    long h;
    try {
      h = handle.acquire();
    } catch (LorararException closed) {
      return;
    }
    try {
      NativeBridge.contextCancel(h, closing);
    } finally {
      handle.release();
    }
  }

  /**
   * Cancels a running generation and frees the context when it returns (at once when none runs). Idempotent; safe
   * from any thread.
   */
  @Override
  public void close() {
    cancel(true);
    handle.close();
  }
}
