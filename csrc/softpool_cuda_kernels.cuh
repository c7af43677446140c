// The CUDA kernels and their launch geometry, written once. nvcc compiles them for the GPU
// (softpool_cuda.cu); the host compiler compiles the same lines through emulation/cuda_shim.h,
// which runs the grid serially, so CI machines without a GPU execute them (emulation/*.cpp).
// The includer defines VIDPOOL_LAUNCH(kernel, blocks, threads, args...) and VIDPOOL_LAUNCH_CHECK().
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>
#include <limits>

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

// n / d for 0 <= n < 2^31 and a fixed 1 <= d < 2^31, by a multiply-high and a shift: a GPU has no
// integer divide instruction (a 32-bit division is a software sequence of ~20 instructions, 64-bit
// far more). With s = ceil(log2 d) and m = floor(2^32 (2^s - d) / d) + 1,
// n / d = (mulhi(n, m) + n) >> s (division by invariant integers, as in Granlund and Montgomery).
struct FastDiv32 {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv32() = default;
  explicit FastDiv32(int64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    TORCH_CHECK(divisor >= 1 && divisor <= std::numeric_limits<int32_t>::max(), "FastDiv32: divisor ", divisor,
                " out of range");
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  SP_HD int32_t operator()(int32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(static_cast<uint32_t>(n), m);
#else
    const uint32_t hi = static_cast<uint32_t>((uint64_t(static_cast<uint32_t>(n)) * m) >> 32);
#endif
    return static_cast<int32_t>((hi + static_cast<uint32_t>(n)) >> s);
  }
};

// The divider the kernels use for index type I.
template <typename I>
struct DivFor {
  using type = PlainDiv<int64_t>;
  static type make(int64_t d) { return type{d}; }
};
template <>
struct DivFor<int32_t> {
  using type = FastDiv32;
  static type make(int64_t d) { return FastDiv32(d); }
};

// Dividers for splitting a flat index over (N, C, D, H, W), and for each axis's cover arithmetic.
template <typename Div>
struct Dividers {
  Div c, d, h, w;   // by C and the spatial sizes (of the output or of the input)
  Div cover[3];     // by cover_divisor of each axis
};

template <typename I>
Dividers<typename DivFor<I>::type> make_dividers(int64_t C, int64_t D, int64_t H, int64_t W, const Geometry& g) {
  using F = DivFor<I>;
  return {F::make(C), F::make(D), F::make(H), F::make(W),
          {F::make(cover_divisor(g.dim[0])), F::make(cover_divisor(g.dim[1])), F::make(cover_divisor(g.dim[2]))}};
}

// Split a flat index over (N, C, D, H, W) in logical order, in the index type I.
template <typename I>
struct Index5 {
  I n, c, d, h, w;
  template <typename Div>
  SP_HD Index5(I i, const Dividers<Div>& dv) {
    I q = dv.w(i);
    w = i - q * I(dv.w.d);
    i = dv.h(q);
    h = q - i * I(dv.h.d);
    q = dv.d(i);
    d = i - q * I(dv.d.d);
    n = dv.c(q);
    c = q - n * I(dv.c.d);
  }
};

// One thread per output: y (stats == nullptr) or the window statistics the backward needs.
// Offsets are int64_t products of an index and a stride; divisions and comparisons run in I.
template <typename scalar_t, typename acc_t, typename I>
__global__ void forward_kernel(const scalar_t* x, Strides sx, scalar_t* y, Strides sy, WindowStats<acc_t>* stats,
                               Geometry g, Dividers<typename DivFor<I>::type> dv, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> o(I(i), dv);
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
                                const WindowStats<acc_t>* stats, scalar_t* gx, Strides sgx, Geometry g,
                                Dividers<typename DivFor<I>::type> dv, int64_t total) {
  const int64_t C = dv.c.d, plane_out = g.dim[0].out * g.dim[1].out * g.dim[2].out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> p(I(i), dv);
    const acc_t xv = static_cast<acc_t>(x[p.n * sx.n + p.c * sx.c + p.d * sx.d + p.h * sx.h + p.w * sx.w]);
    gx[p.n * sgx.n + p.c * sgx.c + p.d * sgx.d + p.h * sgx.h + p.w * sgx.w] = static_cast<scalar_t>(input_grad<acc_t>(
        g, xv, cover_of(g, p.d, p.h, p.w, dv.cover), stats + (p.n * C + p.c) * plane_out,
        gy + p.n * sg.n + p.c * sg.c, sg));
  }
}

