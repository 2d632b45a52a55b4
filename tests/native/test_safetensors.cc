#include <cstring>

#include "core/safetensors.h"
#include "harness.h"
#include "test_util.h"

using lorarar::DType;
using lorarar::Error;
using lorarar::SafetensorsView;
using namespace lorarar_test;

namespace {

std::vector<uint8_t> raw(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  for (size_t i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  s += header;
  s.append(data_bytes, '\0');
  return std::vector<uint8_t>(s.begin(), s.end());
}

lorarar::Result<SafetensorsView> parse(const std::vector<uint8_t>& b) {
  return SafetensorsView::parse(b.data(), b.size());
}

}  // namespace

TEST(safetensors_reads_tensors_and_metadata) {
  auto bytes = make_safetensors({{"a", DType::kF32, {2, 3}, {1, 2, 3, 4, 5, 6}},
                                 {"b", DType::kF16, {2}, {0.5f, -2.0f}},
                                 {"c", DType::kBF16, {1}, {3.0f}}},
                                {{"format", "pt"}});
  auto v = parse(bytes);
  CHECK(v.ok());
  CHECK_EQ(v->tensors().size(), size_t(3));
  CHECK_EQ(v->metadata().at("format"), std::string("pt"));
  const auto* a = v->find("a");
  CHECK(a != nullptr);
  CHECK_EQ(a->shape_string(), std::string("[2, 3]"));
  CHECK_NEAR(a->at(5), 6.0, 0);
  CHECK_NEAR(v->find("b")->at(1), -2.0, 0);
  CHECK_NEAR(v->find("c")->at(0), 3.0, 0);
  CHECK_EQ(v->data_offset() % 8, size_t(0));
}

TEST(safetensors_reports_each_structural_error) {
  CHECK_ERROR(parse({}), Error::kInvalidFile, "file is empty");
  CHECK_ERROR(parse({1, 2, 3}), Error::kInvalidFile,
              "file is truncated: 3 bytes, shorter than the 8-byte header length");
  auto big = raw("{}", 0);
  big[0] = 0xff;
  big[3] = 0x7f;
  CHECK_ERROR(parse(big), Error::kInvalidFile, "header length 2130706687 runs past the end of the file (10 bytes)");
  CHECK_ERROR(parse(raw("not json", 0)), Error::kInvalidFile,
              "header is not JSON (invalid JSON at byte 0: invalid literal)");
  CHECK_ERROR(parse(raw("[1]", 0)), Error::kInvalidFile, "header is not a JSON object");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", 4)), Error::kInvalidFile,
              "tensor \"t\": unknown dtype \"F12\"");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", 12)), Error::kInvalidFile,
              "tensor \"t\": shape [2] of F32 needs 8 bytes but data_offsets span 12");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)), Error::kInvalidFile,
              "tensor \"t\": data_offsets [0, 8) out of range (data section is 4 bytes)");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)), Error::kInvalidFile,
              "tensor \"t\": shape has a negative or non-integer dimension");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4)), Error::kInvalidFile,
              "tensor \"t\": data_offsets end before they begin");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[1]}})", 4)), Error::kInvalidFile,
              "tensor \"t\": data_offsets is not a [begin, end] pair");
  CHECK_ERROR(parse(raw(R"({"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12)),
              Error::kInvalidFile, "tensors \"u\" and \"v\" overlap");
  CHECK_ERROR(parse(raw(R"({"__metadata__":{"a":1}})", 0)), Error::kInvalidFile,
              "__metadata__ value for \"a\" is not a string");
  CHECK_ERROR(parse(raw(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})", 4)),
              Error::kInvalidFile, "tensor \"t\": shape overflows");
}

TEST(safetensors_accepts_empty_tensors_sharing_offsets) {
  auto v = parse(raw(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                     R"("t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                     4));
  CHECK(v.ok());
}

TEST(safetensors_layout_pads_header_to_eight_bytes) {
  for (const char* name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"}) {
    auto layout = lorarar::safetensors_layout({{name, DType::kF16, {3}}}, {});
    CHECK_EQ(layout.header.size() % 8, size_t(0));
    CHECK_EQ(layout.data_bytes, size_t(6));
  }
}
