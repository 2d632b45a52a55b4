package ai.lorarar;

import static ai.lorarar.LoraFileTest.expectError;
import static ai.lorarar.TestFiles.K;
import static ai.lorarar.TestFiles.Q;
import static ai.lorarar.TestFiles.randomValues;
import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.After;
import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;

/** W += scale * B' A' into arrays and into a UNet folder, against {@link Formula} computed here. */
public class FuseTest {
  private Path dir;
  private LoraFile content;
  private LoraFile style;
  private Adapter merged;
  // The direct merge of peft LoRAs written with seeds 1 (rank 4) and 2 (rank 2), both scales 1.
  private final Formula.Part qContent = new Formula.Part(randomValues(4 * 16, 1), randomValues(16 * 4, 2), 4, 1, null);
  private final Formula.Part qStyle = new Formula.Part(randomValues(2 * 16, 2), randomValues(16 * 2, 3), 2, 1, null);
  private final Formula.Part kContent = new Formula.Part(randomValues(4 * 24, 8), randomValues(16 * 4, 9), 4, 1, null);
  private final Formula.Part kStyle = new Formula.Part(randomValues(2 * 24, 9), randomValues(16 * 2, 10), 2, 1, null);

  @Before
  public void setUp() throws IOException {
    dir = TestFiles.tempDir();
    content = LoraFile.load(TestFiles.writePeftLora(dir, "content.safetensors", 1, 4).toString());
    style = LoraFile.load(TestFiles.writePeftLora(dir, "style.safetensors", 2, 2).toString());
    merged = Adapter.merge(content, style);
  }

  @After
  public void tearDown() throws IOException {
    merged.close();
    content.close();
    style.close();
    TestFiles.deleteTree(dir);
  }

  /** base + scale * dW. */
  private static double[] fused(float[] base, double[] dw, double scale) {
    double[] out = new double[base.length];
    for (int i = 0; i < out.length; ++i) out[i] = base[i] + scale * dw[i];
    return out;
  }

  @Test
  public void defaults() {
    FuseParams d = FuseParams.defaults();
    assertEquals(1.0f, d.scale(), 0.0f);
    assertEquals(0, d.threads());
    assertEquals("auto", d.kernel());
    FuseParams p = d.withScale(0.5f).withThreads(2).withKernel("scalar");
    assertEquals("FuseParams{scale=0.5, threads=2, kernel=scalar}", p.toString());
    assertEquals("auto", d.kernel()); // copies
  }

  @Test
  public void float32MatchesTheFormulaWithEveryKernel() {
    float[] base = randomValues(16 * 16, 11);
    double[] expected = fused(base, Formula.deltaW(16, 16, qContent, qStyle), 0.5);
    List<String> kernels = new ArrayList<>();
    kernels.add("auto");
    kernels.add("scalar");
    String arch = System.getProperty("os.arch");
    if (arch.equals("amd64") || arch.equals("x86_64")) kernels.add("avx2"); // refused below where absent
    if (arch.equals("aarch64")) kernels.add("neon");
    for (String kernel : kernels) {
      float[] w = base.clone();
      try {
        merged.fuseInto(Q, w, 16, 16, FuseParams.defaults().withScale(0.5f).withKernel(kernel).withThreads(2));
      } catch (LorararException e) {
        assertEquals("kernel " + kernel + " is not available on this CPU", e.getMessage());
        continue;
      }
      Formula.assertClose("Q with " + kernel, expected, w, 1e-5);
    }
    float[] w = randomValues(16 * 24, 12);
    double[] k = fused(w, Formula.deltaW(16, 24, kContent, kStyle), 1.0);
    merged.fuseInto(K, w, 16, 24);
    Formula.assertClose("K", k, w, 1e-5);
  }

  /** Exact F16 bits of a float that has at most 11 significant bits and is a normal half. */
  private static short toHalf(float v) {
    if (v == 0) return 0;
    int bits = Float.floatToIntBits(v);
    assertEquals("not exact in F16: " + v, 0, bits & 0x1FFF);
    int exponent = ((bits >>> 23) & 0xFF) - 127 + 15;
    assertTrue("not a normal F16: " + v, exponent > 0 && exponent < 31);
    return (short) (((bits >>> 16) & 0x8000) | (exponent << 10) | ((bits >>> 13) & 0x3FF));
  }

