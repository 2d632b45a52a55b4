#include "core/lora.h"
#include "harness.h"
#include "test_util.h"

using lorarar::BaseModel;
using lorarar::DType;
using lorarar::Error;
using lorarar::LoraFormat;
using lorarar::LoraModel;
using lorarar::LoraParseOptions;
using lorarar::SafetensorsView;
using lorarar::TargetLayer;
using lorarar::UNetBlockLayout;
using namespace lorarar_test;

namespace {

struct Parsed {
  std::vector<uint8_t> bytes;
  lorarar::Result<LoraModel> model = lorarar::Status(Error::kInternal, "unset");
};

// Keeps the bytes alive beside the model that views them.
std::unique_ptr<Parsed> parse(const std::vector<TestTensor>& tensors,
                              const std::map<std::string, std::string>& meta = {},
                              const LoraParseOptions& options = {}) {
  auto p = std::make_unique<Parsed>();
  p->bytes = make_safetensors(tensors, meta);
  auto view = SafetensorsView::parse(p->bytes.data(), p->bytes.size());
  if (!view.ok()) {
    p->model = view.status();
    return p;
  }
  p->model = lorarar::parse_lora(view.get(), options);
  return p;
}

const char* kQ = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";

// An SDXL-like base: 2 layers per block, attention in down blocks 1 and 2.
BaseModel sdxl_like_base() {
  std::vector<TargetLayer> t = {
      {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 640, 640, false},
      {"down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k", 640, 2048, false},
      {"down_blocks.2.attentions.1.transformer_blocks.9.attn1.to_out.0", 1280, 1280, false},
      {"mid_block.attentions.0.transformer_blocks.0.attn1.to_v", 1280, 1280, false},
      {"up_blocks.0.attentions.2.transformer_blocks.3.attn2.to_q", 1280, 1280, false},
      {"up_blocks.1.attentions.0.proj_in", 640, 640, false},
  };
  return BaseModel(t, UNetBlockLayout{{2, 2, 2}});
}

}  // namespace

TEST(lora_peft_keys_with_metadata_alpha) {
  std::vector<TestTensor> t;
  add_lora_layer(&t, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", 4, 32,
                 32, 1);
  auto p = parse(t, {{"lora_adapter_metadata", R"({"unet.lora_alpha": 8, "unet.r": 4})"}});
  CHECK(p->model.ok());
  const auto& m = p->model.get();
  CHECK_EQ(m.format, LoraFormat::kPeft);
  CHECK_EQ(m.layers.size(), size_t(1));
  CHECK_EQ(m.layers[0].module, std::string(kQ));
  CHECK_EQ(m.layers[0].rank, int64_t(4));
  CHECK_EQ(m.layers[0].in_features, int64_t(32));
  CHECK_NEAR(m.layers[0].alpha, 8.0, 0);
  CHECK_NEAR(m.layers[0].scale, 2.0, 0);
  CHECK(m.layers[0].alpha_in_file);
}

TEST(lora_alpha_defaults_to_rank_and_patterns_override) {
  std::vector<TestTensor> t;
  const std::string k = "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_k";
  add_lora_layer(&t, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", 4, 8,
                 8, 1);
  add_lora_layer(&t, k + ".lora_A.weight", k + ".lora_B.weight", 2, 8, 8, 3);
  auto plain = parse(t);
  CHECK(plain->model.ok());
  CHECK_NEAR(plain->model->layers[0].alpha, 4.0, 0);
  CHECK(!plain->model->layers[0].alpha_in_file);
  auto patterned =
      parse(t, {{"lora_adapter_metadata",
                 R"({"unet.lora_alpha": 4, "unet.alpha_pattern": {"attn1.to_k": 1}, "unet.use_rslora": true})"}});
  CHECK(patterned->model.ok());
  const auto* to_k = patterned->model->find("mid_block.attentions.0.transformer_blocks.0.attn1.to_k");
  CHECK(to_k != nullptr);
  CHECK_NEAR(to_k->alpha, 1.0, 0);
  CHECK_NEAR(to_k->scale, 1.0 / std::sqrt(2.0), 1e-7);  // rsLoRA: alpha / sqrt(r)
}

