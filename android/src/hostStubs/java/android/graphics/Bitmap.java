package android.graphics;

/**
 * Host-only stub of the two members of android.graphics.Bitmap that ai.lorarar.android.Bitmaps calls, with the
 * signatures of the Android SDK: lets `make android-host-test` type-check that file without android.jar. Never packaged
 * (Gradle does not see this source set) and never run.
 */
public final class Bitmap {
  public enum Config {
    ARGB_8888
  }

  private Bitmap() {}

  public static Bitmap createBitmap(int[] colors, int width, int height, Config config) {
    throw new UnsupportedOperationException("host stub");
  }
}