  private static float fromHalf(short h) {
    int sign = (h & 0x8000) << 16;
    int exponent = (h >>> 10) & 0x1F;
    int mantissa = h & 0x3FF;
    if (exponent == 0) return (sign != 0 ? -1 : 1) * mantissa * (float) Math.pow(2, -24);
    if (exponent == 31) return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
    return Float.intBitsToFloat(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
  }

  @Test
  public void halfPrecisionWeights() {
    // Base values exact in both formats: k / 64, |k| <= 64.
    float[] base = new float[16 * 16];
    for (int i = 0; i < base.length; ++i) base[i] = ((i * 37) % 129 - 64) / 64.0f;
    double[] expected = fused(base, Formula.deltaW(16, 16, qContent, qStyle), 2.0);
    FuseParams params = FuseParams.defaults().withScale(2.0f);

    short[] f16 = new short[base.length];
    for (int i = 0; i < base.length; ++i) f16[i] = toHalf(base[i]);
    merged.fuseInto(Q, f16, DType.F16, 16, 16, params);
    float[] back = new float[base.length];
    for (int i = 0; i < base.length; ++i) back[i] = fromHalf(f16[i]);
    Formula.assertClose("F16", expected, back, 1.0 / 1024); // half an F16 ulp of values up to 2, and some

    short[] bf16 = new short[base.length];
    for (int i = 0; i < base.length; ++i) {
      int bits = Float.floatToIntBits(base[i]);
      assertEquals(0, bits & 0xFFFF);
      bf16[i] = (short) (bits >>> 16);
    }
    merged.fuseInto(Q, bf16, DType.BF16, 16, 16, params);
    for (int i = 0; i < base.length; ++i) back[i] = Float.intBitsToFloat((bf16[i] & 0xFFFF) << 16);
    Formula.assertClose("BF16", expected, back, 1.0 / 128); // half a BF16 ulp of values up to 2, and some
  }

  @Test
  public void errorsLeaveTheWeightUnchanged() {
    float[] w = randomValues(256, 11);
    float[] before = w.clone();
    FuseParams d = FuseParams.defaults();
    expectError(Status.NOT_FOUND, "the adapter has no layer \"up_blocks.0.x\"",
        () -> merged.fuseInto("up_blocks.0.x", w, 16, 16, d));
    expectError(Status.INVALID_ARGUMENT, "weight holds 256 values, not out_features x in_features (16 x 15)",
        () -> merged.fuseInto(Q, w, 16, 15, d));
    expectError(Status.INVALID_ARGUMENT, "weight holds 256 values, not out_features x in_features (2147483647 x 2)",
        () -> merged.fuseInto(Q, w, Integer.MAX_VALUE, 2, d));
    expectError(Status.INVALID_ARGUMENT, "out_features and in_features must be positive",
        () -> merged.fuseInto(Q, w, -16, -16, d));
    expectError(Status.INVALID_ARGUMENT,
        "base weight of \"" + Q + "\" is 8x32 (out x in), the adapter is 16x16",
        () -> merged.fuseInto(Q, w, 8, 32, d));
    expectError(Status.INVALID_ARGUMENT, "unknown kernel \"sse9\" (auto, scalar, avx2, neon)",
        () -> merged.fuseInto(Q, w, 16, 16, d.withKernel("sse9")));
    expectError(Status.INVALID_ARGUMENT, "n_threads must be >= 0",
        () -> merged.fuseInto(Q, w, 16, 16, d.withThreads(-1)));
    expectError(Status.INVALID_ARGUMENT, "fuse scale is not finite",
        () -> merged.fuseInto(Q, w, 16, 16, d.withScale(Float.NaN)));
    expectError(Status.INVALID_ARGUMENT, "kernel must not be null", () -> d.withKernel(null));
    expectError(Status.INVALID_ARGUMENT, "weight must not be null", () -> merged.fuseInto(Q, (float[]) null, 16, 16));
    expectError(Status.INVALID_ARGUMENT, "a short[] weight holds F16 or BF16 values, not dtype 0",
        () -> merged.fuseInto(Q, new short[256], DType.F32, 16, 16, d));
    assertArrayEquals(before, w, 0.0f);
    String arch = System.getProperty("os.arch");
    Assume.assumeTrue("the neon refusal is checked on x86-64 hosts", arch.equals("amd64") || arch.equals("x86_64"));
    expectError(Status.UNSUPPORTED, "kernel neon is not available on this CPU",
        () -> merged.fuseInto(Q, w, 16, 16, d.withKernel("neon")));
    assertArrayEquals(before, w, 0.0f);
  }

  @Test
  public void writesAFusedUnetFolder() throws IOException {
    Path unet = TestFiles.writeUnet(dir);
    Path out = dir.resolve("fused");
    try (BaseModel base = BaseModel.openUnet(unet.toString())) {
      base.writeFused(merged, out.toString(), FuseParams.defaults().withScale(0.25f));
      Path weights = out.resolve("diffusion_pytorch_model.safetensors");
      Formula.assertClose("Q", fused(randomValues(256, 1), Formula.deltaW(16, 16, qContent, qStyle), 0.25),
          TestFiles.readF32(weights, Q + ".weight"), 1e-5);
      Formula.assertClose("K", fused(randomValues(384, 2), Formula.deltaW(16, 24, kContent, kStyle), 0.25),
          TestFiles.readF32(weights, K + ".weight"), 1e-5);
      assertArrayEquals("untouched", randomValues(16, 3),
          TestFiles.readF32(weights, "mid_block.attentions.0.norm.weight"), 0.0f);
      assertArrayEquals(Files.readAllBytes(unet.resolve("config.json")), Files.readAllBytes(out.resolve("config.json")));
      // A second write replaces the folder.
      base.writeFused(merged, out.toString(), FuseParams.defaults().withScale(0.0f));
      assertArrayEquals(randomValues(256, 1), TestFiles.readF32(weights, Q + ".weight"), 0.0f);

      // A layer the base model lacks: refused before anything is written.
      List<TestFiles.Tensor> t = new ArrayList<>();
      String missing = "down_blocks.0.attentions.0.proj_in";
      TestFiles.addLayer(t, "unet." + missing + ".lora_A.weight", "unet." + missing + ".lora_B.weight", 2, 8, 8, 5);
      Path other = TestFiles.write(dir.resolve("other.safetensors"), TestFiles.safetensors(t, null));
      Path out2 = dir.resolve("fused2");
      try (LoraFile lora = LoraFile.load(other.toString());
          Adapter single = Adapter.fromLora(lora, 1)) {
        expectError(Status.NOT_FOUND, unet + ": the base model has no \"" + missing + "\"",
            () -> base.writeFused(single, out2.toString(), FuseParams.defaults()));
      }
      assertTrue(!Files.exists(out2));
      expectError(Status.INVALID_ARGUMENT, "outDir must not be null", () -> base.writeFused(merged, null,
          FuseParams.defaults()));
    }
    expectError(Status.INVALID_ARGUMENT, "base must not be null", () -> NativeBridge.fuseUnetDir(0, 0, "x", 1, 0,
        "auto"));
  }
}
