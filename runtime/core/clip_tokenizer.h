// CLIP's byte-level BPE tokenizer, matching transformers' CLIPTokenizer
// (the Hugging Face tokenizers backend) id for id, so prompts tokenize on
// devices without Python. Core layer: built from the contents of vocab.json
// and merges.txt (extension/tokenizer_files.h reads a folder).
//
// The pipeline, as tokenizers 0.23.3 runs it:
//  1. UTF-8 input; ill-formed bytes become U+FFFD (what Python's
//     bytes.decode(errors="replace") gives HF).
//  2. The special tokens (<|startoftext|>, <|endoftext|> and the pad token)
//     are cut out of the raw text where they appear verbatim and map to
//     their ids.
//  3. The rest is NFC-normalized and lowercased.
//  4. CLIP's split regex cuts words: <|startoftext|>|<|endoftext|>|'s|'t|'re|
//     've|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (whitespace is dropped);
//     the byte-level pre-tokenizer splits the two literals further into
//     "<|", the word, "|>".
//  5. Each word's UTF-8 bytes map to GPT-2's printable byte symbols, "</w>"
//     is appended to the last one, symbols missing from the vocabulary become
//     the unknown token (<|endoftext|>), and BPE merges the lowest-ranked
//     adjacent pair first, leftmost on ties.
//  6. bos + tokens + eos, truncated to max_length keeping eos last, padded.
//
// Thread-safe: encoding only reads the tokenizer. No per-word cache: a whole
// prompt encodes in about 10 microseconds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace lorarar {

// Outside the class so that `= {}` default arguments work.
struct ClipTokenizerOptions {
  int max_length = 77;                      // bos and eos included; at least 2
  std::string pad_token = "<|endoftext|>";  // SDXL's second tokenizer pads with "!"
};

class ClipTokenizer {
 public:
  using Options = ClipTokenizerOptions;

  // Errors (kInvalidFile) name the file and line: "merges.txt line 3: ...".
  static Result<ClipTokenizer> create(std::string_view vocab_json, std::string_view merges_txt,
                                      const Options& options = {});

  // bos + tokens + eos, truncated to max_length (eos kept last) and padded
  // with pad_id() to exactly max_length ids.
  std::vector<int32_t> encode(std::string_view utf8_text) const;
  // The same without the padding: between 2 and max_length ids.
  std::vector<int32_t> encode_unpadded(std::string_view utf8_text) const;
  // Every token of the text, without bos/eos and without truncation (to tell
  // a user how much of a prompt is cut).
  std::vector<int32_t> tokenize(std::string_view utf8_text) const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  size_t vocab_size() const { return vocab_size_; }
  int max_length() const { return max_length_; }

 private:
  ClipTokenizer() = default;

  struct Merge {
    uint64_t pair;  // left id << 32 | right id
    int32_t rank;
    int32_t merged_id;
  };
  struct Special {
    std::u32string text;
    int32_t id;
  };

  // Appends tokens to *out until it holds `limit` ids.
  void tokenize_into(std::string_view utf8_text, size_t limit, std::vector<int32_t>* out) const;
  void split_words(std::u32string_view segment, size_t limit, std::vector<int32_t>* out) const;
  void bpe(std::u32string_view word, std::vector<int32_t>* out) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  int max_length_ = 77;
  int32_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0;
  size_t vocab_size_ = 0;
  int32_t byte_ids_[256];      // GPT-2 byte symbol, or -1
  int32_t byte_end_ids_[256];  // the same + "</w>", or -1
  std::vector<Merge> merges_;  // sorted by pair
  std::vector<Special> specials_;
};

}  // namespace lorarar
