package ai.lorarar;

/** Element type of saved factors ({@code lorarar_dtype}). */
public enum DType {
  F32(0),
  F16(1),
  BF16(2);

  final int code;

  DType(int code) {
    this.code = code;
  }
}
