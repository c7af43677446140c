// Operator schema, argument checks, autograd and dispatch registration for vidpool::soft_pool and
// vidpool::adaptive_soft_pool. The Python layer (vidpool/ops/softpool.py) adds fake (meta) kernels,
// the backward ops' own derivatives (double backward) and friendlier errors; the checks here are
// the last line of defence.
//
// The forward ops' autograd is registered here, in C++ (the Autograd dispatch key), which costs
// less host time per forward and backward than a registration from Python. A plain backward calls
// the soft_pool_backward kernel directly (below autograd); a create_graph backward calls the op
// through its own autograd (registered from Python), which makes second derivatives work.
//
// Compiled into two kinds of extension: a CPU one per instruction set (VIDPOOL_CPU_ISA names it:
// vidpool._kernels_default/_avx2/_avx512; it defines the schema, the autograd and the CPU kernels;
// vidpool._C loads the best one the machine runs) and, with VIDPOOL_WITH_CUDA, vidpool._kernels_cuda,
// which registers the CUDA kernels only.
#include <torch/autograd.h>
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
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A backward op called from a backward: with create_graph (grad mode on) through its own autograd,
// registered from Python, so the gradient is differentiable; otherwise below autograd, straight to
// the device's kernel, which skips a call into Python per backward.
template <typename F>
at::Tensor below_autograd_unless_create_graph(const F& call) {
  if (at::GradMode::is_enabled()) return call();
  at::AutoDispatchBelowADInplaceOrView guard;
  return call();
}

// Autograd of soft_pool: saves the input and output, and calls soft_pool_backward (through the
// dispatcher, so CUDA tensors reach the CUDA kernels and a create_graph backward is differentiable).
class SoftPoolFunction : public torch::autograd::Function<SoftPoolFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::IntArrayRef kernel_size,
                            at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode) {
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("vidpool::soft_pool", "").typed<decltype(soft_pool)>();
    at::Tensor y;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      y = op.call(x, kernel_size, stride, padding, ceil_mode);
    }
    ctx->save_for_backward({x, y});
    ctx->saved_data["kernel_size"] = kernel_size.vec();
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["ceil_mode"] = ceil_mode;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("vidpool::soft_pool_backward", "")
                         .typed<decltype(soft_pool_backward)>();
    const auto saved = ctx->get_saved_variables();
    const auto call = [&] {
      return op.call(grads[0], saved[0], saved[1], ctx->saved_data["kernel_size"].toIntVector(),
                     ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
                     ctx->saved_data["ceil_mode"].toBool());
    };
    return {below_autograd_unless_create_graph(call), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class AdaptiveSoftPoolFunction : public torch::autograd::Function<AdaptiveSoftPoolFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::IntArrayRef output_size) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("vidpool::adaptive_soft_pool", "")
                         .typed<decltype(adaptive_soft_pool)>();
    at::Tensor y;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      y = op.call(x, output_size);
    }
    ctx->save_for_backward({x, y});
    ctx->saved_data["output_size"] = output_size.vec();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("vidpool::adaptive_soft_pool_backward", "")
                         .typed<decltype(adaptive_soft_pool_backward)>();
    const auto saved = ctx->get_saved_variables();
    const auto call = [&] { return op.call(grads[0], saved[0], saved[1], ctx->saved_data["output_size"].toIntVector()); };
    return {below_autograd_unless_create_graph(call), at::Tensor()};
  }
};

at::Tensor soft_pool_autograd(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                              at::IntArrayRef padding, bool ceil_mode) {
  return SoftPoolFunction::apply(x, kernel_size, stride, padding, ceil_mode);
}

at::Tensor adaptive_soft_pool_autograd(const at::Tensor& x, at::IntArrayRef output_size) {
  return AdaptiveSoftPoolFunction::apply(x, output_size);
}

}  // namespace

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
TORCH_LIBRARY_IMPL(vidpool, Autograd, m) {
  m.impl("soft_pool", &vidpool::soft_pool_autograd);
  m.impl("adaptive_soft_pool", &vidpool::adaptive_soft_pool_autograd);
}
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
