package ai.lorarar;

/** How {@link Context#setLoras} combines the pair ({@code lorarar_apply_method}). */
public enum ApplyMethod {
  /** LoRA.rar coefficients on the merged layers, the other layers summed (the C API's default). */
  HYPERNET(0),
  /** content_scale * content + style_scale * style. */
  DIRECT(1),
  /** The content LoRA alone; the style may be null. */
  SINGLE(2);

  final int code;

  ApplyMethod(int code) {
    this.code = code;
  }

  static ApplyMethod fromCode(int code) {
    for (ApplyMethod m : values()) {
      if (m.code == code) return m;
    }
    throw new IllegalArgumentException("unknown apply method " + code);
  }
}
