#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/clip_tokenizer.h"
#include "core/json.h"
#include "core/unicode.h"
#include "harness.h"

using lorarar::ClipTokenizer;
using lorarar::Error;
namespace unicode = lorarar::unicode;

namespace {

// GPT-2's byte symbols, written out independently of the tokenizer's table.
std::string byte_symbol(int b) {
  int n = 0;
  for (int x = 0; x < b; ++x) {
    const bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174);
    if (!printable) ++n;
  }
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
  std::string out;
  unicode::append_utf8(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n), &out);
  return out;
}

// A CLIP-layout vocabulary: the 256 byte symbols, the same with "</w>", one
// token per merge, then <|startoftext|> and <|endoftext|>.
struct Vocab {
  std::map<std::string, int> ids;
  std::string json, merges = "#version: 0.2\n";

  explicit Vocab(const std::vector<std::pair<std::string, std::string>>& merge_list, bool with_specials = true) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(byte_symbol(b));
    for (int b = 0; b < 256; ++b) tokens.push_back(byte_symbol(b) + "</w>");
    for (const auto& [a, b] : merge_list) {
      tokens.push_back(a + b);
      merges += a + " " + b + "\n";
    }
    if (with_specials) {
      tokens.push_back("<|startoftext|>");
      tokens.push_back("<|endoftext|>");
    }
    lorarar::json::Value::Object object;
    for (const auto& t : tokens) {
      if (ids.count(t)) continue;
      ids[t] = static_cast<int>(ids.size());
      object.emplace_back(t, lorarar::json::Value::integer(ids[t]));
    }
    json = lorarar::json::Value::object(object).dump();
  }
  int operator[](const std::string& token) const { return ids.at(token); }
};

const Vocab& photo_vocab() {
  static const Vocab v({{"c", "a"},
                        {"ca", "t</w>"},
                        {"p", "h"},
                        {"o", "t"},
                        {"ph", "ot"},
                        {"phot", "o</w>"},
                        {"o", "f</w>"},
                        {"i", "t"},
                        {"'", "s</w>"},
                        {byte_symbol(0xC3), byte_symbol(0xA9)},  // "é" is the symbols of its two bytes
                        {byte_symbol(0xC3) + byte_symbol(0xA9), "t</w>"}});
  return v;
}

ClipTokenizer make(const Vocab& v, ClipTokenizer::Options options = {}) {
  auto t = ClipTokenizer::create(v.json, v.merges, options);
  CHECK(t.ok());
  if (!t.ok()) std::fprintf(stderr, "%s\n", t.status().message().c_str());
  return std::move(t).get();
}

std::vector<int32_t> ids(std::initializer_list<int> list) { return std::vector<int32_t>(list.begin(), list.end()); }

std::string utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) unicode::append_utf8(c, &out);
  return out;
}

}  // namespace

TEST(utf8_decoding_replaces_maximal_ill_formed_subparts) {
  CHECK(unicode::decode_utf8("a\xc3\xa9\xf0\x9f\x98\x80") == std::u32string(U"a\u00e9\U0001F600"));
  CHECK(unicode::decode_utf8("\xff") == std::u32string(U"\uFFFD"));
  CHECK(unicode::decode_utf8("\xf0\x9f\x98") == std::u32string(U"\uFFFD"));              // truncated: one
  CHECK(unicode::decode_utf8("\xf0\x9f\x98z") == std::u32string(U"\uFFFDz"));            // then resumes
  CHECK(unicode::decode_utf8("\xe0\x80\x80") == std::u32string(U"\uFFFD\uFFFD\uFFFD"));  // overlong
  CHECK(unicode::decode_utf8("\xed\xa0\x80") == std::u32string(U"\uFFFD\uFFFD\uFFFD"));  // a surrogate
  CHECK(unicode::decode_utf8("\xf4\x90\x80\x80") == std::u32string(U"\uFFFD\uFFFD\uFFFD\uFFFD"));
  CHECK(unicode::decode_utf8("\xc2") == std::u32string(U"\uFFFD"));
  CHECK(unicode::decode_utf8(std::string("a\0b", 3)) == std::u32string(U"a\0b", 3));
  CHECK(unicode::is_valid_utf8("\xf4\x8f\xbf\xbf"));
  CHECK(!unicode::is_valid_utf8("\xc0\xaf"));
}

