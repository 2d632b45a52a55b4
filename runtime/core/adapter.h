// A merged ("folded") adapter: the LoRA that the merge of a content and a style
// LoRA is. For column coefficients m_c, m_s (one per input column),
//
//   dW = (s_c B_c A_c) diag(m_c) + (s_s B_s A_s) diag(m_s)
//      = [B_c, B_s] [s_c A_c diag(m_c) ; s_s A_s diag(m_s)]  =  B' A'
//
// so the merge is a LoRA of rank r_c + r_s and dW is never materialised.
// Folding only records, per layer, the parts (views of the source factors, a
// scalar and a column-coefficient vector); consumers read A' through
// pack_rows() where they need it (the fuse kernel packs cache-sized tiles,
// the runtime's LoRA slot and the file writer materialise it whole).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/lora.h"
#include "core/result.h"

namespace lorarar {

struct AdapterPart {
  TensorView down;  // (r, in): rows of A
  TensorView up;    // (out, r): columns of B
  int64_t rank = 0;
  float scale = 1;            // alpha/rank times the user's weight
  std::vector<float> column;  // per-input-column coefficient; empty means all 1
};

struct AdapterLayer {
  std::string module;
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool conv1x1 = false;
  std::vector<AdapterPart> parts;

  int64_t rank() const;
  // Rows [row0, row0 + rows) of A' restricted to columns [col0, col0 + cols),
  // as float32 into dst (row stride ld).
  void pack_a(int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* dst, int64_t ld) const;
  // All of B' (out x rank) as float32, row-major with row stride ld >= rank
  // (the LoRA slot's rows are max-rank wide).
  void pack_b(float* dst, int64_t ld) const;
  void pack_b(float* dst) const { pack_b(dst, rank()); }
};

struct Adapter {
  std::vector<AdapterLayer> layers;  // sorted by module
  const AdapterLayer* find(const std::string& module) const;
};

// Per-layer column coefficients (m_content, m_style), each of length in_features.
using ColumnCoefficients = std::map<std::string, std::pair<std::vector<float>, std::vector<float>>>;

enum class MergeMethod { kDirect, kColumns };

struct MergeOptions {
  MergeMethod method = MergeMethod::kDirect;
  float content_scale = 1;
  float style_scale = 1;
  // kColumns: layers listed here get their coefficients; the others are
  // summed (coefficient 1), as the published LoRA.rar code does for to_k/to_v.
  const ColumnCoefficients* coefficients = nullptr;
};

// An adapter of one LoRA at a scale.
Adapter single_adapter(const LoraModel& lora, float scale);

// Folds a content and a style LoRA. Layers in only one of them keep that one.
Result<Adapter> merge(const LoraModel& content, const LoraModel& style, const MergeOptions& options);

}  // namespace lorarar
