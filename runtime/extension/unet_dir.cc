#include "extension/unet_dir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "extension/lora_file.h"

namespace lorarar {

namespace {

Result<json::Value> read_json(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.ok()) return text.status().with_context(path);
  auto value = json::parse(text.get());
  if (!value.ok()) return value.status().with_context(path);
  return value;
}

constexpr const char* kWeights = "diffusion_pytorch_model.safetensors";
constexpr const char* kIndex = "diffusion_pytorch_model.safetensors.index.json";

Status remove_tree(const std::string& path) {
  if (!is_directory(path)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return make_error(Error::kIo, path + ": cannot remove");
    return Status::ok();
  }
  DIR* d = opendir(path.c_str());
  if (!d) return make_error(Error::kIo, path + ": cannot list");
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    Status s = remove_tree(join_path(path, name));
    if (!s.is_ok()) {
      closedir(d);
      return s;
    }
  }
  closedir(d);
  if (::rmdir(path.c_str()) != 0) return make_error(Error::kIo, path + ": cannot remove");
  return Status::ok();
}

Status copy_file(const std::string& from, const std::string& to) {
  LORARAR_ASSIGN_OR_RETURN(std::string text, read_text_file(from));
  LORARAR_ASSIGN_OR_RETURN(auto writer, AtomicFileWriter::create(to, text.size()));
  if (!text.empty()) std::memcpy(writer->data(), text.data(), text.size());
  return writer->commit().with_context(to);
}

}  // namespace

Result<std::shared_ptr<const UNetDir>> UNetDir::open(const std::string& path) {
  std::string dir = path;
  if (!is_directory(dir)) return make_error(Error::kNotFound, path + ": not a folder");
  if (!file_exists(join_path(dir, "config.json")) && file_exists(join_path(join_path(dir, "unet"), "config.json"))) {
    dir = join_path(dir, "unet");
  }
  std::shared_ptr<UNetDir> unet(new UNetDir());
  unet->dir_ = dir;
  const std::string config_path = join_path(dir, "config.json");
  if (!file_exists(config_path))
    return make_error(Error::kNotFound, path + ": no config.json (not a diffusers UNet folder)");
  LORARAR_ASSIGN_OR_RETURN(unet->config_, read_json(config_path));

  std::vector<std::string> files;
  const std::string index_path = join_path(dir, kIndex);
  if (file_exists(join_path(dir, kWeights))) {
    files.push_back(kWeights);
  } else if (file_exists(index_path)) {
    LORARAR_ASSIGN_OR_RETURN(json::Value index, read_json(index_path));
    const json::Value* map = index.find("weight_map");
    if (!map || !map->is_object()) return make_error(Error::kInvalidFile, index_path + ": no weight_map object");
    std::set<std::string> unique;
    for (const auto& [tensor, file] : map->as_object()) {
      if (!file.is_string() || file.as_string().find('/') != std::string::npos || file.as_string().empty()) {
        return make_error(Error::kInvalidFile, index_path + ": weight_map entry for " + json::quote(tensor) +
                                                   " is not a file name in the folder");
      }
      unique.insert(file.as_string());
    }
    files.assign(unique.begin(), unique.end());
  } else {
    return make_error(Error::kNotFound, dir + ": no " + std::string(kWeights) + " (pickled .bin weights are not read)");
  }

  for (const auto& name : files) {
    Shard shard;
    shard.file_name = name;
    LORARAR_ASSIGN_OR_RETURN(shard.view, open_safetensors(join_path(dir, name), &shard.map));
    unet->shards_.push_back(std::move(shard));
  }
  // The base model's layers are the union of all shards' tensors.
  std::vector<TensorView> all;
  for (const auto& s : unet->shards_) all.insert(all.end(), s.view.tensors().begin(), s.view.tensors().end());
  auto base = BaseModel::from_unet(unet->config_, all);
  if (!base.ok()) return base.status().with_context(dir);
  unet->base_ = std::move(base).get();
  return std::shared_ptr<const UNetDir>(std::move(unet));
}

