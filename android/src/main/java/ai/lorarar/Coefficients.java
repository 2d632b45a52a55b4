package ai.lorarar;

/**
 * Per-layer merge coefficients (m_content, m_style), one pair per input column, as the LoRA.rar hypernetwork or
 * ZipLoRA produce them; used by {@link MergeParams#columns}. Files are safetensors with {@code <module>.content} and
 * {@code <module>.style} vectors.
 *
 * <p>Filling ({@link #set}) is not synchronised with readers: fill it on one thread, then share it.
 */
public final class Coefficients implements AutoCloseable {
  final NativeHandle handle;

  private Coefficients(long pointer) {
    this.handle = new NativeHandle(this, "Coefficients", pointer, NativeBridge::coeffsFree);
  }

  /** An empty set. */
  public static Coefficients create() {
    return new Coefficients(NativeBridge.coeffsCreate());
  }

  /** Reads a coefficients file. */
  public static Coefficients load(String path) {
    Checks.notNull(path, "path");
    return new Coefficients(NativeBridge.coeffsLoad(path));
  }

  /** Sets the vectors of one layer (copied), replacing earlier ones; both hold in_features values. */
  public void set(String module, float[] content, float[] style) {
    Checks.notNull(module, "module");
    Checks.notNull(content, "content");
    Checks.notNull(style, "style");
    if (content.length != style.length) {
      throw new LorararException(
          Status.INVALID_ARGUMENT,
          "content and style coefficients differ in length (" + content.length + " vs " + style.length + ")");
    }
    long h = handle.acquire();
    try {
      NativeBridge.coeffsSet(h, module, content, style);
    } finally {
      handle.release();
    }
  }

  /** Writes the coefficients file. */
  public void save(String path) {
    Checks.notNull(path, "path");
    long h = handle.acquire();
    try {
      NativeBridge.coeffsSave(h, path);
    } finally {
      handle.release();
    }
  }

  @Override
  public void close() {
    handle.close();
  }
}
