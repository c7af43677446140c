// The CUDA kernels and their launch geometry, written once. nvcc compiles them for the GPU
// (softpool_cuda.cu); the host compiler compiles the same lines through emulation/cuda_shim.h,
// which runs the grid serially, so CI machines without a GPU execute them (emulation/*.cpp).
// The includer defines VIDPOOL_LAUNCH(kernel, blocks, threads, args...) and VIDPOOL_LAUNCH_CHECK().
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>

#include "softpool_host.h"

namespace vidpool {
namespace cuda_kernels {

// Threads per block and the grid's block cap; kernels loop grid-stride over what is left. Index
// math runs in 32 bits where index32_fits allows, unless index64 forces 64 (tests, A/B timing).
struct LaunchConfig {
  int threads = 256;
  int64_t max_blocks = int64_t(1) << 20;
  bool index64 = false;
};

// Calls f with an int32_t or an int64_t value: the index type the kernels are instantiated with.
template <typename F>
void with_index_type(bool narrow, F&& f) {
  if (narrow) {
    f(int32_t(0));
  } else {
    f(int64_t(0));
  }
}

inline unsigned int blocks_for(int64_t total, const LaunchConfig& cfg) {
  return static_cast<unsigned int>(std::min<int64_t>((total + cfg.threads - 1) / cfg.threads, cfg.max_blocks));
}

// Split a flat index over (N, C, D, H, W) in logical order, in the index type I.
template <typename I>
struct Index5 {
  I n, c, d, h, w;
  SP_HD Index5(I i, I C, I D, I H, I W) {
    w = i % W; i /= W; h = i % H; i /= H; d = i % D; i /= D; c = i % C; n = i / C;
  }
};

// One thread per output: y (stats == nullptr) or the window statistics the backward needs.
// Offsets are int64_t products of an index and a stride; divisions and comparisons run in I.
template <typename scalar_t, typename acc_t, typename I>
__global__ void forward_kernel(const scalar_t* x, Strides sx, scalar_t* y, Strides sy, WindowStats<acc_t>* stats,
                               Geometry g, int64_t C, int64_t total) {
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> o(I(i), I(C), I(D.out), I(H.out), I(W.out));
    const StridedWindow<scalar_t, acc_t, I> win(x + o.n * sx.n + o.c * sx.c, sx, g, o.d, o.h, o.w);
    if (stats != nullptr) {
      stats[i] = window_stats<acc_t>(win);
    } else {
      y[o.n * sy.n + o.c * sy.c + o.d * sy.d + o.h * sy.h + o.w * sy.w] = static_cast<scalar_t>(window_forward<acc_t>(win));
    }
  }
}

// One thread per input cell: the sum over the windows that cover it (no atomics).
template <typename scalar_t, typename acc_t, typename I>
__global__ void backward_kernel(const scalar_t* x, Strides sx, const scalar_t* gy, Strides sg,
                                const WindowStats<acc_t>* stats, scalar_t* gx, Strides sgx, Geometry g, int64_t C,
                                int64_t total) {
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t plane_out = D.out * H.out * W.out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> p(I(i), I(C), I(D.in), I(H.in), I(W.in));
    const acc_t xv = static_cast<acc_t>(x[p.n * sx.n + p.c * sx.c + p.d * sx.d + p.h * sx.h + p.w * sx.w]);
    gx[p.n * sgx.n + p.c * sgx.c + p.d * sgx.d + p.h * sgx.h + p.w * sgx.w] = static_cast<scalar_t>(input_grad<acc_t>(
        g, xv, cover_of<I>(g, p.d, p.h, p.w), stats + (p.n * C + p.c) * plane_out, gy + p.n * sg.n + p.c * sg.c,
        sg));
  }
}

// Fill y (allocated by the caller) with SoftPool of x: every floating dtype the CUDA build covers.
inline void launch_forward(const at::Tensor& x, at::Tensor& y, const Geometry& g, const LaunchConfig& cfg) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t total = y.numel();
    with_index_type(!cfg.index64 && index32_fits(g, x.numel(), total), [&](auto index) {
      auto kernel = &forward_kernel<scalar_t, acc_t, decltype(index)>;
      VIDPOOL_LAUNCH(kernel, blocks_for(total, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     y.mutable_data_ptr<scalar_t>(), strides5(y), nullptr, g, x.size(1), total);
      VIDPOOL_LAUNCH_CHECK();
    });
  });
}

// Gradient w.r.t. x: the window statistics in acc_t (y recomputed there), then the gather.
inline void launch_backward(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g,
                            const LaunchConfig& cfg) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t outs = gy.numel(), ins = x.numel();
    at::Tensor stats = at::empty({outs * 3}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    auto* sp = reinterpret_cast<WindowStats<acc_t>*>(stats.mutable_data_ptr<acc_t>());
    with_index_type(!cfg.index64 && index32_fits(g, ins, outs), [&](auto index) {
      using I = decltype(index);
      auto stats_kernel = &forward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(stats_kernel, blocks_for(outs, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     nullptr, strides5(gy), sp, g, x.size(1), outs);
      VIDPOOL_LAUNCH_CHECK();
      auto grad_kernel = &backward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(grad_kernel, blocks_for(ins, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     gy.const_data_ptr<scalar_t>(), strides5(gy), sp, gx.mutable_data_ptr<scalar_t>(),
                     strides5(gx), g, x.size(1), ins);
      VIDPOOL_LAUNCH_CHECK();
    });
  });
}

}  // namespace cuda_kernels
}  // namespace vidpool
