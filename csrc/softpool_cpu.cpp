// CPU launchers. Outputs along W are processed in chunks of one SIMD vector: for each chunk
// the window cells of every lane are gathered into a small buffer (-inf where a lane's window
// has no cell), and the shared window math of softpool.h runs on at::vec lanes.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "softpool_host.h"

namespace vidpool {

using at::vec::Vectorized;

template <typename T>
struct Math<Vectorized<T>> {
  using V = Vectorized<T>;
  static V neg_inf() { return V(-std::numeric_limits<T>::infinity()); }
  static V max(V a, V b) { return at::vec::maximum(a, b); }  // propagates NaN
  static V exp(V a) {
    // float: ATen's polynomial exp (<= 20 ulp, 0 below the float range, NaN still reaches y via
    // x * e); double keeps the correctly rounded one.
    if constexpr (std::is_same_v<T, float>) return a.exp_u20();
    else return a.exp();
  }
  static V log(V a) { return a.log(); }
  static V weighted(V e, V v) { return V::blendv(e * v, V(0), e == V(0)); }
  static V shifted(V x, V m) { return V::blendv(x - m, V(0), x == m); }
};

namespace {

template <typename acc_t>
struct BufferWindow {
  static constexpr int L = Vectorized<acc_t>::size();
  const acc_t* buf;
  int64_t cells;

  template <typename F>
  void for_each(F&& f) const {
    for (int64_t k = 0; k < cells; ++k) f(Vectorized<acc_t>::loadu(buf + k * L));
  }
};

// Window cells of L lanes read straight from W-contiguous rows (float/double, whole chunk inside
// the input): a vector load per (d, h, slot), de-interleaved when the stride is 2.
template <typename acc_t>
struct LineWindow {
  using V = Vectorized<acc_t>;
  const acc_t* first;  // cell (d0, h0, first column of lane 0)
  int64_t sd, sh, nd, nh, kw, sw;

  V load(const acc_t* p) const {
    if (sw == 1) return V::loadu(p);
    if (sw == 2) return at::vec::deinterleave2(V::loadu(p), V::loadu(p + V::size())).first;
    acc_t tmp[V::size()];
    for (int j = 0; j < V::size(); ++j) tmp[j] = p[j * sw];
    return V::loadu(tmp);
  }

