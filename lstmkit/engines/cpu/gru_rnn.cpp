// Fused CPU recurrences of the GRU (gates r, z, n, as gru_cell in cells.py) and the tanh/relu RNN:
// one layer-direction, all T steps, forward and backward, in one call each. Same structure as the
// LSTM's: per step one BLAS GEMM h @ W_hh^T and one vectorised pass per batch row; backward one pass
// and one GEMM for ∂h_{t-1} per step, the weight gradient one GEMM over all T·B rows at the end.
// Packed batches: rows >= batch_sizes[t] hold their state and output 0.
#include "cpu_math.h"
#include <torch/library.h>
#include <tuple>

namespace lstmkit {
namespace {

int64_t active(at::OptionalIntArrayRef sizes, int64_t t, int64_t B) { return sizes.has_value() ? (*sizes)[t] : B; }

void check_common(const Tensor& xg, const Tensor& h0, const Tensor& w_hh, int64_t G, at::OptionalIntArrayRef sizes) {
  TORCH_CHECK(xg.dim() == 3 && h0.dim() == 2 && xg.size(0) >= 1, "xg must be (T >= 1, B, ·) and h0 (B, H)");
  const int64_t T_ = xg.size(0), B = xg.size(1), H = h0.size(1);
  TORCH_CHECK(xg.dim() == 3 && xg.size(2) == G * H, "xg must be (T, B, ", G, "·H) with H=", H, ", got ", xg.sizes());
  TORCH_CHECK(h0.sizes() == at::IntArrayRef({B, H}) && h0.scalar_type() == xg.scalar_type(), "h0 must be (", B,
              ", ", H, ") of ", xg.scalar_type(), ", got ", h0.sizes(), " of ", h0.scalar_type());
  TORCH_CHECK(w_hh.sizes() == at::IntArrayRef({G * H, H}) && w_hh.scalar_type() == xg.scalar_type(),
              "w_hh must be (", G * H, ", ", H, ") of ", xg.scalar_type(), ", got ", w_hh.sizes());
  TORCH_CHECK(!sizes.has_value() || (int64_t)sizes->size() == T_, "batch_sizes needs T entries");
  if (sizes.has_value()) for (int64_t n : *sizes) TORCH_CHECK(0 <= n && n <= B, "batch_sizes outside [0, B]");
}

template <typename T>
void gru_row(int64_t H, const T* __restrict__ x, const T* __restrict__ hh, const T* __restrict__ h_prev,
             T* __restrict__ r_, T* __restrict__ z_, T* __restrict__ n_, T* __restrict__ h_next) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigmoid(x[j] + hh[j]);                      // reset gate
    const T z = sigmoid(x[H + j] + hh[H + j]);              // update gate
    const T n = tanh_(x[2 * H + j] + r * hh[2 * H + j]);    // candidate (hh includes b_hh)
    r_[j] = r; z_[j] = z; n_[j] = n;
    h_next[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

template <typename T>
void gru_row_backward(int64_t H, const T* __restrict__ r_, const T* __restrict__ z_, const T* __restrict__ n_,
                      const T* __restrict__ hhn, const T* __restrict__ h_prev, T* __restrict__ dh,
                      T* __restrict__ dx, T* __restrict__ dhh) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = r_[j], z = z_[j], n = n_[j], d = dh[j];
    const T d_n = d * (T(1) - z) * (T(1) - n * n);          // ∂L/∂(x_n + r·hh_n)
    const T d_z = d * (h_prev[j] - n) * z * (T(1) - z);
    const T d_r = d_n * hhn[j] * r * (T(1) - r);
    dx[j] = d_r; dx[H + j] = d_z; dx[2 * H + j] = d_n;
    dhh[j] = d_r; dhh[H + j] = d_z; dhh[2 * H + j] = d_n * r;
    dh[j] = d * z;                                           // direct path; the GEMM adds the rest
  }
}

}  // namespace

