// The C API end to end on files: load, inspect, merge, save, reload, fuse a
// UNet folder, and the error contract (status + "<path>: <what>" message).
#include <cstring>

#include "core/json.h"
#include "harness.h"
#include "lorarar/lorarar.h"
#include "test_util.h"

using namespace lorarar_test;
using lorarar::DType;

namespace {

const char* kQ = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q";
const char* kK = "mid_block.attentions.0.transformer_blocks.0.attn1.to_k";

std::string write_lora(const std::string& dir, const std::string& name, uint32_t seed, int64_t r) {
  std::vector<TestTensor> t;
  add_lora_layer(&t, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", r, 16,
                 16, seed);
  add_lora_layer(&t, std::string("unet.") + kK + ".lora_A.weight", std::string("unet.") + kK + ".lora_B.weight", r, 24,
                 16, seed + 7);
  const std::string path = dir + "/" + name;
  write_file(path, make_safetensors(t));
  return path;
}

std::string write_unet(const std::string& dir) {
  const std::string unet = dir + "/unet";
  std::string cmd = "mkdir -p " + unet;
  CHECK_EQ(std::system(cmd.c_str()), 0);
  write_file(unet + "/config.json", std::string(R"({"_class_name": "UNet2DConditionModel", "layers_per_block": 1, )"
                                                R"("down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"]})"));
  std::vector<TestTensor> w = {
      {std::string(kQ) + ".weight", DType::kF16, {16, 16}, random_values(256, 1)},
      {std::string(kK) + ".weight", DType::kF32, {16, 24}, random_values(384, 2)},
      {"mid_block.attentions.0.norm.weight", DType::kF32, {16}, random_values(16, 3)},
  };
  write_file(unet + "/diffusion_pytorch_model.safetensors", make_safetensors(w));
  return unet;
}

}  // namespace

TEST(c_api_load_merge_save_reload) {
  const std::string dir = make_temp_dir();
  const std::string c_path = write_lora(dir, "content.safetensors", 1, 4);
  const std::string s_path = write_lora(dir, "style.safetensors", 2, 2);
  lorarar_lora *content = nullptr, *style = nullptr;
  CHECK_EQ(lorarar_lora_load(c_path.c_str(), nullptr, &content), LORARAR_OK);
  CHECK_EQ(lorarar_lora_load(s_path.c_str(), nullptr, &style), LORARAR_OK);
  CHECK_EQ(std::string(lorarar_lora_format(content)), std::string("peft"));
  CHECK_EQ(lorarar_lora_num_layers(content), size_t(2));
  lorarar_layer_info info;
  CHECK_EQ(lorarar_lora_layer(content, 1, &info), LORARAR_OK);
  CHECK_EQ(std::string(info.module), std::string(kQ));
  CHECK_EQ(info.rank, int64_t(4));

  lorarar_coeffs* coeffs = nullptr;
  CHECK_EQ(lorarar_coeffs_create(&coeffs), LORARAR_OK);
  std::vector<float> mc(16, 0.5f), ms(16, 2.0f);
  CHECK_EQ(lorarar_coeffs_set(coeffs, kQ, mc.data(), ms.data(), 16), LORARAR_OK);
  lorarar_merge_params mp = lorarar_merge_default_params();
  mp.method = LORARAR_MERGE_COLUMNS;
  mp.coeffs = coeffs;
  lorarar_adapter* merged = nullptr;
  CHECK_EQ(lorarar_merge(content, style, &mp, &merged), LORARAR_OK);
  lorarar_lora_free(content);  // the adapter keeps the files mapped
  lorarar_lora_free(style);
  CHECK_EQ(lorarar_adapter_num_layers(merged), size_t(2));
  CHECK_EQ(lorarar_adapter_layer(merged, 1, &info), LORARAR_OK);
  CHECK_EQ(info.rank, int64_t(6));
  std::vector<float> a(6 * 16), b(16 * 6);
  CHECK_EQ(lorarar_adapter_materialize(merged, 1, a.data(), a.size(), b.data(), b.size()), LORARAR_OK);
  CHECK_EQ(lorarar_adapter_materialize(merged, 1, a.data(), 5, b.data(), b.size()), LORARAR_ERR_INVALID_ARGUMENT);
  CHECK_EQ(std::string(lorarar_last_error()), std::string("a buffer must hold rank x in_features floats"));

  // Saved as a standard LoRA, it reads back with scale 1 and the same factors.
  const std::string out = dir + "/merged.safetensors";
  CHECK_EQ(lorarar_adapter_save(merged, out.c_str(), LORARAR_DTYPE_F32), LORARAR_OK);
  lorarar_lora* back = nullptr;
  CHECK_EQ(lorarar_lora_load(out.c_str(), nullptr, &back), LORARAR_OK);
  CHECK_EQ(lorarar_lora_layer(back, 1, &info), LORARAR_OK);
  CHECK_EQ(info.rank, int64_t(6));
  CHECK_NEAR(info.scale, 1.0, 0);
  CHECK(info.alpha_in_file);
  lorarar_adapter* reloaded = nullptr;
  CHECK_EQ(lorarar_adapter_from_lora(back, 1.0f, &reloaded), LORARAR_OK);
  std::vector<float> a2(a.size()), b2(b.size());
  CHECK_EQ(lorarar_adapter_materialize(reloaded, 1, a2.data(), a2.size(), b2.data(), b2.size()), LORARAR_OK);
  CHECK(a == a2);
  CHECK(b == b2);

  // Coefficient files round-trip.
  const std::string cpath = dir + "/coeffs.safetensors";
  CHECK_EQ(lorarar_coeffs_save(coeffs, cpath.c_str()), LORARAR_OK);
  lorarar_coeffs* loaded = nullptr;
  CHECK_EQ(lorarar_coeffs_load(cpath.c_str(), &loaded), LORARAR_OK);
  lorarar_coeffs_free(loaded);

  lorarar_adapter_free(reloaded);
  lorarar_lora_free(back);
  lorarar_adapter_free(merged);
  lorarar_coeffs_free(coeffs);
}

