#include "core/clip_tokenizer.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <unordered_map>
#include <utility>

#include "core/json.h"
#include "core/unicode.h"

namespace lorarar {

namespace {

constexpr const char* kBos = "<|startoftext|>";
constexpr const char* kEos = "<|endoftext|>";  // also the unknown token
constexpr const char* kEndOfWord = "</w>";

// GPT-2's reversible map from bytes to printable characters: printable
// Latin-1 bytes stand for themselves, the rest for U+0100 onwards in order.
const std::vector<std::string>& byte_symbols() {
  static const std::vector<std::string> symbols = [] {
    std::vector<std::string> out(256);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unicode::append_utf8(printable ? static_cast<char32_t>(b) : next++, &out[b]);
    }
    return out;
  }();
  return symbols;
}

Status invalid(std::string message) { return make_error(Error::kInvalidFile, std::move(message)); }

// One "a b" line of merges.txt, split as tokenizers does: exactly one space.
bool split_merge(std::string_view line, std::string_view* a, std::string_view* b) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) return false;
  *a = line.substr(0, space);
  *b = line.substr(space + 1);
  return true;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
}

bool starts_with(std::u32string_view s, size_t at, std::u32string_view prefix) {
  return s.size() - at >= prefix.size() && s.compare(at, prefix.size(), prefix) == 0;
}

}  // namespace

Result<ClipTokenizer> ClipTokenizer::create(std::string_view vocab_json, std::string_view merges_txt,
                                            const Options& options) {
  if (options.max_length < 2) {
    return make_error(Error::kInvalidArgument,
                      "max_length must be at least 2 (bos and eos), got " + std::to_string(options.max_length));
  }
  if (options.pad_token.empty()) return make_error(Error::kInvalidArgument, "the pad token is empty");

  auto parsed = json::parse(vocab_json);
  if (!parsed.ok()) return parsed.status().with_context("vocab.json");
  if (!parsed->is_object()) return invalid("vocab.json: not a JSON object of token ids");
  std::unordered_map<std::string_view, int32_t> vocab;
  vocab.reserve(parsed->as_object().size());
  for (const auto& [token, value] : parsed->as_object()) {
    if (!value.is_integer() || value.as_int() < 0 || value.as_int() > std::numeric_limits<int32_t>::max()) {
      return invalid("vocab.json: the id of " + json::quote(token) + " is not an integer in [0, 2^31)");
    }
    vocab.emplace(token, static_cast<int32_t>(value.as_int()));
  }
  auto find = [&](std::string_view token) {
    auto it = vocab.find(token);
    return it == vocab.end() ? -1 : it->second;
  };

  ClipTokenizer t;
  t.max_length_ = options.max_length;
  t.vocab_size_ = vocab.size();
  t.bos_id_ = find(kBos);
  t.eos_id_ = find(kEos);
  t.pad_id_ = find(options.pad_token);
  if (t.bos_id_ < 0) return invalid(std::string("vocab.json: no ") + kBos + " token");
  if (t.eos_id_ < 0) return invalid(std::string("vocab.json: no ") + kEos + " token");
  if (t.pad_id_ < 0) return invalid("vocab.json: no pad token " + json::quote(options.pad_token));
  // Matched verbatim in the raw text (the pad token too, as transformers adds it as a special token).
  for (const std::pair<std::string, int32_t>& special :
       {std::pair<std::string, int32_t>{kBos, t.bos_id_}, {kEos, t.eos_id_}, {options.pad_token, t.pad_id_}}) {
    std::u32string text = unicode::decode_utf8(special.first);
    const bool seen =
        std::any_of(t.specials_.begin(), t.specials_.end(), [&](const Special& s) { return s.text == text; });
    if (!seen) t.specials_.push_back({std::move(text), special.second});
  }
  for (int b = 0; b < 256; ++b) {
    t.byte_ids_[b] = find(byte_symbols()[b]);
    t.byte_end_ids_[b] = find(byte_symbols()[b] + kEndOfWord);
  }

  // merges.txt as tokenizers reads it: lines without their "\n" or "\r\n",
  // "#version" lines skipped, ranks counted over the other lines.
  if (!unicode::is_valid_utf8(merges_txt)) return invalid("merges.txt: invalid UTF-8");
  size_t pos = 0;
  int line_number = 0;
  int32_t rank = 0;
  std::string merged;
  while (pos < merges_txt.size()) {
    const size_t newline = merges_txt.find('\n', pos);
    std::string_view line = merges_txt.substr(pos, newline == std::string_view::npos ? newline : newline - pos);
    pos = newline == std::string_view::npos ? merges_txt.size() : newline + 1;
    if (newline != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_number;
    if (line.substr(0, 8) == "#version") continue;
    const std::string where = "merges.txt line " + std::to_string(line_number) + ": ";
    std::string_view a, b;
    if (!split_merge(line, &a, &b)) return invalid(where + "expected two tokens separated by one space");
    merged.assign(a);
    merged.append(b);
    for (std::string_view token : {a, b, std::string_view(merged)}) {
      if (find(token) < 0) return invalid(where + json::quote(std::string(token)) + " is not in vocab.json");
    }
    t.merges_.push_back({pair_key(find(a), find(b)), rank++, find(merged)});
  }
  // A pair listed twice keeps its last rank, as in tokenizers' hash map.
  std::stable_sort(t.merges_.begin(), t.merges_.end(), [](const Merge& x, const Merge& y) { return x.pair < y.pair; });
  std::vector<Merge> unique;
  unique.reserve(t.merges_.size());
  for (const Merge& m : t.merges_) {
    if (!unique.empty() && unique.back().pair == m.pair) {
      unique.back() = m;
    } else {
      unique.push_back(m);
    }
  }
  t.merges_ = std::move(unique);
  return t;
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view utf8_text) const {
  std::vector<int32_t> ids = encode_unpadded(utf8_text);
  ids.resize(static_cast<size_t>(max_length_), pad_id_);
  return ids;
}

std::vector<int32_t> ClipTokenizer::encode_unpadded(std::string_view utf8_text) const {
  const size_t before_eos = static_cast<size_t>(max_length_) - 1;
  std::vector<int32_t> ids{bos_id_};
  tokenize_into(utf8_text, before_eos, &ids);
  if (ids.size() > before_eos) ids.resize(before_eos);
  ids.push_back(eos_id_);
  return ids;
}

std::vector<int32_t> ClipTokenizer::tokenize(std::string_view utf8_text) const {
  std::vector<int32_t> ids;
  tokenize_into(utf8_text, std::numeric_limits<size_t>::max(), &ids);
  return ids;
}

void ClipTokenizer::tokenize_into(std::string_view utf8_text, size_t limit, std::vector<int32_t>* out) const {
  const std::u32string text = unicode::decode_utf8(utf8_text);
  size_t pos = 0;
  while (pos < text.size() && out->size() < limit) {
    // The leftmost special token, the longest where several start there.
    size_t at = text.size();
    const Special* found = nullptr;
    for (size_t i = pos; i < text.size() && !found; ++i) {
      for (const Special& s : specials_) {
        if (starts_with(text, i, s.text) && (!found || s.text.size() > found->text.size())) {
          found = &s;
          at = i;
        }
      }
    }
    split_words(std::u32string_view(text).substr(pos, at - pos), limit, out);
    if (!found) break;
    if (out->size() < limit) out->push_back(found->id);
    pos = at + found->text.size();
  }
}

void ClipTokenizer::split_words(std::u32string_view segment, size_t limit, std::vector<int32_t>* out) const {
  // Normalizers: NFC, whitespace runs to one space (no effect on the split
  // below, which drops whitespace anyway), lowercase.
  const std::u32string normalized = unicode::nfc(segment);
  std::u32string s;
  s.reserve(normalized.size());
  for (char32_t c : normalized) unicode::append_lowercase(c, &s);
  const std::u32string_view text = s;

  static constexpr std::u32string_view kLiterals[] = {U"startoftext", U"endoftext"};
  static constexpr std::u32string_view kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  size_t i = 0;
  while (i < text.size() && out->size() < limit) {
    const char32_t c = text[i];
    if (unicode::is_whitespace(c)) {
      ++i;
      continue;
    }
    // The regex's <|startoftext|> and <|endoftext|> alternatives, which the
    // byte-level pre-tokenizer then splits into "<|", the word, "|>".
    bool literal = false;
    for (std::u32string_view word : kLiterals) {
      if (c == '<' && starts_with(text, i + 1, U"|") && starts_with(text, i + 2, word) &&
          starts_with(text, i + 2 + word.size(), U"|>")) {
        bpe(text.substr(i, 2), out);
        bpe(word, out);
        bpe(text.substr(i + 2 + word.size(), 2), out);
        i += word.size() + 4;
        literal = true;
        break;
      }
    }
    if (literal) continue;
    size_t j = i + 1;
    const auto contraction = std::find_if(std::begin(kContractions), std::end(kContractions),
                                          [&](std::u32string_view p) { return starts_with(text, i, p); });
    if (contraction != std::end(kContractions)) {
      j = i + contraction->size();
    } else if (unicode::is_letter(c)) {
      while (j < text.size() && unicode::is_letter(text[j])) ++j;
    } else if (!unicode::is_number(c)) {  // a digit is a word of its own
      while (j < text.size() && !unicode::is_whitespace(text[j]) && !unicode::is_letter(text[j]) &&
             !unicode::is_number(text[j])) {
        ++j;
      }
    }
    bpe(text.substr(i, j - i), out);
    i = j;
  }
}

const ClipTokenizer::Merge* ClipTokenizer::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  auto it =
      std::lower_bound(merges_.begin(), merges_.end(), key, [](const Merge& m, uint64_t k) { return m.pair < k; });
  return it != merges_.end() && it->pair == key ? &*it : nullptr;
}