// -> y (T,B,H), h_n (B,H), gates (T,B,3H) = r, z, n, and for backward hin (T,B,H) = h_{t-1} of every
// row (held ones included), hhn (T,B,H) = h_{t-1} @ W_hn^T + b_hn.
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> gru_forward(const Tensor& xg_, const Tensor& h0,
    const Tensor& w_hh_, const OptT& b_hh_, at::OptionalIntArrayRef sizes, bool reverse) {
  const Tensor xg = xg_.contiguous(), w_hh = w_hh_.contiguous(), b_hh = contig(b_hh_);
  check_common(xg, h0, w_hh, 3, sizes);
  const int64_t T_ = xg.size(0), B = xg.size(1), H = h0.size(1), GH = 3 * H;
  TORCH_CHECK(!b_hh.defined() || b_hh.sizes() == at::IntArrayRef({GH}), "b_hh must be (", GH, ")");
  auto opts = xg.options();
  const bool packed = sizes.has_value();
  auto alloc = [&](at::IntArrayRef s) { return packed ? at::zeros(s, opts) : at::empty(s, opts); };
  Tensor y = alloc({T_, B, H}), gates = alloc({T_, B, GH}), hin = at::empty({T_, B, H}, opts);
  Tensor hhn = alloc({T_, B, H}), h = h0.contiguous().clone(), hh = at::empty({B, GH}, opts);
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "gru_forward", [&] {
    using T = scalar_t;
    T *hp = h.data_ptr<T>(), *hhp = hh.data_ptr<T>();
    const T* b = ptr<T>(b_hh);
    const Tensor panels = maybe_panels(w_hh, B);
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = reverse ? T_ - 1 - s : s, bt = active(sizes, t, B);
      T* hin_t = hin.data_ptr<T>() + t * B * H;
      std::memcpy(hin_t, hp, sizeof(T) * B * H);
      for (int64_t r = 0; r < bt && b; ++r) std::memcpy(hhp + r * GH, b, sizeof(T) * GH);   // (B, 3H) = b_hh
      gemm_xwt<T>(bt, GH, H, hin_t, H, w_hh.data_ptr<T>(), panels, b ? T(1) : T(0), hhp, GH);
      const T* x_t = xg.data_ptr<T>() + t * B * GH;
      T *g_t = gates.data_ptr<T>() + t * B * GH, *y_t = y.data_ptr<T>() + t * B * H;
      T* hhn_t = hhn.data_ptr<T>() + t * B * H;
      at::parallel_for(0, bt, row_grain(GH), [&](int64_t b0, int64_t b1) {
        for (int64_t r = b0; r < b1; ++r) {
          T* g = g_t + r * GH;
          gru_row<T>(H, x_t + r * GH, hhp + r * GH, hin_t + r * H, g, g + H, g + 2 * H, y_t + r * H);
          std::memcpy(hhn_t + r * H, hhp + r * GH + 2 * H, sizeof(T) * H);
          std::memcpy(hp + r * H, y_t + r * H, sizeof(T) * H);
        }
      });
    }
  });
  return {y, h, gates, hin, hhn};
}

// -> d_xg (T,B,3H), d_h0 (B,H), d_w_hh (3H,H), d_b_hh (3H,) (empty when there is no b_hh).
std::tuple<Tensor, Tensor, Tensor, Tensor> gru_backward(const OptT& grad_y, const OptT& grad_h_n,
    const Tensor& w_hh_, bool has_b_hh, const Tensor& gates, const Tensor& hin, const Tensor& hhn,
    at::OptionalIntArrayRef sizes, bool reverse) {
  const Tensor w_hh = w_hh_.contiguous(), gy = contig(grad_y);
  const int64_t T_ = gates.size(0), B = gates.size(1), GH = gates.size(2), H = GH / 3;
  auto opts = gates.options();
  const bool packed = sizes.has_value();
  Tensor dx = packed ? at::zeros({T_, B, GH}, opts) : at::empty({T_, B, GH}, opts);
  Tensor dhh = packed ? at::zeros({T_, B, GH}, opts) : at::empty({T_, B, GH}, opts);
  Tensor dh = given(grad_h_n) ? grad_h_n->contiguous().clone() : at::zeros({B, H}, opts);
  const Tensor w_hh_packed = maybe_panels_xw(w_hh, B);  // packed once for small batches
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward", [&] {
    using T = scalar_t;
    T* dhp = dh.data_ptr<T>();
    const T* gyp = ptr<T>(gy);
    for (int64_t s = T_ - 1; s >= 0; --s) {
      const int64_t t = reverse ? T_ - 1 - s : s, bt = active(sizes, t, B);
      if (gyp) for (int64_t j = 0; j < bt * H; ++j) dhp[j] += gyp[t * B * H + j];
      const T *g_t = gates.data_ptr<T>() + t * B * GH, *hin_t = hin.data_ptr<T>() + t * B * H;
      const T* hhn_t = hhn.data_ptr<T>() + t * B * H;
      T *dx_t = dx.data_ptr<T>() + t * B * GH, *dhh_t = dhh.data_ptr<T>() + t * B * GH;
      at::parallel_for(0, bt, row_grain(GH), [&](int64_t b0, int64_t b1) {
        for (int64_t r = b0; r < b1; ++r) {
          const T* g = g_t + r * GH;
          gru_row_backward<T>(H, g, g + H, g + 2 * H, hhn_t + r * H, hin_t + r * H, dhp + r * H,
                              dx_t + r * GH, dhh_t + r * GH);
        }
      });
      gemm_xw<T>(bt, H, GH, dhh_t, GH, w_hh.data_ptr<T>(), w_hh_packed, T(1), dhp, H);   // += dhh @ W_hh
    }
  });
  Tensor d_w_hh = big_mm(dhh.reshape({T_ * B, GH}).t(), hin.reshape({T_ * B, H}));
  Tensor d_b_hh = has_b_hh ? dhh.sum({0, 1}) : none_like(gates);
  return {dx, dh, d_w_hh, d_b_hh};
}

