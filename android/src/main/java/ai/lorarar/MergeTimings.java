package ai.lorarar;

/** How long {@link Context#setLoras} took, in milliseconds ({@code lorarar_merge_timings}). */
public final class MergeTimings {
  private final double hypernetMs;
  private final double foldMs;
  private final double totalMs;

  MergeTimings(double[] t) {
    this.hypernetMs = t[0];
    this.foldMs = t[1];
    this.totalMs = t[2];
  }

  /** Predicting the LoRA.rar coefficients. */
  public double hypernetMs() {
    return hypernetMs;
  }

  /** Folding the pair into the LoRA slot's buffers. */
  public double foldMs() {
    return foldMs;
  }

  public double totalMs() {
    return totalMs;
  }

  @Override
  public String toString() {
    return String.format(java.util.Locale.ROOT, "hypernet %.3f ms, fold %.3f ms, total %.3f ms", hypernetMs, foldMs,
        totalMs);
  }
}
