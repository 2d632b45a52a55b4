package ai.lorarar;

import static ai.lorarar.LoraFileTest.expectError;
import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.Assume;
import org.junit.Before;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The engine: errors without a bundle always; with {@code -Dlorarar.test.bundle=DIR} (a bundle from {@code lorarar
 * export}) also loading it, setting a LoRA pair written for its LoRA slot, and generating with progress, cancellation
 * from the listener and from another thread, and close() during a generation.
 */
public class EngineTest {
  private static final String BUNDLE_PROPERTY = "lorarar.test.bundle";
  private static Path bundle;
  private static Engine engine;
  private static Path loraDir;
  private static LoraFile content;
  private static LoraFile style;

  private Context ctx;

  @BeforeClass
  public static void loadBundle() throws IOException {
    String dir = System.getProperty(BUNDLE_PROPERTY, "");
    if (dir.isEmpty()) {
      System.err.println(
          "EngineTest: no bundle given (-D" + BUNDLE_PROPERTY + "=DIR, or LORARAR_TEST_BUNDLE=DIR for make "
              + "android-host-test): the tests that load a bundle and generate are skipped");
      return;
    }
    bundle = Paths.get(dir);
    engine = Engine.load(dir, 2, true);
    List<TestFiles.SlotLayer> slot = TestFiles.slotLayers(bundle);
    int rank = Math.max(1, engine.info().maxRank() / 2);
    loraDir = TestFiles.tempDir();
    content = LoraFile.load(TestFiles.writeSlotLora(loraDir, "content.safetensors", slot, rank, 0, 1, 10).toString());
    style = LoraFile.load(TestFiles.writeSlotLora(loraDir, "style.safetensors", slot, rank, 0, 1, 20).toString());
  }

  @AfterClass
  public static void closeBundle() throws IOException {
    if (content != null) content.close();
    if (style != null) style.close();
    if (engine != null) engine.close();
    TestFiles.deleteTree(loraDir);
  }

  @Before
  public void newContext() {
    if (engine != null) ctx = engine.newContext();
  }

  @After
  public void closeContext() {
    if (ctx != null) ctx.close();
  }

  private static void needBundle() {
    Assume.assumeTrue("no bundle: set -D" + BUNDLE_PROPERTY + "=DIR", engine != null);
  }

  private ApplyMethod method() {
    return engine.info().hasHypernet() ? ApplyMethod.HYPERNET : ApplyMethod.DIRECT;
  }

  private static GenerateParams params(int steps) {
    return GenerateParams.builder("a sks dog in zwz style").steps(steps).seed(7).build();
  }

  // ---------------------------------------------------------------- no bundle needed

  @Test
  public void loadErrorsNameTheFolder() throws IOException {
    Path dir = TestFiles.tempDir();
    try {
      String missing = dir + "/nope";
      expectError(Status.NOT_FOUND, missing + ": not a folder", () -> Engine.load(missing));
      expectError(Status.NOT_FOUND, dir + ": no manifest.json (not a bundle, or an unfinished export)",
          () -> Engine.load(dir.toString()));
      expectError(Status.INVALID_ARGUMENT, "bundleDir must not be null", () -> Engine.load(null));
    } finally {
      TestFiles.deleteTree(dir);
    }
  }

  // ---------------------------------------------------------------- with a bundle

  @Test
  public void info() {
    needBundle();
    EngineInfo info = engine.info();
    assertTrue(info.toString(), info.imageWidth() > 0 && info.imageHeight() > 0);
    assertEquals(info.imageWidth() * info.imageHeight() * 3, info.imageBytes());
    assertTrue(info.maxRank() > 0);
    assertTrue(info.numLoraTargets() > 0);
    assertFalse(info.backend().isEmpty());
    assertFalse(info.quantization().isEmpty());
    assertSame(info, ctx.engineInfo());
  }

