#include "extension/tokenizer_files.h"

#include "extension/mapped_file.h"

namespace lorarar {

Result<ClipTokenizer> load_clip_tokenizer(const std::string& path, const ClipTokenizer::Options& options) {
  if (!is_directory(path)) return make_error(Error::kNotFound, path + ": not a folder");
  std::string dir = path;
  if (!file_exists(join_path(dir, "vocab.json")) && file_exists(join_path(join_path(dir, "tokenizer"), "vocab.json"))) {
    dir = join_path(dir, "tokenizer");
  }
  std::string contents[2];
  const char* names[2] = {"vocab.json", "merges.txt"};
  for (int i = 0; i < 2; ++i) {
    const std::string file = join_path(dir, names[i]);
    if (!file_exists(file))
      return make_error(Error::kNotFound, dir + ": no " + names[i] + " (not a CLIP tokenizer folder)");
    auto text = read_text_file(file);
    if (!text.ok()) return text.status().with_context(file);
    contents[i] = std::move(text).get();
  }
  auto tokenizer = ClipTokenizer::create(contents[0], contents[1], options);
  if (!tokenizer.ok()) return tokenizer.status().with_context(dir);
  return tokenizer;
}

}  // namespace lorarar
