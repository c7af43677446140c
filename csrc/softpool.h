// SoftPool per-window math, written once for the CPU launcher (scalar or at::vec lanes)
// and the CUDA launcher (one scalar per thread).
//
//   m   = max of the window            (NaN-propagating)
//   e_i = exp(x_i - m)                 (in (0, 1]: nothing overflows, any dtype)
//   y   = sum(x_i e_i) / sum(e_i) = m + sum((x_i - m) e_i) / sum(e_i)   (the latter is computed)
//   dy/dx_i = w_i (1 + x_i - y),  w_i = e_i / sum(e) = exp(x_i - m - log(sum(e)))
//
// Cells outside the input (padding, ceil_mode overhang) are not part of a window. Differences
// are taken as 0 where x equals m (or y) exactly, so infinities take their limits: a window whose
// max is +-inf yields it, its infinite cells share the weight (gradient gy / count, as the limit
// of equal large cells), and its finite cells weigh exactly 0 with gradient 0, never inf - inf =
// NaN. -inf cells in a finite window weigh 0 and contribute 0. A NaN cell makes its window NaN.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif

namespace vidpool {

// Elementwise helpers. Specialised for at::vec::Vectorized in the CPU launcher, so the
// window functions below serve scalars and SIMD lanes alike.
template <typename T>
struct Math {
  static SP_HD T neg_inf() { return static_cast<T>(-INFINITY); }
  static SP_HD T max(T a, T b) { return (a != a || a > b) ? a : b; }
  static SP_HD T exp(T a) { return ::exp(a); }
  static SP_HD T log(T a) { return ::log(a); }
  // e * v, except 0 where the weight e is exactly 0 (keeps -inf cells from producing NaN).
  static SP_HD T weighted(T e, T v) { return e == T(0) ? T(0) : e * v; }
  // x - m, except 0 where x == m (equal infinities included: their difference is the limit 0).
  static SP_HD T shifted(T x, T m) { return x == m ? T(0) : x - m; }
};

template <>
SP_HD float Math<float>::exp(float a) { return ::expf(a); }
template <>
SP_HD float Math<float>::log(float a) { return ::logf(a); }

// Pooling geometry along one spatial axis. Regular windows start at o*s - p and span k cells,
// clipped to [0, in). Adaptive windows are [floor(o*in/out), ceil((o+1)*in/out)), as
// adaptive_avg_pool. Unused leading axes (1D/2D pooling) are in = out = k = s = 1, p = 0.
struct PoolDim {
  int64_t in, out, k, s, p;
  bool adaptive;
};

// The index arithmetic below runs in the integer type I of its argument: int64_t on the CPU, and
// int32_t in the CUDA kernels whenever the sizes allow it (index32_fits in softpool_host.h), since a
// GPU divides 64-bit integers in a long software sequence.
template <typename I>
SP_HD I win_start(const PoolDim& d, I o) {
  if (d.adaptive) return (o * I(d.in)) / I(d.out);
  I st = o * I(d.s) - I(d.p);
  return st < 0 ? I(0) : st;
}

template <typename I>
SP_HD I win_end(const PoolDim& d, I o) {
  if (d.adaptive) return ((o + 1) * I(d.in) + I(d.out) - 1) / I(d.out);
  I en = o * I(d.s) - I(d.p) + I(d.k);
  return en > I(d.in) ? I(d.in) : en;
}

// n / d for n >= 0 with the divisor fixed ahead: plain division here; the CUDA kernels' 32-bit path
// uses FastDiv32 (softpool_cuda_kernels.cuh), a multiply and a shift.
template <typename I>
struct PlainDiv {
  I d;
  SP_HD I operator()(I n) const { return n / d; }
};

// The divisor of an axis's cover arithmetic: the stride, or the input size for adaptive windows.
SP_HD int64_t cover_divisor(const PoolDim& d) { return d.adaptive ? d.in : d.s; }

// First and last output whose window contains input cell i (empty range when first > last);
// div divides by cover_divisor(d). Every numerator is >= 0.
template <typename I, typename Div>
SP_HD I first_cover(const PoolDim& d, I i, const Div& div) {
  if (d.adaptive) return div(i * I(d.out));
  I r = i + I(d.p) - I(d.k);  // need o*s > r
  return r < 0 ? I(0) : div(r) + 1;
}

template <typename I, typename Div>
SP_HD I last_cover(const PoolDim& d, I i, const Div& div) {
  I o = d.adaptive ? div((i + 1) * I(d.out) + I(d.in) - 1) - 1 : div(i + I(d.p));
  return o < I(d.out) - 1 ? o : I(d.out) - 1;
}

template <typename I>
SP_HD I first_cover(const PoolDim& d, I i) { return first_cover(d, i, PlainDiv<I>{I(cover_divisor(d))}); }

template <typename I>
SP_HD I last_cover(const PoolDim& d, I i) { return last_cover(d, i, PlainDiv<I>{I(cover_divisor(d))}); }

struct Geometry {
  PoolDim dim[3];  // (D, H, W); 1D and 2D pooling fill the leading axes with unit dims
};

// Element strides of a 5-d view (N, C, D, H, W).
struct Strides {
  int64_t n, c, d, h, w;
};

template <typename V, typename Window>
SP_HD V window_max(const Window& win) {
  V m = Math<V>::neg_inf();
  win.for_each([&](V x) { m = Math<V>::max(m, x); });
  return m;
}

// The statistics the backward needs per window, in the accumulation type: the max m, log of
// sum(exp(x - m)), and y recomputed in acc_t (not the output rounded to a half type).
template <typename V>
struct WindowStats {
  V m, log_sum, y;
};

// m, s = sum(e), t = sum((x - m) e) of one window. `win.for_each(f)` calls f(value) per cell.
template <typename V, typename Window>
SP_HD void window_sums(const Window& win, V& m, V& s, V& t) {
  m = window_max<V>(win);
  s = V(0);
  t = V(0);
  win.for_each([&](V x) {
    const V d = Math<V>::shifted(x, m);
    const V e = Math<V>::exp(d);
    s = s + e;
    t = t + Math<V>::weighted(e, d);  // |d e^d| <= 1/e: cannot overflow, unlike sum(x e)
  });
}

template <typename V, typename Window>
SP_HD V window_forward(const Window& win) {
  V m, s, t;
  window_sums<V>(win, m, s, t);
  return m + t / s;
}

template <typename V, typename Window>
SP_HD WindowStats<V> window_stats(const Window& win) {
  V m, s, t;
  window_sums<V>(win, m, s, t);
  return WindowStats<V>{m, Math<V>::log(s), m + t / s};
}

// Contribution of one window (output y, grad gy) to the gradient of its cell x of weight w.
template <typename V>
SP_HD V grad_from_weight(V w, V x, V y, V gy) {
  return Math<V>::weighted(w, gy * (V(1) + Math<V>::shifted(x, y)));
}

// The same with the weight recomputed from the window's statistics.
template <typename V>
SP_HD V grad_term(V x, const WindowStats<V>& st, V gy) {
  return grad_from_weight(Math<V>::exp(Math<V>::shifted(x, st.m) - st.log_sum), x, st.y, gy);
}

// Outputs whose windows contain one input cell, per axis: [first, last] (empty when first > last).
template <typename I>
struct Cover {
  I first[3], last[3];
};

// divs[a] divides by cover_divisor(g.dim[a]).
template <typename I, typename Div>
SP_HD Cover<I> cover_of(const Geometry& g, I id, I ih, I iw, const Div* divs) {
  const I i[3] = {id, ih, iw};
  Cover<I> c;
  for (int a = 0; a < 3; ++a) {
    c.first[a] = first_cover(g.dim[a], i[a], divs[a]);
    c.last[a] = last_cover(g.dim[a], i[a], divs[a]);
  }
  return c;
}

// Gradient of one input cell x of a plane: the sum over the windows that cover it
// (deterministic, no atomics). stats is a dense (oD, oH, oW) plane; gy is strided.
template <typename acc_t, typename scalar_t, typename I>
SP_HD acc_t input_grad(const Geometry& g, acc_t x, const Cover<I>& cv, const WindowStats<acc_t>* stats,
                       const scalar_t* gy, Strides sg) {
  const int64_t oH = g.dim[1].out, oW = g.dim[2].out;
  acc_t acc(0);
  for (I od = cv.first[0]; od <= cv.last[0]; ++od)
    for (I oh = cv.first[1]; oh <= cv.last[1]; ++oh)
      for (I ow = cv.first[2]; ow <= cv.last[2]; ++ow) {
        const acc_t go = static_cast<acc_t>(gy[od * sg.d + oh * sg.h + ow * sg.w]);
        acc = acc + grad_term<acc_t>(x, stats[(od * oH + oh) * oW + ow], go);
      }
  return acc;
}

// One window read straight from a strided plane: the CUDA path (one thread per output).
template <typename scalar_t, typename acc_t, typename I = int64_t>
struct StridedWindow {
  const scalar_t* plane;
  Strides st;
  I d0, d1, h0, h1, w0, w1;

  SP_HD StridedWindow(const scalar_t* p, Strides s, const Geometry& g, I od, I oh, I ow)
      : plane(p), st(s),
        d0(win_start(g.dim[0], od)), d1(win_end(g.dim[0], od)),
        h0(win_start(g.dim[1], oh)), h1(win_end(g.dim[1], oh)),
        w0(win_start(g.dim[2], ow)), w1(win_end(g.dim[2], ow)) {}

  template <typename F>
  SP_HD void for_each(F&& f) const {
    for_each_cell([&](acc_t v, I, I, I) { f(v); });
  }
  // f(value, d, h, w) per cell, in the same order: with the cell's coordinates, to write beside it.
  template <typename F>
  SP_HD void for_each_cell(F&& f) const {
    for (I d = d0; d < d1; ++d)
      for (I h = h0; h < h1; ++h)
        for (I w = w0; w < w1; ++w)
          f(static_cast<acc_t>(plane[d * st.d + h * st.h + w * st.w]), d, h, w);
  }
};

}  // namespace vidpool