  template <typename F>
  void for_each(F&& f) const {
    for (int64_t d = 0; d < nd; ++d)
      for (int64_t h = 0; h < nh; ++h) {
        const acc_t* p = first + d * sd + h * sh;
        for (int64_t s = 0; s < kw; ++s) f(load(p + s));
      }
  }
};

// A LineWindow over a thread's -inf padded copy of the window's lines (not over x itself).
template <typename acc_t>
struct PaddedLineWindow : LineWindow<acc_t> {};

int64_t max_extent(const PoolDim& d) {
  if (!d.adaptive) return d.k;
  int64_t m = 0;
  for (int64_t o = 0; o < d.out; ++o) m = std::max(m, win_end(d, o) - win_start(d, o));
  return m;
}

// Rows are (n, c, od, oh) output rows; channels-last tensors visit c innermost for locality.
struct RowOrder {
  int64_t N, C, D, H;
  bool channels_inner;
  void decode(int64_t r, int64_t& n, int64_t& c, int64_t& d, int64_t& h) const {
    if (channels_inner) {
      c = r % C; r /= C; h = r % H; r /= H; d = r % D; n = r / D;
    } else {
      h = r % H; r /= H; d = r % D; r /= D; c = r % C; n = r / C;
    }
  }
};

bool channels_inner(const at::Tensor& x) { return x.size(1) > 1 && x.stride(1) < x.stride(x.dim() - 1); }

// Calls emit(n, c, od, oh, ow0, lanes, window, cols) for every chunk of L outputs along W. The
// window is a LineWindow where the chunk's windows and loads lie inside x's rows. Other chunks of
// fixed windows use a PaddedLineWindow: the row's lines copied once, with -inf padding, into a
// per-thread buffer. Adaptive windows gather their cells into a BufferWindow (cell-major, L lanes
// per cell). cols[slot * L + lane] is the input column or -1.
template <typename scalar_t, typename acc_t, typename Emit>
void for_each_chunk(const at::Tensor& x, const Geometry& g, bool inner, bool plane_major, Emit&& emit) {
  constexpr int L = Vectorized<acc_t>::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t kw = max_extent(W), chunks = (W.out + L - 1) / L;
  // Chunk ch covers outputs [start, start + lanes). The last chunk is moved back to end at W.out
  // (recomputing a few outputs, same values) so that every chunk of a wide row has L lanes.
  auto chunk_start = [&](int64_t ch) { return W.out >= L ? std::min<int64_t>(ch * L, W.out - L) : 0; };
  const int64_t lanes = std::min<int64_t>(L, W.out);
  // Input column of (chunk, slot, lane), or -1 where that lane's window has no such cell. Fixed
  // windows keep slot s at column ow * stride - pad + s even where padding cuts the window, so that
  // slot s of lane j is always column c0 + s + j * stride (the backward's vector adds rely on it).
  std::vector<int64_t> col(chunks * kw * L);
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int64_t j = 0; j < L; ++j) {
      const int64_t ow = chunk_start(ch) + j;
      const int64_t w0 = ow < W.out ? win_start(W, ow) : 0, w1 = ow < W.out ? win_end(W, ow) : 0;
      const int64_t first = W.adaptive ? w0 : ow * W.s - W.p;
      for (int64_t s = 0; s < kw; ++s)
        col[(ch * kw + s) * L + j] = first + s >= w0 && first + s < w1 ? first + s : -1;
    }
  const int64_t max_lines = max_extent(D) * max_extent(H), max_cells = max_lines * kw;
  // Padded line copies: W.p cells of -inf, the line, then -inf up to the furthest vector load.
  const int64_t load_extent = W.s == 2 ? 2 * L : W.s == 1 ? L : (L - 1) * W.s + 1;
  const int64_t padded_width =
      W.adaptive ? 0 : std::max<int64_t>(W.p + W.in, chunk_start(chunks - 1) * W.s + kw + load_extent);
  const Strides sx = strides5(x);
  // Direct loads need every lane's whole window inside the row, and the vector loads too.
  std::vector<char> direct(chunks, 0);
  if (std::is_same_v<scalar_t, acc_t> && sx.w == 1 && !W.adaptive)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t first = chunk_start(ch) * W.s - W.p, last_lane = chunk_start(ch) + L - 1;
      const int64_t loaded_end = first + W.k - 1 + (W.s == 2 ? 2 * L : W.s == 1 ? L : (L - 1) * W.s + 1);
      direct[ch] = last_lane < W.out && first >= 0 && last_lane * W.s - W.p + W.k <= W.in && loaded_end <= W.in;
    }
  // Narrow rows (fewer outputs than lanes, e.g. W = 14 late in a network) load directly too when
  // every real lane's window lies in the row: the idle lanes' loads run past the row into memory
  // of the same allocation (checked per row below) and their results are never stored.
  const int64_t narrow_loaded_end =
      W.k - 1 + (W.s == 2 ? 2 * L : W.s == 1 ? L : (L - 1) * W.s + 1);
  const bool narrow = std::is_same_v<scalar_t, acc_t> && sx.w == 1 && !W.adaptive && W.out < L && W.p == 0 &&
                      (W.out - 1) * W.s + W.k <= W.in;
  const int64_t allocated = static_cast<int64_t>(x.storage().nbytes() / sizeof(scalar_t)) - x.storage_offset();
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const RowOrder order{x.size(0), x.size(1), D.out, H.out, inner};
  const int64_t rows = order.N * order.C * D.out * H.out;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, W.out * max_cells));
  const acc_t ninf = -std::numeric_limits<acc_t>::infinity();

  struct Scratch {
    std::vector<acc_t> cells, lines;
  };
  auto scratch = [&] {
    return Scratch{std::vector<acc_t>(max_cells * L), std::vector<acc_t>(max_lines * padded_width, ninf)};
  };
  auto row = [&](int64_t n, int64_t c, int64_t od, int64_t oh, Scratch& scr) {
    const scalar_t* plane = xp + n * sx.n + c * sx.c;
    const int64_t d0 = win_start(D, od), d1 = win_end(D, od), h0 = win_start(H, oh), h1 = win_end(H, oh);
    bool copied = false;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t* cols = col.data() + ch * kw * L;
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        if (direct[ch]) {
          const LineWindow<acc_t> win{plane + d0 * sx.d + h0 * sx.h + (chunk_start(ch) * W.s - W.p), sx.d,
                                      sx.h, d1 - d0, h1 - h0, kw, W.s};
          emit(n, c, od, oh, chunk_start(ch), int64_t(L), win, cols);
          continue;
        }
        if (narrow && (plane - xp) + (d1 - 1) * sx.d + (h1 - 1) * sx.h + narrow_loaded_end <= allocated) {
          const LineWindow<acc_t> win{plane + d0 * sx.d + h0 * sx.h, sx.d, sx.h, d1 - d0, h1 - h0, kw, W.s};
          emit(n, c, od, oh, int64_t(0), lanes, win, cols);
          continue;
        }
      }
      if (!W.adaptive) {
        if (!copied) {
          acc_t* dst = scr.lines.data() + W.p;
          for (int64_t d = d0; d < d1; ++d)
            for (int64_t h = h0; h < h1; ++h, dst += padded_width) {
              const scalar_t* line = plane + d * sx.d + h * sx.h;
              for (int64_t w = 0; w < W.in; ++w) dst[w] = static_cast<acc_t>(line[w * sx.w]);
            }
          copied = true;
        }
        const PaddedLineWindow<acc_t> win{{scr.lines.data() + chunk_start(ch) * W.s, (h1 - h0) * padded_width,
                                           padded_width, d1 - d0, h1 - h0, kw, W.s}};
        emit(n, c, od, oh, chunk_start(ch), lanes, win, cols);
        continue;
      }
      acc_t* b = scr.cells.data();
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h) {
          const scalar_t* line = plane + d * sx.d + h * sx.h;
          for (int64_t s = 0; s < kw * L; ++s)
            b[s] = cols[s] < 0 ? ninf : static_cast<acc_t>(line[cols[s] * sx.w]);
          b += kw * L;
        }
      const BufferWindow<acc_t> win{scr.cells.data(), (d1 - d0) * (h1 - h0) * kw};
      emit(n, c, od, oh, chunk_start(ch), lanes, win, cols);
    }
  };

  if (plane_major) {
    at::parallel_for(0, order.N * order.C, 1, [&](int64_t begin, int64_t end) {
      Scratch scr = scratch();
      for (int64_t p = begin; p < end; ++p)
        for (int64_t od = 0; od < D.out; ++od)
          for (int64_t oh = 0; oh < H.out; ++oh) row(p / order.C, p % order.C, od, oh, scr);
    });
    return;
  }
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    Scratch scr = scratch();
    for (int64_t r = begin; r < end; ++r) {
      int64_t n, c, od, oh;
      order.decode(r, n, c, od, oh);
      row(n, c, od, oh, scr);
    }
  });
}

