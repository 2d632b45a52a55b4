// A diffusers UNet folder on disk: config.json and the weights, one
// diffusion_pytorch_model.safetensors or shards listed in
// diffusion_pytorch_model.safetensors.index.json. A pipeline folder with a
// unet/ subfolder is accepted too.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/adapter.h"
#include "core/fuse.h"
#include "core/module_names.h"
#include "extension/mapped_file.h"

namespace lorarar {

class UNetDir {
 public:
  static Result<std::shared_ptr<const UNetDir>> open(const std::string& path);

  const std::string& dir() const { return dir_; }
  const json::Value& config() const { return config_; }
  const BaseModel& base() const { return base_; }

  struct Shard {
    std::string file_name;  // relative to dir()
    std::shared_ptr<MappedFile> map;
    SafetensorsView view;
  };
  const std::vector<Shard>& shards() const { return shards_; }

 private:
  std::string dir_;
  json::Value config_;
  std::vector<Shard> shards_;
  BaseModel base_;
};

struct FuseDirOptions {
  float scale = 1;
  FuseOptions fuse;
};

// Writes `out_dir` as a copy of the UNet folder with the adapter fused into
// its weights (same dtypes, same shards). The folder appears complete or not
// at all: it is built beside out_dir and renamed into place.
Status fuse_unet_dir(const UNetDir& unet, const Adapter& adapter, const std::string& out_dir,
                     const FuseDirOptions& options);

}  // namespace lorarar
