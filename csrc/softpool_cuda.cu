// CUDA entry points: device guard and stream around the kernels of softpool_cuda_kernels.cuh
// (one thread per output in the forward; a per-window statistics pass, then one thread per input
// cell gathering its windows in the backward: no atomics). All math comes from softpool.h.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#define VIDPOOL_LAUNCH(kernel, blocks, threads, ...) \
  kernel<<<(blocks), (threads), 0, c10::cuda::getCurrentCUDAStream()>>>(__VA_ARGS__)
#define VIDPOOL_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()

#include "softpool_cuda_kernels.cuh"

namespace vidpool {

void forward_cuda(const at::Tensor& x, at::Tensor& y, const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  cuda_kernels::launch_forward(x, y, g, cuda_kernels::LaunchConfig{});
}

void backward_cuda(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  cuda_kernels::launch_backward(gy, x, gx, g, cuda_kernels::LaunchConfig{});
}

}  // namespace vidpool
