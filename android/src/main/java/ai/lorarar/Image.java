package ai.lorarar;

/**
 * A generated image: {@code height} rows of {@code width} RGB8 pixels, row-major, 3 bytes a pixel, no padding. Plain
 * Java (no {@code android.graphics}), so it works on any JVM; on Android, {@code ai.lorarar.android.Bitmaps} turns it
 * into a {@code Bitmap}.
 */
public final class Image {
  private final int width;
  private final int height;
  private final byte[] rgb;
  private final GenerateTimings timings;

  Image(int width, int height, byte[] rgb, GenerateTimings timings) {
    this.width = width;
    this.height = height;
    this.rgb = rgb;
    this.timings = timings;
  }

  public int width() {
    return width;
  }

  public int height() {
    return height;
  }

  /** The pixels, {@code width * height * 3} bytes (the array itself, not a copy: the image owns nothing else). */
  public byte[] rgb() {
    return rgb;
  }

  /** How long the generation took. */
  public GenerateTimings timings() {
    return timings;
  }

  /** The pixel at (x, y) as 0xFFRRGGBB. */
  public int argbAt(int x, int y) {
    if (x < 0 || x >= width || y < 0 || y >= height) {
      throw new IndexOutOfBoundsException("(" + x + ", " + y + ") outside " + width + "x" + height);
    }
    int i = (y * width + x) * 3;
    return 0xFF000000 | (rgb[i] & 0xFF) << 16 | (rgb[i + 1] & 0xFF) << 8 | (rgb[i + 2] & 0xFF);
  }

  /**
   * The pixels as opaque 0xAARRGGBB ints, row-major: what {@code Bitmap.createBitmap(int[], width, height,
   * Bitmap.Config.ARGB_8888)} takes.
   */
  public int[] toArgb() {
    int[] out = new int[width * height];
    for (int p = 0, i = 0; p < out.length; ++p, i += 3) {
      out[p] = 0xFF000000 | (rgb[i] & 0xFF) << 16 | (rgb[i + 1] & 0xFF) << 8 | (rgb[i + 2] & 0xFF);
    }
    return out;
  }

  @Override
  public String toString() {
    return "Image " + width + "x" + height + " RGB8";
  }
}
