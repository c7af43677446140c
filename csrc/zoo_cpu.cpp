// Zoo methods fused on the CPU (torch.ops.vidpool.gated_pool, dpp_pool and their backwards): one pass
// over each window's cells forward, and one backward that recomputes the window and writes the input
// gradient plus the parameters' gradients. Gated and Lp pooling's formulas are at gated_window and
// lp_window below.
//
// Detail-preserving pooling, lite variant (the window mean as the smoothed image). For a window of
// valid cells x_i (padding and ceil_mode overhang excluded), n of them:
//
//   mu = sum(x) / n,  d_i = x_i - mu (asym: max(d_i, 0)),  q_i = d_i^2 + eps^2,  rho_i = q_i^(lambda/2)
//   w_i = alpha + rho_i,  y = sum(w x) / sum(w) = N / S
//
//   t_i = gy (x_i - y) / S                      (the gradient reaching w_i)
//   u_i = t_i lambda d_i rho_i / q_i            (through rho to d_i; 0 where asym clamps d_i)
//   dx_k = gy w_k / S + u_k - sum(u) / n        (the last term through mu)
//   dalpha = sum(t),  dlambda = sum(t rho ln(q) / 2)
//
// Outputs are processed L at a time along W (one window per SIMD lane): each window's cells are first
// gathered slot by slot into a small cell-major buffer (invalid slots 0 with mask 0). One thread owns
// each (n, c) plane, so the sums are bitwise the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <limits>
#include <utility>
#include <tuple>
#include <vector>

#include "geometry.h"
#include "softpool_host.h"

namespace vidpool {
namespace {

using at::vec::Vectorized;

// Walks the windows of one plane, L outputs along W at a time, with their cells gathered slot-major
// (the zoo's fused kernels below share it).
template <typename scalar_t>
struct WindowWalker {
  using V = Vectorized<scalar_t>;
  static constexpr int64_t L = V::size();
  const Geometry& g;
  int64_t K;                       // slots per window: the kernel volume
  std::vector<scalar_t> cells, mask;  // [K][L]; mask 1 for a cell of the window (and a lane's fake cell)
  std::vector<char> valid;         // [K][L]: a real cell of the input
  std::vector<scalar_t> scratch;   // the callers' per-thread values (walk_windows)

  explicit WindowWalker(const Geometry& geometry)
      : g(geometry), K(geometry.dim[0].k * geometry.dim[1].k * geometry.dim[2].k),
        cells(K * L), mask(K * L), valid(K * L) {}

  // Gathers the windows (od, oh, ow0 .. ow0 + lanes - 1) of a plane with strides s; returns lanes.
  int64_t gather(const scalar_t* plane, const Strides& s, int64_t od, int64_t oh, int64_t ow0) {
    const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
    const int64_t lanes = std::min<int64_t>(L, W.out - ow0);
    int64_t k = 0;
    for (int64_t a = 0; a < D.k; ++a)
      for (int64_t b = 0; b < H.k; ++b) {
        const int64_t d = od * D.s - D.p + a, h = oh * H.s - H.p + b;
        const bool row_ok = d >= 0 && d < D.in && h >= 0 && h < H.in;
        const scalar_t* row = row_ok ? plane + d * s.d + h * s.h : plane;  // no pointer outside the plane
        for (int64_t c = 0; c < W.k; ++c, ++k) {
          scalar_t* cell = cells.data() + k * L;
          scalar_t* m = mask.data() + k * L;
          char* ok = valid.data() + k * L;
          // whole vectors on W-contiguous rows where every lane's cell lies inside (stride 2
          // de-interleaves 2L loaded values: one past the last cell used, hence the < W.in - 1)
          const int64_t w0 = ow0 * W.s - W.p + c, last = w0 + (L - 1) * W.s;
          if (row_ok && lanes == L && s.w == 1 && w0 >= 0 && (W.s == 1 || W.s == 2) &&
              last + W.s - 1 < W.in) {
            const V v = W.s == 1 ? V::loadu(row + w0)
                                 : std::get<0>(at::vec::deinterleave2(V::loadu(row + w0), V::loadu(row + w0 + L)));
            v.store(cell);
            V(scalar_t(1)).store(m);
            std::fill(ok, ok + L, char(1));
            continue;
          }
          for (int64_t j = 0; j < L; ++j) {
            const int64_t w = (ow0 + j) * W.s - W.p + c;
            ok[j] = row_ok && j < lanes && w >= 0 && w < W.in;
            cell[j] = ok[j] ? row[w * s.w] : scalar_t(0);
            // a lane past the row's end gets one fake cell (0), so its sums stay finite
            m[j] = ok[j] || (j >= lanes && k == 0) ? scalar_t(1) : scalar_t(0);
          }
        }
      }
    return lanes;
  }

