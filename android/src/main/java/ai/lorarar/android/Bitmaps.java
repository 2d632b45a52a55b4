package ai.lorarar.android;

import ai.lorarar.Image;
import android.graphics.Bitmap;

/** Android-only: {@link Image} to {@link Bitmap}. The rest of {@code ai.lorarar} is plain Java. */
public final class Bitmaps {
  private Bitmaps() {}

  /** A new, immutable ARGB_8888 bitmap of the image. */
  public static Bitmap toBitmap(Image image) {
    return Bitmap.createBitmap(image.toArgb(), image.width(), image.height(), Bitmap.Config.ARGB_8888);
  }
}
