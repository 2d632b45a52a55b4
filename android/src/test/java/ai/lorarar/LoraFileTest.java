package ai.lorarar;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** LoRA files through the Java API: formats, layers, base models, and the error contract. */
public class LoraFileTest {
  private Path dir;

  @Before
  public void setUp() throws IOException {
    dir = TestFiles.tempDir();
  }

  @After
  public void tearDown() throws IOException {
    TestFiles.deleteTree(dir);
  }

  /** Runs {@code body}, expecting a LorararException with exactly this status and message. */
  static LorararException expectError(Status status, String message, Runnable body) {
    try {
      body.run();
    } catch (LorararException e) {
      assertEquals(message, e.getMessage());
      assertEquals(status, e.getStatus());
      return e;
    }
    fail("expected LorararException(" + status + "): " + message);
    return null;
  }

  @Test
  public void loadsPeftLayersSortedByModule() throws IOException {
    Path path = TestFiles.writePeftLora(dir, "content.safetensors", 1, 4);
    try (LoraFile lora = LoraFile.load(path.toString())) {
      assertEquals("peft", lora.format());
      assertEquals(path.toString(), lora.path());
      assertEquals(2, lora.numLayers());
      assertEquals(0, lora.numTextEncoderTensors());
      LayerInfo k = lora.layer(0);
      LayerInfo q = lora.layer(1);
      assertEquals(TestFiles.K, k.module());
      assertEquals(TestFiles.Q, q.module());
      assertEquals(4, q.rank());
      assertEquals(16, q.inFeatures());
      assertEquals(16, q.outFeatures());
      assertEquals(24, k.inFeatures());
      assertEquals(4.0f, q.alpha(), 0.0f); // no alpha in the file: alpha = rank
      assertEquals(1.0f, q.scale(), 0.0f);
      assertFalse(q.alphaInFile());
      assertEquals(lora.layers().get(1).module(), q.module());
    }
  }

  @Test
  public void loadsKohyaWithAlphaAndReportsTextEncoderTensors() throws IOException {
    Path path = TestFiles.writeKohyaLora(dir, "kohya.safetensors", 4, 2.0f);
    try (LoraFile lora = LoraFile.load(path.toString())) {
      assertEquals("kohya", lora.format());
      assertEquals(1, lora.numLayers());
      assertEquals(2, lora.numTextEncoderTensors());
      LayerInfo q = lora.layer(0);
      assertEquals(TestFiles.Q, q.module());
      assertTrue(q.alphaInFile());
      assertEquals(2.0f, q.alpha(), 0.0f);
      assertEquals(0.5f, q.scale(), 0.0f);
    }
  }

  @Test
  public void loadsPeftFolderWithAdapterConfig() throws IOException {
    Path folder = Files.createDirectories(dir.resolve("adapter"));
    java.util.List<TestFiles.Tensor> t = new java.util.ArrayList<>();
    TestFiles.addLayer(t, "base_model.model." + TestFiles.Q + ".lora_A.weight",
        "base_model.model." + TestFiles.Q + ".lora_B.weight", 4, 16, 16, 1);
    TestFiles.write(folder.resolve("adapter_model.safetensors"), TestFiles.safetensors(t, null));
    TestFiles.write(folder.resolve("adapter_config.json"),
        "{\"r\": 4, \"lora_alpha\": 2, \"peft_type\": \"LORA\"}".getBytes(StandardCharsets.UTF_8));
    try (LoraFile lora = LoraFile.load(folder.toString())) {
      assertEquals(0.5f, lora.layer(0).scale(), 0.0f);
    }
    TestFiles.write(folder.resolve("adapter_config.json"), "{oops".getBytes(StandardCharsets.UTF_8));
    expectError(Status.INVALID_FILE, folder + "/adapter_config.json: invalid JSON at byte 1: expected a string key",
        () -> LoraFile.load(folder.toString()));
  }

  @Test
  public void loadsFromBytesAsFromTheFile() throws IOException {
    Path path = TestFiles.writePeftLora(dir, "content.safetensors", 1, 4);
    byte[] data = Files.readAllBytes(path);
    try (LoraFile fromFile = LoraFile.load(path.toString());
        LoraFile fromBytes = LoraFile.fromBytes(data, "asset:content")) {
      java.util.Arrays.fill(data, (byte) 0); // the native side holds its own copy
      assertEquals("asset:content", fromBytes.path());
      assertEquals(fromFile.format(), fromBytes.format());
      assertEquals(fromFile.numLayers(), fromBytes.numLayers());
      for (int i = 0; i < fromFile.numLayers(); i++) {
        assertEquals(fromFile.layer(i).module(), fromBytes.layer(i).module());
        assertEquals(fromFile.layer(i).rank(), fromBytes.layer(i).rank());
        assertEquals(fromFile.layer(i).scale(), fromBytes.layer(i).scale(), 0.0f);
      }
    }
    byte[] fresh = Files.readAllBytes(path);
    try (LoraFile withConfig = LoraFile.fromBytes(fresh, "asset:content", "{\"r\": 4, \"lora_alpha\": 2}", null, true)) {
      assertEquals(0.5f, withConfig.layer(0).scale(), 0.0f);
    }
    expectError(Status.INVALID_FILE, "asset:content (adapter config): not a JSON object",
        () -> LoraFile.fromBytes(fresh, "asset:content", "[]", null, true));
    expectError(Status.INVALID_FILE, "asset:empty: file is empty", () -> LoraFile.fromBytes(new byte[0], "asset:empty"));
  }

