package ai.lorarar;

/**
 * Library-wide functions: loading the native libraries and versions.
 *
 * <h2>Native libraries</h2>
 *
 * The bindings load {@code liblorarar_jni.so} (the JNI glue, {@code System.loadLibrary("lorarar_jni")}), which needs
 * {@code liblorarar.so} and the ExecuTorch libraries it was linked against; on Android all of them sit in the APK's
 * {@code lib/<abi>/} folder and the dynamic linker finds them. Every class loads them on first use; calling {@link
 * #loadLibrary()} early (e.g. in {@code Application.onCreate}) only moves the cost and surfaces a missing library
 * sooner. On a desktop JVM, point {@code -Djava.library.path} at the folder holding {@code liblorarar_jni.so}.
 *
 * <h2>Threads</h2>
 *
 * <ul>
 *   <li>{@link LoraFile}, {@link Adapter}, {@link BaseModel}, {@link Coefficients} (once filled) and {@link Engine} are
 *       immutable: share them between threads.
 *   <li>A {@link Context} holds the current LoRA pair and scratch memory: one per thread that generates. Its calls are
 *       serialised (a second thread waits), except {@link Context#cancel()}, which is meant for another thread.
 *   <li>{@code close()} may be called from any thread at any time: a handle in use by a running call is freed when
 *       that call returns, and closing a {@link Context} also cancels its generation.
 * </ul>
 */
public final class Lorarar {
  /** The C API version ({@code LORARAR_API_VERSION}) these Java classes were written for. */
  public static final int API_VERSION = 2;

  private Lorarar() {}

  /**
   * Loads the native libraries once (thread-safe); later calls return at once.
   *
   * @throws UnsatisfiedLinkError when a library is missing or its API version differs from these classes'
   */
  public static void loadLibrary() {
    NativeBridge.init();
  }

  /** The library version, e.g. "0.1.0" ({@code lorarar_version()}). */
  public static String version() {
    return NativeBridge.version();
  }

  /** {@code LORARAR_API_VERSION} of the loaded liblorarar. */
  public static int apiVersion() {
    return NativeBridge.apiVersion();
  }

  /** The C API's short name of a status ("ok", "invalid file", ...). */
  public static String statusString(Status status) {
    return NativeBridge.statusString(status.code());
  }
}
