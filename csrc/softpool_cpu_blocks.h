// CPU path for narrow rows (fewer outputs along W than a SIMD vector has lanes, e.g. W = 14 late in
// a network): L planes (n, c) at a time are transposed into a cell-major block, cell (d, h, w)
// holding one lane per plane. Every lane then shares one window geometry: no idle lanes, no -inf
// padding, plain vector loads; windows cut by padding or the input's edge simply have fewer cells.
// Planes move into and out of a block through L x L tile transposes (the whole plane as one run
// when it is dense in memory).
// Each block belongs to one thread and is visited in a fixed order, so results do not depend on the
// thread count. Included by softpool_cpu.cpp after Math<Vectorized<T>>.
#pragma once

namespace vidpool {
namespace {

// The cells of one window of a transposed block: cell (d, h, w) is the vector at ((d*H + h)*W + w)*L.
template <typename acc_t>
struct BlockWindow {
  using V = Vectorized<acc_t>;
  const acc_t* block;
  int64_t sd, sh, d0, d1, h0, h1, w0, w1;

  int64_t cells() const { return (d1 - d0) * (h1 - h0) * (w1 - w0); }

  template <typename F>
  void for_each(F&& f) const {
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) f(V::loadu(block + d * sd + h * sh + w * V::size()));
  }
};

constexpr int64_t kBlockBytes = int64_t(1) << 18;

template <typename scalar_t>
bool use_plane_blocks(const at::Tensor& x, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vectorized<acc_t>::size();
  const int64_t plane = g.dim[0].in * g.dim[1].in * g.dim[2].in;
  return g.dim[2].out < L && plane * L * int64_t(sizeof(acc_t)) <= kBlockBytes;
}

// The rows of L consecutive planes (numbered n * C + c, from `first`; lanes past the last plane are
// unset). When all L planes lie `ld` elements apart (contiguous NC), tiles transpose in place.
template <typename T, int64_t L>
struct PlaneRows {
  T* base[L];
  int64_t lanes, ld = 0;
  PlaneRows(T* p, const Strides& st, int64_t C, int64_t first, int64_t lanes_) : lanes(lanes_) {
    for (int64_t j = 0; j < lanes; ++j) base[j] = p + ((first + j) / C) * st.n + ((first + j) % C) * st.c;
    bool uniform = lanes == L;
    for (int64_t j = 1; j < lanes && uniform; ++j) uniform = base[j] - base[j - 1] == base[1] - base[0];
    if (uniform) ld = base[1] - base[0];
  }
};

// Transposes between L planes' rows and cell vectors, L x L tiles at a time through ATen's
// transpose_mxn (shuffles on AVX2/AVX-512). gather_cells: lane j of cell vector w (dst + w * L) is
// plane j's element at offset + w, for w < n <= L; idle lanes are 0. scatter_cells is its inverse.
template <typename T, int64_t L>
void gather_cells(PlaneRows<const T, L>& rows, int64_t offset, int64_t n, T* dst) {
  using V = Vectorized<T>;
  if (n == L && rows.ld != 0) return at::vec::transpose_mxn<T, L, L>(rows.base[0] + offset, rows.ld, dst, L);
  alignas(64) T tile[L * L];
  for (int64_t j = 0; j < L; ++j) {
    const V v = j >= rows.lanes ? V(0) : n == L ? V::loadu(rows.base[j] + offset) : V::loadu(rows.base[j] + offset, n);
    v.store(tile + j * L);
  }
  if (n == L) return at::vec::transpose_mxn<T, L, L>(tile, L, dst, L);
  alignas(64) T cells[L * L];
  at::vec::transpose_mxn<T, L, L>(tile, L, cells, L);
  std::copy(cells, cells + n * L, dst);
}

template <typename T, int64_t L>
void scatter_cells(const T* src, int64_t n, PlaneRows<T, L>& rows, int64_t offset) {
  using V = Vectorized<T>;
  if (n == L && rows.ld != 0) return at::vec::transpose_mxn<T, L, L>(src, L, rows.base[0] + offset, rows.ld);
  alignas(64) T tile[L * L];
  if (n == L) {
    at::vec::transpose_mxn<T, L, L>(src, L, tile, L);
  } else {
    alignas(64) T cells[L * L] = {};
    std::copy(src, src + n * L, cells);
    at::vec::transpose_mxn<T, L, L>(cells, L, tile, L);
  }
  for (int64_t j = 0; j < rows.lanes; ++j) {
    T* dst = rows.base[j] + offset;
    if (n == L) V::loadu(tile + j * L).store(dst);
    else V::loadu(tile + j * L).store(dst, n);
  }
}

// Moves n cells (cell w at cells + w * L) to or from the planes' elements offset + w * stride. Unit
// strides of float/double go through the tile transposes; other strides and half types convert lane
// by lane.
template <typename scalar_t, typename acc_t, int64_t L>
void row_to_cells(PlaneRows<const scalar_t, L>& rows, int64_t offset, int64_t stride, int64_t n, acc_t* cells) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (stride == 1) {
      for (int64_t w = 0; w < n; w += L) gather_cells(rows, offset + w, std::min(L, n - w), cells + w * L);
      return;
    }
  }
  for (int64_t w = 0; w < n; ++w)
    for (int64_t j = 0; j < L; ++j)
      cells[w * L + j] = j < rows.lanes ? static_cast<acc_t>(rows.base[j][offset + w * stride]) : acc_t(0);
}

