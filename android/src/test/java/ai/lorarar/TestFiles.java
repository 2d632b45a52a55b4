package ai.lorarar;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes the files the tests load: safetensors bytes written here, in the layouts the C++ tests use
 * (tests/native/test_c_api.cc) and the formats peft / diffusers and kohya write.
 */
final class TestFiles {
  static final String Q = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q";
  static final String K = "mid_block.attentions.0.transformer_blocks.0.attn1.to_k";

  private TestFiles() {}

  /** A tensor to write: float32 values, or a shape with no values for a scalar alpha. */
  static final class Tensor {
    final String name;
    final long[] shape;
    final float[] values;

    Tensor(String name, long[] shape, float[] values) {
      this.name = name;
      this.shape = shape;
      this.values = values;
    }
  }

  static float[] randomValues(int n, long seed) {
    Random r = new Random(seed);
    float[] v = new float[n];
    for (int i = 0; i < n; ++i) v[i] = (float) (r.nextGaussian() * 0.2);
    return v;
  }

  /** The safetensors bytes of these F32 tensors: u64 header length, JSON header padded to 8 bytes, data. */
  static byte[] safetensors(List<Tensor> tensors, Map<String, String> metadata) {
    StringBuilder header = new StringBuilder("{");
    long offset = 0;
    if (metadata != null && !metadata.isEmpty()) {
      header.append("\"__metadata__\":{");
      boolean first = true;
      for (Map.Entry<String, String> e : metadata.entrySet()) {
        if (!first) header.append(',');
        first = false;
        header.append(quote(e.getKey())).append(':').append(quote(e.getValue()));
      }
      header.append("},");
    }
    for (int i = 0; i < tensors.size(); ++i) {
      Tensor t = tensors.get(i);
      long bytes = 4L * t.values.length;
      StringBuilder shape = new StringBuilder();
      for (int d = 0; d < t.shape.length; ++d) shape.append(d == 0 ? "" : ",").append(t.shape[d]);
      header
          .append(i == 0 ? "" : ",")
          .append(quote(t.name))
          .append(":{\"dtype\":\"F32\",\"shape\":[")
          .append(shape)
          .append("],\"data_offsets\":[")
          .append(offset)
          .append(',')
          .append(offset + bytes)
          .append("]}");
      offset += bytes;
    }
    header.append('}');
    while ((header.length() + 8) % 8 != 0) header.append(' ');
    byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
    ByteBuffer out = ByteBuffer.allocate(8 + json.length + (int) offset).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(json.length).put(json);
    for (Tensor t : tensors) {
      for (float v : t.values) out.putFloat(v);
    }
    return out.array();
  }

  private static String quote(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  /** Adds a layer's A (rank x in) and B (out x rank) factors. */
  static void addLayer(List<Tensor> t, String aKey, String bKey, int rank, int in, int out, long seed) {
    t.add(new Tensor(aKey, new long[] {rank, in}, randomValues(rank * in, seed)));
    t.add(new Tensor(bKey, new long[] {out, rank}, randomValues(out * rank, seed + 1)));
  }

  /** peft / diffusers keys ({@code unet.<module>.lora_A.weight}): Q is 16 -> 16, K is 24 -> 16, as in test_c_api.cc. */
  static Path writePeftLora(Path dir, String name, long seed, int rank) throws IOException {
    List<Tensor> t = new ArrayList<>();
    addLayer(t, "unet." + Q + ".lora_A.weight", "unet." + Q + ".lora_B.weight", rank, 16, 16, seed);
    addLayer(t, "unet." + K + ".lora_A.weight", "unet." + K + ".lora_B.weight", rank, 24, 16, seed + 7);
    return write(dir.resolve(name), safetensors(t, null));
  }

  /** kohya keys with alpha, plus a text-encoder layer (reported, not applied). */
  static Path writeKohyaLora(Path dir, String name, int rank, float alpha) throws IOException {
    List<Tensor> t = new ArrayList<>();
    String key = "lora_unet_" + Q.replace('.', '_');
    addLayer(t, key + ".lora_down.weight", key + ".lora_up.weight", rank, 16, 16, 3);
    t.add(new Tensor(key + ".alpha", new long[] {}, new float[] {alpha}));
    String te = "lora_te_text_model_encoder_layers_0_mlp_fc1";
    addLayer(t, te + ".lora_down.weight", te + ".lora_up.weight", rank, 12, 12, 5);
    return write(dir.resolve(name), safetensors(t, null));
  }

  /** A diffusers UNet folder with the two layers the test LoRAs target (and a norm no LoRA may target). */
  static Path writeUnet(Path dir) throws IOException {
    Path unet = Files.createDirectories(dir.resolve("unet"));
    write(
        unet.resolve("config.json"),
        ("{\"_class_name\": \"UNet2DConditionModel\", \"layers_per_block\": 1, "
                + "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"]}")
            .getBytes(StandardCharsets.UTF_8));
    List<Tensor> w = new ArrayList<>();
    w.add(new Tensor(Q + ".weight", new long[] {16, 16}, randomValues(256, 1)));
    w.add(new Tensor(K + ".weight", new long[] {16, 24}, randomValues(384, 2)));
    w.add(new Tensor("mid_block.attentions.0.norm.weight", new long[] {16}, randomValues(16, 3)));
    write(unet.resolve("diffusion_pytorch_model.safetensors"), safetensors(w, null));
    return unet;
  }

