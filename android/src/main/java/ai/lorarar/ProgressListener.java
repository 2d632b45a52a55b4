package ai.lorarar;

/**
 * Told after each denoising step (and each VAE decoder run) of {@link Context#generate(GenerateParams, ProgressListener)}, on the thread that
 * called {@code generate} (post to the UI thread yourself).
 */
public interface ProgressListener {
  /**
   * @param step the step just finished, 1 to {@code totalSteps}
   * @param totalSteps the number of steps of this generation
   * @return true to go on; false to cancel (then {@code generate} throws a {@link LorararException} with status
   *     {@link Status#CANCELLED}). An exception thrown here also stops the generation, and {@code generate} rethrows it.
   */
  boolean onProgress(int step, int totalSteps);

  /**
   * Told after each run of the VAE decoder, which follows the last step: one per tile of a bundle exported with
   * {@code --vae-tile} ({@link EngineInfo#vaeTiles()} of them), else one. At SD 1.5 size the decode takes as long as
   * two denoising steps. Ignored unless overridden.
   *
   * @param tile the decoder runs done, 1 to {@code totalTiles}
   * @param totalTiles the decoder runs of this image
   * @return true to go on; false to cancel, as {@link #onProgress}
   */
  default boolean onDecodeProgress(int tile, int totalTiles) {
    return true;
  }
}
