package ai.lorarar;

/**
 * Told after each denoising step of {@link Context#generate(GenerateParams, ProgressListener)}, on the thread that
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
}
