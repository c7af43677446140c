// CUDA entry points: device guard and stream around the kernels of softpool_cuda_kernels.cuh
// (one thread per output in the forward; in the backward one per window, or a per-window statistics
// pass and then a gather per block of cells or per cell: no atomics). All math comes from softpool.h.
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

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == value;
}

// Debugging switches, and the A/Bs the benchmark runs: VIDPOOL_CUDA_INDEX64=1 forces 64-bit index
// math even where 32 bits suffice (what the 32-bit path saves); VIDPOOL_CUDA_GATHER=cell makes
// overlapping windows gather per input cell even where the blocked gather fits (what it saves).
cuda_kernels::LaunchConfig launch_config() {
  static const bool index64 = env_is("VIDPOOL_CUDA_INDEX64", "1");
  static const bool cell_gather = env_is("VIDPOOL_CUDA_GATHER", "cell");
  cuda_kernels::LaunchConfig cfg;
  cfg.index64 = index64;
  cfg.cell_gather = cell_gather;
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