  @Test
  public void checkLoraNamesTheFileAndLayer() throws IOException {
    needBundle();
    engine.checkLora(content);
    Path dir = TestFiles.tempDir();
    try {
      TestFiles.SlotLayer first = TestFiles.slotLayers(bundle).get(0);
      String module = first.module;
      List<TestFiles.Tensor> t = new ArrayList<>();
      // The slot's first layer with a shape it does not have.
      TestFiles.addLayer(t, "unet." + module + ".lora_A.weight", "unet." + module + ".lora_B.weight", 1,
          first.in + 1, first.out, 1);
      Path bad = TestFiles.write(dir.resolve("bad.safetensors"), TestFiles.safetensors(t, null));
      try (LoraFile lora = LoraFile.load(bad.toString())) {
        String message = bad + ": layer \"" + module + "\" is " + (first.in + 1) + " -> " + first.out
            + ", the bundle's is " + first.in + " -> " + first.out;
        expectError(Status.INVALID_ARGUMENT, message, () -> engine.checkLora(lora));
        // setLoras names the file at fault too.
        expectError(Status.INVALID_ARGUMENT, message, () -> ctx.setLoras(lora, style, ApplyMethod.DIRECT, 1, 1));
        expectError(Status.INVALID_ARGUMENT, message, () -> ctx.setLoras(content, lora, ApplyMethod.DIRECT, 1, 1));
      }
      t.clear();
      String absent = "up_blocks.9.attentions.0.transformer_blocks.0.attn1.to_q";
      TestFiles.addLayer(t, "unet." + absent + ".lora_A.weight", "unet." + absent + ".lora_B.weight", 1, 8, 8, 1);
      Path other = TestFiles.write(dir.resolve("absent.safetensors"), TestFiles.safetensors(t, null));
      try (LoraFile lora = LoraFile.load(other.toString())) {
        expectError(Status.NOT_FOUND, other + ": layer \"" + absent + "\" is not in the bundle's LoRA slot",
            () -> engine.checkLora(lora));
      }
    } finally {
      TestFiles.deleteTree(dir);
    }
  }

  @Test
  public void setLorasMatchesAdaptersMergedAheadOfTime() {
    needBundle();
    // DIRECT through the context and the same merge made with Adapter.merge: the same slot, so the same image.
    ctx.setLoras(content, style, ApplyMethod.DIRECT, 0.8f, 0.6f);
    Image viaContext = ctx.generate(params(2));
    try (Adapter adapter = Adapter.merge(content, style, MergeParams.direct(0.8f, 0.6f))) {
      ctx.setAdapter(adapter);
    }
    assertArrayEquals(viaContext.rgb(), ctx.generate(params(2)).rgb());
    // SINGLE: the content LoRA alone at its scale.
    ctx.setLoras(content, null, ApplyMethod.SINGLE, 0.5f, 1.0f);
    Image single = ctx.generate(params(2));
    try (Adapter adapter = Adapter.fromLora(content, 0.5f)) {
      ctx.setAdapter(adapter);
    }
    assertArrayEquals(single.rgb(), ctx.generate(params(2)).rgb());
    assertFalse(java.util.Arrays.equals(viaContext.rgb(), single.rgb()));
    if (engine.info().hasHypernet()) {
      MergeTimings t = ctx.setLoras(content, style);  // the C API's default: the hypernetwork
      assertTrue(t.toString(), t.hypernetMs() > 0);
      assertFalse(java.util.Arrays.equals(viaContext.rgb(), ctx.generate(params(2)).rgb()));
    } else {
      expectError(Status.UNSUPPORTED, bundle + ": the bundle has no hypernetwork program",
          () -> ctx.setLoras(content, style));
    }
  }

  @Test
  public void generatesDeterministicallyWithProgress() {
    needBundle();
    MergeTimings t = ctx.setLoras(content, style, method(), 1.0f, 1.0f);
    assertTrue(t.toString(), t.totalMs() >= 0 && t.foldMs() >= 0 && t.hypernetMs() >= 0);
    List<int[]> steps = Collections.synchronizedList(new ArrayList<>());
    Thread caller = Thread.currentThread();
    Image a = ctx.generate(params(3), (step, total) -> {
      assertSame(caller, Thread.currentThread());
      steps.add(new int[] {step, total});
      return true;
    });
    assertEquals(3, steps.size());
    for (int i = 0; i < 3; ++i) assertArrayEquals(new int[] {i + 1, 3}, steps.get(i));
    assertEquals(engine.info().imageWidth(), a.width());
    assertEquals(engine.info().imageHeight(), a.height());
    assertEquals(engine.info().imageBytes(), a.rgb().length);
    assertNotNull(a.timings());
    assertTrue(a.timings().toString(), a.timings().totalMs() > 0);
    Image b = ctx.generate(params(3));
    assertArrayEquals("same seed, same image", a.rgb(), b.rgb());
    byte[] into = new byte[engine.info().imageBytes() + 5];
    ctx.generateInto(params(3), null, into);
    for (int i = 0; i < a.rgb().length; ++i) assertEquals(a.rgb()[i], into[i]);

    // Another pair (the slot cleared) gives another image, with the same seed.
    ctx.clearLoras();
    Image base = ctx.generate(params(3));
    assertFalse(java.util.Arrays.equals(a.rgb(), base.rgb()));
    try (Adapter adapter = Adapter.merge(content, style)) {
      ctx.setAdapter(adapter);
      ctx.generate(params(1));
    }
  }