  // Writes (or, with accumulate, adds) grad [K][L] into the cells the last gather read, in gx's plane
  // (gx has x's memory format, possibly other strides than x): slot k of lane j is cell
  // (od s - p + a, oh s - p + b, (ow0 + j) s - p + c).
  void scatter(const scalar_t* grad, scalar_t* gplane, const Strides& s, int64_t od, int64_t oh, int64_t ow0,
               int64_t lanes, bool accumulate) const {
    const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
    int64_t k = 0;
    for (int64_t a = 0; a < D.k; ++a)
      for (int64_t b = 0; b < H.k; ++b) {
        const int64_t d = od * D.s - D.p + a, h = oh * H.s - H.p + b;
        if (d < 0 || d >= D.in || h < 0 || h >= H.in) {  // a padding row: no cell to write
          k += W.k;
          continue;
        }
        scalar_t* row = gplane + d * s.d + h * s.h;
        const char* ok0 = valid.data() + k * L;
        if (!accumulate && W.k == 2 && W.s == 2 && s.w == 1 && lanes == L && ok0[0] && ok0[L - 1] &&
            valid[(k + 1) * L + L - 1]) {
          // 2-cell stride-2 windows tiling a contiguous row: the two slots interleave into 2L cells
          const auto pair = at::vec::interleave2(V::loadu(grad + k * L), V::loadu(grad + (k + 1) * L));
          std::get<0>(pair).store(row + ow0 * 2 - W.p);
          std::get<1>(pair).store(row + ow0 * 2 - W.p + L);
          k += 2;
          continue;
        }
        for (int64_t c = 0; c < W.k; ++c, ++k) {
          const char* ok = valid.data() + k * L;
          for (int64_t j = 0; j < lanes; ++j) {
            if (!ok[j]) continue;
            scalar_t& cell = row[((ow0 + j) * W.s - W.p + c) * s.w];
            cell = accumulate ? cell + grad[k * L + j] : grad[k * L + j];
          }
        }
      }
  }

