// Host emulation of the little of CUDA that softpool_cuda_kernels.cuh uses: the qualifiers
// compile away, blockIdx/threadIdx/blockDim/gridDim are per-thread variables, and a launch runs
// every (block, thread) of the grid serially. Test-only: never part of the GPU build.
#pragma once

#if defined(__CUDACC__)
#error "cuda_shim.h emulates CUDA on the host; do not include it in nvcc builds"
#endif

#include <c10/util/Exception.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

namespace vidpool {
namespace emulation {

struct Dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

inline thread_local Dim3 blockIdx, threadIdx, blockDim, gridDim;

// Runs body() once per thread of a 1-d grid, in block then thread order, as a GPU could.
template <typename Body>
void run_grid(unsigned int blocks, int threads, Body&& body) {
  TORCH_CHECK(blocks >= 1 && threads >= 1, "emulated launch with an empty grid (", blocks, " x ", threads, ")");
  gridDim.x = blocks;
  blockDim.x = static_cast<unsigned int>(threads);
  for (unsigned int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      blockIdx.x = b;
      threadIdx.x = static_cast<unsigned int>(t);
      body();
    }
}

}  // namespace emulation
}  // namespace vidpool

using vidpool::emulation::blockDim;
using vidpool::emulation::blockIdx;
using vidpool::emulation::gridDim;
using vidpool::emulation::threadIdx;

#define VIDPOOL_LAUNCH(kernel, blocks, threads, ...) \
  ::vidpool::emulation::run_grid((blocks), (threads), [&] { kernel(__VA_ARGS__); })
#define VIDPOOL_LAUNCH_CHECK() ((void)0)
