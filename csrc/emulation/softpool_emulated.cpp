// Test-only extension vidpool._cuda_emulated: the CUDA kernels of softpool_cuda_kernels.cuh,
// compiled for the host through cuda_shim.h and run serially over their launch grid, on CPU
// tensors. The launch configuration (threads per block, block cap, 64-bit index math forced) is an
// argument, so tests can shrink the grid until the kernels' grid-stride loops wrap, and run both
// index widths on small inputs.
#include <torch/extension.h>

#include "../geometry.h"
#include "cuda_shim.h"
#include "../softpool_cuda_kernels.cuh"

namespace vidpool {
namespace {

cuda_kernels::LaunchConfig config(int64_t threads, int64_t max_blocks, bool index64, bool cell_gather = false) {
  TORCH_CHECK_VALUE(threads >= 1 && threads <= 1024, "threads per block must be in [1, 1024], got ", threads);
  TORCH_CHECK_VALUE(max_blocks >= 1, "max_blocks must be positive, got ", max_blocks);
  return cuda_kernels::LaunchConfig{static_cast<int>(threads), max_blocks, index64, cell_gather};
}

const char* path_name(cuda_kernels::BackwardPath path) {
  switch (path) {
    case cuda_kernels::BackwardPath::disjoint: return "disjoint";
    case cuda_kernels::BackwardPath::blocked: return "blocked";
    case cuda_kernels::BackwardPath::cell_gather: return "cell_gather";
  }
  return "";
}

void check_cpu(const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "the emulated CUDA kernels run on CPU tensors, got ", t.device());
}

at::Tensor forward(const at::Tensor& x, const Geometry& g, const cuda_kernels::LaunchConfig& cfg) {
  check_cpu(x);
  at::Tensor y = at::empty(output_shape(x, g), x.options(), x.suggest_memory_format());
  if (y.numel() > 0) cuda_kernels::launch_forward(x, y, g, cfg);
  return y;
}

at::Tensor backward(const at::Tensor& gy, const at::Tensor& x, const Geometry& g,
                    const cuda_kernels::LaunchConfig& cfg) {
  check_cpu(x);
  check_cpu(gy);
  TORCH_CHECK_VALUE(gy.sizes() == at::IntArrayRef(output_shape(x, g)) && gy.scalar_type() == x.scalar_type(),
                    "grad_output ", gy.sizes(), " ", gy.scalar_type(), " does not match the pooled input");
  at::Tensor gx = at::empty(x.sizes(), x.options(), x.suggest_memory_format());
  if (gx.numel() > 0) cuda_kernels::launch_backward(gy, x, gx, g, cfg);
  return gx;
}

}  // namespace
}  // namespace vidpool

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace vidpool;
  m.doc() = "vidpool's CUDA SoftPool kernels run on the host by serial grid emulation (tests only)";
  m.def("soft_pool", [](const at::Tensor& x, std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p,
                        bool ceil_mode, int64_t threads, int64_t max_blocks, bool index64) {
    return forward(x, pool_geometry(x, k, s, p, ceil_mode), config(threads, max_blocks, index64));
  });
  namespace py = pybind11;
  m.def(
      "soft_pool_backward",
      [](const at::Tensor& gy, const at::Tensor& x, std::vector<int64_t> k, std::vector<int64_t> s,
         std::vector<int64_t> p, bool ceil_mode, int64_t threads, int64_t max_blocks, bool index64, bool cell_gather) {
        return backward(gy, x, pool_geometry(x, k, s, p, ceil_mode), config(threads, max_blocks, index64, cell_gather));
      },
      py::arg("gy"), py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("ceil_mode"), py::arg("threads"), py::arg("max_blocks"), py::arg("index64"),
      py::arg("cell_gather") = false);
  m.def("backward_path", [](const at::Tensor& x, std::vector<int64_t> k, std::vector<int64_t> s,
                            std::vector<int64_t> p, bool ceil_mode, bool cell_gather) {
    // which kernels launch_backward runs for this geometry: "disjoint", "blocked" or "cell_gather"
    return std::string(path_name(cuda_kernels::backward_path(pool_geometry(x, k, s, p, ceil_mode),
                                                             config(1, 1, false, cell_gather))));
  });
  m.def("adaptive_backward_path", [](const at::Tensor& x, std::vector<int64_t> out) {
    return std::string(path_name(cuda_kernels::backward_path(adaptive_geometry(x, out), config(1, 1, false))));
  });
  m.def("adaptive_soft_pool", [](const at::Tensor& x, std::vector<int64_t> out, int64_t threads, int64_t max_blocks,
                                 bool index64) {
    return forward(x, adaptive_geometry(x, out), config(threads, max_blocks, index64));
  });
  m.def("adaptive_soft_pool_backward", [](const at::Tensor& gy, const at::Tensor& x, std::vector<int64_t> out,
                                          int64_t threads, int64_t max_blocks, bool index64) {
    return backward(gy, x, adaptive_geometry(x, out), config(threads, max_blocks, index64));
  });
  m.def("fast_div32", [](std::vector<int64_t> n, int64_t d) {  // the kernels' 32-bit divider, for its own test
    const cuda_kernels::FastDiv32 div(d);
    std::vector<int64_t> q;
    for (int64_t v : n) {
      TORCH_CHECK_VALUE(v >= 0 && v <= std::numeric_limits<int32_t>::max(), "numerator ", v, " out of range");
      q.push_back(div(static_cast<int32_t>(v)));
    }
    return q;
  });
  const cuda_kernels::LaunchConfig defaults;
  m.attr("DEFAULT_THREADS") = defaults.threads;
  m.attr("DEFAULT_MAX_BLOCKS") = defaults.max_blocks;
}
