package ai.lorarar;

import static ai.lorarar.TestFiles.K;
import static ai.lorarar.TestFiles.Q;
import static ai.lorarar.TestFiles.randomValues;
import static org.junit.Assert.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * Merged factors against the formula computed here in Java from the values the tests wrote (see {@link Formula}):
 * LoRA scales (kohya alpha), merge scales, column coefficients, layers only one LoRA has.
 */
public class MergeFormulaTest {
  private static final double TOLERANCE = 1e-6; // float32 rounding of the same operations
  private Path dir;

  @Before
  public void setUp() throws IOException {
    dir = TestFiles.tempDir();
  }

  @After
  public void tearDown() throws IOException {
    TestFiles.deleteTree(dir);
  }

  // What TestFiles wrote: kohya Q (rank 4, alpha 2: scale 0.5) with A seed 3 and B seed 4; peft Q with A seed s and
  // B seed s + 1, peft K (24 -> 16) with A seed s + 7 and B seed s + 8.
  private static float[] kohyaQA() {
    return randomValues(4 * 16, 3);
  }

  private static float[] kohyaQB() {
    return randomValues(16 * 4, 4);
  }

  @Test
  public void columnsMergeOfKohyaAndPeft() throws IOException {
    float contentScale = 1.5f;
    float styleScale = 0.25f;
    float[] mc = new float[16];
    float[] ms = new float[16];
    for (int j = 0; j < 16; ++j) {
      mc[j] = 0.1f * (j + 1);
      ms[j] = 1.0f - 0.05f * j;
    }
    try (LoraFile content = LoraFile.load(TestFiles.writeKohyaLora(dir, "c.safetensors", 4, 2.0f).toString());
        LoraFile style = LoraFile.load(TestFiles.writePeftLora(dir, "s.safetensors", 2, 2).toString());
        Coefficients coeffs = Coefficients.create()) {
      coeffs.set(Q, mc, ms);
      try (Adapter merged = Adapter.merge(content, style, MergeParams.columns(coeffs, contentScale, styleScale))) {
        assertEquals(2, merged.numLayers());

        // K: the style LoRA alone, no coefficients: A' = styleScale * A_s, B' = B_s.
        LayerInfo k = merged.layer(0);
        assertEquals(K, k.module());
        assertEquals(2, k.rank());
        assertEquals(24, k.inFeatures());
        assertEquals(16, k.outFeatures());
        Formula.Part kStyle = new Formula.Part(randomValues(2 * 24, 9), randomValues(16 * 2, 10), 2, styleScale, null);
        float[][] kf = merged.materialize(0);
        Formula.assertClose("K A'", Formula.toDouble(Formula.aPrime(24, kStyle)), kf[0], TOLERANCE);
        Formula.assertClose("K B'", Formula.toDouble(Formula.bPrime(16, kStyle)), kf[1], 0.0);

        // Q: rank 4 + 2, the content part scaled by 0.5 (alpha / rank) * 1.5, the style part by 0.25.
        LayerInfo q = merged.layer(1);
        assertEquals(Q, q.module());
        assertEquals(6, q.rank());
        Formula.Part qContent = new Formula.Part(kohyaQA(), kohyaQB(), 4, 0.5f * contentScale, mc);
        Formula.Part qStyle = new Formula.Part(randomValues(2 * 16, 2), randomValues(16 * 2, 3), 2, styleScale, ms);
        float[][] qf = merged.materialize(1);
        Formula.assertClose("Q A'", Formula.toDouble(Formula.aPrime(16, qContent, qStyle)), qf[0], TOLERANCE);
        Formula.assertClose("Q B'", Formula.toDouble(Formula.bPrime(16, qContent, qStyle)), qf[1], 0.0);
        // And the product, from the raw factors without going through A' and B'.
        Formula.assertClose(
            "Q dW",
            Formula.deltaW(16, 16, qContent, qStyle),
            Formula.product(qf[1], qf[0], 16, 6, 16),
            1e-5);
      }
    }
  }

  @Test
  public void directMergeAndSingleAdapter() throws IOException {
    try (LoraFile content = LoraFile.load(TestFiles.writePeftLora(dir, "c.safetensors", 1, 4).toString());
        LoraFile style = LoraFile.load(TestFiles.writePeftLora(dir, "s.safetensors", 2, 2).toString());
        Adapter direct = Adapter.merge(content, style, MergeParams.direct(0.75f, -2.0f));
        Adapter single = Adapter.fromLora(content, 3.0f)) {
      Formula.Part c = new Formula.Part(randomValues(4 * 24, 8), randomValues(16 * 4, 9), 4, 0.75f, null);
      Formula.Part s = new Formula.Part(randomValues(2 * 24, 9), randomValues(16 * 2, 10), 2, -2.0f, null);
      float[][] kf = direct.materialize(0); // K
      Formula.assertClose("K dW", Formula.deltaW(16, 24, c, s), Formula.product(kf[1], kf[0], 16, 6, 24), 1e-5);
      Formula.assertClose("K A'", Formula.toDouble(Formula.aPrime(24, c, s)), kf[0], TOLERANCE);

      Formula.Part alone = new Formula.Part(randomValues(4 * 16, 1), randomValues(16 * 4, 2), 4, 3.0f, null);
      float[][] qf = single.materialize(1); // Q
      assertEquals(4, single.layer(1).rank());
      Formula.assertClose("single Q A'", Formula.toDouble(Formula.aPrime(16, alone)), qf[0], TOLERANCE);
      Formula.assertClose("single Q B'", Formula.toDouble(Formula.bPrime(16, alone)), qf[1], 0.0);
    }
  }

  @Test
  public void coefficientErrorsNameTheLayer() throws IOException {
    try (LoraFile content = LoraFile.load(TestFiles.writePeftLora(dir, "c.safetensors", 1, 4).toString());
        LoraFile style = LoraFile.load(TestFiles.writePeftLora(dir, "s.safetensors", 2, 2).toString());
        Coefficients coeffs = Coefficients.create()) {
      coeffs.set(K, new float[16], new float[16]); // K has 24 input columns
      LoraFileTest.expectError(
          Status.INVALID_ARGUMENT,
          "coefficients for \"" + K + "\" (content) have 16 entries, the layer has 24 input columns",
          () -> Adapter.merge(content, style, MergeParams.columns(coeffs)));
      try (Coefficients other = Coefficients.create()) {
        other.set("down_blocks.0.attentions.0.proj_in", new float[4], new float[4]);
        LoraFileTest.expectError(
            Status.NOT_FOUND,
            "coefficients given for \"down_blocks.0.attentions.0.proj_in\", which neither LoRA has",
            () -> Adapter.merge(content, style, MergeParams.columns(other)));
      }
      float[] nan = new float[24];
      nan[3] = Float.NaN;
      coeffs.set(K, new float[24], nan);
      LoraFileTest.expectError(
          Status.INVALID_ARGUMENT,
          "coefficients for \"" + K + "\" (style) are not finite",
          () -> Adapter.merge(content, style, MergeParams.columns(coeffs)));
      LoraFileTest.expectError(
          Status.INVALID_ARGUMENT,
          "merge scales must be finite",
          () -> Adapter.merge(content, style, MergeParams.direct(Float.POSITIVE_INFINITY, 1)));
    }
  }
}