void ClipTokenizer::bpe(std::u32string_view word, std::vector<int32_t>* out) const {
  std::string bytes;
  for (char32_t c : word) unicode::append_utf8(c, &bytes);
  if (bytes.empty()) return;

  // tokenizers' merge loop, step for step (its queue order and its check for
  // stale entries decide ties between overlapping merges).
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols(bytes.size());
  for (size_t k = 0; k < bytes.size(); ++k) {
    const auto b = static_cast<uint8_t>(bytes[k]);
    const int32_t id = k + 1 == bytes.size() ? byte_end_ids_[b] : byte_ids_[b];
    symbols[k] = {id >= 0 ? id : eos_id_, static_cast<int>(k) - 1, k + 1 < bytes.size() ? static_cast<int>(k) + 1 : -1,
                  true};
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int left) {
    const int right = symbols[left].next;
    if (right < 0) return;
    if (const Merge* m = find_merge(symbols[left].id, symbols[right].id)) queue.push({m->rank, left, m->merged_id});
  };
  for (int k = 0; k + 1 < static_cast<int>(symbols.size()); ++k) push(k);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const Merge* m = find_merge(left.id, right.id);
    if (!m || m->merged_id != top.merged_id) continue;  // stale: a neighbour merged first
    left.id = top.merged_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out->push_back(s.id);
  }
}

}  // namespace lorarar
