package ai.lorarar;

/** One layer of a {@link LoraFile} or an {@link Adapter} ({@code lorarar_layer_info}). Immutable. */
public final class LayerInfo {
  private final String module;
  private final long rank;
  private final long inFeatures;
  private final long outFeatures;
  private final float alpha;
  private final float scale;
  private final boolean alphaInFile;

  /** Called by the JNI library. */
  LayerInfo(
      String module, long rank, long inFeatures, long outFeatures, float alpha, float scale, boolean alphaInFile) {
    this.module = module;
    this.rank = rank;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.alpha = alpha;
    this.scale = scale;
    this.alphaInFile = alphaInFile;
  }

  /** The diffusers module path, e.g. {@code mid_block.attentions.0.transformer_blocks.0.attn1.to_q}. */
  public String module() {
    return module;
  }

  public long rank() {
    return rank;
  }

  public long inFeatures() {
    return inFeatures;
  }

  public long outFeatures() {
    return outFeatures;
  }

  /** The file's alpha, or the rank where the file carries none. For an adapter: its rank. */
  public float alpha() {
    return alpha;
  }

  /** The factor dW = scale * B A is applied with. For an adapter: 1 (the scales live in A'). */
  public float scale() {
    return scale;
  }

  /** Whether alpha came from the file. */
  public boolean alphaInFile() {
    return alphaInFile;
  }

  @Override
  public String toString() {
    return module + " rank " + rank + " (" + outFeatures + " x " + inFeatures + ") alpha " + alpha + " scale " + scale;
  }
}