// The gradient of one window's cells (L lanes of windows at once), passed to sink(grad) in the
// window's cell order. Small windows keep x_i and e_i between the passes (w_i = e_i / sum(e), in the
// order window_sums adds); larger ones recompute each e_i from the window's statistics.
template <typename V, typename Window, typename Sink>
void window_gradient(const Window& win, int64_t cells, const V& gv, Sink&& sink) {
  using acc_t = typename V::value_type;
  constexpr int64_t L = V::size(), kCachedCells = 64;
  if (cells > kCachedCells) {
    const WindowStats<V> st = window_stats<V>(win);
    win.for_each([&](V xv) { sink(grad_term<V>(xv, st, gv)); });
    return;
  }
  alignas(64) acc_t e_cache[kCachedCells * L];
  alignas(64) acc_t x_cache[kCachedCells * L];
  V m = Math<V>::neg_inf();
  int64_t k = 0;
  win.for_each([&](V xv) {
    xv.store(x_cache + (k++) * L);
    m = Math<V>::max(m, xv);
  });
  V sum(0), t(0);
  for (k = 0; k < cells; ++k) {
    const V d = Math<V>::shifted(V::loadu(x_cache + k * L), m);
    const V e = Math<V>::exp(d);
    e.store(e_cache + k * L);
    sum = sum + e;
    t = t + Math<V>::weighted(e, d);
  }
  const V inv_sum = V(1) / sum, yv = m + t / sum;
  for (k = 0; k < cells; ++k)
    sink(grad_from_weight<V>(V::loadu(e_cache + k * L) * inv_sum, V::loadu(x_cache + k * L), yv, gv));
}

}  // namespace
}  // namespace vidpool

