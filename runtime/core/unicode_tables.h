// The Unicode data behind core/unicode.h, generated into unicode_tables.cc by
// unicode_tables_gen.py. Every table is sorted by code point; ranges are
// inclusive and disjoint.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lorarar::unicode_tables {

struct Range {
  uint32_t first, last;
};

// Code points first, first + stride, ... up to last lowercase to cp + offset.
struct LowercaseRange {
  uint32_t first, last;
  uint8_t stride;
  int32_t offset;
};

// Lowercase mappings to more than one code point (U+0130 -> i + U+0307);
// unused slots are 0.
struct LowercaseSpecial {
  uint32_t cp;
  uint32_t lower[3];
};

struct CombiningClassRange {
  uint32_t first, last;
  uint8_t ccc;
};

// Full canonical decomposition of cp: kDecompositionData[offset, offset + length).
struct Decomposition {
  uint32_t cp;
  uint16_t offset;
  uint8_t length;
};

// Primary composites, sorted by (first, second).
struct Composition {
  uint32_t first, second, composed;
};

extern const Range kLetters[];
extern const size_t kLettersSize;
extern const Range kNumbers[];
extern const size_t kNumbersSize;
extern const Range kWhitespace[];
extern const size_t kWhitespaceSize;
extern const LowercaseRange kLowercase[];
extern const size_t kLowercaseSize;
extern const LowercaseSpecial kLowercaseSpecial[];
extern const size_t kLowercaseSpecialSize;
extern const CombiningClassRange kCombiningClasses[];
extern const size_t kCombiningClassesSize;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionsSize;
extern const uint32_t kDecompositionData[];
extern const size_t kDecompositionDataSize;
extern const Composition kCompositions[];
extern const size_t kCompositionsSize;

}  // namespace lorarar::unicode_tables
