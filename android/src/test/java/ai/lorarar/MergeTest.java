package ai.lorarar;

import static ai.lorarar.LoraFileTest.expectError;
import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** Merging a content and a style LoRA, materialising, saving and reloading: test_c_api.cc's flow from Java. */
public class MergeTest {
  private Path dir;
  private LoraFile content;
  private LoraFile style;

  @Before
  public void setUp() throws IOException {
    dir = TestFiles.tempDir();
    content = LoraFile.load(TestFiles.writePeftLora(dir, "content.safetensors", 1, 4).toString());
    style = LoraFile.load(TestFiles.writePeftLora(dir, "style.safetensors", 2, 2).toString());
  }

  @After
  public void tearDown() throws IOException {
    content.close();
    style.close();
    TestFiles.deleteTree(dir);
  }

  @Test
  public void columnsMergeSavesAndReloadsAsAStandardLora() throws IOException {
    float[] mc = new float[16];
    float[] ms = new float[16];
    Arrays.fill(mc, 0.5f);
    Arrays.fill(ms, 2.0f);
    Path coeffsPath = dir.resolve("coeffs.safetensors");
    Path out = dir.resolve("merged.safetensors");
    float[][] factors;
    try (Coefficients coeffs = Coefficients.create()) {
      coeffs.set(TestFiles.Q, mc, ms);
      coeffs.save(coeffsPath.toString());
      try (Adapter merged = Adapter.merge(content, style, MergeParams.columns(coeffs))) {
        content.close(); // the adapter keeps the files mapped
        style.close();
        assertEquals(2, merged.numLayers());
        LayerInfo q = merged.layer(1);
        assertEquals(TestFiles.Q, q.module());
        assertEquals(6, q.rank()); // 4 + 2
        assertEquals(6.0f, q.alpha(), 0.0f);
        assertEquals(1.0f, q.scale(), 0.0f);
        factors = merged.materialize(1);
        assertEquals(6 * 16, factors[0].length);
        assertEquals(16 * 6, factors[1].length);
        merged.save(out.toString(), DType.F32);
      }
    }
    assertTrue(Files.size(out) > 0);
    try (LoraFile back = LoraFile.load(out.toString());
        Adapter reloaded = Adapter.fromLora(back, 1.0f)) {
      LayerInfo q = back.layer(1);
      assertEquals(6, q.rank());
      assertEquals(1.0f, q.scale(), 0.0f);
      assertTrue(q.alphaInFile());
      float[][] again = reloaded.materialize(1);
      assertArrayEquals(factors[0], again[0], 0.0f);
      assertArrayEquals(factors[1], again[1], 0.0f);
    }
    try (Coefficients loaded = Coefficients.load(coeffsPath.toString())) {
      loaded.set(TestFiles.K, new float[24], new float[24]);
    }
  }

  @Test
  public void directMergeScalesTheParts() {
    try (Adapter one = Adapter.merge(content, style);
        Adapter scaled = Adapter.merge(content, style, MergeParams.direct(2.0f, 0.0f))) {
      float[][] a1 = one.materialize(1);
      float[][] a2 = scaled.materialize(1);
      // A' = [s_c A_c ; s_s A_s]: the content rows double, the style rows vanish; B' is unscaled.
      for (int i = 0; i < 4 * 16; ++i) assertEquals(2.0f * a1[0][i], a2[0][i], 1e-6f);
      for (int i = 4 * 16; i < 6 * 16; ++i) assertEquals(0.0f, a2[0][i], 0.0f);
      assertArrayEquals(a1[1], a2[1], 0.0f);
    }
  }

  @Test
  public void wrongBufferSizesAreRefused() {
    try (Adapter merged = Adapter.merge(content, style)) {
      float[] a = new float[6 * 16];
      float[] b = new float[16 * 6];
      merged.materialize(1, a, b);
      expectError(Status.INVALID_ARGUMENT, "a buffer must hold rank x in_features floats",
          () -> merged.materialize(1, new float[5], b));
      expectError(Status.INVALID_ARGUMENT, "b buffer must hold out_features x rank floats",
          () -> merged.materialize(1, a, new float[6 * 16 + 1]));
      expectError(Status.INVALID_ARGUMENT, "layer index out of range", () -> merged.materialize(2, a, b));
      expectError(Status.INVALID_ARGUMENT, "layer index out of range", () -> merged.materialize(-1, a, b));
      expectError(Status.INVALID_ARGUMENT, "layer index out of range", () -> merged.materialize(-1));
      expectError(Status.INVALID_ARGUMENT, "a must not be null", () -> merged.materialize(1, null, b));
    }
  }

  @Test
  public void argumentErrors() {
    expectError(Status.INVALID_ARGUMENT, "content must not be null", () -> Adapter.merge(null, style));
    expectError(Status.INVALID_ARGUMENT, "style must not be null", () -> Adapter.merge(content, null));
    expectError(Status.INVALID_ARGUMENT, "coefficients must not be null", () -> MergeParams.columns(null));
    try (Coefficients coeffs = Coefficients.create()) {
      expectError(Status.INVALID_ARGUMENT, "content and style coefficients differ in length (16 vs 15)",
          () -> coeffs.set(TestFiles.Q, new float[16], new float[15]));
      expectError(Status.INVALID_ARGUMENT, "module must not be null", () -> coeffs.set(null, new float[1],
          new float[1]));
    }
    try (Adapter merged = Adapter.merge(content, style)) {
      expectError(Status.INVALID_ARGUMENT, "path must not be null", () -> merged.save(null, DType.F16));
      String noDir = dir + "/no/such/dir/merged.safetensors";
      LorararException e = LoraFileTest.expectErrorStatus(Status.IO, () -> merged.save(noDir, DType.BF16));
      assertTrue(e.getMessage(), e.getMessage().startsWith(noDir));
    }
    String missing = dir + "/none.safetensors";
    expectError(Status.NOT_FOUND, missing + ": no such file", () -> Coefficients.load(missing));
  }

  @Test
  public void savesEveryDtype() throws IOException {
    try (Adapter merged = Adapter.merge(content, style)) {
      for (DType d : DType.values()) {
        Path out = dir.resolve("merged-" + d + ".safetensors");
        merged.save(out.toString(), d);
        try (LoraFile back = LoraFile.load(out.toString())) {
          assertEquals(6, back.layer(1).rank());
        }
      }
    }
  }
}
