// The Unicode the CLIP tokenizer needs: UTF-8 decoding, the character
// classes of its split regex, lowercase mapping and NFC. The data reproduce
// Hugging Face tokenizers 0.23.3, which mixes Unicode versions (categories
// 16.0, lowercase 17.0, NFC 9.0); unicode_tables_gen.py says why and how.
#pragma once

#include <string>
#include <string_view>

namespace lorarar::unicode {

// Decodes UTF-8, replacing each maximal ill-formed subsequence with U+FFFD
// (Unicode's recommended practice, as Python's errors="replace" and Rust's
// String::from_utf8_lossy do): never fails.
std::u32string decode_utf8(std::string_view bytes);
bool is_valid_utf8(std::string_view bytes);
void append_utf8(char32_t c, std::string* out);

bool is_letter(char32_t c);      // General_Category L* (regex \p{L})
bool is_number(char32_t c);      // General_Category N* (regex \p{N})
bool is_whitespace(char32_t c);  // Oniguruma's \s: White_Space

// Appends the full lowercase mapping of c, one to three code points, with no
// context (a final capital sigma becomes σ, not ς), like Rust's
// char::to_lowercase.
void append_lowercase(char32_t c, std::u32string* out);

int combining_class(char32_t c);

// Normalization Form C.
std::u32string nfc(std::u32string_view text);

}  // namespace lorarar::unicode