TEST(c_api_loads_a_lora_from_memory_as_from_its_file) {
  const std::string dir = make_temp_dir();
  const std::string path = write_lora(dir, "content.safetensors", 1, 4);
  std::string bytes = read_file(path);
  lorarar_lora *from_file = nullptr, *from_memory = nullptr;
  CHECK_EQ(lorarar_lora_load(path.c_str(), nullptr, &from_file), LORARAR_OK);
  CHECK_EQ(lorarar_lora_load_from_memory(bytes.data(), bytes.size(), "asset:content", nullptr, nullptr, &from_memory),
           LORARAR_OK);
  bytes.assign(bytes.size(), '\0');  // the handle holds its own copy
  CHECK_EQ(lorarar_lora_num_layers(from_memory), lorarar_lora_num_layers(from_file));
  lorarar_adapter *a1 = nullptr, *a2 = nullptr;
  CHECK_EQ(lorarar_adapter_from_lora(from_file, 1.0f, &a1), LORARAR_OK);
  CHECK_EQ(lorarar_adapter_from_lora(from_memory, 1.0f, &a2), LORARAR_OK);
  std::vector<float> fa(4 * 16), fb(16 * 4), ma(fa.size()), mb(fb.size());
  CHECK_EQ(lorarar_adapter_materialize(a1, 1, fa.data(), fa.size(), fb.data(), fb.size()), LORARAR_OK);
  CHECK_EQ(lorarar_adapter_materialize(a2, 1, ma.data(), ma.size(), mb.data(), mb.size()), LORARAR_OK);
  CHECK(fa == ma);
  CHECK(fb == mb);

  // A peft adapter config that comes with the bytes sets alpha, as beside a file.
  lorarar_lora* with_config = nullptr;
  bytes = read_file(path);
  CHECK_EQ(lorarar_lora_load_from_memory(bytes.data(), bytes.size(), "asset:content", R"({"lora_alpha": 8, "r": 4})",
                                         nullptr, &with_config),
           LORARAR_OK);
  lorarar_layer_info info;
  CHECK_EQ(lorarar_lora_layer(with_config, 0, &info), LORARAR_OK);
  CHECK_NEAR(info.scale, 2.0, 0);

  // Errors name the given name, as they name a path.
  lorarar_lora* bad = nullptr;
  CHECK_EQ(lorarar_lora_load_from_memory(bytes.data(), 5, "asset:content", nullptr, nullptr, &bad),
           LORARAR_ERR_INVALID_FILE);
  CHECK(bad == nullptr);
  CHECK_EQ(std::string(lorarar_last_error()).rfind("asset:content: ", 0), size_t(0));
  CHECK_EQ(lorarar_lora_load_from_memory(bytes.data(), bytes.size(), "asset:content", "[1]", nullptr, &bad),
           LORARAR_ERR_INVALID_FILE);
  CHECK_EQ(std::string(lorarar_last_error()), std::string("asset:content (adapter config): not a JSON object"));
  CHECK_EQ(lorarar_lora_load_from_memory(nullptr, 3, "x", nullptr, nullptr, &bad), LORARAR_ERR_INVALID_ARGUMENT);
  CHECK_EQ(std::string(lorarar_last_error()), std::string("data must not be NULL"));

  lorarar_adapter_free(a1);
  lorarar_adapter_free(a2);
  lorarar_lora_free(with_config);
  lorarar_lora_free(from_memory);
  lorarar_lora_free(from_file);
}