  /**
   * An F32 tensor of a safetensors file, read here (header JSON scanned for the tensor's entry, not parsed): for
   * checking what the library wrote.
   */
  static float[] readF32(Path file, String name) throws IOException {
    ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    int headerLength = (int) bytes.getLong(0);
    String header = new String(bytes.array(), 8, headerLength, StandardCharsets.UTF_8);
    Matcher m =
        Pattern.compile(
                Pattern.quote(quote(name))
                    + "\\s*:\\s*\\{\\s*\"dtype\"\\s*:\\s*\"([A-Z0-9]+)\"[^}]*\"data_offsets\"\\s*:\\s*\\[\\s*(\\d+)\\s*,\\s*(\\d+)")
            .matcher(header);
    if (!m.find()) throw new IOException(file + ": no tensor " + name + " (or not dtype-first)");
    if (!m.group(1).equals("F32")) throw new IOException(file + ": " + name + " is " + m.group(1));
    int begin = 8 + headerLength + Integer.parseInt(m.group(2));
    int end = 8 + headerLength + Integer.parseInt(m.group(3));
    float[] out = new float[(end - begin) / 4];
    for (int i = 0; i < out.length; ++i) out[i] = bytes.getFloat(begin + 4 * i);
    return out;
  }

  static Path write(Path path, byte[] bytes) throws IOException {
    Files.write(path, bytes);
    return path;
  }

  static Path tempDir() throws IOException {
    return Files.createTempDirectory("lorarar-java-test");
  }

  static void deleteTree(Path dir) throws IOException {
    if (dir == null || !Files.exists(dir)) return;
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) Files.delete(p);
    }
  }

  /** One layer of a bundle's LoRA slot. */
  static final class SlotLayer {
    final String module;
    final int in;
    final int out;

    SlotLayer(String module, int in, int out) {
      this.module = module;
      this.in = in;
      this.out = out;
    }
  }

  /**
   * The {@code lora_slot.layers} of a bundle's manifest.json (export/BUNDLE.md): each an object with "module",
   * "in_features" and "out_features". A small scan, not a JSON parser: enough for the files the exporter writes.
   */
  static List<SlotLayer> slotLayers(Path bundle) throws IOException {
    String manifest = new String(Files.readAllBytes(bundle.resolve("manifest.json")), StandardCharsets.UTF_8);
    int slot = manifest.indexOf("\"lora_slot\"");
    if (slot < 0) throw new IOException(bundle + "/manifest.json: no lora_slot");
    int layers = manifest.indexOf("\"layers\"", slot);
    int end = manifest.indexOf(']', layers);
    Map<String, SlotLayer> out = new LinkedHashMap<>();
    Matcher object = Pattern.compile("\\{[^{}]*\\}").matcher(manifest.substring(layers, end));
    while (object.find()) {
      String o = object.group();
      String module = field(o, "module", "\"([^\"]+)\"");
      int in = Integer.parseInt(field(o, "in_features", "(\\d+)"));
      int outFeatures = Integer.parseInt(field(o, "out_features", "(\\d+)"));
      out.put(module, new SlotLayer(module, in, outFeatures));
    }
    return new ArrayList<>(out.values());
  }

  private static String field(String object, String name, String value) throws IOException {
    Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*" + value).matcher(object);
    if (!m.find()) throw new IOException("manifest.json: a lora_slot layer without " + name);
    return m.group(1);
  }

  /** A peft LoRA of this rank over some of the slot's layers (every {@code stride}-th, from {@code first}). */
  static Path writeSlotLora(Path dir, String name, List<SlotLayer> slot, int rank, int first, int stride, long seed)
      throws IOException {
    List<Tensor> t = new ArrayList<>();
    for (int i = first; i < slot.size(); i += stride) {
      SlotLayer l = slot.get(i);
      addLayer(t, "unet." + l.module + ".lora_A.weight", "unet." + l.module + ".lora_B.weight", rank, l.in, l.out,
          seed + i);
    }
    return write(dir.resolve(name), safetensors(t, null));
  }
}
