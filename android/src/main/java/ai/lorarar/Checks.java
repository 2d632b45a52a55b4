package ai.lorarar;

/** Argument checks that throw the bindings' one exception type. */
final class Checks {
  private Checks() {}

  static <T> T notNull(T value, String name) {
    if (value == null) throw new LorararException(Status.INVALID_ARGUMENT, name + " must not be null");
    return value;
  }
}
