package ai.lorarar;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

/** Library-wide functions and the plain value classes. */
public class LibraryTest {
  @Test
  public void versions() {
    Lorarar.loadLibrary();
    Lorarar.loadLibrary(); // idempotent
    assertTrue(Lorarar.version(), Lorarar.version().matches("\\d+\\.\\d+\\.\\d+"));
    assertEquals(Lorarar.API_VERSION, Lorarar.apiVersion());
    assertEquals("unsupported", Lorarar.statusString(Status.UNSUPPORTED));
    assertEquals("cancelled", Lorarar.statusString(Status.CANCELLED));
    assertEquals("unknown status", NativeBridge.statusString(99));
  }

  @Test
  public void statusCodesMatchTheCEnum() {
    for (Status s : Status.values()) assertEquals(s, Status.fromCode(s.code()));
    assertEquals(Status.INTERNAL, Status.fromCode(42));
    assertEquals(7, Status.CANCELLED.code());
    assertTrue(new LorararException(7, "generation cancelled").isCancelled());
    assertEquals("LorararException(NOT_FOUND): x: no such file",
        new LorararException(Status.NOT_FOUND, "x: no such file").toString());
  }

  @Test
  public void generateParamsDefaultsComeFromTheCApi() {
    GenerateParams p = GenerateParams.builder().build();
    assertEquals("", p.prompt());
    assertEquals("", p.negativePrompt());
    assertEquals(25, p.steps());
    assertEquals(5.0f, p.guidance(), 0.0f);
    assertEquals(Scheduler.DDIM, p.scheduler());
    assertEquals(0L, p.seed());
    GenerateParams q = GenerateParams.builder("a sks dog").steps(4).guidance(1.0f).scheduler(Scheduler.LCM)
        .seed(-1L).negativePrompt("blurry").build();
    assertEquals("a sks dog", q.prompt());
    assertEquals("18446744073709551615", Long.toUnsignedString(q.seed()));
    GenerateParams r = q.toBuilder().steps(8).build();
    assertEquals(8, r.steps());
    assertEquals(Scheduler.LCM, r.scheduler());
    assertEquals("blurry", r.negativePrompt());
    LoraFileTest.expectError(Status.INVALID_ARGUMENT, "prompt must not be null", () -> GenerateParams.builder(null));
    LoraFileTest.expectError(Status.INVALID_ARGUMENT, "scheduler must not be null",
        () -> GenerateParams.builder().scheduler(null));
  }

  @Test
  public void applyDefaultsAreHypernetAtScaleOne() {
    assertArrayEquals(new float[] {ApplyMethod.HYPERNET.code, 1.0f, 1.0f}, NativeBridge.applyDefaults(), 0.0f);
    int[] engine = NativeBridge.engineDefaults();
    assertArrayEquals(new int[] {0, 1, 0}, engine);
  }

  @Test
  public void imagePixelsAsArgb() {
    byte[] rgb = {(byte) 255, 0, 0, 0, (byte) 128, 1, 1, 2, 3, (byte) 200, (byte) 201, (byte) 202};
    Image image = new Image(2, 2, rgb, null);
    assertArrayEquals(new int[] {0xFFFF0000, 0xFF008001, 0xFF010203, 0xFFC8C9CA}, image.toArgb());
    assertEquals(0xFF010203, image.argbAt(0, 1));
    try {
      image.argbAt(2, 0);
      throw new AssertionError("expected IndexOutOfBoundsException");
    } catch (IndexOutOfBoundsException expected) {
      assertEquals("(2, 0) outside 2x2", expected.getMessage());
    }
  }
}
