package ai.lorarar;

/**
 * The layers a LoRA may target, with their shapes, read from a diffusers UNet folder ({@code config.json} + {@code
 * diffusion_pytorch_model.safetensors}, or a pipeline folder with a {@code unet/} subfolder). Pass it to {@link
 * LoraFile#load(String, BaseModel, boolean)} to map a LoRA's names onto this model and check its shapes. Immutable and
 * thread-safe; {@link #close()} frees it.
 */
public final class BaseModel implements AutoCloseable {
  final NativeHandle handle;
  private final String path;

  private BaseModel(String path, long pointer) {
    this.path = path;
    this.handle = new NativeHandle(this, "BaseModel", pointer, NativeBridge::baseFree);
  }

  /** Opens a UNet folder ({@code lorarar_base_open_unet}). */
  public static BaseModel openUnet(String dir) {
    Checks.notNull(dir, "dir");
    return new BaseModel(dir, NativeBridge.baseOpenUnet(dir));
  }

  /** The folder it was opened from. */
  public String path() {
    return path;
  }

  /** Number of target layers (2-D weights and 1x1 convolutions). */
  public long numLayers() {
    long h = handle.acquire();
    try {
      return NativeBridge.baseNumLayers(h);
    } finally {
      handle.release();
    }
  }

  /**
   * Writes {@code outDir}: this UNet folder with the adapter fused into its weights (same dtypes and shards), built
   * beside it and renamed into place ({@code lorarar_fuse_unet_dir}). Every adapter layer is checked against the base
   * weights before anything is written.
   */
  public void writeFused(Adapter adapter, String outDir, FuseParams params) {
    Checks.notNull(adapter, "adapter");
    Checks.notNull(outDir, "outDir");
    Checks.notNull(params, "params");
    long a = adapter.handle.acquire();
    try {
      long h = handle.acquire();
      try {
        NativeBridge.fuseUnetDir(h, a, outDir, params.scale(), params.threads(), params.kernel());
      } finally {
        handle.release();
      }
    } finally {
      adapter.handle.release();
    }
  }

  /** Frees the native model (idempotent; safe while another thread uses it). */
  @Override
  public void close() {
    handle.close();
  }
}
