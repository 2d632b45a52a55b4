// JNI glue between ai.lorarar.NativeBridge (Java) and the plain C API in
// lorarar/lorarar.h. Nothing here knows the engine's C++ internals.
//
// Rules every function follows:
//  - A failed C call becomes a thrown ai.lorarar.LorararException carrying the
//    status and lorarar_last_error(), read right after the call.
//  - Bad input never reaches the C API as something it could crash on: null
//    strings, arrays and handles, negative indices and unknown enum values
//    throw INVALID_ARGUMENT here. (A freed but non-zero handle cannot be told
//    from a live one: the Java classes never pass one.)
//  - Strings cross as UTF-16 (GetStringRegion / NewString), converted to and
//    from standard UTF-8 here: JNI's "modified UTF-8" differs for NUL and
//    characters outside the BMP, and Android's CheckJNI aborts on invalid input
//    to NewStringUTF (an error message naming a file may hold any bytes).
//  - Arrays are copied with Get/Set<Type>ArrayRegion: no pinned elements to
//    release, nothing held across the generation's callbacks into Java.
//  - Local references made in loops are deleted in the loop.
//  - No C++ exception leaves a native: every one runs inside Guarded<>, which
//    turns std::bad_alloc (the glue's own strings and vectors) into
//    LorararException(OUT_OF_MEMORY) and anything else into INTERNAL. (The C
//    API itself never throws.)
#include <jni.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "lorarar/lorarar.h"

