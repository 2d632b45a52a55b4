package ai.lorarar;

import static ai.lorarar.LoraFileTest.expectError;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** A C++ exception inside a native becomes a LorararException; the JVM goes on. */
public class GuardTest {
  @Test
  public void cxxExceptionsBecomeJavaExceptions() {
    Lorarar.loadLibrary(); // registers the hooks
    for (int round = 0; round < 3; ++round) {
      expectError(Status.OUT_OF_MEMORY, "out of memory", () -> JniTestHooks.throwCxx(0));
      expectError(Status.INTERNAL, "internal error: thrown by the test hook \u00e9", () -> JniTestHooks.throwCxx(1));
      expectError(Status.INTERNAL, "internal error", () -> JniTestHooks.throwCxx(2));
    }
    // Still alive, and the library still answers.
    assertEquals(Lorarar.API_VERSION, Lorarar.apiVersion());
  }
}