TEST(lora_legacy_diffusers_and_double_unet_prefix) {
  std::vector<TestTensor> t;
  add_lora_layer(&t, std::string("unet.unet.") + kQ + ".lora.down.weight",
                 std::string("unet.unet.") + kQ + ".lora.up.weight", 2, 8, 8, 5);
  auto p = parse(t);
  CHECK(p->model.ok());
  CHECK_EQ(p->model->format, LoraFormat::kDiffusersLegacy);
  CHECK_EQ(p->model->layers[0].module, std::string(kQ));
}

TEST(lora_attention_processor_names) {
  std::vector<TestTensor> t;
  const std::string base = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.";
  add_lora_layer(&t, base + "to_out_lora.down.weight", base + "to_out_lora.up.weight", 2, 8, 8, 5);
  auto p = parse(t);
  CHECK(p->model.ok());
  CHECK_EQ(p->model->layers[0].module, std::string("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"));
}

TEST(lora_kohya_sd1_names_from_vocabulary) {
  std::vector<TestTensor> t;
  const std::string k = "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0";
  add_lora_layer(&t, k + ".lora_down.weight", k + ".lora_up.weight", 4, 16, 16, 7, DType::kF16);
  t.push_back({k + ".alpha", DType::kF32, {}, {2.0f}});
  const std::string ff = "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj";
  add_lora_layer(&t, ff + ".lora_down.weight", ff + ".lora_up.weight", 4, 16, 64, 9, DType::kBF16);
  t.push_back({"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", DType::kF32, {1, 2}, {0, 0}});
  auto p = parse(t);
  CHECK(p->model.ok());
  CHECK_EQ(p->model->format, LoraFormat::kKohya);
  CHECK(p->model->find("up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0") != nullptr);
  const auto* ffl = p->model->find("mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj");
  CHECK(ffl != nullptr);
  CHECK_EQ(ffl->out_features, int64_t(64));
  CHECK_NEAR(p->model->find("up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0")->scale, 0.5, 0);
  CHECK_EQ(p->model->text_encoder_keys.size(), size_t(1));
}

TEST(lora_kohya_sdxl_ldm_names_map_through_the_block_layout) {
  const BaseModel base = sdxl_like_base();
  LoraParseOptions options;
  options.base = &base;
  struct Case {
    const char* kohya;
    const char* module;
    int64_t in, out;
  } cases[] = {
      // input_blocks 4,5 = down block 1 layers 0,1; 7,8 = down block 2.
      {"input_blocks_4_1_transformer_blocks_0_attn1_to_q", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
       640, 640},
      {"input_blocks_5_1_transformer_blocks_0_attn2_to_k", "down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k",
       2048, 640},
      {"input_blocks_8_1_transformer_blocks_9_attn1_to_out_0",
       "down_blocks.2.attentions.1.transformer_blocks.9.attn1.to_out.0", 1280, 1280},
      {"middle_block_1_transformer_blocks_0_attn1_to_v", "mid_block.attentions.0.transformer_blocks.0.attn1.to_v", 1280,
       1280},
      {"output_blocks_2_1_transformer_blocks_3_attn2_to_q", "up_blocks.0.attentions.2.transformer_blocks.3.attn2.to_q",
       1280, 1280},
      {"output_blocks_3_1_proj_in", "up_blocks.1.attentions.0.proj_in", 640, 640},
  };
  std::vector<TestTensor> t;
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const std::string k = std::string("lora_unet_") + c.kohya;
    add_lora_layer(&t, k + ".lora_down.weight", k + ".lora_up.weight", 2, c.in, c.out, seed += 2, DType::kF16);
  }
  auto p = parse(t, {}, options);
  CHECK(p->model.ok());
  if (!p->model.ok()) std::fprintf(stderr, "%s\n", p->model.status().message().c_str());
  for (const auto& c : cases) CHECK(p->model.ok() && p->model->find(c.module) != nullptr);
}

