package ai.lorarar;

/** How long a generation took, in milliseconds ({@code lorarar_generate_timings}). */
public final class GenerateTimings {
  private final double textEncoderMs;
  private final double denoiseMs;
  private final double stepMsMedian;
  private final double decodeMs;
  private final double totalMs;

  GenerateTimings(double[] t) {
    this.textEncoderMs = t[0];
    this.denoiseMs = t[1];
    this.stepMsMedian = t[2];
    this.decodeMs = t[3];
    this.totalMs = t[4];
  }

  public double textEncoderMs() {
    return textEncoderMs;
  }

  /** All denoising steps. */
  public double denoiseMs() {
    return denoiseMs;
  }

  public double stepMsMedian() {
    return stepMsMedian;
  }

  public double decodeMs() {
    return decodeMs;
  }

  public double totalMs() {
    return totalMs;
  }

  @Override
  public String toString() {
    return String.format(java.util.Locale.ROOT,
        "text encoder %.1f ms, denoise %.1f ms (median step %.1f ms), decode %.1f ms, total %.1f ms", textEncoderMs,
        denoiseMs, stepMsMedian, decodeMs, totalMs);
  }
}
