// libFuzzer target for the CLIP tokenizer: arbitrary bytes as prompts, as
// merges.txt and as vocab.json. The first byte picks what the rest is and the
// options; whatever builds must encode any prompt and keep the invariants
// below. Built by `make fuzz` with clang-14; seeds in
// tests/fuzz/corpus_clip_tokenizer.
//   mode 0: rest = a prompt for a fixed small tokenizer
//   mode 1: rest = merges.txt for the fixed vocabulary, then a prompt
//   mode 2: rest = vocab.json NUL merges.txt, then a prompt
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clip_tokenizer.h"
#include "core/json.h"
#include "core/unicode.h"

namespace {

// The byte symbols, the same with "</w>", a few merges, the special tokens.
const std::string& fixed_vocab() {
  static const std::string json = [] {
    lorarar::json::Value::Object vocab;
    std::vector<std::string> tokens;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      std::string s;
      lorarar::unicode::append_utf8(printable ? static_cast<char32_t>(b) : next++, &s);
      tokens.push_back(s);
    }
    for (int b = 0; b < 256; ++b) tokens.push_back(tokens[b] + "</w>");
    for (const char* t : {"ca", "cat</w>", "ph", "ot", "phot", "photo</w>", "aa", "aa</w>", "'s</w>", "<|startoftext|>",
                          "<|endoftext|>"}) {
      tokens.push_back(t);
    }
    for (const auto& t : tokens)
      vocab.emplace_back(t, lorarar::json::Value::integer(static_cast<int64_t>(vocab.size())));
    return lorarar::json::Value::object(vocab).dump();
  }();
  return json;
}

constexpr std::string_view kFixedMerges =
    "#version: 0.2\nc a\nca t</w>\np h\no t\nph ot\nphot o</w>\na a\na a</w>\n' s</w>\n";

void check(bool ok) {
  if (!ok) std::abort();
}

void exercise(const lorarar::ClipTokenizer& t, std::string_view text) {
  const size_t max_length = static_cast<size_t>(t.max_length());
  const std::vector<int32_t> padded = t.encode(text);
  const std::vector<int32_t> ids = t.encode_unpadded(text);
  const std::vector<int32_t> tokens = t.tokenize(text);
  check(padded.size() == max_length);
  check(ids.size() >= 2 && ids.size() <= max_length);
  check(ids.front() == t.bos_id() && ids.back() == t.eos_id());
  check(std::equal(ids.begin(), ids.end(), padded.begin()));
  for (size_t i = ids.size(); i < max_length; ++i) check(padded[i] == t.pad_id());
  // Truncation keeps a prefix of the untruncated tokens.
  check(ids.size() - 2 == std::min(tokens.size(), max_length - 2));
  check(std::equal(ids.begin() + 1, ids.end() - 1, tokens.begin()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  lorarar::ClipTokenizer::Options options;
  options.max_length = 2 + data[0] / 3 % 76;
  if (data[0] >= 228) options.pad_token = "!";
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  if (mode == 0) {
    // The fixed tokenizers are built once per options.
    static std::vector<std::optional<lorarar::ClipTokenizer>> fixed(2 * 76);
    auto& t = fixed[static_cast<size_t>(data[0] / 3)];
    if (!t) {
      auto built = lorarar::ClipTokenizer::create(fixed_vocab(), kFixedMerges, options);
      check(built.ok());
      t = std::move(built).get();
    }
    exercise(*t, rest);
    return 0;
  }
  std::string_view vocab = fixed_vocab(), merges = rest;
  if (mode == 2) {
    const size_t nul = rest.find('\0');
    vocab = rest.substr(0, nul);
    merges = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  auto tokenizer = lorarar::ClipTokenizer::create(vocab, merges, options);
  if (!tokenizer.ok()) return 0;
  exercise(tokenizer.get(), rest);
  exercise(tokenizer.get(), "A photo of a cat's <|endoftext|> caf\xc3\xa9 \xff 12");
  return 0;
}
