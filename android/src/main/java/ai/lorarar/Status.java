package ai.lorarar;

/** The status codes of the C API ({@code lorarar_status} in {@code lorarar.h}). */
public enum Status {
  OK(0),
  /** The caller passed something unusable (a null argument, a closed handle, a wrong buffer size...). */
  INVALID_ARGUMENT(1),
  /** A file is malformed. */
  INVALID_FILE(2),
  /** Well-formed, but a kind the engine does not apply. */
  UNSUPPORTED(3),
  /** A file, tensor or target layer is missing. */
  NOT_FOUND(4),
  /** The OS failed to read or write. */
  IO(5),
  OUT_OF_MEMORY(6),
  /** A generation was stopped by {@link Context#cancel()} or by its {@link ProgressListener}. */
  CANCELLED(7),
  INTERNAL(8);

  private final int code;

  Status(int code) {
    this.code = code;
  }

  /** The numeric value of the C enum. */
  public int code() {
    return code;
  }

  /** The status with this numeric value; {@link #INTERNAL} for a value this version does not know. */
  public static Status fromCode(int code) {
    for (Status s : values()) {
      if (s.code == code) return s;
    }
    return INTERNAL;
  }
}
