package ai.lorarar;

import static org.junit.Assert.assertEquals;

/**
 * The merge and the fuse written out in plain Java, from the factors the tests wrote (README, "The LoRA core"):
 *
 * <pre>
 *   A' = [s_c A_c diag(m_c) ; s_s A_s diag(m_s)]     B' = [B_c, B_s]
 *   dW = B' A' = s_c B_c A_c diag(m_c) + s_s B_s A_s diag(m_s)      fuse: W += scale * dW
 * </pre>
 *
 * where s is the LoRA's own scale (alpha / rank) times the merge's content or style scale.
 */
final class Formula {
  private Formula() {}

  /** One LoRA's share of a merged layer. */
  static final class Part {
    final float[] a; // rank x in
    final float[] b; // out x rank
    final int rank;
    final float scale;
    final float[] column; // in, or null

    Part(float[] a, float[] b, int rank, float scale, float[] column) {
      this.a = a;
      this.b = b;
      this.rank = rank;
      this.scale = scale;
      this.column = column;
    }
  }

  /** A' as the library packs it: each row scaled in float32, then each column multiplied by its coefficient. */
  static float[] aPrime(int in, Part... parts) {
    int rank = 0;
    for (Part p : parts) rank += p.rank;
    float[] out = new float[rank * in];
    int row = 0;
    for (Part p : parts) {
      for (int r = 0; r < p.rank; ++r, ++row) {
        for (int j = 0; j < in; ++j) {
          float v = p.a[r * in + j] * p.scale;
          if (p.column != null) v *= p.column[j];
          out[row * in + j] = v;
        }
      }
    }
    return out;
  }

  /** B': the parts' B side by side. */
  static float[] bPrime(int outFeatures, Part... parts) {
    int rank = 0;
    for (Part p : parts) rank += p.rank;
    float[] out = new float[outFeatures * rank];
    int col = 0;
    for (Part p : parts) {
      for (int o = 0; o < outFeatures; ++o) {
        for (int r = 0; r < p.rank; ++r) out[o * rank + col + r] = p.b[o * p.rank + r];
      }
      col += p.rank;
    }
    return out;
  }

  /** dW from the parts directly, in double: sum of s B A diag(m). */
  static double[] deltaW(int outFeatures, int in, Part... parts) {
    double[] dw = new double[outFeatures * in];
    for (Part p : parts) {
      for (int o = 0; o < outFeatures; ++o) {
        for (int j = 0; j < in; ++j) {
          double sum = 0;
          for (int r = 0; r < p.rank; ++r) sum += (double) p.b[o * p.rank + r] * p.a[r * in + j];
          dw[o * in + j] += p.scale * sum * (p.column == null ? 1.0 : p.column[j]);
        }
      }
    }
    return dw;
  }

  /** B A of row-major factors, in double. */
  static double[] product(float[] b, float[] a, int outFeatures, int rank, int in) {
    double[] out = new double[outFeatures * in];
    for (int o = 0; o < outFeatures; ++o) {
      for (int j = 0; j < in; ++j) {
        double sum = 0;
        for (int r = 0; r < rank; ++r) sum += (double) b[o * rank + r] * a[r * in + j];
        out[o * in + j] = sum;
      }
    }
    return out;
  }

  /** Element-wise |expected - actual| <= tolerance (relative to max(1, |expected|)), naming the first miss. */
  static void assertClose(String what, double[] expected, float[] actual, double tolerance) {
    assertEquals(what + ": length", expected.length, actual.length);
    for (int i = 0; i < expected.length; ++i) {
      double err = Math.abs(expected[i] - actual[i]);
      if (err > tolerance * Math.max(1.0, Math.abs(expected[i]))) {
        throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
      }
    }
  }

  static void assertClose(String what, double[] expected, double[] actual, double tolerance) {
    assertEquals(what + ": length", expected.length, actual.length);
    for (int i = 0; i < expected.length; ++i) {
      if (Math.abs(expected[i] - actual[i]) > tolerance * Math.max(1.0, Math.abs(expected[i]))) {
        throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
      }
    }
  }

  static double[] toDouble(float[] v) {
    double[] out = new double[v.length];
    for (int i = 0; i < v.length; ++i) out[i] = v[i];
    return out;
  }
}