Status fuse_unet_dir(const UNetDir& unet, const Adapter& adapter, const std::string& out_dir,
                     const FuseDirOptions& options) {
  // Every adapter layer must land on a base weight before anything is written.
  std::map<std::string, std::pair<size_t, const TensorView*>> weight_of;  // module -> (shard, tensor)
  for (size_t s = 0; s < unet.shards().size(); ++s) {
    for (const auto& t : unet.shards()[s].view.tensors()) weight_of[t.name] = {s, &t};
  }
  for (const auto& layer : adapter.layers) {
    auto it = weight_of.find(layer.module + ".weight");
    if (it == weight_of.end()) {
      return make_error(Error::kNotFound, unet.dir() + ": the base model has no " + json::quote(layer.module));
    }
    const TensorView& t = *it->second.second;
    if (t.numel() != static_cast<size_t>(layer.out_features * layer.in_features) || t.shape.empty() ||
        t.shape[0] != layer.out_features) {
      return make_error(Error::kInvalidArgument, unet.dir() + ": " + json::quote(layer.module) + " is " +
                                                     t.shape_string() + ", the adapter layer is " +
                                                     std::to_string(layer.out_features) + "x" +
                                                     std::to_string(layer.in_features));
    }
  }

  const std::string tmp_dir = out_dir + ".tmp-" + std::to_string(getpid());
  LORARAR_RETURN_IF_ERROR(remove_tree(tmp_dir));
  if (::mkdir(tmp_dir.c_str(), 0755) != 0) {
    return make_error(Error::kIo, tmp_dir + ": cannot create folder: " + std::strerror(errno));
  }
  auto fail = [&](const Status& s) {
    remove_tree(tmp_dir);
    return s;
  };
  for (size_t s = 0; s < unet.shards().size(); ++s) {
    const auto& shard = unet.shards()[s];
    const std::string out_path = join_path(tmp_dir, shard.file_name);
    auto writer = AtomicFileWriter::create(out_path, shard.map->size());
    if (!writer.ok()) return fail(writer.status().with_context(out_path));
    uint8_t* out = writer.get()->data();
    std::memcpy(out, shard.map->data(), shard.map->size());
    for (const auto& layer : adapter.layers) {
      const auto& [shard_index, tensor] = weight_of[layer.module + ".weight"];
      if (shard_index != s) continue;
      WeightView w;
      w.data = out + (tensor->data - shard.map->data());
      w.dtype = tensor->dtype;
      w.out_features = layer.out_features;
      w.in_features = layer.in_features;
      Status st = fuse_layer(w, layer, options.scale, options.fuse);
      if (!st.is_ok()) return fail(st.with_context(out_path));
    }
    Status st = writer.get()->commit();
    if (!st.is_ok()) return fail(st.with_context(out_path));
  }
  for (const char* extra : {"config.json", kIndex}) {
    const std::string from = join_path(unet.dir(), extra);
    if (!file_exists(from)) continue;
    Status st = copy_file(from, join_path(tmp_dir, extra));
    if (!st.is_ok()) return fail(st);
  }
  // Swap the finished folder in; the previous output (if any) goes last.
  const std::string old_dir = out_dir + ".old-" + std::to_string(getpid());
  const bool had_old = is_directory(out_dir);
  if (had_old && ::rename(out_dir.c_str(), old_dir.c_str()) != 0) {
    return fail(make_error(Error::kIo, out_dir + ": cannot replace: " + std::strerror(errno)));
  }
  if (::rename(tmp_dir.c_str(), out_dir.c_str()) != 0) {
    if (had_old) ::rename(old_dir.c_str(), out_dir.c_str());
    return fail(make_error(Error::kIo, out_dir + ": cannot create: " + std::strerror(errno)));
  }
  if (had_old) remove_tree(old_dir);
  return Status::ok();
}

}  // namespace lorarar