// Windows that share no cell (windows_disjoint): one thread per output computes its window's
// statistics and writes its cells' gradients itself; no statistics buffer, no gather, no cover
// arithmetic. Cells in no window are zeroed by the launcher beforehand.
template <typename scalar_t, typename acc_t, typename I>
__global__ void backward_disjoint_kernel(const scalar_t* x, Strides sx, const scalar_t* gy, Strides sg,
                                         scalar_t* gx, Strides sgx, Geometry g,
                                         Dividers<typename DivFor<I>::type> dv, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> o(I(i), dv);
    const StridedWindow<scalar_t, acc_t, I> win(x + o.n * sx.n + o.c * sx.c, sx, g, o.d, o.h, o.w);
    const WindowStats<acc_t> st = window_stats<acc_t>(win);
    const acc_t go = static_cast<acc_t>(gy[o.n * sg.n + o.c * sg.c + o.d * sg.d + o.h * sg.h + o.w * sg.w]);
    scalar_t* plane = gx + o.n * sgx.n + o.c * sgx.c;
    win.for_each_cell([&](acc_t xv, I d, I h, I w) {
      plane[d * sgx.d + h * sgx.h + w * sgx.w] = static_cast<scalar_t>(grad_term<acc_t>(xv, st, go));
    });
  }
}

// Dividers for one thread per output.
template <typename I>
Dividers<typename DivFor<I>::type> out_dividers(const at::Tensor& x, const Geometry& g) {
  return make_dividers<I>(x.size(1), g.dim[0].out, g.dim[1].out, g.dim[2].out, g);
}

// Fill y (allocated by the caller) with SoftPool of x: every floating dtype the CUDA build covers.
inline void launch_forward(const at::Tensor& x, at::Tensor& y, const Geometry& g, const LaunchConfig& cfg) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t total = y.numel();
    with_index_type(!cfg.index64 && index32_fits(g, x.numel(), total), [&](auto index) {
      using I = decltype(index);
      auto kernel = &forward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(kernel, blocks_for(total, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     y.mutable_data_ptr<scalar_t>(), strides5(y), nullptr, g, out_dividers<I>(x, g), total);
      VIDPOOL_LAUNCH_CHECK();
    });
  });
}

// Gradient w.r.t. x: disjoint windows write their cells' gradients per window; overlapping ones
// compute the window statistics in acc_t (y recomputed there), then gather per input cell. Both
// give the same value (a cell's sum over its one window is that window's term).
inline void launch_backward(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g,
                            const LaunchConfig& cfg) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t outs = gy.numel(), ins = x.numel();
    if (windows_disjoint(g)) {
      if (!windows_cover_input(g)) gx.zero_();
      with_index_type(!cfg.index64 && index32_fits(g, ins, outs), [&](auto index) {
        using I = decltype(index);
        auto kernel = &backward_disjoint_kernel<scalar_t, acc_t, I>;
        VIDPOOL_LAUNCH(kernel, blocks_for(outs, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                       gy.const_data_ptr<scalar_t>(), strides5(gy), gx.mutable_data_ptr<scalar_t>(), strides5(gx),
                       g, out_dividers<I>(x, g), outs);
        VIDPOOL_LAUNCH_CHECK();
      });
      return;
    }
    at::Tensor stats = at::empty({outs * 3}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    auto* sp = reinterpret_cast<WindowStats<acc_t>*>(stats.mutable_data_ptr<acc_t>());
    with_index_type(!cfg.index64 && index32_fits(g, ins, outs), [&](auto index) {
      using I = decltype(index);
      auto stats_kernel = &forward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(stats_kernel, blocks_for(outs, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     nullptr, strides5(gy), sp, g, out_dividers<I>(x, g), outs);
      VIDPOOL_LAUNCH_CHECK();
      auto grad_kernel = &backward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(grad_kernel, blocks_for(ins, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     gy.const_data_ptr<scalar_t>(), strides5(gy), sp, gx.mutable_data_ptr<scalar_t>(),
                     strides5(gx), g, make_dividers<I>(x.size(1), g.dim[0].in, g.dim[1].in, g.dim[2].in, g), ins);
      VIDPOOL_LAUNCH_CHECK();
    });
  });
}

}  // namespace cuda_kernels
}  // namespace vidpool
