// Operator schema, argument checks and dispatch registration for vidpool::soft_pool and
// vidpool::adaptive_soft_pool. The Python layer (vidpool/ops/softpool.py) adds autograd and
// fake (meta) kernels and friendlier errors; the checks here are the last line of defence.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "softpool_host.h"

namespace vidpool {
namespace {

void check_input(const at::Tensor& x, size_t nd, const char* op) {
  TORCH_CHECK_VALUE(x.dim() == static_cast<int64_t>(nd) + 2, op, ": expected a ", nd + 2, "-d (N, C, ...) input for ",
                    nd, "-d pooling, got ", x.dim(), "-d input of shape ", x.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), op, ": input must be a floating point tensor, got ",
                    x.scalar_type());
  for (size_t i = 0; i < nd; ++i)
    TORCH_CHECK_VALUE(x.size(i + 2) > 0, op, ": spatial size ", i, " of the input is 0 (shape ", x.sizes(), ")");
}

// Same rule as nn.MaxPool*d (dilation 1): floor (or ceil) division, and with ceil_mode the last
// window must start inside the input or the left padding.
int64_t pool_output_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) out -= 1;
  return out;
}

// Lay 1-3 pooled axes out as (D, H, W), unit axes first.
Geometry unit_geometry() {
  Geometry g;
  for (PoolDim& d : g.dim) d = PoolDim{1, 1, 1, 1, 0, false};
  return g;
}

Geometry pool_geometry(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p, bool ceil_mode) {
  const size_t nd = k.size();
  TORCH_CHECK_VALUE(nd >= 1 && nd <= 3, "soft_pool: kernel_size must have 1, 2 or 3 entries, got ", k);
  TORCH_CHECK_VALUE(s.size() == nd, "soft_pool: stride ", s, " must have as many entries as kernel_size ", k);
  TORCH_CHECK_VALUE(p.size() == nd, "soft_pool: padding ", p, " must have as many entries as kernel_size ", k);
  check_input(x, nd, "soft_pool");
  Geometry g = unit_geometry();
  for (size_t i = 0; i < nd; ++i) {
    TORCH_CHECK_VALUE(k[i] > 0, "soft_pool: kernel_size must be positive, got ", k);
    TORCH_CHECK_VALUE(s[i] > 0, "soft_pool: stride must be positive, got ", s);
    TORCH_CHECK_VALUE(p[i] >= 0 && 2 * p[i] <= k[i], "soft_pool: padding must be >= 0 and <= kernel_size / 2, got padding ",
                      p, " for kernel_size ", k);
    const int64_t in = x.size(i + 2), out = pool_output_size(in, k[i], s[i], p[i], ceil_mode);
    TORCH_CHECK_VALUE(out >= 1, "soft_pool: output size would be ", out, " along spatial axis ", i, " (input size ", in,
                      ", kernel_size ", k[i], ", stride ", s[i], ", padding ", p[i], "); the input is too small");
    g.dim[3 - nd + i] = PoolDim{in, out, k[i], s[i], p[i], false};
  }
  return g;
}

Geometry adaptive_geometry(const at::Tensor& x, at::IntArrayRef output_size) {
  const size_t nd = output_size.size();
  TORCH_CHECK_VALUE(nd >= 1 && nd <= 3, "adaptive_soft_pool: output_size must have 1, 2 or 3 entries, got ", output_size);
  check_input(x, nd, "adaptive_soft_pool");
  Geometry g = unit_geometry();
  for (size_t i = 0; i < nd; ++i) {
    TORCH_CHECK_VALUE(output_size[i] > 0, "adaptive_soft_pool: output_size must be positive, got ", output_size);
    g.dim[3 - nd + i] = PoolDim{x.size(i + 2), output_size[i], 0, 0, 0, true};
  }
  return g;
}

std::vector<int64_t> output_shape(const at::Tensor& x, const Geometry& g) {
  std::vector<int64_t> shape{x.size(0), x.size(1)};
  for (int64_t i = 5 - x.dim(); i < 3; ++i) shape.push_back(g.dim[i].out);
  return shape;
}

