package ai.lorarar;

/**
 * How {@link Adapter#merge} combines a content and a style LoRA ({@code lorarar_merge_params}). Immutable.
 *
 * <ul>
 *   <li>{@link #direct(float, float)}: content_scale * content + style_scale * style ({@link #DEFAULT}: both 1, the
 *       C API's {@code lorarar_merge_default_params()});
 *   <li>{@link #columns(Coefficients, float, float)}: per-column coefficients (layers without any are summed).
 * </ul>
 */
public final class MergeParams {
  /** Direct merge with both scales 1. */
  public static final MergeParams DEFAULT = new MergeParams(false, 1.0f, 1.0f, null);

  final boolean columns;
  final float contentScale;
  final float styleScale;
  final Coefficients coefficients;

  private MergeParams(boolean columns, float contentScale, float styleScale, Coefficients coefficients) {
    this.columns = columns;
    this.contentScale = contentScale;
    this.styleScale = styleScale;
    this.coefficients = coefficients;
  }

  public static MergeParams direct(float contentScale, float styleScale) {
    return new MergeParams(false, contentScale, styleScale, null);
  }

  /** Column coefficients, both scales 1. The coefficients must stay open until the merge returns. */
  public static MergeParams columns(Coefficients coefficients) {
    return columns(coefficients, 1.0f, 1.0f);
  }

  public static MergeParams columns(Coefficients coefficients, float contentScale, float styleScale) {
    return new MergeParams(true, contentScale, styleScale, Checks.notNull(coefficients, "coefficients"));
  }

  public boolean isColumns() {
    return columns;
  }

  public float contentScale() {
    return contentScale;
  }

  public float styleScale() {
    return styleScale;
  }
}
