// CUDA entry points: device guard and stream around the kernels of softpool_cuda_kernels.cuh
// (one thread per output in the forward; a per-window statistics pass, then one thread per input
// cell gathering its windows in the backward: no atomics). All math comes from softpool.h.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdlib>
#include <string>

#define VIDPOOL_LAUNCH(kernel, blocks, threads, ...) \
  kernel<<<(blocks), (threads), 0, c10::cuda::getCurrentCUDAStream()>>>(__VA_ARGS__)
#define VIDPOOL_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()

#include "softpool_cuda_kernels.cuh"

namespace vidpool {
namespace {

// VIDPOOL_CUDA_INDEX64=1 forces 64-bit index math even where 32 bits suffice: a debugging switch,
// and the A/B the benchmark uses to show what the 32-bit path saves.
cuda_kernels::LaunchConfig launch_config() {
  static const bool index64 = [] {
    const char* v = std::getenv("VIDPOOL_CUDA_INDEX64");
    return v != nullptr && std::string(v) == "1";
  }();
  cuda_kernels::LaunchConfig cfg;
  cfg.index64 = index64;
  return cfg;
}

}  // namespace

void forward_cuda(const at::Tensor& x, at::Tensor& y, const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  cuda_kernels::launch_forward(x, y, g, launch_config());
}

void backward_cuda(const at::Tensor& gy, const at::Tensor& x, at::Tensor& gx, const Geometry& g) {
  const c10::cuda::CUDAGuard guard(x.device());
  cuda_kernels::launch_backward(gy, x, gx, g, launch_config());
}

}  // namespace vidpool
