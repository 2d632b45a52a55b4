// The lorarar Android library: the Java API in src/main/java (ai.lorarar), the JNI glue in src/main/cpp, built with
// the NDK against a prebuilt liblorarar.so per ABI. Properties (gradle.properties, -P, or the environment):
//   lorarar.prebuiltDir      (LORARAR_PREBUILT_DIR)       <dir>/<abi>/liblorarar.so, required to build
//   lorarar.executorchLibDir (LORARAR_EXECUTORCH_LIB_DIR) <dir>/<abi>/*.so, when liblorarar.so links ExecuTorch shared
//   lorarar.hostJniDir       (LORARAR_HOST_JNI_DIR)       a host build of liblorarar_jni.so: runs src/test on the JVM
//   lorarar.testBundle       (LORARAR_TEST_BUNDLE)        a bundle for the engine tests (optional)
// See android/README.md for how to build the native libraries.
plugins {
    id("com.android.library")
}

fun setting(property: String, env: String): String? =
    providers.gradleProperty(property).orElse(providers.environmentVariable(env)).orNull?.takeIf { it.isNotBlank() }

val prebuiltDir = setting("lorarar.prebuiltDir", "LORARAR_PREBUILT_DIR")
val executorchLibDir = setting("lorarar.executorchLibDir", "LORARAR_EXECUTORCH_LIB_DIR")
val hostJniDir = setting("lorarar.hostJniDir", "LORARAR_HOST_JNI_DIR")
val testBundle = setting("lorarar.testBundle", "LORARAR_TEST_BUNDLE")

android {
    namespace = "ai.lorarar"
    compileSdk = 34
    ndkVersion = "27.2.12479018" // r27c: 16 KB page-size aligned by default

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
        externalNativeBuild {
            cmake {
                arguments += listOf(
                    "-DANDROID_STL=c++_shared",
                    // Empty values reach CMake, whose checks then say what is missing and how to provide it.
                    "-DLORARAR_PREBUILT_DIR=${prebuiltDir ?: ""}",
                    "-DLORARAR_EXECUTORCH_LIB_DIR=${executorchLibDir ?: ""}",
                )
                targets += "lorarar_jni"
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    compileOptions {
        // The sources are Java 8 (make android-host-test compiles them with --release 8).
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }

    testOptions {
        unitTests.all { test ->
            // src/test runs on the development machine's JVM against a host build of the JNI library
            // (make android-host-test builds it in build/host/android-jni).
            test.enabled = hostJniDir != null
            if (hostJniDir != null) {
                test.systemProperty("java.library.path", hostJniDir)
                test.jvmArgs("-Xcheck:jni")
            }
            if (testBundle != null) test.systemProperty("lorarar.test.bundle", testBundle)
        }
    }
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}