template <typename scalar_t, typename acc_t, int64_t L>
void cells_to_row(const acc_t* cells, int64_t n, PlaneRows<scalar_t, L>& rows, int64_t offset, int64_t stride) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (stride == 1) {
      for (int64_t w = 0; w < n; w += L) scatter_cells(cells + w * L, std::min(L, n - w), rows, offset + w);
      return;
    }
  }
  for (int64_t j = 0; j < rows.lanes; ++j)
    for (int64_t w = 0; w < n; ++w) rows.base[j][offset + w * stride] = static_cast<scalar_t>(cells[w * L + j]);
}

// Every cell (d, h, w) of a plane, in order, as one row: calls move(offset, stride, n, first_cell)
// once when the plane is one dense run (cell-major order matches memory), else once per (d, h) row.
template <typename Move>
void for_plane_rows(const Strides& st, int64_t D, int64_t H, int64_t W, int64_t L, Move&& move) {
  const bool dense = st.w == 1 && (H == 1 || st.h == W) && (D == 1 || st.d == H * W);
  if (dense) return move(int64_t(0), int64_t(1), D * H * W, int64_t(0));
  for (int64_t d = 0; d < D; ++d)
    for (int64_t h = 0; h < H; ++h) move(d * st.d + h * st.h, st.w, W, (d * H + h) * W * L);
}

// Calls body(first_plane, lanes, block, window_at) for every block of L planes, in parallel over
// blocks; block holds the planes' cells transposed (idle lanes 0), window_at(od, oh, ow) gives a
// BlockWindow. Planes are numbered n * C + c.
template <typename scalar_t, typename Body>
void for_each_block(const at::Tensor& x, const Geometry& g, Body&& body) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t L = Vectorized<acc_t>::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1), planes = x.size(0) * C, cells = D.in * H.in * W.in;
  const int64_t blocks = (planes + L - 1) / L;
  const Strides sx = strides5(x);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const int64_t sd = H.in * W.in * L, sh = W.in * L;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> block(cells * L);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * L, lanes = std::min<int64_t>(L, planes - first);
      PlaneRows<const scalar_t, L> rows(xp, sx, C, first, lanes);
      for_plane_rows(sx, D.in, H.in, W.in, L, [&](int64_t off, int64_t stride, int64_t n, int64_t cell) {
        row_to_cells(rows, off, stride, n, block.data() + cell);
      });
      auto window_at = [&](int64_t od, int64_t oh, int64_t ow) {
        return BlockWindow<acc_t>{block.data(), sd, sh, win_start(D, od), win_end(D, od), win_start(H, oh),
                                  win_end(H, oh), win_start(W, ow), win_end(W, ow)};
      };
      body(first, lanes, block.data(), window_at);
    }
  });
}

