// Operator schema, argument checks and dispatch registration for vidpool::soft_pool and
// vidpool::adaptive_soft_pool. The Python layer (vidpool/ops/softpool.py) adds autograd and
// fake (meta) kernels and friendlier errors; the checks here are the last line of defence.
//
// Compiled into two kinds of extension: a CPU one per instruction set (VIDPOOL_CPU_ISA names it:
// vidpool._kernels_default/_avx2/_avx512; it defines the schema and registers the CPU kernels;
// vidpool._C loads the best one the machine runs) and, with VIDPOOL_WITH_CUDA, vidpool._kernels_cuda,
// which registers the CUDA kernels only.
#include <torch/extension.h>

#include <string>
#include <tuple>
#include <vector>

#include "geometry.h"
#include "softpool_host.h"

namespace vidpool {
namespace {

at::Tensor run_forward(const at::Tensor& x, const Geometry& g) {
  at::Tensor y = at::empty(output_shape(x, g), x.options(), x.suggest_memory_format());
  if (y.numel() == 0) return y;
#ifdef VIDPOOL_WITH_CUDA
  forward_cuda(x, y, g);
#else
  forward_cpu(x, y, g);
#endif
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
  backward_cuda(gy, x, gx, g);
#else
  backward_cpu(gy, x, gx, g);
#endif
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

#ifndef VIDPOOL_WITH_CUDA
// The zoo's Lp, gated and detail-preserving (lite) pooling, fused on the CPU (zoo_cpu.cpp); CUDA tensors
// take the Python compositions in vidpool/ops/zoo.py.
at::Tensor dpp_pool_cpu(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam, const Geometry& g,
                        bool asym, double eps);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dpp_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x,
                                                                     const at::Tensor& alpha, const at::Tensor& lam,
                                                                     const Geometry& g, bool asym, double eps);

at::Tensor lp_pool_cpu(const at::Tensor& x, const at::Tensor& p, const Geometry& g);
std::tuple<at::Tensor, at::Tensor> lp_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& p,
                                                        const Geometry& g);
at::Tensor gated_pool_cpu(const at::Tensor& x, const at::Tensor& mask, const Geometry& g);
std::tuple<at::Tensor, at::Tensor> gated_pool_backward_cpu(const at::Tensor& gy, const at::Tensor& x,
                                                           const at::Tensor& mask, const Geometry& g);

namespace {

at::Tensor lp_pool(const at::Tensor& x, const at::Tensor& p, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                   at::IntArrayRef padding, bool ceil_mode) {
  return lp_pool_cpu(x, p, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

std::tuple<at::Tensor, at::Tensor> lp_pool_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                                    const at::Tensor& p, at::IntArrayRef kernel_size,
                                                    at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode) {
  return lp_pool_backward_cpu(grad_output, x, p, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

at::Tensor gated_pool(const at::Tensor& x, const at::Tensor& mask, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                      at::IntArrayRef padding, bool ceil_mode) {
  return gated_pool_cpu(x, mask, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

std::tuple<at::Tensor, at::Tensor> gated_pool_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                                       const at::Tensor& mask, at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                                       bool ceil_mode) {
  return gated_pool_backward_cpu(grad_output, x, mask, pool_geometry(x, kernel_size, stride, padding, ceil_mode));
}

at::Tensor dpp_pool(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& lam, at::IntArrayRef kernel_size,
                    at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode, bool asym, double eps) {
  return dpp_pool_cpu(x, alpha, lam, pool_geometry(x, kernel_size, stride, padding, ceil_mode), asym, eps);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpp_pool_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                                                 const at::Tensor& alpha, const at::Tensor& lam,
                                                                 at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                                                 at::IntArrayRef padding, bool ceil_mode, bool asym,
                                                                 double eps) {
  return dpp_pool_backward_cpu(grad_output, x, alpha, lam, pool_geometry(x, kernel_size, stride, padding, ceil_mode),
                               asym, eps);
}

}  // namespace
#endif
}  // namespace vidpool

#define VIDPOOL_REGISTER_KERNELS(KEY)                                            \
  TORCH_LIBRARY_IMPL(vidpool, KEY, m) {                                          \
    m.impl("soft_pool", &vidpool::soft_pool);                                    \
    m.impl("soft_pool_backward", &vidpool::soft_pool_backward);                  \
    m.impl("adaptive_soft_pool", &vidpool::adaptive_soft_pool);                  \
    m.impl("adaptive_soft_pool_backward", &vidpool::adaptive_soft_pool_backward); \
  }

#ifdef VIDPOOL_WITH_CUDA
VIDPOOL_REGISTER_KERNELS(CUDA)
#else
TORCH_LIBRARY(vidpool, m) {
  m.def("soft_pool(Tensor self, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode) -> Tensor");
  m.def("soft_pool_backward(Tensor grad_output, Tensor self, Tensor output, int[] kernel_size, int[] stride, "
        "int[] padding, bool ceil_mode) -> Tensor");
  m.def("adaptive_soft_pool(Tensor self, int[] output_size) -> Tensor");
  m.def("adaptive_soft_pool_backward(Tensor grad_output, Tensor self, Tensor output, int[] output_size) -> Tensor");
  m.def("lp_pool(Tensor self, Tensor p, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode) -> Tensor");
  m.def("lp_pool_backward(Tensor grad_output, Tensor self, Tensor p, int[] kernel_size, int[] stride, "
        "int[] padding, bool ceil_mode) -> (Tensor, Tensor)");
  m.def("gated_pool(Tensor self, Tensor mask, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode) -> Tensor");
  m.def("gated_pool_backward(Tensor grad_output, Tensor self, Tensor mask, int[] kernel_size, int[] stride, "
        "int[] padding, bool ceil_mode) -> (Tensor, Tensor)");
  m.def("dpp_pool(Tensor self, Tensor alpha, Tensor lam, int[] kernel_size, int[] stride, int[] padding, "
        "bool ceil_mode, bool asym, float eps) -> Tensor");
  m.def("dpp_pool_backward(Tensor grad_output, Tensor self, Tensor alpha, Tensor lam, int[] kernel_size, "
        "int[] stride, int[] padding, bool ceil_mode, bool asym, float eps) -> (Tensor, Tensor, Tensor)");
}
VIDPOOL_REGISTER_KERNELS(CPU)
TORCH_LIBRARY_IMPL(vidpool, CPU, m) {
  m.impl("lp_pool", &vidpool::lp_pool);
  m.impl("lp_pool_backward", &vidpool::lp_pool_backward);
  m.impl("gated_pool", &vidpool::gated_pool);
  m.impl("gated_pool_backward", &vidpool::gated_pool_backward);
  m.impl("dpp_pool", &vidpool::dpp_pool);
  m.impl("dpp_pool_backward", &vidpool::dpp_pool_backward);
}
#endif

#define VIDPOOL_STR2(x) #x
#define VIDPOOL_STR(x) VIDPOOL_STR2(x)

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
#ifdef VIDPOOL_WITH_CUDA
  m.doc() = "vidpool's CUDA SoftPool kernels (registered for torch.ops.vidpool.* on CUDA tensors)";
  m.attr("backend") = "cuda";
#else
  m.doc() = "vidpool's CPU SoftPool kernels for one instruction set (defines torch.ops.vidpool.*)";
  m.attr("backend") = "cpu";
  m.attr("isa") = VIDPOOL_STR(VIDPOOL_CPU_ISA);
#endif
}