TEST(c_api_fuses_a_unet_folder_atomically) {
  const std::string dir = make_temp_dir();
  const std::string unet = write_unet(dir);
  lorarar_base* base = nullptr;
  CHECK_EQ(lorarar_base_open_unet(dir.c_str(), &base), LORARAR_OK);  // pipeline folder: finds unet/
  CHECK_EQ(lorarar_base_num_layers(base), size_t(2));
  lorarar_lora_load_params lp = lorarar_lora_load_default_params();
  lp.base = base;
  lorarar_lora* lora = nullptr;
  CHECK_EQ(lorarar_lora_load(write_lora(dir, "l.safetensors", 3, 2).c_str(), &lp, &lora), LORARAR_OK);
  lorarar_adapter* adapter = nullptr;
  CHECK_EQ(lorarar_adapter_from_lora(lora, 1.0f, &adapter), LORARAR_OK);
  lorarar_fuse_params fp = lorarar_fuse_default_params();
  fp.scale = 0.5f;
  fp.n_threads = 2;
  const std::string out = dir + "/fused";
  CHECK_EQ(lorarar_fuse_unet_dir(base, adapter, out.c_str(), &fp), LORARAR_OK);
  // The fused folder is a UNet folder again, with the same layers.
  lorarar_base* fused = nullptr;
  CHECK_EQ(lorarar_base_open_unet(out.c_str(), &fused), LORARAR_OK);
  CHECK_EQ(lorarar_base_num_layers(fused), size_t(2));
  // Fusing again replaces the folder.
  CHECK_EQ(lorarar_fuse_unet_dir(base, adapter, out.c_str(), &fp), LORARAR_OK);
  fp.kernel = "sse9";
  CHECK_EQ(lorarar_fuse_unet_dir(base, adapter, out.c_str(), &fp), LORARAR_ERR_INVALID_ARGUMENT);
  CHECK_EQ(std::string(lorarar_last_error()), std::string("unknown kernel \"sse9\" (auto, scalar, avx2, neon)"));
  lorarar_base_free(fused);
  lorarar_adapter_free(adapter);
  lorarar_lora_free(lora);
  lorarar_base_free(base);
}