TEST(unicode_classes_and_lowercase) {
  CHECK(unicode::is_letter(U'\u00e9') && unicode::is_letter(U'\u4e2d') && unicode::is_letter(U'\u03a9'));
  CHECK(!unicode::is_letter(U'\u0301') && !unicode::is_letter(U'1') && !unicode::is_letter(U'\U0001F600'));
  CHECK(unicode::is_number(U'\u0663') && unicode::is_number(U'\u00bd') && unicode::is_number(U'\u2168'));
  CHECK(unicode::is_whitespace(U'\u00a0') && unicode::is_whitespace(U'\u3000') && unicode::is_whitespace(U'\u2028'));
  CHECK(!unicode::is_whitespace(U'\u001c') && !unicode::is_whitespace(U'\u200b'));
  auto lower = [](std::u32string_view s) {
    std::u32string out;
    for (char32_t c : s) unicode::append_lowercase(c, &out);
    return out;
  };
  CHECK(lower(U"ABC\u00c9\u0100\u0101\u03a3\u0416") == std::u32string(U"abc\u00e9\u0101\u0101\u03c3\u0436"));
  CHECK(lower(U"\u0130") == std::u32string(U"i\u0307"));         // to two code points
  CHECK(lower(U"\u1e9e") == std::u32string(U"\u00df"));          // capital sharp s
  CHECK(lower(U"\U00010d50") == std::u32string(U"\U00010d70"));  // Garay, Unicode 16.0
}

TEST(nfc_composes_reorders_and_handles_hangul) {
  CHECK(unicode::nfc(U"e\u0301") == std::u32string(U"\u00e9"));
  CHECK(unicode::nfc(U"\u00e9") == std::u32string(U"\u00e9"));
  // U+0316 (class 220) sorts before U+0301 (230) and does not block it.
  CHECK(unicode::nfc(U"a\u0301\u0316") == std::u32string(U"\u00e1\u0316"));
  CHECK(unicode::nfc(U"e\u0302\u0301") == std::u32string(U"\u1ebf"));  // two marks in turn
  CHECK(unicode::nfc(U"\u1100\u1161\u11a8") == std::u32string(U"\uac01"));
  CHECK(unicode::nfc(U"\uac00\u11a8") == std::u32string(U"\uac01"));
  CHECK(unicode::nfc(U"\u212b") == std::u32string(U"\u00c5"));        // singleton
  CHECK(unicode::nfc(U"\u0958") == std::u32string(U"\u0915\u093c"));  // composition exclusion
  CHECK(unicode::nfc(U"\u0301e") == std::u32string(U"\u0301e"));      // no starter before the mark
  CHECK(unicode::nfc(U"\U00011935\U00011930") == std::u32string(U"\U00011935\U00011930"));  // Unicode 13.0
}

TEST(clip_tokenizer_encodes_words_with_merges) {
  const Vocab& v = photo_vocab();
  const ClipTokenizer t = make(v);
  CHECK_EQ(t.vocab_size(), v.ids.size());
  CHECK_EQ(t.bos_id(), v["<|startoftext|>"]);
  CHECK_EQ(t.eos_id(), v["<|endoftext|>"]);
  CHECK_EQ(t.pad_id(), t.eos_id());
  const int bos = t.bos_id(), eos = t.eos_id();
  CHECK(t.encode_unpadded("a photo of a cat") ==
        ids({bos, v["a</w>"], v["photo</w>"], v["of</w>"], v["a</w>"], v["cat</w>"], eos}));
  // Case, whitespace runs and the kinds of space do not matter.
  CHECK(t.encode_unpadded("  A\tPHOTO\n\u00a0of\u3000A cAt ") == t.encode_unpadded("a photo of a cat"));
  CHECK(t.encode_unpadded("") == ids({bos, eos}));
  const std::vector<int32_t> padded = t.encode("a cat");
  CHECK_EQ(padded.size(), size_t(77));
  CHECK(std::vector<int32_t>(padded.begin(), padded.begin() + 4) == ids({bos, v["a</w>"], v["cat</w>"], eos}));
  CHECK(std::all_of(padded.begin() + 4, padded.end(), [&](int32_t id) { return id == eos; }));
}

TEST(clip_tokenizer_splits_like_the_clip_regex) {
  const Vocab& v = photo_vocab();
  const ClipTokenizer t = make(v);
  // Contractions, single digits, punctuation runs.
  CHECK(t.tokenize("it's") == ids({v["i"], v["t</w>"], v["'s</w>"]}));
  CHECK(t.tokenize("12") == ids({v["1</w>"], v["2</w>"]}));
  CHECK(t.tokenize("a1b") == ids({v["a</w>"], v["1</w>"], v["b</w>"]}));
  CHECK(t.tokenize("?!'s") == ids({v["?"], v["!"], v["'</w>"], v["s</w>"]}));
  CHECK(t.tokenize("cat's") == ids({v["cat</w>"], v["'s</w>"]}));
  // A combining mark that does not compose is a word of its own (not a letter).
  CHECK(t.tokenize("x\u0301") == ids({v["x</w>"], v[byte_symbol(0xCC)], v[byte_symbol(0x81) + "</w>"]}));
  // Precomposed and combining forms are the same after NFC.
  CHECK(t.tokenize("e\u0301t") == t.tokenize("\u00e9t"));
  CHECK(t.tokenize("\u00e9t") == ids({v[byte_symbol(0xC3) + byte_symbol(0xA9) + "t</w>"]}));
  CHECK(t.tokenize("\u00c9T") == ids({v[byte_symbol(0xC3) + byte_symbol(0xA9) + "t</w>"]}));
  // U+001C is not whitespace for the regex: a punctuation word.
  CHECK(t.tokenize("a\x1c") == ids({v["a</w>"], v[byte_symbol(0x1c) + "</w>"]}));
}