template <typename scalar_t>
void forward_blocks(const at::Tensor& x, at::Tensor& y, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  using V = Vectorized<acc_t>;
  constexpr int64_t L = V::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1);
  const Strides sy = strides5(y);
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  for_each_block<scalar_t>(x, g, [&](int64_t first, int64_t lanes, const acc_t*, const auto& window_at) {
    thread_local std::vector<acc_t> out;  // the block's outputs, cell-major like the block
    out.resize(D.out * H.out * W.out * L);
    acc_t* o = out.data();
    for (int64_t od = 0; od < D.out; ++od)
      for (int64_t oh = 0; oh < H.out; ++oh)
        for (int64_t ow = 0; ow < W.out; ++ow) window_forward<V>(window_at(od, oh, ow)).store(o + ((od * H.out + oh) * W.out + ow) * L);
    PlaneRows<scalar_t, L> rows(yp, sy, C, first, lanes);
    for_plane_rows(sy, D.out, H.out, W.out, L, [&](int64_t off, int64_t stride, int64_t n, int64_t cell) {
      cells_to_row(o + cell, n, rows, off, stride);
    });
  });
}

// Windows that tile the input (disjoint and covering it) store each cell's gradient exactly once, so
// the block's gradient buffer needs no zeroing; otherwise it is zeroed per block and windows add.
template <typename scalar_t>
void backward_blocks(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  using V = Vectorized<acc_t>;
  constexpr int64_t L = V::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1), cells = D.in * H.in * W.in;
  const bool tiles = windows_disjoint(g) && windows_cover_input(g);
  const Strides sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  for_each_block<scalar_t>(x, g, [&](int64_t first, int64_t lanes, const acc_t*, const auto& window_at) {
    thread_local std::vector<acc_t> grad;  // reused across blocks and calls; resized, never shrunk
    if (grad.size() < size_t(cells * L)) grad.resize(cells * L);
    if (!tiles) std::fill(grad.begin(), grad.begin() + cells * L, acc_t(0));
    acc_t* gb = grad.data();
    thread_local std::vector<acc_t> gy_cells;  // the block's grad_output, cell-major
    gy_cells.resize(D.out * H.out * W.out * L);
    PlaneRows<const scalar_t, L> gy_rows(gyp, sg, C, first, lanes);
    for_plane_rows(sg, D.out, H.out, W.out, L, [&](int64_t off, int64_t stride, int64_t n, int64_t cell) {
      row_to_cells(gy_rows, off, stride, n, gy_cells.data() + cell);
    });
    for (int64_t od = 0; od < D.out; ++od)
      for (int64_t oh = 0; oh < H.out; ++oh) {
        for (int64_t ow = 0; ow < W.out; ++ow) {
          const auto win = window_at(od, oh, ow);
          const V gv = V::loadu(gy_cells.data() + ((od * H.out + oh) * W.out + ow) * L);
          int64_t d = win.d0, h = win.h0, w = win.w0;  // the cell window_gradient is at
          window_gradient<V>(win, win.cells(), gv, [&](const V& term) {
            acc_t* cell = gb + d * win.sd + h * win.sh + w * L;
            if (tiles)
              term.store(cell);
            else
              (V::loadu(cell) + term).store(cell);
            if (++w == win.w1) {
              w = win.w0;
              if (++h == win.h1) h = win.h0, ++d;
            }
          });
        }
      }
    PlaneRows<scalar_t, L> gx_rows(gxp, sgx, C, first, lanes);
    for_plane_rows(sgx, D.in, H.in, W.in, L, [&](int64_t off, int64_t stride, int64_t n, int64_t cell) {
      cells_to_row(gb + cell, n, gx_rows, off, stride);
    });
  });
}

}  // namespace
}  // namespace vidpool
