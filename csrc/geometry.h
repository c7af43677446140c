// Pooling geometry from the ops' arguments, with the argument checks: shared by the registered
// ops (ops.cpp) and the emulated CUDA kernels (emulation/softpool_emulated.cpp).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "softpool.h"

namespace vidpool {

inline void check_input(const at::Tensor& x, size_t nd, const char* op) {
  TORCH_CHECK_VALUE(x.dim() == static_cast<int64_t>(nd) + 2, op, ": expected a ", nd + 2, "-d (N, C, ...) input for ",
                    nd, "-d pooling, got ", x.dim(), "-d input of shape ", x.sizes());
  const auto t = x.scalar_type();
  TORCH_CHECK_VALUE(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
                    ": input must be a floating point tensor of dtype float32, float64, float16 or bfloat16, got ", t);
  for (size_t i = 0; i < nd; ++i)
    TORCH_CHECK_VALUE(x.size(i + 2) > 0, op, ": spatial size ", i, " of the input is 0 (shape ", x.sizes(), ")");
}

// Same rule as nn.MaxPool*d (dilation 1): floor (or ceil) division, and with ceil_mode the last
// window must start inside the input or the left padding.
inline int64_t pool_output_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) out -= 1;
  return out;
}

// Lay 1-3 pooled axes out as (D, H, W), unit axes first.
inline Geometry unit_geometry() {
  Geometry g;
  for (PoolDim& d : g.dim) d = PoolDim{1, 1, 1, 1, 0, false};
  return g;
}

inline Geometry pool_geometry(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p, bool ceil_mode) {
  const size_t nd = k.size();
  TORCH_CHECK_VALUE(nd >= 1 && nd <= 3, "soft_pool: kernel_size must have 1, 2 or 3 entries, got ", k);
  TORCH_CHECK_VALUE(s.size() == nd, "soft_pool: stride ", s, " must have as many entries as kernel_size ", k);
  TORCH_CHECK_VALUE(p.size() == nd, "soft_pool: padding ", p, " must have as many entries as kernel_size ", k);
  check_input(x, nd, "soft_pool");
  Geometry g = unit_geometry();
  for (size_t i = 0; i < nd; ++i) {
    TORCH_CHECK_VALUE(k[i] > 0, "soft_pool: kernel_size must be positive, got ", k);
    TORCH_CHECK_VALUE(s[i] > 0, "soft_pool: stride must be positive, got ", s);
    TORCH_CHECK_VALUE(p[i] >= 0 && 2 * p[i] <= k[i], "soft_pool: padding must be >= 0 and <= kernel_size / 2, got padding ",
                      p, " for kernel_size ", k);
    const int64_t in = x.size(i + 2), out = pool_output_size(in, k[i], s[i], p[i], ceil_mode);
    TORCH_CHECK_VALUE(out >= 1, "soft_pool: output size would be ", out, " along spatial axis ", i, " (input size ", in,
                      ", kernel_size ", k[i], ", stride ", s[i], ", padding ", p[i], "); the input is too small");
    g.dim[3 - nd + i] = PoolDim{in, out, k[i], s[i], p[i], false};
  }
  return g;
}

inline Geometry adaptive_geometry(const at::Tensor& x, at::IntArrayRef output_size) {
  const size_t nd = output_size.size();
  TORCH_CHECK_VALUE(nd >= 1 && nd <= 3, "adaptive_soft_pool: output_size must have 1, 2 or 3 entries, got ", output_size);
  check_input(x, nd, "adaptive_soft_pool");
  Geometry g = unit_geometry();
  for (size_t i = 0; i < nd; ++i) {
    TORCH_CHECK_VALUE(output_size[i] > 0, "adaptive_soft_pool: output_size must be positive, got ", output_size);
    g.dim[3 - nd + i] = PoolDim{x.size(i + 2), output_size[i], 0, 0, 0, true};
  }
  return g;
}

inline std::vector<int64_t> output_shape(const at::Tensor& x, const Geometry& g) {
  std::vector<int64_t> shape{x.size(0), x.size(1)};
  for (int64_t i = 5 - x.dim(); i < 3; ++i) shape.push_back(g.dim[i].out);
  return shape;
}

}  // namespace vidpool