TEST(clip_tokenizer_special_tokens_in_text) {
  const Vocab& v = photo_vocab();
  const ClipTokenizer t = make(v);
  const int bos = t.bos_id(), eos = t.eos_id();
  // Verbatim special tokens are cut out of the raw text.
  CHECK(t.tokenize("a<|endoftext|>cat") == ids({v["a</w>"], eos, v["cat</w>"]}));
  CHECK(t.tokenize("<|startoftext|><|startoftext|>") == ids({bos, bos}));
  // Any other spelling goes through normalization and is split into "<|", the word, "|>".
  std::vector<int32_t> expected = {v["<"], v["|</w>"]};
  for (char c : std::string("startoftex")) expected.push_back(v[std::string(1, c)]);
  expected.push_back(v["t</w>"]);
  expected.push_back(v["|"]);
  expected.push_back(v["></w>"]);
  CHECK(t.tokenize("<|STARTOFTEXT|>") == expected);
  CHECK(t.tokenize("<|startoftext|") == ids({v["<"], v["|</w>"], v["s"], v["t"], v["a"], v["r"], v["t"], v["o"], v["f"],
                                             v["t"], v["e"], v["x"], v["t</w>"], v["|</w>"]}));
}

TEST(clip_tokenizer_custom_pad_token) {
  const Vocab& v = photo_vocab();
  ClipTokenizer::Options options;
  options.pad_token = "!";
  options.max_length = 6;
  const ClipTokenizer t = make(v, options);
  CHECK_EQ(t.pad_id(), v["!"]);
  // As in transformers, the pad token is special: "!" in text is its id.
  CHECK(t.encode("cat!") == ids({t.bos_id(), v["cat</w>"], v["!"], t.eos_id(), v["!"], v["!"]}));
  CHECK_EQ(t.max_length(), 6);
}

TEST(clip_tokenizer_truncates_keeping_eos_last) {
  const Vocab& v = photo_vocab();
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "cat ";
  const ClipTokenizer t = make(v);
  const auto padded = t.encode(prompt);
  const auto unpadded = t.encode_unpadded(prompt);
  CHECK(padded == unpadded);
  CHECK_EQ(padded.size(), size_t(77));
  CHECK_EQ(padded.front(), t.bos_id());
  CHECK_EQ(padded.back(), t.eos_id());
  CHECK_EQ(padded[75], v["cat</w>"]);
  CHECK_EQ(t.tokenize(prompt).size(), size_t(100));
  // Truncation may cut a word's tokens.
  ClipTokenizer::Options options;
  options.max_length = 3;
  CHECK(make(v, options).encode("xyz") == ids({t.bos_id(), v["x"], t.eos_id()}));
  options.max_length = 2;
  CHECK(make(v, options).encode("xyz") == ids({t.bos_id(), t.eos_id()}));
}

TEST(clip_tokenizer_bpe_order_and_unknown_symbols) {
  // Lowest rank first; on equal pairs the leftmost.
  const Vocab v({{"a", "a"}, {"a", "a</w>"}});
  const ClipTokenizer t = make(v);
  CHECK(t.tokenize("aaa") == ids({v["aa"], v["a</w>"]}));
  CHECK(t.tokenize("aaaa") == ids({v["aa"], v["aa</w>"]}));
  // A pair listed twice keeps its last rank.
  const Vocab w({{"b", "c"}, {"a", "b"}, {"b", "c"}});
  CHECK(make(w).tokenize("abc") == ids({w["ab"], w["c</w>"]}));
  const Vocab u({{"a", "b"}, {"b", "c"}});
  CHECK(make(u).tokenize("abc") == ids({u["ab"], u["c</w>"]}));
  // A symbol missing from the vocabulary is the unknown token, <|endoftext|>.
  Vocab partial({});
  partial.json = R"({"a": 0, "b</w>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3})";
  const ClipTokenizer p = make(partial);
  CHECK(p.tokenize("ab") == ids({0, 1}));
  CHECK(p.tokenize("ba") == ids({3, 3}));
  CHECK(p.tokenize("\xc3\xa9") == ids({3, 3}));
}