TEST(lora_rejects_what_it_cannot_apply) {
  auto one = [](const std::string& name, std::vector<int64_t> shape) {
    std::vector<TestTensor> t;
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    t.push_back({name, DType::kF32, shape, std::vector<float>(n, 0.1f)});
    return t;
  };
  CHECK_ERROR(parse(one("lora_unet_mid_block_resnets_0_conv1.hada_w1_a", {2, 2}))->model, Error::kUnsupported,
              "tensor \"lora_unet_mid_block_resnets_0_conv1.hada_w1_a\" is a LoHa (hada_*) tensor, which the engine "
              "does not apply");
  CHECK_ERROR(parse(one("lora_unet_mid_block_resnets_0_conv1.lokr_w1", {2, 2}))->model, Error::kUnsupported,
              "tensor \"lora_unet_mid_block_resnets_0_conv1.lokr_w1\" is a LoKr (lokr_*) tensor, which the engine does "
              "not apply");
  CHECK_ERROR(parse(one(std::string("unet.") + kQ + ".lora_magnitude_vector", {8}))->model, Error::kUnsupported,
              std::string("tensor \"unet.") + kQ +
                  ".lora_magnitude_vector\" is a DoRA magnitude tensor, which the engine does not apply");
  CHECK_ERROR(parse(one("unet.something.else", {2}))->model, Error::kUnsupported,
              "tensor \"unet.something.else\" is not a LoRA factor of a supported format");

  std::vector<TestTensor> locon;
  locon.push_back({"lora_unet_mid_block_resnets_0_conv1.lora_down.weight",
                   DType::kF32,
                   {2, 8, 3, 3},
                   std::vector<float>(144, 0.1f)});
  locon.push_back(
      {"lora_unet_mid_block_resnets_0_conv1.lora_up.weight", DType::kF32, {8, 2, 1, 1}, std::vector<float>(16, 0.1f)});
  CHECK_ERROR(parse(locon)->model, Error::kUnsupported,
              "layer \"lora_unet_mid_block_resnets_0_conv1\" is a convolutional LoRA (LoCon) with a 3x3 kernel, which "
              "the engine does not apply");

  std::vector<TestTensor> te_only = one("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {1, 2});
  CHECK_ERROR(parse(te_only)->model, Error::kUnsupported,
              "holds only text-encoder LoRA layers (1 tensors), which the engine does not apply");
  CHECK_ERROR(parse({})->model, Error::kInvalidFile, "holds no LoRA layers");

  std::vector<TestTensor> dora;
  add_lora_layer(&dora, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", 2,
                 8, 8, 1);
  CHECK_ERROR(parse(dora, {{"lora_adapter_metadata", R"({"unet.use_dora": true})"}})->model, Error::kUnsupported,
              "the adapter is DoRA (use_dora), which the engine does not apply");
}

TEST(lora_rejects_inconsistent_factors) {
  const std::string q = std::string("unet.") + kQ;
  std::vector<TestTensor> mismatch;
  mismatch.push_back({q + ".lora_A.weight", DType::kF32, {4, 8}, std::vector<float>(32, 0.1f)});
  mismatch.push_back({q + ".lora_B.weight", DType::kF32, {8, 3}, std::vector<float>(24, 0.1f)});
  CHECK_ERROR(parse(mismatch)->model, Error::kInvalidFile,
              "layer \"" + q + "\": A/B rank mismatch: down [4, 8] has rank 4, up [8, 3] has rank 3");

  std::vector<TestTensor> half;
  half.push_back({q + ".lora_A.weight", DType::kF32, {4, 8}, std::vector<float>(32, 0.1f)});
  CHECK_ERROR(parse(half)->model, Error::kInvalidFile, "layer \"" + q + "\" has a down factor but no up factor");

  std::vector<TestTensor> nan;
  add_lora_layer(&nan, q + ".lora_A.weight", q + ".lora_B.weight", 2, 8, 8, 1, DType::kF16);
  nan[1].values[5] = std::nanf("");
  CHECK_ERROR(parse(nan)->model, Error::kInvalidFile, "tensor \"" + q + ".lora_B.weight\" holds NaN at element 5");
  nan[1].values[5] = 1.0f;
  nan[0].values[15] = INFINITY;
  CHECK_ERROR(parse(nan)->model, Error::kInvalidFile, "tensor \"" + q + ".lora_A.weight\" holds Inf at element 15");

  std::vector<TestTensor> ints;
  ints.push_back({q + ".lora_A.weight", DType::kI32, {2, 8}, std::vector<float>(16, 0)});
  ints.push_back({q + ".lora_B.weight", DType::kF32, {8, 2}, std::vector<float>(16, 0)});
  CHECK_ERROR(parse(ints)->model, Error::kUnsupported,
              "tensor \"" + q + ".lora_A.weight\" has dtype I32; LoRA factors must be F32, F16 or BF16");
}

TEST(lora_checks_targets_against_the_base) {
  const BaseModel base = sdxl_like_base();
  LoraParseOptions options;
  options.base = &base;
  std::vector<TestTensor> missing;
  add_lora_layer(&missing, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
                 "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", 2, 8, 8, 1);
  CHECK_ERROR(
      parse(missing, {}, options)->model, Error::kNotFound,
      "targets \"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q\", which the base model does not have");
  std::vector<TestTensor> wrong;
  add_lora_layer(&wrong, std::string("unet.") + kQ + ".lora_A.weight", std::string("unet.") + kQ + ".lora_B.weight", 2,
                 320, 640, 1);
  CHECK_ERROR(parse(wrong, {}, options)->model, Error::kInvalidFile,
              "layer \"unet." + std::string(kQ) + "\": in/out features 320 -> 640 do not fit the base layer \"" + kQ +
                  "\" (640 -> 640)");
  std::vector<TestTensor> kohya_missing;
  add_lora_layer(&kohya_missing, "lora_unet_input_blocks_1_1_proj_in.lora_down.weight",
                 "lora_unet_input_blocks_1_1_proj_in.lora_up.weight", 2, 8, 8, 1);
  CHECK_ERROR(parse(kohya_missing, {}, options)->model, Error::kNotFound,
              "targets \"lora_unet_input_blocks_1_1_proj_in\", which the base model does not have");
}

TEST(module_names_vocabulary_and_ldm_edges) {
  auto d = lorarar::dotted_from_vocabulary("down_blocks_0_attentions_1_transformer_blocks_0_ff_net_2");
  CHECK(d.ok());
  CHECK_EQ(d.get(), std::string("down_blocks.0.attentions.1.transformer_blocks.0.ff.net.2"));
  CHECK(!lorarar::dotted_from_vocabulary("down_blocks_0_mystery_1").ok());
  CHECK(!lorarar::dotted_from_vocabulary("down_blocks_0_").ok());
  auto up = lorarar::ldm_to_diffusers_prefix("output_blocks_2_2_conv", UNetBlockLayout{{2, 2, 2}});
  CHECK(up.ok());
  CHECK_EQ(up.get(), std::string("up_blocks.0.upsamplers.0.conv"));
  CHECK(!lorarar::ldm_to_diffusers_prefix("input_blocks_99_1_proj_in", UNetBlockLayout{{2, 2, 2}}).ok());
  CHECK(!lorarar::ldm_to_diffusers_prefix("input_blocks_0_1_proj_in", UNetBlockLayout{{2, 2, 2}}).ok());
}