#include "softpool_cpu_blocks.h"

namespace vidpool {

void forward_cpu(const at::Tensor& x, at::Tensor& y, const Geometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cpu", [&] {
    if (use_plane_blocks<scalar_t>(x, g)) return forward_blocks<scalar_t>(x, y, g);
    using acc_t = at::opmath_type<scalar_t>;
    using V = Vectorized<acc_t>;
    const Strides sy = strides5(y);
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    for_each_chunk<scalar_t, acc_t>(x, g, channels_inner(x), false,
        [&](int64_t n, int64_t c, int64_t od, int64_t oh, int64_t ow0, int64_t lanes,
            const auto& win, const int64_t*) {
          acc_t out[V::size()];
          window_forward<V>(win).store(out);
          scalar_t* row = yp + n * sy.n + c * sy.c + od * sy.d + oh * sy.h + ow0 * sy.w;
          for (int64_t j = 0; j < lanes; ++j) row[j * sy.w] = static_cast<scalar_t>(out[j]);
        });
  });
}

namespace {

// Load `lanes` strided values of one output row into a vector (other lanes 0).
template <typename scalar_t, typename acc_t>
Vectorized<acc_t> load_lanes(const scalar_t* p, int64_t stride, int64_t lanes) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (stride == 1 && lanes == Vectorized<acc_t>::size()) return Vectorized<acc_t>::loadu(p);
  }
  acc_t tmp[Vectorized<acc_t>::size()] = {};
  for (int64_t j = 0; j < lanes; ++j) tmp[j] = static_cast<acc_t>(p[j * stride]);
  return Vectorized<acc_t>::loadu(tmp);
}

