// The layer's input projection x @ W_ih^T + b as one oneDNN matmul (float32), for callers that want
// it: on AMD CPUs torch's mm/addmm go to MKL's generic path, which is slower than oneDNN for these
// large (T·B, I) x (I, G·H) products (docs/cpu_engine.md). Other dtypes, or a torch without oneDNN: at::addmm / at::mm.
#include "cpu_math.h"
#include <torch/library.h>

namespace lstmkit {

// a (n, k) @ b (k, m) [+ bias (m,)] -> (n, m); a and b may be transposed views.
Tensor matmul(const Tensor& a, const Tensor& b, const OptT& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "lstmkit::matmul: shapes ", a.sizes(),
              " and ", b.sizes(), " do not multiply");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "lstmkit::matmul: dtypes differ");
  const bool with_bias = given(bias);
  if (a.scalar_type() == at::kFloat && have_onednn_mm()) {
    Tensor out = with_bias ? bias->expand({a.size(0), b.size(1)}).contiguous() : at::empty({a.size(0), b.size(1)}, a.options());
    at::native::mkldnn_matmul(a, b, out, with_bias ? 1.0f : 0.0f, 1.0f);
    return out;
  }
  return with_bias ? at::addmm(*bias, a, b) : at::mm(a, b);
}

TORCH_LIBRARY_FRAGMENT(lstmkit, m) { m.def("matmul(Tensor a, Tensor b, Tensor? bias) -> Tensor"); }
TORCH_LIBRARY_IMPL(lstmkit, CPU, m) { m.impl("matmul", &matmul); }

}  // namespace lstmkit
