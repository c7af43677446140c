// CPU path for narrow rows (fewer outputs along W than a SIMD vector has lanes, e.g. W = 14 late in
// a network): L planes (n, c) at a time are transposed into a cell-major block, cell (d, h, w)
// holding one lane per plane. Every lane then shares one window geometry: no idle lanes, no -inf
// padding, plain vector loads; windows cut by padding or the input's edge simply have fewer cells.
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
      if (lanes < L) std::fill(block.begin(), block.end(), acc_t(0));
      for (int64_t j = 0; j < lanes; ++j) {
        const int64_t p = first + j;
        const scalar_t* plane = xp + (p / C) * sx.n + (p % C) * sx.c;
        acc_t* dst = block.data() + j;
        for (int64_t d = 0; d < D.in; ++d)
          for (int64_t h = 0; h < H.in; ++h) {
            const scalar_t* line = plane + d * sx.d + h * sx.h;
            acc_t* out = dst + d * sd + h * sh;
            for (int64_t w = 0; w < W.in; ++w) out[w * L] = static_cast<acc_t>(line[w * sx.w]);
          }
      }
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
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1);
  const Strides sy = strides5(y);
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  for_each_block<scalar_t>(x, g, [&](int64_t first, int64_t lanes, const acc_t*, const auto& window_at) {
    acc_t out[V::size()];
    for (int64_t od = 0; od < D.out; ++od)
      for (int64_t oh = 0; oh < H.out; ++oh)
        for (int64_t ow = 0; ow < W.out; ++ow) {
          window_forward<V>(window_at(od, oh, ow)).store(out);
          const int64_t o = od * sy.d + oh * sy.h + ow * sy.w;
          for (int64_t j = 0; j < lanes; ++j) {
            const int64_t p = first + j;
            yp[(p / C) * sy.n + (p % C) * sy.c + o] = static_cast<scalar_t>(out[j]);
          }
        }
  });
}

template <typename scalar_t>
void backward_blocks(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  using V = Vectorized<acc_t>;
  constexpr int64_t L = V::size();
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t C = x.size(1), cells = D.in * H.in * W.in;
  const Strides sg = strides5(gy), sgx = strides5(gx);
  const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  for_each_block<scalar_t>(x, g, [&](int64_t first, int64_t lanes, const acc_t* block, const auto& window_at) {
    std::vector<acc_t> grad(cells * L, acc_t(0));
    acc_t gv_lanes[L];
    for (int64_t od = 0; od < D.out; ++od)
      for (int64_t oh = 0; oh < H.out; ++oh)
        for (int64_t ow = 0; ow < W.out; ++ow) {
          const auto win = window_at(od, oh, ow);
          const int64_t o = od * sg.d + oh * sg.h + ow * sg.w;
          for (int64_t j = 0; j < L; ++j) {
            const int64_t p = first + j;
            gv_lanes[j] = j < lanes ? static_cast<acc_t>(gyp[(p / C) * sg.n + (p % C) * sg.c + o]) : acc_t(0);
          }
          const V gv = V::loadu(gv_lanes);
          auto add = [&](int64_t off, const V& v) { (V::loadu(grad.data() + off) + v).store(grad.data() + off); };
          int64_t d = win.d0, h = win.h0, w = win.w0;  // the cell window_gradient is at
          window_gradient<V>(win, win.cells(), gv, [&](const V& term) {
            add(d * win.sd + h * win.sh + w * L, term);
            if (++w == win.w1) {
              w = win.w0;
              if (++h == win.h1) h = win.h0, ++d;
            }
          });
        }
    const int64_t sd = H.in * W.in * L, sh = W.in * L;
    for (int64_t j = 0; j < lanes; ++j) {
      const int64_t p = first + j;
      scalar_t* plane = gxp + (p / C) * sgx.n + (p % C) * sgx.c;
      for (int64_t d = 0; d < D.in; ++d)
        for (int64_t h = 0; h < H.in; ++h) {
          scalar_t* line = plane + d * sgx.d + h * sgx.h;
          const acc_t* src = grad.data() + d * sd + h * sh + j;
          for (int64_t w = 0; w < W.in; ++w) line[w * sgx.w] = static_cast<scalar_t>(src[w * L]);
        }
    }
  });
}

}  // namespace
}  // namespace vidpool