  @Test
  public void reportsEachDecoderRunAfterTheSteps() {
    needBundle();
    EngineInfo info = engine.info();
    assertTrue(info.toString(), info.vaeTile() > 0 ? info.vaeTiles() > 1 : info.vaeTiles() == 1);
    List<String> events = new ArrayList<>();
    Image a = ctx.generate(params(2), new ProgressListener() {
      @Override
      public boolean onProgress(int step, int totalSteps) {
        events.add("step " + step + "/" + totalSteps);
        return true;
      }

      @Override
      public boolean onDecodeProgress(int tile, int totalTiles) {
        events.add("tile " + tile + "/" + totalTiles);
        return true;
      }
    });
    List<String> expected = new ArrayList<>(java.util.Arrays.asList("step 1/2", "step 2/2"));
    for (int i = 1; i <= info.vaeTiles(); ++i) expected.add("tile " + i + "/" + info.vaeTiles());
    assertEquals(expected, events);
    assertArrayEquals(a.rgb(), ctx.generate(params(2)).rgb());

    // Cancelled from the decoder's report: nothing written.
    byte[] rgb = new byte[info.imageBytes()];
    expectError(Status.CANCELLED, "generation cancelled", () -> ctx.generateInto(params(2), new ProgressListener() {
      @Override
      public boolean onProgress(int step, int totalSteps) {
        return true;
      }

      @Override
      public boolean onDecodeProgress(int tile, int totalTiles) {
        return false;
      }
    }, rgb));
    assertArrayEquals("untouched when cancelled", new byte[rgb.length], rgb);
  }

  @Test
  public void listenerCancels() {
    needBundle();
    byte[] rgb = new byte[engine.info().imageBytes()];
    List<Integer> seen = new ArrayList<>();
    LorararException e = expectError(Status.CANCELLED, "generation cancelled",
        () -> ctx.generateInto(params(5), (step, total) -> {
          seen.add(step);
          return step < 2;
        }, rgb));
    assertTrue(e.isCancelled());
    assertEquals(java.util.Arrays.asList(1, 2), seen);
    assertArrayEquals("untouched when cancelled", new byte[rgb.length], rgb);
    // The context works again afterwards.
    assertEquals(rgb.length, ctx.generate(params(1)).rgb().length);
  }

  @Test
  public void listenerExceptionsPropagate() {
    needBundle();
    try {
      ctx.generate(params(3), (step, total) -> {
        throw new IllegalStateException("stop at " + step);
      });
      fail("expected the listener's exception");
    } catch (IllegalStateException expected) {
      assertEquals("stop at 1", expected.getMessage());
    }
    ctx.generate(params(1));
  }

