package ai.lorarar;

/** What a loaded bundle holds ({@code lorarar_engine_info}). Immutable. */
public final class EngineInfo {
  private final int imageWidth;
  private final int imageHeight;
  private final int latentChannels;
  private final int latentWidth;
  private final int latentHeight;
  private final int maxRank;
  private final long numLoraTargets;
  private final String backend;
  private final String quantization;
  private final boolean hasHypernet;
  private final int vaeTile;
  private final int vaeTileOverlap;
  private final int vaeTiles;

  /** Called by the JNI library. */
  EngineInfo(
      int imageWidth,
      int imageHeight,
      int latentChannels,
      int latentWidth,
      int latentHeight,
      int maxRank,
      long numLoraTargets,
      String backend,
      String quantization,
      boolean hasHypernet,
      int vaeTile,
      int vaeTileOverlap,
      int vaeTiles) {
    this.imageWidth = imageWidth;
    this.imageHeight = imageHeight;
    this.latentChannels = latentChannels;
    this.latentWidth = latentWidth;
    this.latentHeight = latentHeight;
    this.maxRank = maxRank;
    this.numLoraTargets = numLoraTargets;
    this.backend = backend;
    this.quantization = quantization;
    this.hasHypernet = hasHypernet;
    this.vaeTile = vaeTile;
    this.vaeTileOverlap = vaeTileOverlap;
    this.vaeTiles = vaeTiles;
  }

  /** Width of the generated RGB8 images. */
  public int imageWidth() {
    return imageWidth;
  }

  /** Height of the generated RGB8 images. */
  public int imageHeight() {
    return imageHeight;
  }

  /** Bytes of one generated image: width x height x 3. */
  public int imageBytes() {
    return imageWidth * imageHeight * 3;
  }

  public int latentChannels() {
    return latentChannels;
  }

  public int latentWidth() {
    return latentWidth;
  }

  public int latentHeight() {
    return latentHeight;
  }

  /** The LoRA slot's rank: the content rank plus the style rank must fit. */
  public int maxRank() {
    return maxRank;
  }

  /** Layers of the LoRA slot. */
  public long numLoraTargets() {
    return numLoraTargets;
  }

  /** e.g. "xnnpack". */
  public String backend() {
    return backend;
  }

  /** e.g. "none", "int8". */
  public String quantization() {
    return quantization;
  }

  /** Whether the bundle carries the LoRA.rar hypernetwork ({@link ApplyMethod#HYPERNET}). */
  public boolean hasHypernet() {
    return hasHypernet;
  }

  /**
   * Side of the latent tile the VAE decoder takes (bundles exported with {@code --vae-tile}); 0 when it decodes the
   * whole latent.
   */
  public int vaeTile() {
    return vaeTile;
  }

  /** The least overlap of neighbouring VAE tiles, in latent pixels; 0 when untiled. */
  public int vaeTileOverlap() {
    return vaeTileOverlap;
  }

  /** VAE decoder runs per image: the tiles, or 1 ({@link ProgressListener#onDecodeProgress}'s total). */
  public int vaeTiles() {
    return vaeTiles;
  }

  @Override
  public String toString() {
    return imageWidth
        + "x"
        + imageHeight
        + " "
        + backend
        + " ("
        + quantization
        + "), LoRA slot rank "
        + maxRank
        + " over "
        + numLoraTargets
        + " layers"
        + (hasHypernet ? ", hypernetwork" : "")
        + (vaeTile > 0 ? ", VAE in " + vaeTiles + " tiles of " + vaeTile : "");
  }
}