  // Lanes of a chunk that hold a window (the rest are past the row's end).
  static V live(int64_t lanes) { return V::arange(scalar_t(0), scalar_t(1)) < V(scalar_t(lanes)); }
};

// Windows that neither overlap nor leave cells out write every input gradient cell exactly once.
inline bool writes_every_cell_once(const Geometry& g) { return windows_disjoint(g) && windows_cover_input(g); }

// Per-slot values of one gathered window chunk, kept for the backward.
template <typename scalar_t>
struct DppWindow {
  using V = Vectorized<scalar_t>;
  V count, y, inv_sum;
};

template <typename scalar_t>
DppWindow<scalar_t> dpp_window(const WindowWalker<scalar_t>& wk, const Vectorized<scalar_t>& alpha,
                               const Vectorized<scalar_t>& half_lam, scalar_t eps2, bool asym,
                               scalar_t* d_out, scalar_t* rho_out, scalar_t* lq_out) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  V sum_x(0), count(0);
  for (int64_t k = 0; k < wk.K; ++k) {
    sum_x = sum_x + V::loadu(wk.cells.data() + k * L);
    count = count + V::loadu(wk.mask.data() + k * L);
  }
  const V mu = sum_x / count;
  V num(0), den(0);
  for (int64_t k = 0; k < wk.K; ++k) {
    const V x = V::loadu(wk.cells.data() + k * L), m = V::loadu(wk.mask.data() + k * L);
    V d = x - mu;
    if (asym) d = at::vec::maximum(d, V(0));
    const V lq = (d * d + V(eps2)).log();
    const V rho = (lq * half_lam).exp();
    const V w = (alpha + rho) * m;
    num = num + w * x;
    den = den + w;
    if (d_out != nullptr) {
      d.store(d_out + k * L);
      rho.store(rho_out + k * L);
      lq.store(lq_out + k * L);
    }
  }
  const V inv = V(1) / den;
  return {count, num * inv, inv};
}

// Runs chunk(wk, n, c, od, oh, ow0, lanes) over every chunk of L windows of x after gathering its
// cells, one thread per (n, c) plane in a fixed order, then plane_done(wk, plane). Each thread has its
// own walker, with `scratch` values of its own for the callbacks.
template <typename scalar_t, typename Chunk, typename PlaneDone>
void walk_windows(const at::Tensor& x, const Geometry& g, int64_t scratch, Chunk&& chunk, PlaneDone&& plane_done) {
  constexpr int64_t L = Vectorized<scalar_t>::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1), planes = x.size(0) * C;
  const Strides sx = strides5(x);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    WindowWalker<scalar_t> wk(g);
    wk.scratch.assign(scratch, scalar_t(0));
    for (int64_t pl = begin; pl < end; ++pl) {
      const int64_t n = pl / C, c = pl % C;
      for (int64_t od = 0; od < D.out; ++od)
        for (int64_t oh = 0; oh < H.out; ++oh)
          for (int64_t ow0 = 0; ow0 < W.out; ow0 += L)
            chunk(wk, n, c, od, oh, ow0, wk.gather(xp + n * sx.n + c * sx.c, sx, od, oh, ow0));
      plane_done(wk, pl);
    }
  });
}

// Forward of a fused method: out_of(wk, c) gives the outputs of the chunk just gathered.
template <typename scalar_t, typename Out>
void walk_forward(const at::Tensor& x, at::Tensor& y, const Geometry& g, Out&& out_of) {
  constexpr int64_t L = Vectorized<scalar_t>::size();
  const Strides sy = strides5(y);
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  walk_windows<scalar_t>(x, g, 0, [&](WindowWalker<scalar_t>& wk, int64_t n, int64_t c, int64_t od, int64_t oh,
                                      int64_t ow0, int64_t lanes) {
    scalar_t out[L];
    out_of(wk, c).store(out);
    scalar_t* row = yp + n * sy.n + c * sy.c + od * sy.d + oh * sy.h;
    for (int64_t j = 0; j < lanes; ++j) row[(ow0 + j) * sy.w] = out[j];
  }, [](WindowWalker<scalar_t>&, int64_t) {});
}

// The output gradient of a chunk's windows, 0 in lanes past the row's end.
template <typename scalar_t>
Vectorized<scalar_t> grad_lanes(const at::Tensor& gy, const Strides& sg, int64_t n, int64_t c, int64_t od, int64_t oh,
                                int64_t ow0, int64_t lanes) {
  constexpr int64_t L = Vectorized<scalar_t>::size();
  const scalar_t* row = gy.const_data_ptr<scalar_t>() + n * sg.n + c * sg.c + od * sg.d + oh * sg.h;
  scalar_t v[L];
  for (int64_t j = 0; j < L; ++j) v[j] = j < lanes ? row[(ow0 + j) * sg.w] : scalar_t(0);
  return Vectorized<scalar_t>::loadu(v);
}

