// Loads a CLIP tokenizer from its files: vocab.json and merges.txt in a
// tokenizer folder as transformers saves it, or in the tokenizer/ subfolder
// of a diffusers pipeline folder.
#pragma once

#include <string>

#include "core/clip_tokenizer.h"

namespace lorarar {

// Errors start with the folder: "<dir>: merges.txt line 3: ...".
Result<ClipTokenizer> load_clip_tokenizer(const std::string& dir, const ClipTokenizer::Options& options = {});

}  // namespace lorarar
