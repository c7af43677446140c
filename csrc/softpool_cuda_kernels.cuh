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
  bool cell_gather = false;  // overlapping windows: the per-input-cell gather even where blocks fit (A/B)
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

// Overlapping regular windows that reach at most one stride back (k <= 2s, s <= 2 on every axis:
// the 3x3x3 stride-2 pools): one thread per block of cells [b*s - p, b*s - p + s) along each axis
// (at most 2 x 2 x 2 cells). Every cell of block b lies in no window but b - 1 and b along each axis
// (the first window containing cell i is floor((i + p - k) / s) + 1 >= b - 1, the last is b), so the
// thread loads those at most 8 windows' statistics and output gradients once and sums them into each
// of its cells: per input cell, no cover arithmetic and no division, and an eighth of the window
// loads of the per-cell gather. Each cell sums its windows in the per-cell gather's order (od, oh,
// ow ascending), so both give bitwise the same gradient. Every input cell is in exactly one block:
// cells in no window get 0.
inline bool blocked_backward_fits(const Geometry& g) {
  for (const PoolDim& d : g.dim) {
    if (d.adaptive || d.s > 2 || d.k > 2 * d.s) return false;
  }
  return true;
}

// Blocks along one axis: enough to reach the last input cell.
inline int64_t blocks_along(const PoolDim& d) { return (d.in + d.p + d.s - 1) / d.s; }

template <typename scalar_t, typename acc_t, typename I>
__global__ void backward_blocked_kernel(const scalar_t* x, Strides sx, const scalar_t* gy, Strides sg,
                                        const WindowStats<acc_t>* stats, scalar_t* gx, Strides sgx, Geometry g,
                                        Dividers<typename DivFor<I>::type> dv, int64_t total) {
  const int64_t C = dv.c.d, oH = g.dim[1].out, oW = g.dim[2].out, plane_out = g.dim[0].out * oH * oW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5<I> b(I(i), dv);
    const I blk[3] = {b.d, b.h, b.w};
    I cell[3][2], win[3][2], win_end[3][2];
    bool cell_ok[3][2], win_ok[3][2];
    for (int a = 0; a < 3; ++a) {
      const PoolDim& d = g.dim[a];
      for (int j = 0; j < 2; ++j) {
        cell[a][j] = blk[a] * I(d.s) - I(d.p) + I(j);
        cell_ok[a][j] = j < d.s && cell[a][j] >= 0 && cell[a][j] < I(d.in);
        win[a][j] = blk[a] - 1 + I(j);
        win_ok[a][j] = win[a][j] >= 0 && win[a][j] < I(d.out);
        win_end[a][j] = win[a][j] * I(d.s) - I(d.p) + I(d.k);  // one past the window's last cell
      }
    }
    const WindowStats<acc_t>* st = stats + (b.n * C + b.c) * plane_out;
    const scalar_t* gp = gy + b.n * sg.n + b.c * sg.c;
    WindowStats<acc_t> ws[2][2][2];
    acc_t go[2][2][2];
    for (int jd = 0; jd < 2; ++jd)
      for (int jh = 0; jh < 2; ++jh)
        for (int jw = 0; jw < 2; ++jw) {
          if (!(win_ok[0][jd] && win_ok[1][jh] && win_ok[2][jw])) continue;
          ws[jd][jh][jw] = st[(win[0][jd] * oH + win[1][jh]) * oW + win[2][jw]];
          go[jd][jh][jw] = static_cast<acc_t>(gp[win[0][jd] * sg.d + win[1][jh] * sg.h + win[2][jw] * sg.w]);
        }
    const scalar_t* xp = x + b.n * sx.n + b.c * sx.c;
    scalar_t* gxp = gx + b.n * sgx.n + b.c * sgx.c;
    for (int cd = 0; cd < 2; ++cd)
      for (int ch = 0; ch < 2; ++ch)
        for (int cw = 0; cw < 2; ++cw) {
          if (!(cell_ok[0][cd] && cell_ok[1][ch] && cell_ok[2][cw])) continue;
          const I id = cell[0][cd], ih = cell[1][ch], iw = cell[2][cw];
          const acc_t xv = static_cast<acc_t>(xp[id * sx.d + ih * sx.h + iw * sx.w]);
          acc_t acc(0);
          for (int jd = 0; jd < 2; ++jd) {
            if (!win_ok[0][jd] || id >= win_end[0][jd]) continue;
            for (int jh = 0; jh < 2; ++jh) {
              if (!win_ok[1][jh] || ih >= win_end[1][jh]) continue;
              for (int jw = 0; jw < 2; ++jw) {
                if (!win_ok[2][jw] || iw >= win_end[2][jw]) continue;
                acc = acc + grad_term<acc_t>(xv, ws[jd][jh][jw], go[jd][jh][jw]);
              }
            }
          }
          gxp[id * sgx.d + ih * sgx.h + iw * sgx.w] = static_cast<scalar_t>(acc);
        }
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

// How launch_backward computes a gradient (see each kernel): per window where windows share no
// cell; else a statistics pass, then one thread per block of cells where blocked_backward_fits, or
// one per input cell (adaptive windows, strides above 2, windows reaching further back).
enum class BackwardPath { disjoint, blocked, cell_gather };

inline BackwardPath backward_path(const Geometry& g, const LaunchConfig& cfg) {
  if (windows_disjoint(g)) return BackwardPath::disjoint;
  if (!cfg.cell_gather && blocked_backward_fits(g)) return BackwardPath::blocked;
  return BackwardPath::cell_gather;
}

// Gradient w.r.t. x: disjoint windows write their cells' gradients per window; overlapping ones
// compute the window statistics in acc_t (y recomputed there), then gather them per block of
// cells or per cell. All give the same value (a cell's sum over its one window is that window's
// term; the blocked and per-cell gathers sum in the same order).
inline void launch_backward(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g,
                            const LaunchConfig& cfg) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t outs = gy.numel(), ins = x.numel();
    const BackwardPath path = backward_path(g, cfg);
    if (path == BackwardPath::disjoint) {
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
    const int64_t blocks = path == BackwardPath::blocked ? x.size(0) * x.size(1) * blocks_along(g.dim[0]) *
                                                              blocks_along(g.dim[1]) * blocks_along(g.dim[2])
                                                        : 0;
    const bool narrow = !cfg.index64 && index32_fits(g, ins, outs) && blocks <= std::numeric_limits<int32_t>::max();
    with_index_type(narrow, [&](auto index) {
      using I = decltype(index);
      auto stats_kernel = &forward_kernel<scalar_t, acc_t, I>;
      VIDPOOL_LAUNCH(stats_kernel, blocks_for(outs, cfg), cfg.threads, x.const_data_ptr<scalar_t>(), strides5(x),
                     nullptr, strides5(gy), sp, g, out_dividers<I>(x, g), outs);
      VIDPOOL_LAUNCH_CHECK();
      if (path == BackwardPath::blocked) {
        auto blocked_kernel = &backward_blocked_kernel<scalar_t, acc_t, I>;
        VIDPOOL_LAUNCH(blocked_kernel, blocks_for(blocks, cfg), cfg.threads, x.const_data_ptr<scalar_t>(),
                       strides5(x), gy.const_data_ptr<scalar_t>(), strides5(gy), sp, gx.mutable_data_ptr<scalar_t>(),
                       strides5(gx), g,
                       make_dividers<I>(x.size(1), blocks_along(g.dim[0]), blocks_along(g.dim[1]),
                                        blocks_along(g.dim[2]), g),
                       blocks);
        VIDPOOL_LAUNCH_CHECK();
        return;
      }
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