// Sums of each plane's per-lane accumulators (slots of L values), then over N in a fixed order:
// out[c * slots + s] (or out[s] when shared by all channels).
template <typename scalar_t>
void reduce_planes(const std::vector<scalar_t>& per_plane, int64_t N, int64_t C, int64_t slots, bool per_channel,
                   scalar_t* out) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < slots; ++s) out[(per_channel ? c * slots : 0) + s] += per_plane[(n * C + c) * slots + s];
}

// Horizontal sums of `slots` accumulators of L lanes each (from scratch + offset) into dst; resets them.
template <typename scalar_t>
void drain_lanes(std::vector<scalar_t>& scratch, int64_t offset, int64_t slots, scalar_t* dst) {
  constexpr int64_t L = Vectorized<scalar_t>::size();
  for (int64_t s = 0; s < slots; ++s) {
    scalar_t total = 0;
    for (int64_t j = 0; j < L; ++j) total += scratch[offset + s * L + j];
    dst[s] = total;
  }
  std::fill(scratch.begin() + offset, scratch.begin() + offset + slots * L, scalar_t(0));
}

template <typename scalar_t>
void dpp_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam, at::Tensor& y,
                 const Geometry& g, bool asym, double eps) {
  const scalar_t* ap = alpha.const_data_ptr<scalar_t>();
  const scalar_t* lp = lam.const_data_ptr<scalar_t>();
  walk_forward<scalar_t>(x, y, g, [&](const WindowWalker<scalar_t>& wk, int64_t c) {
    using V = Vectorized<scalar_t>;
    return dpp_window<scalar_t>(wk, V(ap[c]), V(lp[c] * scalar_t(0.5)), scalar_t(eps * eps), asym, nullptr, nullptr,
                                nullptr).y;
  });
}

template <typename scalar_t>
void dpp_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam,
                  at::Tensor& gx, at::Tensor& galpha, at::Tensor& glam, const Geometry& g, bool asym, double eps,
                  bool accumulate) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  const int64_t C = x.size(1), N = x.size(0), K = g.dim[0].k * g.dim[1].k * g.dim[2].k;
  const Strides sg = strides5(gy), sgx = strides5(gx);
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  const scalar_t* ap = alpha.const_data_ptr<scalar_t>();
  const scalar_t* lp = lam.const_data_ptr<scalar_t>();
  const scalar_t e2 = scalar_t(eps * eps);
  std::vector<scalar_t> per_plane(N * C * 2);  // (alpha, lambda) sums per plane
  // scratch: d, rho, ln q, grad [K][L] each, then the alpha and lambda accumulators [2][L]
  walk_windows<scalar_t>(x, g, 4 * K * L + 2 * L, [&](WindowWalker<scalar_t>& wk, int64_t n, int64_t c, int64_t od,
                                                      int64_t oh, int64_t ow0, int64_t lanes) {
    scalar_t *dv = wk.scratch.data(), *rv = dv + K * L, *lv = rv + K * L, *grad = lv + K * L, *acc = grad + K * L;
    const V av(ap[c]), lam_c(lp[c]);
    const DppWindow<scalar_t> win = dpp_window<scalar_t>(wk, av, V(lp[c] * scalar_t(0.5)), e2, asym, dv, rv, lv);
    // lanes past the row's end: gradient 0 even where their fake window's sums are not finite
    const V gs = V::blendv(V(0), grad_lanes<scalar_t>(gy, sg, n, c, od, oh, ow0, lanes) * win.inv_sum,
                           wk.live(lanes));
    V sum_u(0), acc_a = V::loadu(acc), acc_l = V::loadu(acc + L);
    for (int64_t k = 0; k < K; ++k) {
      const V x = V::loadu(wk.cells.data() + k * L), m = V::loadu(wk.mask.data() + k * L);
      const V d = V::loadu(dv + k * L), rho = V::loadu(rv + k * L), lq = V::loadu(lv + k * L);
      const V t = (x - win.y) * gs * m;
      acc_a = acc_a + t;
      acc_l = acc_l + t * rho * lq * V(scalar_t(0.5));
      const V u = t * lam_c * d * rho / (d * d + V(e2));
      sum_u = sum_u + u;
      ((av + rho) * m * gs + u).store(grad + k * L);
    }
    acc_a.store(acc);
    acc_l.store(acc + L);
    const V mean_u = sum_u / win.count;
    for (int64_t k = 0; k < K; ++k) (V::loadu(grad + k * L) - mean_u).store(grad + k * L);
    wk.scatter(grad, gxp + n * sgx.n + c * sgx.c, sgx, od, oh, ow0, lanes, accumulate);
  }, [&](WindowWalker<scalar_t>& wk, int64_t pl) { drain_lanes(wk.scratch, 4 * K * L, 2, &per_plane[pl * 2]); });
  std::vector<scalar_t> sums(C * 2, scalar_t(0));
  reduce_planes(per_plane, N, C, 2, true, sums.data());
  scalar_t* ga = galpha.mutable_data_ptr<scalar_t>();
  scalar_t* gl = glam.mutable_data_ptr<scalar_t>();
  for (int64_t c = 0; c < C; ++c) {
    ga[c] = sums[c * 2];
    gl[c] = sums[c * 2 + 1];
  }
}