// -> y (T,B,H), h_n (B,H), hin (T,B,H) = h_{t-1} of every row. relu: h' = max(a, 0), else tanh(a).
std::tuple<Tensor, Tensor, Tensor> rnn_forward(const Tensor& xg_, const Tensor& h0, const Tensor& w_hh_,
                                               bool relu, at::OptionalIntArrayRef sizes, bool reverse) {
  const Tensor xg = xg_.contiguous(), w_hh = w_hh_.contiguous();
  check_common(xg, h0, w_hh, 1, sizes);
  const int64_t T_ = xg.size(0), B = xg.size(1), H = h0.size(1);
  auto opts = xg.options();
  Tensor y = sizes.has_value() ? at::zeros({T_, B, H}, opts) : at::empty({T_, B, H}, opts);
  Tensor hin = at::empty({T_, B, H}, opts), h = h0.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "rnn_forward", [&] {
    using T = scalar_t;
    T* hp = h.data_ptr<T>();
    const Tensor panels = maybe_panels(w_hh, B);
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = reverse ? T_ - 1 - s : s, bt = active(sizes, t, B);
      T *hin_t = hin.data_ptr<T>() + t * B * H, *y_t = y.data_ptr<T>() + t * B * H;
      const T* x_t = xg.data_ptr<T>() + t * B * H;
      std::memcpy(hin_t, hp, sizeof(T) * B * H);
      std::memcpy(y_t, x_t, sizeof(T) * bt * H);
      gemm_xwt<T>(bt, H, H, hin_t, H, w_hh.data_ptr<T>(), panels, T(1), y_t, H);   // a = xg + h @ W_hh^T
      T* __restrict__ yp = y_t;
      if (relu) for (int64_t j = 0; j < bt * H; ++j) yp[j] = yp[j] > T(0) ? yp[j] : T(0);
      else for (int64_t j = 0; j < bt * H; ++j) yp[j] = tanh_(yp[j]);
      std::memcpy(hp, y_t, sizeof(T) * bt * H);
    }
  });
  return {y, h, hin};
}

// -> d_xg (T,B,H), d_h0 (B,H), d_w_hh (H,H).
std::tuple<Tensor, Tensor, Tensor> rnn_backward(const OptT& grad_y, const OptT& grad_h_n, const Tensor& w_hh_,
    const Tensor& y, const Tensor& hin, bool relu, at::OptionalIntArrayRef sizes, bool reverse) {
  const Tensor w_hh = w_hh_.contiguous(), gy = contig(grad_y);
  const int64_t T_ = y.size(0), B = y.size(1), H = y.size(2);
  auto opts = y.options();
  Tensor da = sizes.has_value() ? at::zeros({T_, B, H}, opts) : at::empty({T_, B, H}, opts);
  Tensor dh = given(grad_h_n) ? grad_h_n->contiguous().clone() : at::zeros({B, H}, opts);
  const Tensor w_hh_packed = maybe_panels_xw(w_hh, B);  // packed once for small batches
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "rnn_backward", [&] {
    using T = scalar_t;
    T* dhp = dh.data_ptr<T>();
    const T* gyp = ptr<T>(gy);
    for (int64_t s = T_ - 1; s >= 0; --s) {
      const int64_t t = reverse ? T_ - 1 - s : s, bt = active(sizes, t, B);
      const T* y_t = y.data_ptr<T>() + t * B * H;
      T* __restrict__ da_t = da.data_ptr<T>() + t * B * H;
      for (int64_t j = 0; j < bt * H; ++j) {
        const T d = dhp[j] + (gyp ? gyp[t * B * H + j] : T(0));
        da_t[j] = relu ? (y_t[j] > T(0) ? d : T(0)) : d * (T(1) - y_t[j] * y_t[j]);
      }
      gemm_xw<T>(bt, H, H, da_t, H, w_hh.data_ptr<T>(), w_hh_packed, T(0), dhp, H);      // dh = da @ W_hh
    }
  });
  Tensor d_w_hh = big_mm(da.reshape({T_ * B, H}).t(), hin.reshape({T_ * B, H}));
  return {da, dh, d_w_hh};
}

TORCH_LIBRARY_FRAGMENT(lstmkit, m) {
  m.def("gru_forward(Tensor xg, Tensor h0, Tensor w_hh, Tensor? b_hh, int[]? batch_sizes, bool reverse) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("gru_backward(Tensor? grad_y, Tensor? grad_h_n, Tensor w_hh, bool has_b_hh, Tensor gates, Tensor hin, "
        "Tensor hhn, int[]? batch_sizes, bool reverse) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("rnn_forward(Tensor xg, Tensor h0, Tensor w_hh, bool relu, int[]? batch_sizes, bool reverse) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("rnn_backward(Tensor? grad_y, Tensor? grad_h_n, Tensor w_hh, Tensor y, Tensor hin, bool relu, "
        "int[]? batch_sizes, bool reverse) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lstmkit, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}

}  // namespace lstmkit
