package ai.lorarar;

/**
 * How {@link Adapter#fuseInto} and {@link BaseModel#writeFused} fuse W += scale * B' A' ({@code lorarar_fuse_params}).
 * Immutable; {@link #defaults()} holds the C API's {@code lorarar_fuse_default_params()} (scale 1, one thread per
 * hardware thread, kernel "auto"), the {@code with*} methods return changed copies.
 *
 * <pre>{@code
 * adapter.fuseInto(module, weight, out, in, FuseParams.defaults().withScale(0.8f).withThreads(2));
 * }</pre>
 */
public final class FuseParams {
  private final float scale;
  private final int threads;
  private final String kernel;

  private FuseParams(float scale, int threads, String kernel) {
    this.scale = scale;
    this.threads = threads;
    this.kernel = kernel;
  }

  /** The C API's defaults. */
  public static FuseParams defaults() {
    return Defaults.VALUE;
  }

  /** The factor the adapter is fused with (default 1). */
  public float scale() {
    return scale;
  }

  /** Threads; 0 (default): one per hardware thread. The library refuses negative values. */
  public int threads() {
    return threads;
  }

  /** "auto" (default), "scalar", "avx2" or "neon". */
  public String kernel() {
    return kernel;
  }

  public FuseParams withScale(float scale) {
    return new FuseParams(scale, threads, kernel);
  }

  public FuseParams withThreads(int threads) {
    return new FuseParams(scale, threads, kernel);
  }

  public FuseParams withKernel(String kernel) {
    return new FuseParams(scale, threads, Checks.notNull(kernel, "kernel"));
  }

  @Override
  public String toString() {
    return "FuseParams{scale=" + scale + ", threads=" + threads + ", kernel=" + kernel + "}";
  }

  /** Read once, on first use. */
  private static final class Defaults {
    static final FuseParams VALUE;

    static {
      float[] numbers = NativeBridge.fuseDefaultNumbers();
      VALUE = new FuseParams(numbers[0], (int) numbers[1], NativeBridge.fuseDefaultKernel());
    }

    private Defaults() {}
  }
}