at::Tensor run_forward(const at::Tensor& x, const Geometry& g) {
  at::Tensor y = at::empty(output_shape(x, g), x.options(), x.suggest_memory_format());
  if (y.numel() == 0) return y;
#ifdef VIDPOOL_WITH_CUDA
  if (x.is_cuda()) {
    forward_cuda(x, y, g);
    return y;
  }
#endif
  forward_cpu(x, y, g);
  return y;
}

at::Tensor run_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& y, const Geometry& g) {
  const auto shape = output_shape(x, g);
  TORCH_CHECK_VALUE(y.sizes() == at::IntArrayRef(shape) && gy.sizes() == at::IntArrayRef(shape),
                    "soft_pool_backward: output ", y.sizes(), " and grad_output ", gy.sizes(), " must have shape ",
                    at::IntArrayRef(shape));
  TORCH_CHECK_VALUE(gy.scalar_type() == x.scalar_type() && y.scalar_type() == x.scalar_type(),
                    "soft_pool_backward: dtypes differ (input ", x.scalar_type(), ", output ", y.scalar_type(),
                    ", grad_output ", gy.scalar_type(), ")");
  TORCH_CHECK_VALUE(gy.device() == x.device() && y.device() == x.device(), "soft_pool_backward: tensors on different devices");
  at::Tensor gx = at::empty(x.sizes(), x.options(), x.suggest_memory_format());
  if (gx.numel() == 0) return gx;
#ifdef VIDPOOL_WITH_CUDA
  if (x.is_cuda()) {
    backward_cuda(gy, x, y, gx, g);
    return gx;
  }
#endif
  backward_cpu(gy, x, y, gx, g);
  return gx;
}

at::Tensor soft_pool(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                     bool ceil_mode) {
  return run_forward(x, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

at::Tensor soft_pool_backward(const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& output,
                              at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                              bool ceil_mode) {
  return run_backward(grad_output, x, output, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

at::Tensor adaptive_soft_pool(const at::Tensor& x, at::IntArrayRef output_size) {
  return run_forward(x, adaptive_geometry(x, output_size));
}

at::Tensor adaptive_soft_pool_backward(const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& output,
                                       at::IntArrayRef output_size) {
  return run_backward(grad_output, x, output, adaptive_geometry(x, output_size));
}

}  // namespace
}  // namespace vidpool

TORCH_LIBRARY(vidpool, m) {
  m.def("soft_pool(Tensor self, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode) -> Tensor");
  m.def("soft_pool_backward(Tensor grad_output, Tensor self, Tensor output, int[] kernel_size, int[] stride, "
        "int[] padding, bool ceil_mode) -> Tensor");
  m.def("adaptive_soft_pool(Tensor self, int[] output_size) -> Tensor");
  m.def("adaptive_soft_pool_backward(Tensor grad_output, Tensor self, Tensor output, int[] output_size) -> Tensor");
}

#define VIDPOOL_REGISTER_KERNELS(KEY)                                            \
  TORCH_LIBRARY_IMPL(vidpool, KEY, m) {                                          \
    m.impl("soft_pool", &vidpool::soft_pool);                                    \
    m.impl("soft_pool_backward", &vidpool::soft_pool_backward);                  \
    m.impl("adaptive_soft_pool", &vidpool::adaptive_soft_pool);                  \
    m.impl("adaptive_soft_pool_backward", &vidpool::adaptive_soft_pool_backward); \
  }

VIDPOOL_REGISTER_KERNELS(CPU)
#ifdef VIDPOOL_WITH_CUDA
VIDPOOL_REGISTER_KERNELS(CUDA)
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "vidpool compiled SoftPool kernels (registered as torch.ops.vidpool.*)";
#ifdef VIDPOOL_WITH_CUDA
  m.attr("cuda_compiled") = true;
#else
  m.attr("cuda_compiled") = false;
#endif
}
