#include "core/unicode.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/unicode_tables.h"

namespace lorarar::unicode {

namespace tables = unicode_tables;

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// The last entry of a table sorted by `first` whose first <= c, or nullptr.
template <typename T>
const T* find_entry(const T* table, size_t size, char32_t c) {
  const T* end = table + size;
  const T* it = std::upper_bound(table, end, c, [](char32_t v, const T& e) { return v < e.first; });
  return it == table ? nullptr : it - 1;
}

bool in_ranges(const tables::Range* table, size_t size, char32_t c) {
  const tables::Range* r = find_entry(table, size, c);
  return r && c <= r->last;
}

// Decodes one well-formed sequence at bytes[*i], advancing *i past it; on an
// ill-formed one, advances past its maximal subpart (at least one byte) and
// returns false.
bool decode_one(std::string_view bytes, size_t* i, char32_t* out) {
  const size_t n = bytes.size();
  const auto lead = static_cast<uint8_t>(bytes[*i]);
  ++*i;
  if (lead < 0x80) {
    *out = lead;
    return true;
  }
  int need = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte (Unicode's table 3-7)
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return false;
  }
  for (int k = 0; k < need; ++k) {
    if (*i >= n) return false;
    const auto b = static_cast<uint8_t>(bytes[*i]);
    if (b < lo || b > hi) return false;
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
    ++*i;
  }
  *out = cp;
  return true;
}

// Hangul syllables compose and decompose algorithmically.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(char32_t c, std::u32string* out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out->push_back(kTBase + s % kTCount);
    return;
  }
  const tables::Decomposition* end = tables::kDecompositions + tables::kDecompositionsSize;
  const tables::Decomposition* d = std::lower_bound(
      tables::kDecompositions, end, c, [](const tables::Decomposition& e, char32_t v) { return e.cp < v; });
  if (d != end && d->cp == c) {
    out->append(tables::kDecompositionData + d->offset, tables::kDecompositionData + d->offset + d->length);
  } else {
    out->push_back(c);
  }
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const tables::Composition* end = tables::kCompositions + tables::kCompositionsSize;
  const tables::Composition* it =
      std::lower_bound(tables::kCompositions, end, std::make_pair(a, b), [](const tables::Composition& e, auto v) {
        return e.first < v.first || (e.first == v.first && e.second < v.second);
      });
  return it != end && it->first == a && it->second == b ? it->composed : 0;
}

}  // namespace

std::u32string decode_utf8(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    char32_t c;
    out.push_back(decode_one(bytes, &i, &c) ? c : kReplacement);
  }
  return out;
}

bool is_valid_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    char32_t c;
    if (!decode_one(bytes, &i, &c)) return false;
  }
  return true;
}

void append_utf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return in_ranges(tables::kLetters, tables::kLettersSize, c);
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(tables::kNumbers, tables::kNumbersSize, c);
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return in_ranges(tables::kWhitespace, tables::kWhitespaceSize, c);
}

void append_lowercase(char32_t c, std::u32string* out) {
  if (c < 0x80) {
    out->push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  for (size_t i = 0; i < tables::kLowercaseSpecialSize; ++i) {
    const tables::LowercaseSpecial& s = tables::kLowercaseSpecial[i];
    if (s.cp != c) continue;
    for (uint32_t l : s.lower) {
      if (l) out->push_back(l);
    }
    return;
  }
  const tables::LowercaseRange* r = find_entry(tables::kLowercase, tables::kLowercaseSize, c);
  if (r && c <= r->last && (c - r->first) % r->stride == 0) {
    out->push_back(static_cast<char32_t>(static_cast<int64_t>(c) + r->offset));
  } else {
    out->push_back(c);
  }
}

int combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const tables::CombiningClassRange* r = find_entry(tables::kCombiningClasses, tables::kCombiningClassesSize, c);
  return r && c <= r->last ? r->ccc : 0;
}

std::u32string nfc(std::u32string_view text) {
  // Below U+0300 nothing decomposes, combines or composes.
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(text);

  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t c : text) decompose(c, &d);

  // Canonical ordering: a stable sort of each run of non-starters by class.
  std::vector<std::pair<int, char32_t>> run;
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    run.clear();
    for (; j < d.size(); ++j) {
      const int ccc = combining_class(d[j]);
      if (ccc == 0) break;
      run.emplace_back(ccc, d[j]);
    }
    std::stable_sort(run.begin(), run.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (size_t k = 0; k < run.size(); ++k) d[i + k] = run[k].second;
    i = j;
  }

  // Composition: each character joins the last starter unless something in
  // between blocks it (a starter, or a mark of the same or a higher class).
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_ccc = 0;  // class of out.back()
  for (char32_t c : d) {
    const int ccc = combining_class(c);
    if (starter != std::u32string::npos) {
      const bool adjacent = starter + 1 == out.size();
      if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
        if (char32_t composed = compose(out[starter], c)) {
          out[starter] = composed;
          continue;
        }
      }
    }
    if (ccc == 0) starter = out.size();
    last_ccc = ccc;
    out.push_back(c);
  }
  return out;
}

}  // namespace lorarar::unicode