  @Test
  public void cancelFromAnotherThread() throws Exception {
    needBundle();
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    List<Integer> seen = Collections.synchronizedList(new ArrayList<>());
    Thread canceller = new Thread(() -> {
      try {
        if (started.await(60, TimeUnit.SECONDS)) ctx.cancel();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } finally {
        cancelled.countDown();
      }
    });
    canceller.start();
    expectError(Status.CANCELLED, "generation cancelled", () -> ctx.generate(params(50), (step, total) -> {
      seen.add(step);
      started.countDown();
      try {
        // Hold step 1 until the other thread has cancelled: deterministic, however fast the steps are.
        assertTrue(cancelled.await(60, TimeUnit.SECONDS));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return true;
    }));
    canceller.join(10_000);
    assertEquals(Collections.singletonList(1), seen);
    // A cancel with nothing running does not carry over.
    ctx.cancel();
    ctx.generate(params(2));
  }

  @Test
  public void closeDuringAGenerationCancelsItAndFreesAfterwards() throws Exception {
    needBundle();
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch closed = new CountDownLatch(1);
    AtomicReference<Throwable> thrown = new AtomicReference<>();
    Thread generator = new Thread(() -> {
      try {
        ctx.generate(params(50), (step, total) -> {
          started.countDown();
          try {
            closed.await(60, TimeUnit.SECONDS);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return true;
        });
      } catch (Throwable t) {
        thrown.set(t);
      }
    });
    generator.start();
    assertTrue(started.await(60, TimeUnit.SECONDS));
    ctx.close(); // from this thread, while the generator is inside generate()
    assertTrue(ctx.handle.isClosed());
    assertFalse("freed only once generate returns", ctx.handle.isFreed());
    closed.countDown();
    generator.join(60_000);
    assertTrue(thrown.get() instanceof LorararException);
    assertTrue(((LorararException) thrown.get()).isCancelled());
    assertTrue(ctx.handle.isFreed());
    expectError(Status.INVALID_ARGUMENT, "Context is closed", () -> ctx.generate(params(1)));
    ctx.cancel(); // never throws
  }

  @Test
  public void badParameters() {
    needBundle();
    expectError(Status.INVALID_ARGUMENT, "steps must be 1..1000", () -> ctx.generate(params(0)));
    expectError(Status.INVALID_ARGUMENT, "guidance must be finite",
        () -> ctx.generate(params(1).toBuilder().guidance(Float.NaN).build()));
    expectError(Status.INVALID_ARGUMENT, "the output buffer needs " + engine.info().imageBytes() + " bytes",
        () -> ctx.generateInto(params(1), null, new byte[5]));
    expectError(Status.INVALID_ARGUMENT, "params must not be null", () -> ctx.generate(null));
    expectError(Status.INVALID_ARGUMENT, "content must not be null",
        () -> ctx.setLoras(null, style, ApplyMethod.DIRECT, 1, 1));
    expectError(Status.INVALID_ARGUMENT, "method must not be null", () -> ctx.setLoras(content, style, null, 1, 1));
  }

  @Test
  public void packedWeightCacheGivesTheSameImage() throws Exception {
    needBundle();
    Path cache = Files.createTempDirectory("lorarar-packed");
    Context reference = engine.newContext();
    reference.setLoras(content, style, ApplyMethod.DIRECT, 1.0f, 1.0f);
    byte[] want = reference.generate(params(2)).rgb();
    reference.close();
    for (int load = 0; load < 2; ++load) {  // the first writes the packed weights, the second maps them
      try (Engine cached = Engine.load(bundle.toString(), 1, false, false, cache.toString());
          Context c = cached.newContext()) {
        c.setLoras(content, style, ApplyMethod.DIRECT, 1.0f, 1.0f);
        assertArrayEquals(want, c.generate(params(2)).rgb());
      }
      try (Stream<Path> packed = Files.list(cache);
          Stream<Path> programs = Files.list(bundle)) {
        assertEquals(  // one file per program
            programs.filter(f -> f.getFileName().toString().endsWith(".pte")).count(),
            packed.filter(f -> f.getFileName().toString().endsWith(".xnnpack")).count());
      }
    }
    Path missing = cache.resolve("missing");
    expectError(Status.NOT_FOUND, missing + ": packed_cache_dir is not a folder",
        () -> Engine.load(bundle.toString(), 1, false, false, missing.toString()));
  }

  @Test
  public void contextsOutliveTheEngineObject() {
    needBundle();
    Engine second = Engine.load(bundle.toString(), 1, false);
    Context c = second.newContext();
    second.close();
    expectError(Status.INVALID_ARGUMENT, "Engine is closed", second::newContext);
    try {
      c.setLoras(content, style, ApplyMethod.DIRECT, 1.0f, 0.5f);
      assertEquals(engine.info().imageBytes(), c.generate(params(1)).rgb().length);
    } finally {
      c.close();
    }
    assertTrue(Files.isDirectory(bundle));
  }
}
