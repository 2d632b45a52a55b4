package ai.lorarar;

import static ai.lorarar.LoraFileTest.expectError;

import org.junit.Test;

/**
 * The JNI functions called directly with what the Java classes never pass: null strings, arrays and listeners, zero
 * handles, unknown enum values. Each must throw, not crash the JVM.
 */
public class NativeBridgeTest {
  private static final Status ARG = Status.INVALID_ARGUMENT;

  @Test
  public void nullStrings() {
    expectError(ARG, "path must not be null", () -> NativeBridge.loraLoad(null, 0, true));
    expectError(ARG, "dir must not be null", () -> NativeBridge.baseOpenUnet(null));
    expectError(ARG, "path must not be null", () -> NativeBridge.coeffsLoad(null));
    expectError(ARG, "bundleDir must not be null", () -> NativeBridge.engineLoad(null, 0, true, false, null));
    long coeffs = NativeBridge.coeffsCreate();
    try {
      expectError(ARG, "module must not be null", () -> NativeBridge.coeffsSet(coeffs, null, new float[1],
          new float[1]));
      expectError(ARG, "content must not be null", () -> NativeBridge.coeffsSet(coeffs, "m", null, new float[1]));
      expectError(ARG, "style must not be null", () -> NativeBridge.coeffsSet(coeffs, "m", new float[1], null));
      expectError(ARG, "content and style coefficients differ in length (1 vs 2)",
          () -> NativeBridge.coeffsSet(coeffs, "m", new float[1], new float[2]));
      expectError(ARG, "path must not be null", () -> NativeBridge.coeffsSave(coeffs, null));
    } finally {
      NativeBridge.coeffsFree(coeffs);
    }
  }

  @Test
  public void zeroHandles() {
    expectError(ARG, "base must not be null", () -> NativeBridge.baseNumLayers(0));
    expectError(ARG, "lora must not be null", () -> NativeBridge.loraFormat(0));
    expectError(ARG, "lora must not be null", () -> NativeBridge.loraNumTextEncoderTensors(0));
    expectError(ARG, "lora must not be null", () -> NativeBridge.loraLayers(0));
    expectError(ARG, "coeffs must not be null", () -> NativeBridge.coeffsSet(0, "m", new float[1], new float[1]));
    expectError(ARG, "coeffs must not be null", () -> NativeBridge.coeffsSave(0, "x"));
    expectError(ARG, "content must not be null", () -> NativeBridge.merge(0, 0, 0, 1, 1, 0));
    expectError(ARG, "lora must not be null", () -> NativeBridge.adapterFromLora(0, 1));
    expectError(ARG, "adapter must not be null", () -> NativeBridge.adapterLayers(0));
    expectError(ARG, "adapter must not be null", () -> NativeBridge.adapterMaterialize(0, 0, new float[1],
        new float[1]));
    expectError(ARG, "adapter must not be null", () -> NativeBridge.adapterSave(0, "x", 0));
    expectError(ARG, "engine must not be null", () -> NativeBridge.engineInfo(0));
    expectError(ARG, "engine must not be null", () -> NativeBridge.engineCheckLora(0, 0));
    expectError(ARG, "engine must not be null", () -> NativeBridge.contextCreate(0));
    expectError(ARG, "context must not be null", () -> NativeBridge.contextSetLoras(0, 0, 0, 0, 1, 1));
    expectError(ARG, "context must not be null", () -> NativeBridge.contextSetAdapter(0, 0));
    expectError(ARG, "context must not be null",
        () -> NativeBridge.generate(0, "", "", 1, 1, 0, 0, null, new byte[3]));
    expectError(ARG, "context must not be null", () -> NativeBridge.contextCancel(0, false));
    // The free functions accept null, like the C API's.
    NativeBridge.baseFree(0);
    NativeBridge.loraFree(0);
    NativeBridge.coeffsFree(0);
    NativeBridge.adapterFree(0);
    NativeBridge.engineFree(0);
    NativeBridge.contextFree(0);
  }

  @Test
  public void unknownEnumValues() throws java.io.IOException {
    java.nio.file.Path dir = TestFiles.tempDir();
    try {
      long lora = NativeBridge.loraLoad(TestFiles.writePeftLora(dir, "l.safetensors", 1, 2).toString(), 0, true);
      try {
        expectError(ARG, "unknown merge method 7", () -> NativeBridge.merge(lora, lora, 7, 1, 1, 0));
        expectError(ARG, "unknown merge method -1", () -> NativeBridge.merge(lora, lora, -1, 1, 1, 0));
        long adapter = NativeBridge.adapterFromLora(lora, 1);
        try {
          expectError(ARG, "unknown dtype 3", () -> NativeBridge.adapterSave(adapter, dir + "/x.safetensors", 3));
          expectError(ARG, "a and b must not be null", () -> NativeBridge.adapterMaterialize(adapter, 0, null, null));
        } finally {
          NativeBridge.adapterFree(adapter);
        }
        // The C API checks what is left: a columns merge needs coefficients.
        LoraFileTest.expectErrorStatus(ARG, () -> NativeBridge.merge(lora, lora, 1, 1, 1, 0));
      } finally {
        NativeBridge.loraFree(lora);
      }
    } finally {
      TestFiles.deleteTree(dir);
    }
  }
}