// Gated pooling: y = mean + gate (max - mean), gate = sigmoid(sum_k w_k x_k) over the window's slots
// (padding and overhang cells count as 0 in the logit, as a convolution over zero padding, and are left
// out of max and mean). Backward, with a the first maximum (max pooling's cell):
//   dx_k = gy ((1 - gate) / n + gate (1 - gate) (max - mean) w_k + gate [k = a]),
//   dw_k = sum gy gate (1 - gate) (max - mean) x_k.
template <typename scalar_t>
struct GatedWindow {
  using V = Vectorized<scalar_t>;
  V count, mean, top, arg, gate;
};

template <typename scalar_t>
GatedWindow<scalar_t> gated_window(const WindowWalker<scalar_t>& wk, const scalar_t* w) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  V sum(0), count(0), logit(0), top(-std::numeric_limits<scalar_t>::infinity()), arg(0);
  for (int64_t k = 0; k < wk.K; ++k) {
    const V x = V::loadu(wk.cells.data() + k * L), m = V::loadu(wk.mask.data() + k * L);
    sum = sum + x;
    count = count + m;
    logit = logit + x * V(w[k]);
    // first maximum among the window's cells; a NaN wins, as in max pooling
    const V better = ((x > top) | (x.isnan() & ~top.isnan())) & (m != V(0));
    top = V::blendv(top, x, better);
    arg = V::blendv(arg, V(scalar_t(k)), better);
  }
  const V gate = V(1) / (V(1) + logit.neg().exp());
  return {count, sum / count, top, arg, gate};
}


template <typename scalar_t>
void gated_forward(const at::Tensor& x, const at::Tensor& mask, at::Tensor& y, const Geometry& g) {
  const int64_t K = mask.size(1);
  const bool per_channel = mask.size(0) > 1;
  const scalar_t* mp = mask.const_data_ptr<scalar_t>();
  walk_forward<scalar_t>(x, y, g, [&](const WindowWalker<scalar_t>& wk, int64_t c) {
    const GatedWindow<scalar_t> win = gated_window<scalar_t>(wk, mp + (per_channel ? c * K : 0));
    return win.mean + win.gate * (win.top - win.mean);
  });
}

