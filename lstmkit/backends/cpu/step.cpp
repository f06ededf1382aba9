// One time step of a stacked LSTM in a single call, for generation and streaming (inference only).
//
// Per layer: [x | h] (B, I + P) times the pre-concatenated [W_ih | W_hh]^T (one GEMM, a matrix-vector
// product at B = 1: dot_gemm in cpu_math.h, which streams the weights twice as fast as BLAS's sgemv),
// then one pass for the cell: i, f, g, o, c, h as in lstm_cell.
// All layers run inside this call, so a step costs one call (the stepper's direct binding, or the
// operator) instead of dozens of ops.
#include "cpu_math.h"
#include <torch/library.h>
#include <tuple>

namespace lstmkit {

namespace {

// The cell for one row of one layer: preactivations a (4H) + bias -> c', h' (lstm_cell, standard).
// __restrict__ and always-inlined math so gcc vectorises the loop.
template <typename T>
void step_row(int64_t H, const T* __restrict__ a, const T* __restrict__ bias, const T* __restrict__ c,
              T* __restrict__ c_new, T* __restrict__ h_new) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = sigmoid(a[j] + bias[j]);                     // input gate
    const T f = sigmoid(a[H + j] + bias[H + j]);             // forget gate
    const T g = tanh_(a[2 * H + j] + bias[2 * H + j]);       // candidate
    const T o = sigmoid(a[3 * H + j] + bias[3 * H + j]);     // output gate
    c_new[j] = f * c[j] + i * g;
    h_new[j] = o * tanh_(c_new[j]);
  }
}

}  // namespace

// x (B, I); h (L, B, P); c (L, B, H); w_cat[l] (4H, I_l + P) = [W_ih | W_hh]; bias[l] (4H,) = b_ih + b_hh;
// w_hr: empty list or L projections (P, H). Returns y (B, P) (the top layer's h), h_n (L, B, P), c_n (L, B, H).
std::tuple<Tensor, Tensor, Tensor> lstm_step(const Tensor& x_, const Tensor& h_, const Tensor& c_,
                                             at::TensorList w_cat, at::TensorList bias, at::TensorList w_hr) {
  const Tensor x = x_.contiguous(), h = h_.contiguous(), c = c_.contiguous();
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2), GH = 4 * H;
  TORCH_CHECK((int64_t)w_cat.size() == L && (int64_t)bias.size() == L, "lstm_step: need one weight per layer");
  // The direct binding (python_bindings.cpp) skips the dispatcher, which would check the device.
  TORCH_CHECK(x.is_cpu() && h.is_cpu() && c.is_cpu(), "lstm_step: x, h and c must be CPU tensors");
  const bool proj = !w_hr.empty();
  TORCH_CHECK(x.dim() == 2 && x.size(0) == B && c.size(0) == L && c.size(1) == B, "lstm_step: x must be (B, I) ",
              "and h, c (L, B, ·) with the same B; got x ", x.sizes(), ", h ", h.sizes(), ", c ", c.sizes());
  TORCH_CHECK(x.scalar_type() == h.scalar_type() && h.scalar_type() == c.scalar_type() &&
              x.scalar_type() == w_cat[0].scalar_type(), "lstm_step: x, h, c must have the weights' dtype ",
              w_cat[0].scalar_type());
  TORCH_CHECK(x.size(1) + P == w_cat[0].size(1) && w_cat[0].size(0) == GH, "lstm_step: x has ", x.size(1),
              " features, h ", P, "; the first layer's weights are ", w_cat[0].sizes());
  auto opts = x.options();
  Tensor h_n = at::empty({L, B, P}, opts), c_n = at::empty({L, B, H}, opts);
  Tensor gates = at::empty({B, GH}, opts);                 // (B, 4H)
  Tensor hraw = at::empty({B, H}, opts);                   // (B, H) o ⊙ tanh(c) before projection
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_step", [&] {
    using T = scalar_t;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t I = w_cat[l].size(1) - P;
      const T* in = l == 0 ? x.data_ptr<T>() : h_n.data_ptr<T>() + (l - 1) * B * P;  // (B, I)
      Tensor xh = at::empty({B, I + P}, opts);             // (B, I + P) = [x | h]
      T* xhp = xh.data_ptr<T>();
      const T* hp = h.data_ptr<T>() + l * B * P;
      for (int64_t b = 0; b < B; ++b) {
        std::memcpy(xhp + b * (I + P), in + b * I, sizeof(T) * I);
        std::memcpy(xhp + b * (I + P) + I, hp + b * P, sizeof(T) * P);
      }
      T* a = gates.data_ptr<T>();
      gemm_xwt_unpacked<T>(B, GH, I + P, xhp, I + P, w_cat[l].data_ptr<T>(), a, GH);
      const T* bl = bias[l].data_ptr<T>();
      const T* cp = c.data_ptr<T>() + l * B * H;
      T* cnp = c_n.data_ptr<T>() + l * B * H;
      T* hout = proj ? hraw.data_ptr<T>() : h_n.data_ptr<T>() + l * B * P;
      at::parallel_for(0, B, row_grain(GH), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) step_row<T>(H, a + b * GH, bl, cp + b * H, cnp + b * H, hout + b * H);
      });
      if (proj) gemm_xwt_unpacked<T>(B, P, H, hout, H, w_hr[l].data_ptr<T>(), h_n.data_ptr<T>() + l * B * P, P);
    }
  });
  return {h_n[L - 1].clone(), h_n, c_n};
}

TORCH_LIBRARY_FRAGMENT(lstmkit, m) {
  m.def("lstm_step(Tensor x, Tensor h, Tensor c, Tensor[] w_cat, Tensor[] bias, Tensor[] w_hr) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lstmkit, CPU, m) { m.impl("lstm_step", &lstm_step); }

}  // namespace lstmkit
