package ai.lorarar;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * A folded adapter: the merge of a content and a style LoRA, itself a LoRA of rank r_content + r_style per layer
 * ({@code lorarar_adapter}). Merging records the parts (microseconds); factors are materialised only when asked for.
 * It keeps the LoRAs' files mapped, so the {@link LoraFile}s may be closed. Immutable and thread-safe.
 *
 * <p>On a device, {@link Context#setLoras} merges straight into the engine's LoRA slot; an Adapter is for merging
 * ahead of time, saving the merge as a standard LoRA, or {@link Context#setAdapter}.
 */
public final class Adapter implements AutoCloseable {
  final NativeHandle handle;
  private final List<LayerInfo> layers;

  private Adapter(long pointer, LayerInfo[] layers) {
    this.handle = new NativeHandle(this, "Adapter", pointer, NativeBridge::adapterFree);
    this.layers = Collections.unmodifiableList(Arrays.asList(layers));
  }

  private static Adapter wrap(long pointer) {
    LayerInfo[] layers;
    try {
      layers = NativeBridge.adapterLayers(pointer);
    } catch (Throwable t) {
      NativeBridge.adapterFree(pointer);
      throw t;
    }
    return new Adapter(pointer, layers);
  }

  /** The direct merge with both scales 1. */
  public static Adapter merge(LoraFile content, LoraFile style) {
    return merge(content, style, MergeParams.DEFAULT);
  }

  /** Merges a pair ({@code lorarar_merge}). */
  public static Adapter merge(LoraFile content, LoraFile style, MergeParams params) {
    Checks.notNull(content, "content");
    Checks.notNull(style, "style");
    Checks.notNull(params, "params");
    long c = content.handle.acquire();
    try {
      long s = style.handle.acquire();
      try {
        if (params.coefficients == null) {
          return wrap(NativeBridge.merge(c, s, 0, params.contentScale, params.styleScale, 0));
        }
        long k = params.coefficients.handle.acquire();
        try {
          return wrap(NativeBridge.merge(c, s, 1, params.contentScale, params.styleScale, k));
        } finally {
          params.coefficients.handle.release();
        }
      } finally {
        style.handle.release();
      }
    } finally {
      content.handle.release();
    }
  }

  /** An adapter of a single LoRA at {@code scale} ({@code lorarar_adapter_from_lora}). */
  public static Adapter fromLora(LoraFile lora, float scale) {
    Checks.notNull(lora, "lora");
    long l = lora.handle.acquire();
    try {
      return wrap(NativeBridge.adapterFromLora(l, scale));
    } finally {
      lora.handle.release();
    }
  }

  /** The layers: rank is the folded rank, alpha == rank, scale == 1 (scales live in A'). */
  public List<LayerInfo> layers() {
    return layers;
  }

  public int numLayers() {
    return layers.size();
  }

  public LayerInfo layer(int index) {
    return layers.get(index);
  }

  /**
   * Writes layer {@code index}'s A' (rank x in_features) and B' (out_features x rank), row-major, into arrays of exactly
   * those sizes ({@code lorarar_adapter_materialize}).
   */
  public void materialize(int index, float[] a, float[] b) {
    Checks.notNull(a, "a");
    Checks.notNull(b, "b");
    long h = handle.acquire();
    try {
      NativeBridge.adapterMaterialize(h, index, a, b);
    } finally {
      handle.release();
    }
  }

  /** Layer {@code index}'s factors in new arrays: {@code {A', B'}}. */
  public float[][] materialize(int index) {
    if (index < 0 || index >= layers.size()) {
      throw new LorararException(Status.INVALID_ARGUMENT, "layer index out of range");
    }
    LayerInfo l = layers.get(index);
    float[] a = new float[Math.toIntExact(l.rank() * l.inFeatures())];
    float[] b = new float[Math.toIntExact(l.outFeatures() * l.rank())];
    materialize(index, a, b);
    return new float[][] {a, b};
  }

  /**
   * Writes the adapter as a standard LoRA (diffusers / peft keys and metadata) that diffusers' {@code
   * load_lora_weights} loads, atomically ({@code lorarar_adapter_save}).
   */
  public void save(String path, DType dtype) {
    Checks.notNull(path, "path");
    Checks.notNull(dtype, "dtype");
    long h = handle.acquire();
    try {
      NativeBridge.adapterSave(h, path, dtype.code);
    } finally {
      handle.release();
    }
  }

  /** {@link #fuseInto(String, float[], int, int, FuseParams)} with {@link FuseParams#defaults()}. */
  public void fuseInto(String module, float[] weight, int outFeatures, int inFeatures) {
    fuseInto(module, weight, outFeatures, inFeatures, FuseParams.defaults());
  }

  /**
   * Fuses layer {@code module} into a float32 weight in place: W += scale * B' A' ({@code lorarar_fuse_weights}).
   *
   * @param weight row-major {@code outFeatures x inFeatures}; its length must be exactly that
   * @throws LorararException NOT_FOUND when the adapter has no such layer, INVALID_ARGUMENT when the shape is not the
   *     layer's; the array is unchanged then
   */
  public void fuseInto(String module, float[] weight, int outFeatures, int inFeatures, FuseParams params) {
    Checks.notNull(module, "module");
    Checks.notNull(weight, "weight");
    Checks.notNull(params, "params");
    long h = handle.acquire();
    try {
      NativeBridge.fuseWeightsF32(
          h, module, weight, outFeatures, inFeatures, params.scale(), params.threads(), params.kernel());
    } finally {
      handle.release();
    }
  }

  /**
   * Fuses layer {@code module} into a half-precision weight in place, given as its bit patterns: {@link DType#F16}
   * (IEEE binary16) or {@link DType#BF16} (the upper half of a float32). Otherwise as {@link #fuseInto(String,
   * float[], int, int, FuseParams)}.
   */
  public void fuseInto(
      String module, short[] weight, DType dtype, int outFeatures, int inFeatures, FuseParams params) {
    Checks.notNull(module, "module");
    Checks.notNull(weight, "weight");
    Checks.notNull(dtype, "dtype");
    Checks.notNull(params, "params");
    long h = handle.acquire();
    try {
      NativeBridge.fuseWeights16(
          h, module, weight, dtype.code, outFeatures, inFeatures, params.scale(), params.threads(), params.kernel());
    } finally {
      handle.release();
    }
  }

  @Override
  public void close() {
    handle.close();
  }
}