// Each window writes the gradient of its cells. Disjoint windows (accumulate = false) assign;
// overlapping ones add into a zeroed gx, one thread per plane in a fixed order, so the sums are
// bitwise reproducible without atomics (float/double only: half types would round every add).
// y is recomputed in acc_t from the window (bitwise the forward's value for float/double).
template <typename scalar_t>
void backward_scatter(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g,
                      bool accumulate) {
  using acc_t = at::opmath_type<scalar_t>;
  using V = Vectorized<acc_t>;
  constexpr int L = V::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t kw = max_extent(W);
  const Strides sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  constexpr int64_t kLocalCells = 1024;
  for_each_chunk<scalar_t, acc_t>(x, g, channels_inner(x), accumulate,
      [&](int64_t n, int64_t c, int64_t od, int64_t oh, int64_t ow0, int64_t lanes,
          const auto& win, const int64_t* cols) {
        const int64_t go = od * sg.d + oh * sg.h + ow0 * sg.w;
        const V gv = load_lanes<scalar_t, acc_t>(gyp + n * sg.n + c * sg.c + go, sg.w, lanes);
        scalar_t* plane = gxp + n * sgx.n + c * sgx.c;
        const int64_t d0 = win_start(D, od), h0 = win_start(H, oh), nh = win_end(H, oh) - h0;
        const int64_t win_cells = (win_end(D, od) - d0) * nh * kw;
        // Windows that tile a W-contiguous row (kernel == stride <= 2) store whole vectors.
        constexpr bool line_window = std::is_same_v<std::decay_t<decltype(win)>, LineWindow<acc_t>>;
        const bool store_vectors = !accumulate && line_window && sgx.w == 1 && kw == W.s && kw <= 2;
        // A row's last chunk may be moved back over lanes the previous chunk already did.
        const int64_t repeated = accumulate ? (L - ow0 % L) % L : 0;
        // Overlapping windows with W stride 1 or 2 first add into a small zeroed copy of the lines
        // the chunk touches, with whole vectors: slot s of lane j lands at t = s + j * stride, so
        // with stride 2 slots s and s + 1 interleave into one contiguous run (an odd last slot
        // interleaves with zeros). The copy is then added to gx row by row, in order.
        const int64_t span = (L - 1) * W.s + kw, lines = (win_end(D, od) - d0) * nh;
        const bool add_local = accumulate && std::is_same_v<scalar_t, acc_t> && sgx.w == 1 && !W.adaptive &&
                               (W.s == 1 || W.s == 2) && lines * span <= kLocalCells;
        alignas(64) acc_t local[kLocalCells];
        if (add_local) std::fill(local, local + lines * span, acc_t(0));
        // lanes outside [repeated, lanes) have no window of their own here: their terms must vanish
        const auto arange = V::arange(acc_t(0), acc_t(1));
        const V lane_mask = (arange >= V(acc_t(repeated))) & (arange < V(acc_t(lanes)));
        int64_t d = d0, h = h0, s = 0;  // the cell order of the window: (d, h, slot)
        V first_slot;
        acc_t out[L];
        auto place = [&](const V& grad) {
          scalar_t* line = plane + d * sgx.d + h * sgx.h;
          const int64_t slot = s, d_cell = d, h_cell = h;
          if (++s == kw) {
            s = 0;
            if (++h == h0 + nh) h = h0, ++d;
          }
          if constexpr (line_window) {
            if (store_vectors) {  // partial stores where a narrow row leaves lanes idle
              if (kw == 1) {
                grad.store(line + cols[0], static_cast<int>(lanes));
              } else if (slot == 0) {
                first_slot = grad;
              } else {
                const auto pair = at::vec::interleave2(first_slot, grad);
                const int64_t cells = 2 * lanes;
                pair.first.store(line + cols[0], static_cast<int>(std::min<int64_t>(L, cells)));
                if (cells > L) pair.second.store(line + cols[0] + L, static_cast<int>(cells - L));
              }
              return;
            }
          }
          if (add_local) {
            acc_t* q = local + ((d_cell - d0) * nh + (h_cell - h0)) * span + slot;
            auto add = [](acc_t* r, const V& v) { (V::loadu(r) + v).store(r); };
            const V masked = V::blendv(V(0), grad, lane_mask);
            if (W.s == 1) {
              add(q, masked);
            } else if (slot % 2 == 0 && slot + 1 < kw) {
              first_slot = masked;  // wait for its partner slot
            } else {
              const auto pair = slot % 2 == 0 ? at::vec::interleave2(masked, V(0))
                                              : at::vec::interleave2(first_slot, masked);
              if (slot % 2 == 1) q -= 1;
              add(q, pair.first);
              add(q + L, pair.second);
            }
            return;
          }
          grad.store(out);
          for (int64_t j = repeated; j < lanes; ++j) {
            const int64_t w = cols[slot * L + j];
            if (w < 0) continue;
            scalar_t& cell = line[w * sgx.w];
            cell = accumulate ? static_cast<scalar_t>(cell + out[j]) : static_cast<scalar_t>(out[j]);
          }
        };
        window_gradient<V>(win, win_cells, gv, place);
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (add_local) {
            const int64_t c0 = ow0 * W.s - W.p;
            const int64_t t0 = std::max<int64_t>(0, -c0), t1 = std::min<int64_t>(span, W.in - c0);
            for (int64_t li = 0; li < lines; ++li) {
              scalar_t* row = plane + (d0 + li / nh) * sgx.d + (h0 + li % nh) * sgx.h + c0;
              const acc_t* src = local + li * span;
              for (int64_t t = t0; t < t1; t += L) {
                const int count = static_cast<int>(std::min<int64_t>(L, t1 - t));
                (V::loadu(row + t, count) + V::loadu(src + t, count)).store(row + t, count);
              }
            }
          }
        }
      });
}