  @Test
  public void baseModelMapsAndChecksShapes() throws IOException {
    TestFiles.writeUnet(dir);
    Path lora = TestFiles.writePeftLora(dir, "l.safetensors", 3, 2);
    try (BaseModel base = BaseModel.openUnet(dir.toString())) { // a pipeline folder: finds unet/
      assertEquals(2, base.numLayers());
      try (LoraFile l = LoraFile.load(lora.toString(), base, true)) {
        assertEquals(2, l.numLayers());
      }
    }
    expectError(Status.INVALID_ARGUMENT, "dir must not be null", () -> BaseModel.openUnet(null));
  }

  @Test
  public void errorsNameTheFile() throws IOException {
    String missing = dir + "/nope.safetensors";
    expectError(Status.NOT_FOUND, missing + ": no such file", () -> LoraFile.load(missing));
    Path empty = TestFiles.write(dir.resolve("empty.safetensors"), new byte[0]);
    expectError(Status.INVALID_FILE, empty + ": file is empty", () -> LoraFile.load(empty.toString()));
    Path pickle = TestFiles.write(dir.resolve("lora.bin"), "PK\u0003\u0004 zip".getBytes(StandardCharsets.UTF_8));
    expectError(Status.UNSUPPORTED, pickle + ": a PyTorch pickle, not safetensors; convert it to .safetensors first",
        () -> LoraFile.load(pickle.toString()));
    expectError(Status.NOT_FOUND,
        dir + ": folder holds neither adapter_model.safetensors nor pytorch_lora_weights.safetensors",
        () -> LoraFile.load(dir.toString()));
    Path truncated = TestFiles.write(dir.resolve("truncated.safetensors"), new byte[] {100, 0, 0, 0, 0, 0, 0, 0, '{'});
    LorararException e = expectErrorStatus(Status.INVALID_FILE, () -> LoraFile.load(truncated.toString()));
    assertTrue(e.getMessage(), e.getMessage().startsWith(truncated + ": "));
  }

  @Test
  public void nullAndNulArgumentsThrowInsteadOfCrashing() {
    expectError(Status.INVALID_ARGUMENT, "path must not be null", () -> LoraFile.load(null));
    expectError(Status.INVALID_ARGUMENT, "path must not contain NUL characters",
        () -> LoraFile.load(dir + "/a\u0000b.safetensors"));
  }

  @Test
  public void messagesKeepCharactersOutsideTheBmp() {
    // Standard UTF-8 both ways: JNI's modified UTF-8 would mangle these (and CheckJNI aborts on it).
    String missing = dir + "/caf\u00e9-\ud83d\ude00-\u732b.safetensors";
    expectError(Status.NOT_FOUND, missing + ": no such file", () -> LoraFile.load(missing));
    // A lone surrogate cannot be encoded: it becomes U+FFFD on the way in.
    String lone = dir + "/x\ud800y.safetensors";
    expectError(Status.NOT_FOUND, dir + "/x\ufffdy.safetensors: no such file", () -> LoraFile.load(lone));
  }

  @Test
  public void closedHandlesThrow() throws IOException {
    Path path = TestFiles.writePeftLora(dir, "content.safetensors", 1, 4);
    LoraFile lora = LoraFile.load(path.toString());
    lora.close();
    lora.close(); // idempotent
    assertEquals("peft", lora.format()); // read at load: still there
    expectError(Status.INVALID_ARGUMENT, "LoraFile is closed", () -> Adapter.fromLora(lora, 1.0f));
    try (LoraFile style = LoraFile.load(path.toString())) {
      expectError(Status.INVALID_ARGUMENT, "LoraFile is closed", () -> Adapter.merge(lora, style));
      expectError(Status.INVALID_ARGUMENT, "LoraFile is closed", () -> Adapter.merge(style, lora));
    }
    BaseModel closedBase;
    TestFiles.writeUnet(dir);
    closedBase = BaseModel.openUnet(dir.toString());
    closedBase.close();
    expectError(Status.INVALID_ARGUMENT, "BaseModel is closed", closedBase::numLayers);
    expectError(Status.INVALID_ARGUMENT, "BaseModel is closed", () -> LoraFile.load(path.toString(), closedBase, true));
  }

  static LorararException expectErrorStatus(Status status, Runnable body) {
    try {
      body.run();
    } catch (LorararException e) {
      assertEquals(e.getMessage(), status, e.getStatus());
      return e;
    }
    fail("expected LorararException(" + status + ")");
    return null;
  }
}
