// CUDA launchers: one thread per output (forward, window lse) and one per input cell
// (backward gather, no atomics). All math comes from softpool.h.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "softpool_host.h"

namespace vidpool {
namespace {

constexpr int kThreads = 256;

// Split a flat index over (N, C, D, H, W) in logical order.
struct Index5 {
  int64_t n, c, d, h, w;
  __device__ Index5(int64_t i, int64_t C, int64_t D, int64_t H, int64_t W) {
    w = i % W; i /= W; h = i % H; i /= H; d = i % D; i /= D; c = i % C; n = i / C;
  }
};

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* x, Strides sx, scalar_t* y, Strides sy, acc_t* lse,
                               Geometry g, int64_t C, int64_t total) {
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5 o(i, C, D.out, H.out, W.out);
    const StridedWindow<scalar_t, acc_t> win(x + o.n * sx.n + o.c * sx.c, sx, g, o.d, o.h, o.w);
    if (lse != nullptr) {
      lse[i] = window_lse<acc_t>(win);
    } else {
      y[o.n * sy.n + o.c * sy.c + o.d * sy.d + o.h * sy.h + o.w * sy.w] = static_cast<scalar_t>(window_forward<acc_t>(win));
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const scalar_t* x, Strides sx, const scalar_t* y, Strides sy, const scalar_t* gy,
                                Strides sg, const acc_t* lse, scalar_t* gx, Strides sgx, Geometry g, int64_t C,
                                int64_t total) {
  const PoolDim &D = g.dim[0], &H = g.dim[1], &W = g.dim[2];
  const int64_t plane_out = D.out * H.out * W.out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const Index5 p(i, C, D.in, H.in, W.in);
    const acc_t xv = static_cast<acc_t>(x[p.n * sx.n + p.c * sx.c + p.d * sx.d + p.h * sx.h + p.w * sx.w]);
    gx[p.n * sgx.n + p.c * sgx.c + p.d * sgx.d + p.h * sgx.h + p.w * sgx.w] = static_cast<scalar_t>(input_grad<acc_t>(
        g, xv, cover_of(g, p.d, p.h, p.w), lse + (p.n * C + p.c) * plane_out, y + p.n * sy.n + p.c * sy.c, sy,
        gy + p.n * sg.n + p.c * sg.c, sg));
  }
}

unsigned int blocks_for(int64_t total) {
  return static_cast<unsigned int>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20));
}

}  // namespace

void forward_cuda(const at::Tensor& x, at::Tensor& y, const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t total = y.numel();
    forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), strides5(x), y.mutable_data_ptr<scalar_t>(), strides5(y), nullptr, g,
        x.size(1), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void backward_cuda(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& y, at::Tensor& gx,
                   const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "soft_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor lse = at::empty(y.sizes(), y.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const int64_t outs = y.numel(), ins = x.numel();
    forward_kernel<scalar_t, acc_t><<<blocks_for(outs), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), strides5(x), nullptr, strides5(y), lse.mutable_data_ptr<acc_t>(), g,
        x.size(1), outs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    backward_kernel<scalar_t, acc_t><<<blocks_for(ins), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), strides5(x), y.const_data_ptr<scalar_t>(), strides5(y),
        gy.const_data_ptr<scalar_t>(), strides5(gy), lse.const_data_ptr<acc_t>(), gx.mutable_data_ptr<scalar_t>(),
        strides5(gx), g, x.size(1), ins);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace vidpool
