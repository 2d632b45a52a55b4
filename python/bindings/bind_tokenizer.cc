// lorarar._native.ClipTokenizer: the native CLIP tokenizer, for parity tests
// against transformers and for Python callers that want the device's ids.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <string_view>

#include "common.h"
#include "core/clip_tokenizer.h"
#include "extension/tokenizer_files.h"

namespace nb = nanobind;
using lorarar::ClipTokenizer;
using lorarar_py::unwrap;

namespace {

ClipTokenizer::Options make_options(int max_length, const std::string& pad_token) {
  ClipTokenizer::Options o;
  o.max_length = max_length;
  o.pad_token = pad_token;
  return o;
}

std::string_view view(const nb::bytes& b) { return std::string_view(b.c_str(), b.size()); }

}  // namespace

void bind_tokenizer(nb::module_& m) {
  constexpr const char* kText = "The same for UTF-8 bytes; ill-formed sequences read as U+FFFD.";
  nb::class_<ClipTokenizer>(m, "ClipTokenizer",
                            "CLIP's BPE tokenizer, id for id transformers.CLIPTokenizer(text, padding='max_length', "
                            "max_length=max_length, truncation=True).")
      .def(
          "__init__",
          [](ClipTokenizer* self, std::string_view vocab_json, std::string_view merges_txt, int max_length,
             const std::string& pad_token) {
            new (self) ClipTokenizer(
                unwrap(ClipTokenizer::create(vocab_json, merges_txt, make_options(max_length, pad_token))));
          },
          nb::arg("vocab_json"), nb::arg("merges_txt"), nb::kw_only(), nb::arg("max_length") = 77,
          nb::arg("pad_token") = "<|endoftext|>", "From the contents of vocab.json and merges.txt.")
      .def_static(
          "from_dir",
          [](const std::string& path, int max_length, const std::string& pad_token) {
            return unwrap(lorarar::load_clip_tokenizer(path, make_options(max_length, pad_token)));
          },
          nb::arg("path"), nb::kw_only(), nb::arg("max_length") = 77, nb::arg("pad_token") = "<|endoftext|>",
          "From a folder with vocab.json and merges.txt (or a pipeline folder with a tokenizer/ subfolder).")
      .def(
          "encode", [](const ClipTokenizer& t, std::string_view text) { return t.encode(text); }, nb::arg("text"),
          "bos + tokens + eos, truncated and padded to exactly max_length ids.")
      .def(
          "encode", [](const ClipTokenizer& t, const nb::bytes& text) { return t.encode(view(text)); }, nb::arg("text"),
          kText)
      .def(
          "encode_unpadded", [](const ClipTokenizer& t, std::string_view text) { return t.encode_unpadded(text); },
          nb::arg("text"), "bos + tokens + eos, truncated to max_length ids, not padded.")
      .def(
          "encode_unpadded",
          [](const ClipTokenizer& t, const nb::bytes& text) { return t.encode_unpadded(view(text)); }, nb::arg("text"),
          kText)
      .def(
          "tokenize", [](const ClipTokenizer& t, std::string_view text) { return t.tokenize(text); }, nb::arg("text"),
          "Every token of the text: no bos/eos, no truncation.")
      .def(
          "tokenize", [](const ClipTokenizer& t, const nb::bytes& text) { return t.tokenize(view(text)); },
          nb::arg("text"), kText)
      .def_prop_ro("bos_id", &ClipTokenizer::bos_id)
      .def_prop_ro("eos_id", &ClipTokenizer::eos_id)
      .def_prop_ro("pad_id", &ClipTokenizer::pad_id)
      .def_prop_ro("vocab_size", &ClipTokenizer::vocab_size)
      .def_prop_ro("max_length", &ClipTokenizer::max_length);
}
