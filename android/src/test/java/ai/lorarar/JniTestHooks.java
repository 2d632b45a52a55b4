package ai.lorarar;

/**
 * Natives that exist only in host test builds of liblorarar_jni (LORARAR_JNI_TEST_HOOKS): JNI_OnLoad registers them
 * when this class is on the class path.
 */
final class JniTestHooks {
  private JniTestHooks() {}

  /** Throws a C++ exception inside a native: 0 std::bad_alloc, 1 std::runtime_error, otherwise an int. */
  static native void throwCxx(int kind);
}