// Overlapping windows: compute each window's statistics once, then gather per input cell.
template <typename scalar_t>
void backward_gather(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  using V = Vectorized<acc_t>;
  constexpr int L = V::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t N = x.size(0), C = x.size(1), plane_out = D.out * H.out * W.out;
  static_assert(sizeof(WindowStats<acc_t>) == 3 * sizeof(acc_t));
  at::Tensor stats = at::empty({N * C * plane_out * 3}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  auto* sp = reinterpret_cast<WindowStats<acc_t>*>(stats.mutable_data_ptr<acc_t>());
  for_each_chunk<scalar_t, acc_t>(x, g, channels_inner(x), false,
      [&](int64_t n, int64_t c, int64_t od, int64_t oh, int64_t ow0, int64_t lanes,
          const auto& win, const int64_t*) {
        const WindowStats<V> st = window_stats<V>(win);
        acc_t m[L], ls[L], y[L];
        st.m.store(m);
        st.log_sum.store(ls);
        st.y.store(y);
        WindowStats<acc_t>* dst = sp + (n * C + c) * plane_out + (od * H.out + oh) * W.out + ow0;
        for (int64_t j = 0; j < lanes; ++j) dst[j] = WindowStats<acc_t>{m[j], ls[j], y[j]};
      });

  const Strides sx = strides5(x), sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  // Covering output ranges per axis, tabulated once (they cost integer divisions).
  std::vector<int64_t> first[3], last[3];
  for (int a = 0; a < 3; ++a)
    for (int64_t i = 0; i < g.dim[a].in; ++i) {
      first[a].push_back(first_cover(g.dim[a], i));
      last[a].push_back(last_cover(g.dim[a], i));
    }
  const RowOrder order{N, C, D.in, H.in, channels_inner(x)};
  const int64_t grain = std::max<int64_t>(1, 16384 / W.in);
  at::parallel_for(0, N * C * D.in * H.in, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t n, c, d, h;
      order.decode(r, n, c, d, h);
      const scalar_t* xl = xp + n * sx.n + c * sx.c + d * sx.d + h * sx.h;
      scalar_t* gl = gxp + n * sgx.n + c * sgx.c + d * sgx.d + h * sgx.h;
      const WindowStats<acc_t>* splane = sp + (n * C + c) * plane_out;
      const scalar_t* gplane = gyp + n * sg.n + c * sg.c;
      Cover<int64_t> cv{{first[0][d], first[1][h], 0}, {last[0][d], last[1][h], 0}};
      for (int64_t w = 0; w < W.in; ++w) {
        cv.first[2] = first[2][w];
        cv.last[2] = last[2][w];
        const acc_t xv = static_cast<acc_t>(xl[w * sx.w]);
        gl[w * sgx.w] = static_cast<scalar_t>(input_grad<acc_t>(g, xv, cv, splane, gplane, sg));
      }
    }
  });
}

}  // namespace

// Overlapping windows scatter plane by plane (one thread per plane) when there are enough planes to
// share out, and gather per input cell otherwise. The choice depends on the shape only, never on
// the thread count: the two sum in different orders, and results must not change with threads.
constexpr int64_t kScatterMinPlanes = 4;

void backward_cpu(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cpu", [&] {
    const bool exact_type = std::is_same_v<scalar_t, at::opmath_type<scalar_t>>;
    if (use_plane_blocks<scalar_t>(x, g)) {
      backward_blocks<scalar_t>(gy, x, gx, g);
    } else if (windows_disjoint(g)) {
      if (!windows_cover_input(g)) gx.zero_();
      backward_scatter<scalar_t>(gy, x, gx, g, false);
    } else if (exact_type && x.size(0) * x.size(1) >= kScatterMinPlanes) {
      gx.zero_();
      backward_scatter<scalar_t>(gy, x, gx, g, true);
    } else {
      backward_gather<scalar_t>(gy, x, gx, g);
    }
  });
}

}  // namespace vidpool
