// Host-side declarations shared by the op entry points (ops.cpp) and the CPU/CUDA launchers.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>

#include "softpool.h"

namespace vidpool {

// Strides of a (N, C, [D,] [H,] W) tensor as a 5-d (N, C, D, H, W) view; missing axes get 0.
inline Strides strides5(const at::Tensor& t) {
  const int64_t nd = t.dim() - 2;
  return Strides{t.stride(0), t.stride(1), nd >= 3 ? t.stride(2) : 0, nd >= 2 ? t.stride(t.dim() - 2) : 0,
                 t.stride(t.dim() - 1)};
}

// True when no two windows share a cell along any axis (the backward can then write per window).
inline bool windows_disjoint(const Geometry& g) {
  for (const PoolDim& d : g.dim) {
    if (d.adaptive ? d.in % d.out != 0 : d.s < d.k) return false;
  }
  return true;
}

// True when every input cell lies in some window (otherwise uncovered cells get zero gradient).
inline bool windows_cover_input(const Geometry& g) {
  for (const PoolDim& d : g.dim) {
    if (d.adaptive) continue;  // adaptive windows always tile the axis
    if (d.s > d.k || (d.out - 1) * d.s - d.p + d.k < d.in) return false;
  }
  return true;
}

// True when every index the CUDA kernels compute fits int32_t: the flat indices of the input and
// output elements, and each axis's window and cover arithmetic (o*s + k, i + p; adaptive windows
// multiply by in and out).
inline bool index32_fits(const Geometry& g, int64_t numel_in, int64_t numel_out) {
  constexpr int64_t limit = std::numeric_limits<int32_t>::max();
  if (numel_in > limit || numel_out > limit) return false;
  for (const PoolDim& d : g.dim) {
    const int64_t reach = d.adaptive ? (d.in + 1) * (d.out + 1) : d.out * d.s + d.k + d.in + d.p;
    if (reach > limit) return false;
  }
  return true;
}

// Fill y (allocated by the caller with x's memory format) with SoftPool of x.
void forward_cpu(const at::Tensor& x, at::Tensor& y, const Geometry& g);
// Gradient w.r.t. x from the saved input x and the output gradient gy (y is recomputed from x
// in the accumulation type: the saved output may be rounded to a half type).
void backward_cpu(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g);

#ifdef VIDPOOL_WITH_CUDA
void forward_cuda(const at::Tensor& x, at::Tensor& y, const Geometry& g);
void backward_cuda(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g);
#endif

}  // namespace vidpool