namespace {

constexpr const char* kBridgeClass = "ai/lorarar/NativeBridge";

struct JavaClasses {
  jclass exception = nullptr;  // ai.lorarar.LorararException
  jmethodID exception_init = nullptr;
  jclass layer_info = nullptr;  // ai.lorarar.LayerInfo
  jmethodID layer_info_init = nullptr;
  jclass engine_info = nullptr;  // ai.lorarar.EngineInfo
  jmethodID engine_info_init = nullptr;
  jclass string = nullptr;
  jmethodID on_progress = nullptr;         // ai.lorarar.ProgressListener.onProgress(II)Z
  jmethodID on_decode_progress = nullptr;  // ai.lorarar.ProgressListener.onDecodeProgress(II)Z
};
JavaClasses g;

// What a Java Context's handle points to: the C context and the flags that
// make cancel() reliable around the start of a generation.
struct JniContext {
  lorarar_context* ctx = nullptr;
  std::atomic<bool> cancel{false};   // reset when a generation starts
  std::atomic<bool> closing{false};  // set by close(): never reset
};

// ------------------------------------------------------------------ strings

void append_utf16(uint32_t cp, std::u16string* out) {
  if (cp < 0x10000) {
    out->push_back(static_cast<char16_t>(cp));
  } else {
    cp -= 0x10000;
    out->push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
    out->push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
  }
}

// Standard UTF-8 to UTF-16; every ill-formed sequence becomes one U+FFFD.
std::u16string utf8_to_utf16(const char* s) {
  std::u16string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  const size_t n = std::strlen(s);
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    int k = 1;
    for (; len > 0 && k < len && i + static_cast<size_t>(k) < n && (p[i + k] & 0xC0) == 0x80; ++k) {
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (len == 0 || k < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(0xFFFD);
      i += static_cast<size_t>(len == 0 ? 1 : k);  // skip the lead byte and the continuation bytes read
      continue;
    }
    append_utf16(cp, &out);
    i += static_cast<size_t>(len);
  }
  return out;
}

// A Java string from C's UTF-8; null (with OutOfMemoryError pending) on failure.
jstring to_jstring(JNIEnv* env, const char* s) {
  const std::u16string u = utf8_to_utf16(s ? s : "");
  return env->NewString(reinterpret_cast<const jchar*>(u.data()), static_cast<jsize>(u.size()));
}

void throw_exception(JNIEnv* env, int status, const char* message);

void throw_argument(JNIEnv* env, const std::string& message) {
  throw_exception(env, LORARAR_ERR_INVALID_ARGUMENT, message.c_str());
}

// A Java string as standard UTF-8 (lone surrogates become U+FFFD). Throws and
// returns false for null and for strings holding NUL, which C would cut short.
bool from_jstring(JNIEnv* env, jstring s, const char* what, std::string* out) {
  if (!s) {
    throw_argument(env, std::string(what) + " must not be null");
    return false;
  }
  const jsize n = env->GetStringLength(s);
  std::vector<jchar> u(static_cast<size_t>(n));
  if (n > 0) env->GetStringRegion(s, 0, n, u.data());
  out->clear();
  out->reserve(static_cast<size_t>(n));
  for (size_t i = 0; i < u.size(); ++i) {
    uint32_t cp = u[i];
    if (cp == 0) {
      throw_argument(env, std::string(what) + " must not contain NUL characters");
      return false;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < u.size() && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (u[i + 1] - 0xDC00);
      ++i;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return true;
}

// ------------------------------------------------------------------ errors

void throw_exception(JNIEnv* env, int status, const char* message) {
  if (env->ExceptionCheck()) return;  // keep the first exception
  jstring text = to_jstring(env, message);
  if (!text) return;  // OutOfMemoryError pending
  jobject e = env->NewObject(g.exception, g.exception_init, static_cast<jint>(status), text);
  if (e) {
    env->Throw(static_cast<jthrowable>(e));
    env->DeleteLocalRef(e);
  }
  env->DeleteLocalRef(text);
}

// For messages that are ASCII literals: allocates nothing on the C++ heap, so
// it works when std::bad_alloc is what went wrong.
void throw_ascii(JNIEnv* env, int status, const char* message) {
  if (env->ExceptionCheck()) return;
  jstring text = env->NewStringUTF(message);
  if (!text) return;  // OutOfMemoryError pending
  jobject e = env->NewObject(g.exception, g.exception_init, static_cast<jint>(status), text);
  if (e) {
    env->Throw(static_cast<jthrowable>(e));
    env->DeleteLocalRef(e);
  }
  env->DeleteLocalRef(text);
}

// Throws the status of a failed C call with the library's message.
void throw_status(JNIEnv* env, lorarar_status status) {
  const std::string message = lorarar_last_error();  // copied before anything else runs
  throw_exception(env, status, message.c_str());
}

// What a native returns once an exception is pending: 0, false or null,
// whatever the function's return type.
struct Thrown {
  template <typename T>
  operator T() const {
    return T{};
  }
};

Thrown fail(JNIEnv* env, lorarar_status status) {
  throw_status(env, status);
  return {};
}

Thrown fail(JNIEnv* env, lorarar_status status, const char* message) {
  throw_exception(env, status, message);
  return {};
}

Thrown fail_argument(JNIEnv* env, const std::string& message) {
  throw_argument(env, message);
  return {};
}

// Deletes a half-built result before returning with an exception pending.
Thrown dropped(JNIEnv* env, jobject partial) {
  env->DeleteLocalRef(partial);
  return {};
}

template <typename T>
T* handle_arg(JNIEnv* env, jlong h, const char* what) {
  if (h == 0) {
    throw_argument(env, std::string(what) + " must not be null");
    return nullptr;
  }
  return reinterpret_cast<T*>(static_cast<intptr_t>(h));
}

jlong to_jlong(const void* p) { return static_cast<jlong>(reinterpret_cast<intptr_t>(p)); }

bool read_floats(JNIEnv* env, jfloatArray a, const char* what, std::vector<float>* out) {
  if (!a) {
    throw_argument(env, std::string(what) + " must not be null");
    return false;
  }
  out->resize(static_cast<size_t>(env->GetArrayLength(a)));
  if (!out->empty()) env->GetFloatArrayRegion(a, 0, static_cast<jsize>(out->size()), out->data());
  return !env->ExceptionCheck();
}

jdoubleArray to_jdoubles(JNIEnv* env, std::initializer_list<double> values) {
  jdoubleArray out = env->NewDoubleArray(static_cast<jsize>(values.size()));
  if (out) env->SetDoubleArrayRegion(out, 0, static_cast<jsize>(values.size()), values.begin());
  return out;
}

// ------------------------------------------------------------------ library

jstring Version(JNIEnv* env, jclass) { return to_jstring(env, lorarar_version()); }
jint ApiVersion(JNIEnv*, jclass) { return lorarar_api_version(); }
jint BindingsApiVersion(JNIEnv*, jclass) { return LORARAR_API_VERSION; }
jstring StatusString(JNIEnv* env, jclass, jint status) {
  if (status < LORARAR_OK || status > LORARAR_ERR_INTERNAL) return to_jstring(env, "unknown status");
  return to_jstring(env, lorarar_status_string(static_cast<lorarar_status>(status)));
}

// ------------------------------------------------------------------ base model

jlong BaseOpenUnet(JNIEnv* env, jclass, jstring dir) {
  std::string d;
  if (!from_jstring(env, dir, "dir", &d)) return 0;
  lorarar_base* base = nullptr;
  const lorarar_status s = lorarar_base_open_unet(d.c_str(), &base);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(base);
}

jlong BaseNumLayers(JNIEnv* env, jclass, jlong h) {
  const auto* base = handle_arg<const lorarar_base>(env, h, "base");
  return base ? static_cast<jlong>(lorarar_base_num_layers(base)) : 0;
}

void BaseFree(JNIEnv*, jclass, jlong h) {
  lorarar_base_free(reinterpret_cast<lorarar_base*>(static_cast<intptr_t>(h)));
}

// ------------------------------------------------------------------ LoRA files

lorarar_lora_load_params lora_load_params(jlong base, jboolean check_values) {
  lorarar_lora_load_params params = lorarar_lora_load_default_params();
  params.base = reinterpret_cast<const lorarar_base*>(static_cast<intptr_t>(base));  // 0: none
  params.check_values = check_values ? 1 : 0;
  return params;
}

jlong LoraLoad(JNIEnv* env, jclass, jstring path, jlong base, jboolean check_values) {
  std::string p;
  if (!from_jstring(env, path, "path", &p)) return 0;
  const lorarar_lora_load_params params = lora_load_params(base, check_values);
  lorarar_lora* lora = nullptr;
  const lorarar_status s = lorarar_lora_load(p.c_str(), &params, &lora);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(lora);
}

jlong LoraLoadFromMemory(JNIEnv* env, jclass, jbyteArray data, jstring name, jstring adapter_config, jlong base,
                         jboolean check_values) {
  std::string n, config;
  if (!from_jstring(env, name, "name", &n)) return 0;
  if (adapter_config && !from_jstring(env, adapter_config, "adapterConfigJson", &config)) return 0;
  if (!data) return fail_argument(env, "data must not be null");
  const lorarar_lora_load_params params = lora_load_params(base, check_values);
  // The C API copies the bytes; the Java array is only read during the call.
  const jsize size = env->GetArrayLength(data);
  jbyte* bytes = env->GetByteArrayElements(data, nullptr);
  if (!bytes) return 0;  // OutOfMemoryError pending
  lorarar_lora* lora = nullptr;
  const lorarar_status s = lorarar_lora_load_from_memory(bytes, static_cast<size_t>(size), n.c_str(),
                                                         adapter_config ? config.c_str() : nullptr, &params, &lora);
  env->ReleaseByteArrayElements(data, bytes, JNI_ABORT);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(lora);
}

jstring LoraFormat(JNIEnv* env, jclass, jlong h) {
  const auto* lora = handle_arg<const lorarar_lora>(env, h, "lora");
  return lora ? to_jstring(env, lorarar_lora_format(lora)) : nullptr;
}

jlong LoraNumTextEncoderTensors(JNIEnv* env, jclass, jlong h) {
  const auto* lora = handle_arg<const lorarar_lora>(env, h, "lora");
  return lora ? static_cast<jlong>(lorarar_lora_num_text_encoder_tensors(lora)) : 0;
}

// Builds a LayerInfo[] from n calls of get(index, &info).
template <typename Get>
jobjectArray layer_array(JNIEnv* env, size_t n, Get get) {
  jobjectArray out = env->NewObjectArray(static_cast<jsize>(n), g.layer_info, nullptr);
  if (!out) return nullptr;
  for (size_t i = 0; i < n; ++i) {
    lorarar_layer_info info;
    const lorarar_status s = get(i, &info);
    if (s != LORARAR_OK) {
      env->DeleteLocalRef(out);
      return fail(env, s);
    }
    jstring module = to_jstring(env, info.module);
    if (!module) return dropped(env, out);
    jobject layer = env->NewObject(g.layer_info, g.layer_info_init, module, static_cast<jlong>(info.rank),
                                   static_cast<jlong>(info.in_features), static_cast<jlong>(info.out_features),
                                   static_cast<jfloat>(info.alpha), static_cast<jfloat>(info.scale),
                                   static_cast<jboolean>(info.alpha_in_file ? JNI_TRUE : JNI_FALSE));
    env->DeleteLocalRef(module);
    if (!layer) return dropped(env, out);
    env->SetObjectArrayElement(out, static_cast<jsize>(i), layer);
    env->DeleteLocalRef(layer);
  }
  return out;
}

jobjectArray LoraLayers(JNIEnv* env, jclass, jlong h) {
  const auto* lora = handle_arg<const lorarar_lora>(env, h, "lora");
  if (!lora) return nullptr;
  return layer_array(env, lorarar_lora_num_layers(lora),
                     [lora](size_t i, lorarar_layer_info* info) { return lorarar_lora_layer(lora, i, info); });
}

void LoraFree(JNIEnv*, jclass, jlong h) {
  lorarar_lora_free(reinterpret_cast<lorarar_lora*>(static_cast<intptr_t>(h)));
}

// ------------------------------------------------------------------ column coefficients

jlong CoeffsCreate(JNIEnv* env, jclass) {
  lorarar_coeffs* coeffs = nullptr;
  const lorarar_status s = lorarar_coeffs_create(&coeffs);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(coeffs);
}

jlong CoeffsLoad(JNIEnv* env, jclass, jstring path) {
  std::string p;
  if (!from_jstring(env, path, "path", &p)) return 0;
  lorarar_coeffs* coeffs = nullptr;
  const lorarar_status s = lorarar_coeffs_load(p.c_str(), &coeffs);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(coeffs);
}

void CoeffsSet(JNIEnv* env, jclass, jlong h, jstring module, jfloatArray content, jfloatArray style) {
  auto* coeffs = handle_arg<lorarar_coeffs>(env, h, "coeffs");
  std::string m;
  std::vector<float> c, s;
  if (!coeffs || !from_jstring(env, module, "module", &m) || !read_floats(env, content, "content", &c) ||
      !read_floats(env, style, "style", &s)) {
    return;
  }
  if (c.size() != s.size()) {
    return throw_argument(env, "content and style coefficients differ in length (" + std::to_string(c.size()) + " vs " +
                                   std::to_string(s.size()) + ")");
  }
  const lorarar_status st = lorarar_coeffs_set(coeffs, m.c_str(), c.data(), s.data(), c.size());
  if (st != LORARAR_OK) throw_status(env, st);
}

void CoeffsSave(JNIEnv* env, jclass, jlong h, jstring path) {
  const auto* coeffs = handle_arg<const lorarar_coeffs>(env, h, "coeffs");
  std::string p;
  if (!coeffs || !from_jstring(env, path, "path", &p)) return;
  const lorarar_status s = lorarar_coeffs_save(coeffs, p.c_str());
  if (s != LORARAR_OK) throw_status(env, s);
}

void CoeffsFree(JNIEnv*, jclass, jlong h) {
  lorarar_coeffs_free(reinterpret_cast<lorarar_coeffs*>(static_cast<intptr_t>(h)));
}

// ------------------------------------------------------------------ merging

jlong Merge(JNIEnv* env, jclass, jlong content_h, jlong style_h, jint method, jfloat content_scale, jfloat style_scale,
            jlong coeffs_h) {
  const auto* content = handle_arg<const lorarar_lora>(env, content_h, "content");
  const auto* style = content ? handle_arg<const lorarar_lora>(env, style_h, "style") : nullptr;
  if (!style) return 0;
  if (method != LORARAR_MERGE_DIRECT && method != LORARAR_MERGE_COLUMNS) {
    return fail_argument(env, "unknown merge method " + std::to_string(method));
  }
  lorarar_merge_params params = lorarar_merge_default_params();
  params.method = static_cast<lorarar_merge_method>(method);
  params.content_scale = content_scale;
  params.style_scale = style_scale;
  params.coeffs = reinterpret_cast<const lorarar_coeffs*>(static_cast<intptr_t>(coeffs_h));  // 0: none
  lorarar_adapter* adapter = nullptr;
  const lorarar_status s = lorarar_merge(content, style, &params, &adapter);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(adapter);
}

jlong AdapterFromLora(JNIEnv* env, jclass, jlong lora_h, jfloat scale) {
  const auto* lora = handle_arg<const lorarar_lora>(env, lora_h, "lora");
  if (!lora) return 0;
  lorarar_adapter* adapter = nullptr;
  const lorarar_status s = lorarar_adapter_from_lora(lora, scale, &adapter);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(adapter);
}

jobjectArray AdapterLayers(JNIEnv* env, jclass, jlong h) {
  const auto* adapter = handle_arg<const lorarar_adapter>(env, h, "adapter");
  if (!adapter) return nullptr;
  return layer_array(env, lorarar_adapter_num_layers(adapter),
                     [adapter](size_t i, lorarar_layer_info* info) { return lorarar_adapter_layer(adapter, i, info); });
}

void AdapterMaterialize(JNIEnv* env, jclass, jlong h, jint index, jfloatArray a, jfloatArray b) {
  const auto* adapter = handle_arg<const lorarar_adapter>(env, h, "adapter");
  if (!adapter) return;
  if (!a || !b) return throw_argument(env, "a and b must not be null");
  if (index < 0) return throw_argument(env, "layer index out of range");
  std::vector<float> av(static_cast<size_t>(env->GetArrayLength(a))), bv(static_cast<size_t>(env->GetArrayLength(b)));
  const lorarar_status s =
      lorarar_adapter_materialize(adapter, static_cast<size_t>(index), av.data(), av.size(), bv.data(), bv.size());
  if (s != LORARAR_OK) return throw_status(env, s);
  env->SetFloatArrayRegion(a, 0, static_cast<jsize>(av.size()), av.data());
  env->SetFloatArrayRegion(b, 0, static_cast<jsize>(bv.size()), bv.data());
}

void AdapterSave(JNIEnv* env, jclass, jlong h, jstring path, jint dtype) {
  const auto* adapter = handle_arg<const lorarar_adapter>(env, h, "adapter");
  std::string p;
  if (!adapter || !from_jstring(env, path, "path", &p)) return;
  if (dtype < LORARAR_DTYPE_F32 || dtype > LORARAR_DTYPE_BF16) {
    return throw_argument(env, "unknown dtype " + std::to_string(dtype));
  }
  const lorarar_status s = lorarar_adapter_save(adapter, p.c_str(), static_cast<lorarar_dtype>(dtype));
  if (s != LORARAR_OK) throw_status(env, s);
}

void AdapterFree(JNIEnv*, jclass, jlong h) {
  lorarar_adapter_free(reinterpret_cast<lorarar_adapter*>(static_cast<intptr_t>(h)));
}

// ------------------------------------------------------------------ fusing

jfloatArray FuseDefaultNumbers(JNIEnv* env, jclass) {
  const lorarar_fuse_params p = lorarar_fuse_default_params();
  const jfloat values[2] = {p.scale, static_cast<jfloat>(p.n_threads)};
  jfloatArray out = env->NewFloatArray(2);
  if (out) env->SetFloatArrayRegion(out, 0, 2, values);
  return out;
}

jstring FuseDefaultKernel(JNIEnv* env, jclass) { return to_jstring(env, lorarar_fuse_default_params().kernel); }

// lorarar_fuse_params from Java's values; the kernel name lives in *kernel_storage.
bool fuse_params(JNIEnv* env, jfloat scale, jint threads, jstring kernel, std::string* kernel_storage,
                 lorarar_fuse_params* out) {
  if (!from_jstring(env, kernel, "kernel", kernel_storage)) return false;
  *out = lorarar_fuse_default_params();
  out->scale = scale;
  out->n_threads = threads;
  out->kernel = kernel_storage->c_str();
  return true;
}

// lorarar_fuse_weights takes no buffer size and writes out x in elements:
// the array's length is checked against the shape here, or it would write
// past the copy.
bool check_weight_size(JNIEnv* env, jsize length, jlong out_features, jlong in_features) {
  if (out_features <= 0 || in_features <= 0) {
    throw_argument(env, "out_features and in_features must be positive");
    return false;
  }
  if (out_features > static_cast<jlong>(length) / in_features || out_features * in_features != length) {
    throw_argument(env, "weight holds " + std::to_string(length) + " values, not out_features x in_features (" +
                            std::to_string(out_features) + " x " + std::to_string(in_features) + ")");
    return false;
  }
  return true;
}

void FuseWeightsF32(JNIEnv* env, jclass, jlong h, jstring module, jfloatArray weight, jlong out_features,
                    jlong in_features, jfloat scale, jint threads, jstring kernel) {
  const auto* adapter = handle_arg<const lorarar_adapter>(env, h, "adapter");
  std::string m, k;
  lorarar_fuse_params params;
  if (!adapter || !from_jstring(env, module, "module", &m) || !fuse_params(env, scale, threads, kernel, &k, &params)) {
    return;
  }
  if (!weight) return throw_argument(env, "weight must not be null");
  const jsize n = env->GetArrayLength(weight);
  if (!check_weight_size(env, n, out_features, in_features)) return;
  std::vector<float> w(static_cast<size_t>(n));
  env->GetFloatArrayRegion(weight, 0, n, w.data());
  const lorarar_status s =
      lorarar_fuse_weights(adapter, m.c_str(), w.data(), LORARAR_DTYPE_F32, out_features, in_features, &params);
  if (s != LORARAR_OK) return throw_status(env, s);
  env->SetFloatArrayRegion(weight, 0, n, w.data());
}

// F16 or BF16 weights as their bit patterns in a short[].
void FuseWeights16(JNIEnv* env, jclass, jlong h, jstring module, jshortArray weight, jint dtype, jlong out_features,
                   jlong in_features, jfloat scale, jint threads, jstring kernel) {
  const auto* adapter = handle_arg<const lorarar_adapter>(env, h, "adapter");
  std::string m, k;
  lorarar_fuse_params params;
  if (!adapter || !from_jstring(env, module, "module", &m) || !fuse_params(env, scale, threads, kernel, &k, &params)) {
    return;
  }
  if (!weight) return throw_argument(env, "weight must not be null");
  if (dtype != LORARAR_DTYPE_F16 && dtype != LORARAR_DTYPE_BF16) {
    return throw_argument(env, "a short[] weight holds F16 or BF16 values, not dtype " + std::to_string(dtype));
  }
  const jsize n = env->GetArrayLength(weight);
  if (!check_weight_size(env, n, out_features, in_features)) return;
  std::vector<jshort> w(static_cast<size_t>(n));
  env->GetShortArrayRegion(weight, 0, n, w.data());
  const lorarar_status s = lorarar_fuse_weights(adapter, m.c_str(), w.data(), static_cast<lorarar_dtype>(dtype),
                                                out_features, in_features, &params);
  if (s != LORARAR_OK) return throw_status(env, s);
  env->SetShortArrayRegion(weight, 0, n, w.data());
}

void FuseUnetDir(JNIEnv* env, jclass, jlong base_h, jlong adapter_h, jstring out_dir, jfloat scale, jint threads,
                 jstring kernel) {
  const auto* base = handle_arg<const lorarar_base>(env, base_h, "base");
  const auto* adapter = base ? handle_arg<const lorarar_adapter>(env, adapter_h, "adapter") : nullptr;
  std::string d, k;
  lorarar_fuse_params params;
  if (!adapter || !from_jstring(env, out_dir, "outDir", &d) || !fuse_params(env, scale, threads, kernel, &k, &params)) {
    return;
  }
  const lorarar_status s = lorarar_fuse_unet_dir(base, adapter, d.c_str(), &params);
  if (s != LORARAR_OK) throw_status(env, s);
}

#ifdef LORARAR_JNI_TEST_HOOKS
// Host test builds only (never Android): a native that throws C++
// exceptions, registered on the test class ai.lorarar.JniTestHooks, so the
// tests can check that Guarded<> turns them into Java exceptions.
void ThrowCxx(JNIEnv*, jclass, jint kind) {
  if (kind == 0) throw std::bad_alloc();
  if (kind == 1) throw std::runtime_error("thrown by the test hook \xc3\xa9");
  throw kind;
}
#endif

// ------------------------------------------------------------------ engine

jintArray EngineDefaults(JNIEnv* env, jclass) {
  const lorarar_engine_params p = lorarar_engine_default_params();
  const jint values[3] = {p.n_threads, p.verify_checksums, p.parallel_contexts};
  jintArray out = env->NewIntArray(3);
  if (out) env->SetIntArrayRegion(out, 0, 3, values);
  return out;
}

jlong EngineLoad(JNIEnv* env, jclass, jstring dir, jint threads, jboolean verify, jboolean parallel,
                 jstring packed_cache) {
  std::string d, cache;
  if (!from_jstring(env, dir, "bundleDir", &d)) return 0;
  if (packed_cache && !from_jstring(env, packed_cache, "packedCacheDir", &cache)) return 0;
  lorarar_engine_params params = lorarar_engine_default_params();
  params.n_threads = threads;
  params.verify_checksums = verify ? 1 : 0;
  params.parallel_contexts = parallel ? 1 : 0;
  if (packed_cache) params.packed_cache_dir = cache.c_str();
  lorarar_engine* engine = nullptr;
  const lorarar_status s = lorarar_engine_load(d.c_str(), &params, &engine);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jlong(engine);
}

jobject EngineInfo(JNIEnv* env, jclass, jlong h) {
  const auto* engine = handle_arg<const lorarar_engine>(env, h, "engine");
  if (!engine) return nullptr;
  lorarar_engine_info info;
  const lorarar_status s = lorarar_engine_get_info(engine, &info);
  if (s != LORARAR_OK) return fail(env, s);
  jstring backend = to_jstring(env, info.backend);
  jstring quantization = backend ? to_jstring(env, info.quantization) : nullptr;
  jobject out = nullptr;
  if (quantization) {
    out =
        env->NewObject(g.engine_info, g.engine_info_init, info.image_width, info.image_height, info.latent_channels,
                       info.latent_width, info.latent_height, info.max_rank, static_cast<jlong>(info.num_lora_targets),
                       backend, quantization, static_cast<jboolean>(info.has_hypernet ? JNI_TRUE : JNI_FALSE),
                       info.vae_tile, info.vae_tile_overlap, info.vae_tiles);
  }
  if (backend) env->DeleteLocalRef(backend);
  if (quantization) env->DeleteLocalRef(quantization);
  return out;
}

void EngineCheckLora(JNIEnv* env, jclass, jlong engine_h, jlong lora_h) {
  const auto* engine = handle_arg<const lorarar_engine>(env, engine_h, "engine");
  const auto* lora = engine ? handle_arg<const lorarar_lora>(env, lora_h, "lora") : nullptr;
  if (!lora) return;
  const lorarar_status s = lorarar_engine_check_lora(engine, lora);
  if (s != LORARAR_OK) throw_status(env, s);
}

void EngineFree(JNIEnv*, jclass, jlong h) {
  lorarar_engine_free(reinterpret_cast<lorarar_engine*>(static_cast<intptr_t>(h)));
}

jlong ContextCreate(JNIEnv* env, jclass, jlong engine_h) {
  auto* engine = handle_arg<lorarar_engine>(env, engine_h, "engine");
  if (!engine) return 0;
  auto* jc = new (std::nothrow) JniContext();
  if (!jc) return fail(env, LORARAR_ERR_OUT_OF_MEMORY, "out of memory");
  const lorarar_status s = lorarar_context_create(engine, &jc->ctx);
  if (s != LORARAR_OK) {
    throw_status(env, s);
    delete jc;
    return 0;
  }
  return to_jlong(jc);
}

jdoubleArray ContextSetLoras(JNIEnv* env, jclass, jlong h, jlong content_h, jlong style_h, jint method,
                             jfloat content_scale, jfloat style_scale) {
  auto* jc = handle_arg<JniContext>(env, h, "context");
  if (!jc) return nullptr;
  if (method < LORARAR_APPLY_HYPERNET || method > LORARAR_APPLY_SINGLE) {
    return fail_argument(env, "unknown apply method " + std::to_string(method));
  }
  lorarar_apply_params params = lorarar_apply_default_params();
  params.method = static_cast<lorarar_apply_method>(method);
  params.content_scale = content_scale;
  params.style_scale = style_scale;
  lorarar_merge_timings t{};
  const lorarar_status s =
      lorarar_context_set_loras(jc->ctx, reinterpret_cast<const lorarar_lora*>(static_cast<intptr_t>(content_h)),
                                reinterpret_cast<const lorarar_lora*>(static_cast<intptr_t>(style_h)), &params, &t);
  if (s != LORARAR_OK) return fail(env, s);
  return to_jdoubles(env, {t.hypernet_ms, t.fold_ms, t.total_ms});
}

void ContextSetAdapter(JNIEnv* env, jclass, jlong h, jlong adapter_h) {
  auto* jc = handle_arg<JniContext>(env, h, "context");
  const auto* adapter = jc ? handle_arg<const lorarar_adapter>(env, adapter_h, "adapter") : nullptr;
  if (!adapter) return;
  const lorarar_status s = lorarar_context_set_adapter(jc->ctx, adapter);
  if (s != LORARAR_OK) throw_status(env, s);
}

jfloatArray ApplyDefaults(JNIEnv* env, jclass) {
  const lorarar_apply_params p = lorarar_apply_default_params();
  const jfloat values[3] = {static_cast<jfloat>(p.method), p.content_scale, p.style_scale};
  jfloatArray out = env->NewFloatArray(3);
  if (out) env->SetFloatArrayRegion(out, 0, 3, values);
  return out;
}

jdoubleArray GenerateDefaultNumbers(JNIEnv* env, jclass) {
  const lorarar_generate_params p = lorarar_generate_default_params();
  return to_jdoubles(env,
                     {static_cast<double>(p.steps), static_cast<double>(p.guidance), static_cast<double>(p.scheduler)});
}

jlong GenerateDefaultSeed(JNIEnv*, jclass) { return static_cast<jlong>(lorarar_generate_default_params().seed); }

jobjectArray GenerateDefaultPrompts(JNIEnv* env, jclass) {
  const lorarar_generate_params p = lorarar_generate_default_params();
  jobjectArray out = env->NewObjectArray(2, g.string, nullptr);
  if (!out) return nullptr;
  const char* values[2] = {p.prompt, p.negative_prompt};
  for (jsize i = 0; i < 2; ++i) {
    jstring s = to_jstring(env, values[i]);
    if (!s) return dropped(env, out);
    env->SetObjectArrayElement(out, i, s);
    env->DeleteLocalRef(s);
  }
  return out;
}

// The progress callback: checks the context's flags, then asks the Java
// listener (on the generating thread, the only one lorarar_generate calls it
// on). A listener that throws stops the generation; its exception stays
// pending and is what the Java caller sees.
struct ProgressState {
  JNIEnv* env;  // the generating thread's: lorarar_generate calls back on the thread that called it
  JniContext* jc;
  jobject listener;  // may be null
  bool listener_threw;
};

int ask_listener(ProgressState* st, jmethodID method, int done, int total) {
  if (st->jc->cancel.load() || st->jc->closing.load()) return 1;
  if (!st->listener) return 0;
  JNIEnv* env = st->env;
  const jboolean go = env->CallBooleanMethod(st->listener, method, static_cast<jint>(done), static_cast<jint>(total));
  if (env->ExceptionCheck()) {
    st->listener_threw = true;
    return 1;
  }
  return go ? 0 : 1;
}

int progress_trampoline(int step, int total_steps, void* user_data) {
  return ask_listener(static_cast<ProgressState*>(user_data), g.on_progress, step, total_steps);
}

int decode_progress_trampoline(int tile, int total_tiles, void* user_data) {
  return ask_listener(static_cast<ProgressState*>(user_data), g.on_decode_progress, tile, total_tiles);
}

jdoubleArray Generate(JNIEnv* env, jclass, jlong h, jstring prompt, jstring negative_prompt, jint steps,
                      jfloat guidance, jint scheduler, jlong seed, jobject listener, jbyteArray rgb) {
  auto* jc = handle_arg<JniContext>(env, h, "context");
  std::string p, n;
  if (!jc || !from_jstring(env, prompt, "prompt", &p) || !from_jstring(env, negative_prompt, "negativePrompt", &n)) {
    return nullptr;
  }
  if (!rgb) return fail_argument(env, "rgb must not be null");
  if (scheduler < LORARAR_SCHEDULER_DDIM || scheduler > LORARAR_SCHEDULER_LCM) {
    return fail_argument(env, "unknown scheduler " + std::to_string(scheduler));
  }
  jc->cancel.store(false);
  if (jc->closing.load()) return fail(env, LORARAR_ERR_CANCELLED, "generation cancelled");

  ProgressState state{env, jc, listener, false};
  lorarar_generate_params params = lorarar_generate_default_params();
  params.prompt = p.c_str();
  params.negative_prompt = n.c_str();
  params.steps = steps;
  params.guidance = guidance;
  params.scheduler = static_cast<lorarar_scheduler_kind>(scheduler);
  params.seed = static_cast<uint64_t>(seed);
  params.progress = progress_trampoline;
  params.decode_progress = decode_progress_trampoline;
  params.user_data = &state;
  std::vector<uint8_t> buffer(static_cast<size_t>(env->GetArrayLength(rgb)));
  lorarar_generate_timings t{};
  const lorarar_status s = lorarar_generate(jc->ctx, &params, buffer.data(), buffer.size(), &t);
  if (state.listener_threw) return nullptr;  // the listener's exception is pending
  if (s != LORARAR_OK) return fail(env, s);
  env->SetByteArrayRegion(rgb, 0, static_cast<jsize>(buffer.size()), reinterpret_cast<const jbyte*>(buffer.data()));
  return to_jdoubles(env, {t.text_encoder_ms, t.denoise_ms, t.step_ms_median, t.decode_ms, t.total_ms});
}

void ContextCancel(JNIEnv* env, jclass, jlong h, jboolean closing) {
  auto* jc = handle_arg<JniContext>(env, h, "context");
  if (!jc) return;
  if (closing) jc->closing.store(true);
  jc->cancel.store(true);
  lorarar_context_cancel(jc->ctx);
}

void ContextFree(JNIEnv*, jclass, jlong h) {
  auto* jc = reinterpret_cast<JniContext*>(static_cast<intptr_t>(h));
  if (!jc) return;
  lorarar_context_free(jc->ctx);
  delete jc;
}

// ------------------------------------------------------------------ registration

// What JNI registers for each native: Fn inside a try block. A C++ exception
// unwinding into the JVM would abort the process; here it becomes a Java
// exception and the native returns 0 / null.
template <auto Fn>
struct Guarded;

template <typename R, typename... Args, R (*Fn)(JNIEnv*, jclass, Args...)>
struct Guarded<Fn> {
  static R call(JNIEnv* env, jclass cls, Args... args) noexcept {
    try {
      return Fn(env, cls, args...);
    } catch (const std::bad_alloc&) {
      throw_ascii(env, LORARAR_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
      try {
        throw_exception(env, LORARAR_ERR_INTERNAL, (std::string("internal error: ") + e.what()).c_str());
      } catch (...) {
        throw_ascii(env, LORARAR_ERR_INTERNAL, "internal error");
      }
    } catch (...) {
      throw_ascii(env, LORARAR_ERR_INTERNAL, "internal error");
    }
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      return R{};
    }
  }
};

#define LORARAR_NATIVE(name, signature, fn) \
  { const_cast<char*>(name), const_cast<char*>(signature), reinterpret_cast<void*>(&Guarded<fn>::call) }

const JNINativeMethod kMethods[] = {
    LORARAR_NATIVE("version", "()Ljava/lang/String;", Version),
    LORARAR_NATIVE("apiVersion", "()I", ApiVersion),
    LORARAR_NATIVE("bindingsApiVersion", "()I", BindingsApiVersion),
    LORARAR_NATIVE("statusString", "(I)Ljava/lang/String;", StatusString),
    LORARAR_NATIVE("baseOpenUnet", "(Ljava/lang/String;)J", BaseOpenUnet),
    LORARAR_NATIVE("baseNumLayers", "(J)J", BaseNumLayers),
    LORARAR_NATIVE("baseFree", "(J)V", BaseFree),
    LORARAR_NATIVE("loraLoad", "(Ljava/lang/String;JZ)J", LoraLoad),
    LORARAR_NATIVE("loraLoadFromMemory", "([BLjava/lang/String;Ljava/lang/String;JZ)J", LoraLoadFromMemory),
    LORARAR_NATIVE("loraFormat", "(J)Ljava/lang/String;", LoraFormat),
    LORARAR_NATIVE("loraNumTextEncoderTensors", "(J)J", LoraNumTextEncoderTensors),
    LORARAR_NATIVE("loraLayers", "(J)[Lai/lorarar/LayerInfo;", LoraLayers),
    LORARAR_NATIVE("loraFree", "(J)V", LoraFree),
    LORARAR_NATIVE("coeffsCreate", "()J", CoeffsCreate),
    LORARAR_NATIVE("coeffsLoad", "(Ljava/lang/String;)J", CoeffsLoad),
    LORARAR_NATIVE("coeffsSet", "(JLjava/lang/String;[F[F)V", CoeffsSet),
    LORARAR_NATIVE("coeffsSave", "(JLjava/lang/String;)V", CoeffsSave),
    LORARAR_NATIVE("coeffsFree", "(J)V", CoeffsFree),
    LORARAR_NATIVE("merge", "(JJIFFJ)J", Merge),
    LORARAR_NATIVE("adapterFromLora", "(JF)J", AdapterFromLora),
    LORARAR_NATIVE("adapterLayers", "(J)[Lai/lorarar/LayerInfo;", AdapterLayers),
    LORARAR_NATIVE("adapterMaterialize", "(JI[F[F)V", AdapterMaterialize),
    LORARAR_NATIVE("adapterSave", "(JLjava/lang/String;I)V", AdapterSave),
    LORARAR_NATIVE("adapterFree", "(J)V", AdapterFree),
    LORARAR_NATIVE("fuseDefaultNumbers", "()[F", FuseDefaultNumbers),
    LORARAR_NATIVE("fuseDefaultKernel", "()Ljava/lang/String;", FuseDefaultKernel),
    LORARAR_NATIVE("fuseWeightsF32", "(JLjava/lang/String;[FJJFILjava/lang/String;)V", FuseWeightsF32),
    LORARAR_NATIVE("fuseWeights16", "(JLjava/lang/String;[SIJJFILjava/lang/String;)V", FuseWeights16),
    LORARAR_NATIVE("fuseUnetDir", "(JJLjava/lang/String;FILjava/lang/String;)V", FuseUnetDir),
    LORARAR_NATIVE("engineDefaults", "()[I", EngineDefaults),
    LORARAR_NATIVE("engineLoad", "(Ljava/lang/String;IZZLjava/lang/String;)J", EngineLoad),
    LORARAR_NATIVE("engineInfo", "(J)Lai/lorarar/EngineInfo;", EngineInfo),
    LORARAR_NATIVE("engineCheckLora", "(JJ)V", EngineCheckLora),
    LORARAR_NATIVE("engineFree", "(J)V", EngineFree),
    LORARAR_NATIVE("contextCreate", "(J)J", ContextCreate),
    LORARAR_NATIVE("contextSetLoras", "(JJJIFF)[D", ContextSetLoras),
    LORARAR_NATIVE("contextSetAdapter", "(JJ)V", ContextSetAdapter),
    LORARAR_NATIVE("applyDefaults", "()[F", ApplyDefaults),
    LORARAR_NATIVE("generateDefaultNumbers", "()[D", GenerateDefaultNumbers),
    LORARAR_NATIVE("generateDefaultSeed", "()J", GenerateDefaultSeed),
    LORARAR_NATIVE("generateDefaultPrompts", "()[Ljava/lang/String;", GenerateDefaultPrompts),
    LORARAR_NATIVE("generate", "(JLjava/lang/String;Ljava/lang/String;IFIJLai/lorarar/ProgressListener;[B)[D",
                   Generate),
    LORARAR_NATIVE("contextCancel", "(JZ)V", ContextCancel),
    LORARAR_NATIVE("contextFree", "(J)V", ContextFree),
};

#ifdef LORARAR_JNI_TEST_HOOKS
const JNINativeMethod kTestHooks[] = {LORARAR_NATIVE("throwCxx", "(I)V", ThrowCxx)};
#endif

#undef LORARAR_NATIVE

// A global reference to a class, or null with the exception pending.
jclass global_class(JNIEnv* env, const char* name) {
  jclass local = env->FindClass(name);
  if (!local) return nullptr;
  auto global = static_cast<jclass>(env->NewGlobalRef(local));
  env->DeleteLocalRef(local);
  return global;
}

bool init(JNIEnv* env) {
  g.exception = global_class(env, "ai/lorarar/LorararException");
  if (!g.exception) return false;
  g.exception_init = env->GetMethodID(g.exception, "<init>", "(ILjava/lang/String;)V");
  if (!g.exception_init) return false;
  g.layer_info = global_class(env, "ai/lorarar/LayerInfo");
  if (!g.layer_info) return false;
  g.layer_info_init = env->GetMethodID(g.layer_info, "<init>", "(Ljava/lang/String;JJJFFZ)V");
  if (!g.layer_info_init) return false;
  g.engine_info = global_class(env, "ai/lorarar/EngineInfo");
  if (!g.engine_info) return false;
  g.engine_info_init = env->GetMethodID(g.engine_info, "<init>", "(IIIIIIJLjava/lang/String;Ljava/lang/String;ZIII)V");
  if (!g.engine_info_init) return false;
  g.string = global_class(env, "java/lang/String");
  if (!g.string) return false;
  jclass listener = env->FindClass("ai/lorarar/ProgressListener");
  if (!listener) return false;
  g.on_progress = env->GetMethodID(listener, "onProgress", "(II)Z");
  g.on_decode_progress = g.on_progress ? env->GetMethodID(listener, "onDecodeProgress", "(II)Z") : nullptr;
  env->DeleteLocalRef(listener);
  if (!g.on_progress || !g.on_decode_progress) return false;
  jclass bridge = env->FindClass(kBridgeClass);
  if (!bridge) return false;
  const jint registered =
      env->RegisterNatives(bridge, kMethods, static_cast<jint>(sizeof(kMethods) / sizeof(kMethods[0])));
  env->DeleteLocalRef(bridge);
  if (registered != JNI_OK) return false;
#ifdef LORARAR_JNI_TEST_HOOKS
  jclass hooks = env->FindClass("ai/lorarar/JniTestHooks");
  if (!hooks) {
    env->ExceptionClear();  // not running the tests: nothing to register
    return true;
  }
  const jint hooked = env->RegisterNatives(hooks, kTestHooks, 1);
  env->DeleteLocalRef(hooks);
  if (hooked != JNI_OK) return false;
#endif
  return true;
}

}  // namespace

extern "C" JNIEXPORT jint JNI_OnLoad(JavaVM* vm, void*) {
  JNIEnv* env = nullptr;
  if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  // On failure the pending NoClassDefFoundError / NoSuchMethodError says what
  // is missing (a class shrunk away by R8 without the consumer rules).
  return init(env) ? JNI_VERSION_1_6 : JNI_ERR;
}