TEST(clip_tokenizer_never_fails_on_bad_text) {
  const ClipTokenizer t = make(photo_vocab());
  const Vocab& v = photo_vocab();
  // Ill-formed UTF-8 becomes U+FFFD (bytes EF BF BD), a punctuation word.
  const std::vector<int32_t> fffd = {v[byte_symbol(0xEF)], v[byte_symbol(0xBF)], v[byte_symbol(0xBD) + "</w>"]};
  CHECK(t.tokenize("\xff") == fffd);
  CHECK(t.tokenize("\xef\xbf\xbd") == fffd);
  // C0 AF is two ill-formed bytes: two replacement characters.
  const std::vector<int32_t> two = {v["a</w>"], fffd[0], fffd[1], v[byte_symbol(0xBD)],
                                    fffd[0],    fffd[1], fffd[2], v["b</w>"]};
  CHECK(t.tokenize("a\xc0\xaf"
                   "b") == two);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  CHECK_EQ(t.encode(all).size(), size_t(77));
  CHECK_EQ(t.encode(std::string(100000, '\xcc')).size(), size_t(77));
  CHECK_EQ(t.tokenize(std::string(3000, 'q')).size(), size_t(3000));
  const std::u32string marks(500, U'\u0301');
  const std::vector<int32_t> with_marks = t.encode_unpadded(utf8(U"a" + marks));
  CHECK_EQ(with_marks.size(), size_t(77));
  CHECK_EQ(with_marks.back(), t.eos_id());
}

TEST(clip_tokenizer_rejects_bad_files) {
  const Vocab& v = photo_vocab();
  CHECK_ERROR(ClipTokenizer::create("[1]", v.merges), Error::kInvalidFile,
              "vocab.json: not a JSON object of token ids");
  CHECK_ERROR(ClipTokenizer::create("{", v.merges), Error::kInvalidFile,
              "vocab.json: invalid JSON at byte 1: expected a string key");
  CHECK_ERROR(ClipTokenizer::create(R"({"a": 1.5})", ""), Error::kInvalidFile,
              "vocab.json: the id of \"a\" is not an integer in [0, 2^31)");
  CHECK_ERROR(ClipTokenizer::create(R"({"a": -1})", ""), Error::kInvalidFile,
              "vocab.json: the id of \"a\" is not an integer in [0, 2^31)");
  CHECK_ERROR(ClipTokenizer::create(R"({"a": 1, "a": 2})", ""), Error::kInvalidFile,
              "vocab.json: invalid JSON at byte 9: duplicate key \"a\"");
  CHECK_ERROR(ClipTokenizer::create(R"({"<|endoftext|>": 0})", ""), Error::kInvalidFile,
              "vocab.json: no <|startoftext|> token");
  CHECK_ERROR(ClipTokenizer::create(R"({"<|startoftext|>": 0})", ""), Error::kInvalidFile,
              "vocab.json: no <|endoftext|> token");
  ClipTokenizer::Options options;
  options.pad_token = "<pad>";
  CHECK_ERROR(ClipTokenizer::create(v.json, v.merges, options), Error::kInvalidFile,
              "vocab.json: no pad token \"<pad>\"");
  options.pad_token = "";
  CHECK_ERROR(ClipTokenizer::create(v.json, v.merges, options), Error::kInvalidArgument, "the pad token is empty");
  options = {};
  options.max_length = 1;
  CHECK_ERROR(ClipTokenizer::create(v.json, v.merges, options), Error::kInvalidArgument,
              "max_length must be at least 2 (bos and eos), got 1");

  CHECK_ERROR(ClipTokenizer::create(v.json, "#version: 0.2\nc a\n\n"), Error::kInvalidFile,
              "merges.txt line 3: expected two tokens separated by one space");
  CHECK_ERROR(ClipTokenizer::create(v.json, "#version: 0.2\nc a \n"), Error::kInvalidFile,
              "merges.txt line 2: expected two tokens separated by one space");
  CHECK_ERROR(ClipTokenizer::create(v.json, "c a\nq z\n"), Error::kInvalidFile,
              "merges.txt line 2: \"qz\" is not in vocab.json");
  CHECK_ERROR(ClipTokenizer::create(v.json, "c @@\n"), Error::kInvalidFile,
              "merges.txt line 1: \"@@\" is not in vocab.json");
  CHECK_ERROR(ClipTokenizer::create(v.json, "# comment\n"), Error::kInvalidFile,
              "merges.txt line 1: \"comment\" is not in vocab.json");
  CHECK_ERROR(ClipTokenizer::create(v.json, "c a\n\xff\n"), Error::kInvalidFile, "merges.txt: invalid UTF-8");
  // Accepted as transformers accepts them: CRLF lines, no version line, no final newline.
  CHECK(ClipTokenizer::create(v.json, "#version: 0.2\r\nc a\r\nca t</w>").ok());
  CHECK(ClipTokenizer::create(v.json, "").ok());
}