template <typename scalar_t>
void gated_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& mask, at::Tensor& gx,
                    at::Tensor& gmask, const Geometry& g, bool accumulate) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  const int64_t C = x.size(1), N = x.size(0), K = mask.size(1);
  const bool per_channel = mask.size(0) > 1;
  const Strides sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* mp = mask.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  std::vector<scalar_t> per_plane(N * C * K);  // mask-gradient sums per plane and slot
  // scratch: grad [K][L], then the mask-gradient accumulators [K][L]
  walk_windows<scalar_t>(x, g, 2 * K * L, [&](WindowWalker<scalar_t>& wk, int64_t n, int64_t c, int64_t od,
                                              int64_t oh, int64_t ow0, int64_t lanes) {
    scalar_t *grad = wk.scratch.data(), *acc = grad + K * L;
    const scalar_t* w = mp + (per_channel ? c * K : 0);
    const GatedWindow<scalar_t> win = gated_window<scalar_t>(wk, w);
    const V gv = V::blendv(V(0), grad_lanes<scalar_t>(gy, sg, n, c, od, oh, ow0, lanes), wk.live(lanes));
    const V g_max = gv * win.gate;
    const V g_mean = (gv - g_max) / win.count;
    const V g_logit = g_max * (V(1) - win.gate) * (win.top - win.mean);
    for (int64_t k = 0; k < K; ++k) {
      const V x = V::loadu(wk.cells.data() + k * L), m = V::loadu(wk.mask.data() + k * L);
      const V at_max = V::blendv(V(0), g_max, win.arg == V(scalar_t(k)));
      ((g_mean + g_logit * V(w[k])) * m + at_max).store(grad + k * L);
      (V::loadu(acc + k * L) + g_logit * x).store(acc + k * L);
    }
    wk.scatter(grad, gxp + n * sgx.n + c * sgx.c, sgx, od, oh, ow0, lanes, accumulate);
  }, [&](WindowWalker<scalar_t>& wk, int64_t pl) { drain_lanes(wk.scratch, K * L, K, &per_plane[pl * K]); });
  reduce_planes(per_plane, N, C, K, per_channel, gmask.mutable_data_ptr<scalar_t>());
}


// Power average over |x| with a per-channel p >= 1, scaled by the window's own largest magnitude mx
// (so r = |x| / mx <= 1 and r^p cannot overflow; the largest term is 1, so S >= 1 cannot underflow):
//   y = mx S^(1/p),  S = sum r_i^p      (y = 0 where the window is all zeros)
//   dy/dx_i = sign(x_i) r_i^(p-1) S^(1/p - 1),  dy/dp = y (sum(r^p ln r) / (p S) - ln(S) / p^2)
// with r^p ln r and r^(p-1) taken as 0 at r = 0 (p = 1 included: the derivative of |x| at 0 is 0).
template <typename scalar_t>
struct LpWindow {
  using V = Vectorized<scalar_t>;
  V scale, total, y;
};

template <typename scalar_t>
LpWindow<scalar_t> lp_window(const WindowWalker<scalar_t>& wk, const Vectorized<scalar_t>& p, scalar_t* rp_out,
                             scalar_t* lr_out) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  V mx(0);
  for (int64_t k = 0; k < wk.K; ++k) mx = at::vec::maximum(mx, V::loadu(wk.cells.data() + k * L).abs());
  const V zero_window = mx == V(0);
  const V scale = V::blendv(mx, V(1), zero_window);  // all-zero windows: r = 0 everywhere, y = 0
  const V inv = V(1) / scale;
  V total(0);
  for (int64_t k = 0; k < wk.K; ++k) {
    const V lr = (V::loadu(wk.cells.data() + k * L).abs() * inv).log();  // -inf at r = 0; invalid slots are 0
    const V rp = (lr * p).exp();
    total = total + rp;
    if (rp_out != nullptr) {
      rp.store(rp_out + k * L);
      lr.store(lr_out + k * L);
    }
  }
  const V y = V::blendv(scale * (total.log() / p).exp(), V(0), zero_window);
  return {scale, total, y};
}

template <typename scalar_t>
void lp_forward(const at::Tensor& x, const at::Tensor& p, at::Tensor& y, const Geometry& g) {
  const scalar_t* pp = p.const_data_ptr<scalar_t>();
  walk_forward<scalar_t>(x, y, g, [&](const WindowWalker<scalar_t>& wk, int64_t c) {
    return lp_window<scalar_t>(wk, Vectorized<scalar_t>(pp[c]), nullptr, nullptr).y;
  });
}

