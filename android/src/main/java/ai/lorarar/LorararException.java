package ai.lorarar;

/**
 * What every failed call of these bindings throws: the C API's status and its one-line message ({@code
 * lorarar_last_error()}, "{@code <path>: <what is wrong>}" where a file is at fault).
 *
 * <p>The bindings' own checks throw it too, with status {@link Status#INVALID_ARGUMENT}: a null argument ("{@code
 * path must not be null}"), a handle used after {@code close()} ("{@code LoraFile is closed}"), a string holding a
 * NUL character. A {@link ProgressListener} that throws makes {@code generate} rethrow that exception instead.
 *
 * <p>Unchecked, like {@code android.database.SQLException}: Kotlin callers and lambdas need no ceremony.
 */
public class LorararException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Status status;

  public LorararException(Status status, String message) {
    super(message);
    this.status = status == null ? Status.INTERNAL : status;
  }

  /** Called by the JNI library with the C status value. */
  LorararException(int code, String message) {
    this(Status.fromCode(code), message);
  }

  public Status getStatus() {
    return status;
  }

  /** True when a generation was cancelled (status {@link Status#CANCELLED}). */
  public boolean isCancelled() {
    return status == Status.CANCELLED;
  }

  @Override
  public String toString() {
    return "LorararException(" + status + "): " + getMessage();
  }
}
