#include "core/json.h"
#include "core/sha256.h"
#include "harness.h"

using lorarar::Error;
namespace json = lorarar::json;

TEST(json_parses_nested_values) {
  auto v = json::parse(R"( {"a": [1, -2.5e1, true, null, "x\u00e9\ud83d\ude00"], "b": {"c": 9007199254740993}} )");
  CHECK(v.ok());
  const auto& a = v->find("a")->as_array();
  CHECK_EQ(a.size(), size_t(5));
  CHECK(a[0].is_integer());
  CHECK_EQ(a[0].as_int(), int64_t(1));
  CHECK_NEAR(a[1].as_double(), -25.0, 0);
  CHECK(a[2].as_bool());
  CHECK(a[3].is_null());
  CHECK_EQ(a[4].as_string(), std::string("x\xc3\xa9\xf0\x9f\x98\x80"));
  // Integers beyond 2^53 stay exact.
  CHECK_EQ(v->find("b")->find("c")->as_int(), int64_t(9007199254740993LL));
}

TEST(json_round_trips_through_dump) {
  auto v = json::parse(R"({"k":[1,2.5,"q\"\n",{"z":false}]})");
  CHECK(v.ok());
  CHECK_EQ(v->dump(), std::string(R"({"k":[1,2.5,"q\"\n",{"z":false}]})"));
}

TEST(json_rejects_malformed_input_with_offsets) {
  CHECK_ERROR(json::parse(""), Error::kInvalidFile, "invalid JSON at byte 0: unexpected end of input");
  CHECK_ERROR(json::parse("{\"a\":1,}"), Error::kInvalidFile, "invalid JSON at byte 7: expected a string key");
  CHECK_ERROR(json::parse("{\"a\":1,\"a\":2}"), Error::kInvalidFile, "invalid JSON at byte 7: duplicate key \"a\"");
  CHECK_ERROR(json::parse("[1] x"), Error::kInvalidFile,
              "invalid JSON at byte 4: unexpected data after the JSON value");
  CHECK_ERROR(json::parse("\"\\ud800\""), Error::kInvalidFile,
              "invalid JSON at byte 7: unpaired surrogate in \\u escape");
  CHECK_ERROR(json::parse("01"), Error::kInvalidFile, "invalid JSON at byte 1: unexpected data after the JSON value");
  CHECK_ERROR(json::parse("\"\xff\""), Error::kInvalidFile, "invalid JSON at byte 1: invalid UTF-8 in a string");
  CHECK_ERROR(json::parse("\"a\tb\""), Error::kInvalidFile, "invalid JSON at byte 2: control character in a string");
}

TEST(json_limits_nesting_depth) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  CHECK_ERROR(json::parse(deep), Error::kInvalidFile, "invalid JSON at byte 65: nesting deeper than 64");
  std::string ok(60, '[');
  ok += std::string(60, ']');
  CHECK(json::parse(ok).ok());
}

// FIPS 180-4 test vectors.
TEST(sha256_matches_the_standard_vectors) {
  CHECK_EQ(lorarar::sha256_hex("", 0), std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  CHECK_EQ(lorarar::sha256_hex("abc", 3),
           std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK_EQ(lorarar::sha256_hex(two.data(), two.size()),
           std::string("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  lorarar::Sha256 streamed;
  const std::string million(1000000, 'a');
  for (size_t i = 0; i < million.size(); i += 997)
    streamed.update(million.data() + i, std::min<size_t>(997, million.size() - i));
  CHECK_EQ(streamed.hex(), std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}