template <typename scalar_t>
void lp_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& p, at::Tensor& gx, at::Tensor& gp,
                 const Geometry& g, bool accumulate) {
  using V = Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  const int64_t C = x.size(1), N = x.size(0), K = g.dim[0].k * g.dim[1].k * g.dim[2].k;
  const Strides sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* pp = p.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  std::vector<scalar_t> per_plane(N * C);
  // scratch: r^p, ln r, grad [K][L] each, then the p-gradient accumulator [L]
  walk_windows<scalar_t>(x, g, 3 * K * L + L, [&](WindowWalker<scalar_t>& wk, int64_t n, int64_t c, int64_t od,
                                                  int64_t oh, int64_t ow0, int64_t lanes) {
    scalar_t *rpv = wk.scratch.data(), *lrv = rpv + K * L, *grad = lrv + K * L, *acc = grad + K * L;
    const V pv(pp[c]);
    const LpWindow<scalar_t> win = lp_window<scalar_t>(wk, pv, rpv, lrv);
    const V gv = V::blendv(V(0), grad_lanes<scalar_t>(gy, sg, n, c, od, oh, ow0, lanes), wk.live(lanes));
    const V live = win.y != V(0);  // all-zero windows (and dead lanes' fake windows) pass no gradient
    // d y / d x_i = sign(x_i) r^(p-1) S^(1/p - 1);  S^(1/p - 1) = y / (scale S)
    const V factor = V::blendv(V(0), gv * win.y / (win.scale * win.total), live);
    V sum_rl(0);
    for (int64_t k = 0; k < K; ++k) {
      const V x = V::loadu(wk.cells.data() + k * L), rp = V::loadu(rpv + k * L), lr = V::loadu(lrv + k * L);
      const V positive = rp > V(0);
      const V r = x.abs() / win.scale;
      const V sign = V::blendv(V::blendv(V(0), V(-1), x < V(0)), V(1), x > V(0));
      (V::blendv(V(0), rp / r, positive) * sign * factor).store(grad + k * L);
      sum_rl = sum_rl + V::blendv(V(0), rp * lr, positive);
    }
    const V dydp = V::blendv(V(0), win.y * (sum_rl / (pv * win.total) - win.total.log() / (pv * pv)), live);
    (V::loadu(acc) + gv * dydp).store(acc);
    wk.scatter(grad, gxp + n * sgx.n + c * sgx.c, sgx, od, oh, ow0, lanes, accumulate);
  }, [&](WindowWalker<scalar_t>& wk, int64_t pl) { drain_lanes(wk.scratch, 3 * K * L, 1, &per_plane[pl]); });
  reduce_planes(per_plane, N, C, 1, true, gp.mutable_data_ptr<scalar_t>());
}

void check_params(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam) {
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                    "dpp_pool/lp_pool: the fused CPU kernel takes float32 or float64, got ", x.scalar_type());
  for (const at::Tensor* t : {&alpha, &lam}) {
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == x.size(1) && t->scalar_type() == x.scalar_type() &&
                          t->device() == x.device(),
                      "dpp_pool/lp_pool: per-channel parameters must be (C,) = (", x.size(1), ",) tensors of the "
                      "input's dtype and device, got ", t->sizes(), " ", t->scalar_type());
  }
}

void check_gated(const at::Tensor& x, const at::Tensor& mask, const Geometry& g) {
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                    "gated_pool: the fused CPU kernel takes float32 or float64, got ", x.scalar_type());
  const int64_t K = g.dim[0].k * g.dim[1].k * g.dim[2].k;
  TORCH_CHECK_VALUE(mask.dim() == 2 && (mask.size(0) == 1 || mask.size(0) == x.size(1)) && mask.size(1) == K &&
                        mask.scalar_type() == x.scalar_type() && mask.device() == x.device(),
                    "gated_pool: mask must be (1 or C, kernel volume) = (1 or ", x.size(1), ", ", K,
                    ") of the input's dtype and device, got ", mask.sizes(), " ", mask.scalar_type());
}