TEST(c_api_errors_name_the_file) {
  const std::string dir = make_temp_dir();
  lorarar_lora* lora = nullptr;
  const std::string missing = dir + "/nope.safetensors";
  CHECK_EQ(lorarar_lora_load(missing.c_str(), nullptr, &lora), LORARAR_ERR_NOT_FOUND);
  CHECK_EQ(std::string(lorarar_last_error()), missing + ": no such file");
  CHECK(lora == nullptr);
  const std::string empty = dir + "/empty.safetensors";
  write_file(empty, std::string());
  CHECK_EQ(lorarar_lora_load(empty.c_str(), nullptr, &lora), LORARAR_ERR_INVALID_FILE);
  CHECK_EQ(std::string(lorarar_last_error()), empty + ": file is empty");
  const std::string pickle = dir + "/lora.bin";
  write_file(pickle, std::string("PK\x03\x04 zip"));
  CHECK_EQ(lorarar_lora_load(pickle.c_str(), nullptr, &lora), LORARAR_ERR_UNSUPPORTED);
  CHECK_EQ(std::string(lorarar_last_error()),
           pickle + ": a PyTorch pickle, not safetensors; convert it to .safetensors first");
  CHECK_EQ(lorarar_lora_load(dir.c_str(), nullptr, &lora), LORARAR_ERR_NOT_FOUND);
  CHECK_EQ(std::string(lorarar_last_error()),
           dir + ": folder holds neither adapter_model.safetensors nor pytorch_lora_weights.safetensors");
  CHECK_EQ(lorarar_lora_load(nullptr, nullptr, &lora), LORARAR_ERR_INVALID_ARGUMENT);
  CHECK_EQ(std::string(lorarar_status_string(LORARAR_ERR_UNSUPPORTED)), std::string("unsupported"));
  CHECK_EQ(std::string(lorarar_version()), std::string("0.1.0"));
}

// A safetensors header length whose first bytes look like a pickle's (0x80
// 0x02: protocol 2) or a zip's ("PK") is still a safetensors file.
TEST(c_api_reads_safetensors_whose_length_bytes_look_like_a_pickle) {
  const std::string dir = make_temp_dir();
  for (const uint16_t first_bytes : {uint16_t{0x0280}, uint16_t{0x4B50}}) {
    std::vector<TestTensor> t;
    add_lora_layer(&t, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", 2,
                   16, 16, 1);
    std::vector<uint8_t> bytes;
    for (size_t pad = 0; pad < 20000; ++pad) {  // metadata padding until the length's low bytes are first_bytes
      bytes = make_safetensors(t, {{"pad", std::string(pad, 'x')}});
      if ((bytes[0] | bytes[1] << 8) == first_bytes) break;
    }
    CHECK_EQ(bytes[0] | bytes[1] << 8, int{first_bytes});
    const std::string path = dir + "/lora" + std::to_string(first_bytes) + ".safetensors";
    write_file(path, bytes);
    lorarar_lora* lora = nullptr;
    CHECK_EQ(lorarar_lora_load(path.c_str(), nullptr, &lora), LORARAR_OK);
    CHECK_EQ(lorarar_lora_num_layers(lora), size_t(1));
    lorarar_lora_free(lora);
  }
}

TEST(c_api_reads_peft_folders_with_adapter_config) {
  const std::string dir = make_temp_dir();
  std::vector<TestTensor> t;
  add_lora_layer(&t, std::string("base_model.model.") + kQ + ".lora_A.weight",
                 std::string("base_model.model.") + kQ + ".lora_B.weight", 4, 16, 16, 1);
  write_file(dir + "/adapter_model.safetensors", make_safetensors(t));
  write_file(dir + "/adapter_config.json", std::string(R"({"r": 4, "lora_alpha": 2, "peft_type": "LORA"})"));
  lorarar_lora* lora = nullptr;
  CHECK_EQ(lorarar_lora_load(dir.c_str(), nullptr, &lora), LORARAR_OK);
  lorarar_layer_info info;
  CHECK_EQ(lorarar_lora_layer(lora, 0, &info), LORARAR_OK);
  CHECK_NEAR(info.scale, 0.5, 0);
  lorarar_lora_free(lora);
  write_file(dir + "/adapter_config.json", std::string("{oops"));
  CHECK_EQ(lorarar_lora_load(dir.c_str(), nullptr, &lora), LORARAR_ERR_INVALID_FILE);
  CHECK_EQ(std::string(lorarar_last_error()),
           dir + "/adapter_config.json: invalid JSON at byte 1: expected a string key");
}
