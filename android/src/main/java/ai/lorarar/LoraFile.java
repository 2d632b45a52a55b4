package ai.lorarar;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * A LoRA: a {@code .safetensors} file (peft / diffusers, legacy diffusers, kohya / A1111) or a folder holding {@code
 * adapter_model.safetensors} (+ {@code adapter_config.json}) or {@code pytorch_lora_weights.safetensors}. The file is
 * memory-mapped; its factors are read when used.
 *
 * <p>Immutable and thread-safe: one LoraFile may feed several {@link Context}s at once. Its format and layers are read
 * once at load. {@link #close()} unmaps the file (an {@link Adapter} merged from it keeps its own mapping).
 */
public final class LoraFile implements AutoCloseable {
  final NativeHandle handle;
  private final String path;
  private final String format;
  private final long numTextEncoderTensors;
  private final List<LayerInfo> layers;

  private LoraFile(String path, long pointer, String format, long numTextEncoderTensors, LayerInfo[] layers) {
    this.path = path;
    this.handle = new NativeHandle(this, "LoraFile", pointer, NativeBridge::loraFree);
    this.format = format;
    this.numTextEncoderTensors = numTextEncoderTensors;
    this.layers = Collections.unmodifiableList(Arrays.asList(layers));
  }

  /** Reads what never changes once, then hands the pointer to its owner; frees it if reading fails. */
  private static LoraFile wrap(String path, long pointer) {
    String format;
    long numTextEncoderTensors;
    LayerInfo[] layers;
    try {
      format = NativeBridge.loraFormat(pointer);
      numTextEncoderTensors = NativeBridge.loraNumTextEncoderTensors(pointer);
      layers = NativeBridge.loraLayers(pointer);
    } catch (Throwable t) {
      NativeBridge.loraFree(pointer);
      throw t;
    }
    return new LoraFile(path, pointer, format, numTextEncoderTensors, layers);
  }

  /** Loads a LoRA with the C API's defaults: names mapped by the diffusers vocabulary, values checked for NaN/Inf. */
  public static LoraFile load(String path) {
    return load(path, null, true);
  }

  /**
   * Loads a LoRA ({@code lorarar_lora_load}).
   *
   * @param base the model to map names onto and check shapes against; null maps names from the diffusers vocabulary
   *     and the SD 1.x / SDXL block layout. Used while loading only.
   * @param checkValues scan every factor for NaN / Inf while loading
   * @throws LorararException status NOT_FOUND ("{@code <path>: no such file}"), INVALID_FILE ("{@code <path>: file is
   *     empty}"), UNSUPPORTED (LoHa, LoKr, DoRA...: never half-applied)...
   */
  public static LoraFile load(String path, BaseModel base, boolean checkValues) {
    Checks.notNull(path, "path");
    if (base == null) return wrap(path, NativeBridge.loraLoad(path, 0, checkValues));
    long b = base.handle.acquire();
    try {
      return wrap(path, NativeBridge.loraLoad(path, b, checkValues));
    } finally {
      base.handle.release();
    }
  }

  /** A LoRA from the bytes of a .safetensors file (an asset, a download), with the C API's defaults. */
  public static LoraFile fromBytes(byte[] data, String name) {
    return fromBytes(data, name, null, null, true);
  }

  /**
   * Loads a LoRA from memory ({@code lorarar_lora_load_from_memory}); the bytes are copied, so the array may be reused.
   *
   * @param name stands for the path in error messages and {@link #path()} (e.g. the asset's name)
   * @param adapterConfigJson the peft adapter_config.json that goes with an adapter_model.safetensors, or null
   * @throws LorararException INVALID_FILE ("{@code <name>: <what is wrong>}"), UNSUPPORTED, ... as {@link #load}
   */
  public static LoraFile fromBytes(
      byte[] data, String name, String adapterConfigJson, BaseModel base, boolean checkValues) {
    Checks.notNull(data, "data");
    Checks.notNull(name, "name");
    if (base == null) {
      return wrap(name, NativeBridge.loraLoadFromMemory(data, name, adapterConfigJson, 0, checkValues));
    }
    long b = base.handle.acquire();
    try {
      return wrap(name, NativeBridge.loraLoadFromMemory(data, name, adapterConfigJson, b, checkValues));
    } finally {
      base.handle.release();
    }
  }

  /** The path it was loaded from (the name given to {@link #fromBytes}). */
  public String path() {
    return path;
  }

  /** "peft", "diffusers-legacy" or "kohya". */
  public String format() {
    return format;
  }

  /** The UNet layers, sorted by module path. */
  public List<LayerInfo> layers() {
    return layers;
  }

  public int numLayers() {
    return layers.size();
  }

  public LayerInfo layer(int index) {
    return layers.get(index);
  }

  /** Text-encoder tensors in the file: reported, not applied. */
  public long numTextEncoderTensors() {
    return numTextEncoderTensors;
  }

  /** Unmaps the file (idempotent; safe while another thread uses it: freed when that call returns). */
  @Override
  public void close() {
    handle.close();
  }

  @Override
  public String toString() {
    return "LoraFile(" + path + ", " + format + ", " + layers.size() + " layers)";
  }
}