at::Tensor new_output(const at::Tensor& x, const Geometry& g) {
  return at::empty(output_shape(x, g), x.options(), x.suggest_memory_format());
}

// The input gradient (x's memory format), zeroed unless every cell is written exactly once; checks gy.
std::pair<at::Tensor, bool> new_grad_input(const at::Tensor& gy, const at::Tensor& x, const Geometry& g,
                                           const char* op) {
  TORCH_CHECK_VALUE(gy.sizes() == at::IntArrayRef(output_shape(x, g)) && gy.scalar_type() == x.scalar_type(), op,
                    ": grad_output ", gy.sizes(), " ", gy.scalar_type(), " does not match the output");
  const bool accumulate = !writes_every_cell_once(g) || gy.numel() == 0;
  at::Tensor gx = at::empty(x.sizes(), x.options(), x.suggest_memory_format());
  if (accumulate) gx.zero_();
  return {gx, accumulate};
}

}  // namespace

at::Tensor lp_pool_cpu(const at::Tensor& x, const at::Tensor& p, const Geometry& g) {
  check_params(x, p, p);
  at::Tensor y = new_output(x, g);
  const at::Tensor pc = p.contiguous();
  if (y.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lp_pool_cpu", [&] { lp_forward<scalar_t>(x, pc, y, g); });
  return y;
}

std::tuple<at::Tensor, at::Tensor> lp_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& p,
                                                        const Geometry& g) {
  check_params(x, p, p);
  auto [gx, accumulate] = new_grad_input(gy, x, g, "lp_pool_backward");
  at::Tensor gp = at::zeros({x.size(1)}, x.options());
  const at::Tensor pc = p.contiguous();
  if (gy.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lp_pool_backward_cpu",
                               [&] { lp_backward<scalar_t>(gy, x, pc, gx, gp, g, accumulate); });
  return {gx, gp};
}

at::Tensor gated_pool_cpu(const at::Tensor& x, const at::Tensor& mask, const Geometry& g) {
  check_gated(x, mask, g);
  at::Tensor y = new_output(x, g);
  const at::Tensor m = mask.contiguous();
  if (y.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gated_pool_cpu", [&] { gated_forward<scalar_t>(x, m, y, g); });
  return y;
}

std::tuple<at::Tensor, at::Tensor> gated_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x,
                                                           const at::Tensor& mask, const Geometry& g) {
  check_gated(x, mask, g);
  auto [gx, accumulate] = new_grad_input(gy, x, g, "gated_pool_backward");
  at::Tensor gm = at::zeros(mask.sizes(), mask.options());
  const at::Tensor m = mask.contiguous();
  if (gy.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gated_pool_backward_cpu",
                               [&] { gated_backward<scalar_t>(gy, x, m, gx, gm, g, accumulate); });
  return {gx, gm};
}

at::Tensor dpp_pool_cpu(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam, const Geometry& g,
                        bool asym, double eps) {
  check_params(x, alpha, lam);
  at::Tensor y = new_output(x, g);
  const at::Tensor a = alpha.contiguous(), l = lam.contiguous();
  if (y.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dpp_pool_cpu", [&] { dpp_forward<scalar_t>(x, a, l, y, g, asym, eps); });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpp_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x,
                                                                     const at::Tensor& alpha, const at::Tensor& lam,
                                                                     const Geometry& g, bool asym, double eps) {
  check_params(x, alpha, lam);
  auto [gx, accumulate] = new_grad_input(gy, x, g, "dpp_pool_backward");
  at::Tensor ga = at::zeros({x.size(1)}, x.options()), gl = at::zeros({x.size(1)}, x.options());
  const at::Tensor a = alpha.contiguous(), l = lam.contiguous();
  if (gy.numel() > 0)
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dpp_pool_backward_cpu",
                               [&] { dpp_backward<scalar_t>(gy, x, a, l, gx, ga, gl, g, asym, eps, accumulate); });
  return {gx, ga, gl};
}

}  // namespace vidpool
