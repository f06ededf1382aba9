// The fused CPU LSTM recurrence: one layer-direction, all T steps, forward and backward, in one call.
//
// Implements the recurrence contract of docs/ARCHITECTURE.md; the step is lstmkit/nn/cells.py's lstm_cell
// with the same names (i, f, g, o, c, h). Per step: one GEMM h @ W_hh^T straight into the gate buffer,
// then one pass per batch row that does the whole cell (gates, c, h, zoneout). Threads split the batch
// rows. Backward mirrors it: one fused pass per step and one GEMM for dh; the weight gradients are single
// large GEMMs over all T·B rows at the end. Packed batches: rows >= batch_sizes[t] hold their state.
#include "cpu_math.h"
#include <torch/library.h>
#include <tuple>

namespace lstmkit {
// The cell for one batch row, in one pass over its H units (lstm_cell of cells.py). A template per
// variant combination, with __restrict__ and peephole weights that are zeros when absent, so that the
// loop has no branches or possible aliasing and gcc vectorises it (exp/tanh included, cpu_math.h).
// gates: ai, af, ag, ao (H each) hold preactivations on entry, activations on exit (ai unused if coupled).
template <typename T, bool COUPLED, bool LNC, bool ZC>
void cell_row(int64_t H, T* __restrict__ ai, T* __restrict__ af, T* __restrict__ ag, T* __restrict__ ao,
              T* __restrict__ c_row, T* __restrict__ cn, T* __restrict__ cs_row, T* __restrict__ hr,
              const T* __restrict__ w_ci, const T* __restrict__ w_cf, const T* __restrict__ w_co,
              const T* __restrict__ zc) {
  for (int64_t j = 0; j < H; ++j) {
    const T c_prev = c_row[j];                               // c_{t-1}
    const T f = sigmoid(af[j] + w_cf[j] * c_prev);           // forget gate (peephole weight 0 if none)
    const T i = COUPLED ? T(1) - f : sigmoid(ai[j] + w_ci[j] * c_prev);  // input gate
    const T g = tanh_(ag[j]);                                // candidate
    const T c_new = f * c_prev + i * g;                      // c'
    const T o = sigmoid(ao[j] + w_co[j] * c_new);            // output gate looks at c'
    if (!COUPLED) ai[j] = i;
    af[j] = f; ag[j] = g; ao[j] = o;
    if (!LNC) hr[j] = o * tanh_(c_new);                      // o ⊙ tanh(c'), before projection/zoneout
    const T c_next = ZC ? zc[j] * c_prev + (T(1) - zc[j]) * c_new : c_new;  // zoneout on c
    if (ZC) cn[j] = c_new;                                   // without zoneout cn is cs_row
    c_row[j] = c_next;
    cs_row[j] = c_next;
  }
}

template <typename T>
using CellRow = void (*)(int64_t, T*, T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*);

template <typename T>
CellRow<T> pick_cell_row(bool coupled, bool lnc, bool zc) {
  const CellRow<T> table[8] = {cell_row<T, 0, 0, 0>, cell_row<T, 0, 0, 1>, cell_row<T, 0, 1, 0>,
                               cell_row<T, 0, 1, 1>, cell_row<T, 1, 0, 0>, cell_row<T, 1, 0, 1>,
                               cell_row<T, 1, 1, 0>, cell_row<T, 1, 1, 1>};
  return table[coupled * 4 + lnc * 2 + zc];
}

using Fwd = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// Returns the contract's (y, h_n, c_n, gates, c) and, for backward: cheld (T,B,H) the cell state after
// each step with inactive rows holding theirs (only when packed: the contract's c is 0 there),
// hin (T,B,P) the h that met W_hh,
// cnew (T,B,H) c' before zoneout (only with zc), hraw (T,B,H) h before projection (only with w_hr),
// hhraw (T,B,GH) h @ W_hh^T before its layer norm (only with ln_hh), stats (T,B,4) = mean/rstd of the
// hh norm and of the c norm (only with a norm). Absent ones are empty tensors.
Fwd lstm_forward(const Tensor& xg_, const Tensor& h0, const Tensor& c0, const Tensor& w_hh_,
                 const OptT& w_hr_, const OptT& w_ci_, const OptT& w_cf_, const OptT& w_co_,
                 const OptT& ln_hh_, const OptT& ln_c_w_, const OptT& ln_c_b_, const OptT& h_mask_,
                 const OptT& zh_, const OptT& zc_, at::OptionalIntArrayRef batch_sizes, bool reverse,
                 double eps_) {
  const Tensor xg = xg_.contiguous(), w_hh = w_hh_.contiguous();
  const Variant v(w_hr_, w_ci_, w_cf_, w_co_, ln_hh_, ln_c_w_, ln_c_b_, h_mask_, zh_, zc_);
  const int64_t T_ = xg.size(0), B = xg.size(1), GH = xg.size(2), H = c0.size(1), P = h0.size(1);
  const int64_t G = GH / H;
  TORCH_CHECK(T_ >= 1 && B >= 1 && H >= 1, "lstm_forward: needs at least one step, row and unit, got xg ", xg.sizes());
  TORCH_CHECK(G * H == GH && (G == 3 || G == 4), "lstm_forward: xg width ", GH, " is not 3H or 4H, H=", H);
  const bool packed = batch_sizes.has_value();
  TORCH_CHECK(!packed || (int64_t)batch_sizes->size() == T_, "lstm_forward: batch_sizes needs T entries");
  if (packed) for (int64_t n : *batch_sizes) TORCH_CHECK(0 <= n && n <= B, "lstm_forward: batch_sizes outside [0, B]");
  // Shapes are checked here too (not only by the layer): a wrong one would make BLAS read out of bounds.
  auto expect = [&](const Tensor& t, at::IntArrayRef shape, const char* name) {
    TORCH_CHECK(!t.defined() || (t.sizes() == shape && t.scalar_type() == xg.scalar_type()),
                "lstm_forward: ", name, " must be ", shape, " of ", xg.scalar_type(), ", got ",
                t.sizes(), " of ", t.scalar_type());
  };
  expect(h0, {B, P}, "h0"); expect(c0, {B, H}, "c0"); expect(w_hh, {GH, P}, "w_hh");
  TORCH_CHECK(v.w_hr.defined() || P == H, "lstm_forward: h0 has ", P, " features but c0 ", H, ": needs w_hr");
  expect(v.w_hr, {P, H}, "w_hr"); expect(v.w_ci, {H}, "w_ci"); expect(v.w_cf, {H}, "w_cf");
  expect(v.w_co, {H}, "w_co"); expect(v.ln_hh, {GH}, "ln_hh"); expect(v.ln_c_w, {H}, "ln_c_w");
  expect(v.ln_c_b, {H}, "ln_c_b"); expect(v.h_mask, {B, P}, "h_mask"); expect(v.zh, {T_, B, P}, "zh");
  expect(v.zc, {T_, B, H}, "zc");
  TORCH_CHECK(v.ln_c_w.defined() == v.ln_c_b.defined(), "lstm_forward: ln_c_w and ln_c_b come together");
  TORCH_CHECK(!(G == 4 && v.w_cf.defined() && !v.w_ci.defined()), "lstm_forward: peepholes need w_ci with 4 gates");
  const bool proj = v.w_hr.defined(), lnh = v.ln_hh.defined(), lnc = v.ln_c_w.defined();
  const bool zoc = v.zc.defined();
  auto opts = xg.options();
  // Packed batches leave rows untouched at some steps: start those buffers at zero.
  auto alloc = [&](at::IntArrayRef s) { return packed ? at::zeros(s, opts) : at::empty(s, opts); };
  Tensor y = alloc({T_, B, P}), gates = alloc({T_, B, GH}), cs = alloc({T_, B, H});
  Tensor hin = at::empty({T_, B, P}, opts);
  Tensor cheld = packed ? at::zeros({T_, B, H}, opts) : none_like(xg);
  Tensor cnew = zoc ? alloc({T_, B, H}) : none_like(xg);
  Tensor hraw = proj ? alloc({T_, B, H}) : none_like(xg);
  Tensor hhraw = lnh ? alloc({T_, B, GH}) : none_like(xg);
  Tensor stats = (lnh || lnc) ? alloc({T_, B, 4}) : none_like(xg);
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone();  // (B, P), (B, H) running state
  Tensor hnew = at::empty({B, P}, opts);                             // (B, P) projected h', before zoneout

  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "lstm_forward", [&] {
    using T = scalar_t;
    const T eps = T(eps_);
    const Tensor zeros = at::zeros({H}, opts);                       // stands in for absent peepholes
    const T* zero = zeros.data_ptr<T>();
    const T *w_ci = v.w_ci.defined() ? ptr<T>(v.w_ci) : zero, *w_cf = v.w_cf.defined() ? ptr<T>(v.w_cf) : zero;
    const T* w_co = v.w_co.defined() ? ptr<T>(v.w_co) : zero;
    const CellRow<T> cell = pick_cell_row<T>(G == 3, lnc, zoc);
    const Tensor panels = maybe_panels(w_hh, B);                      // W_hh packed once for small batches
    const T *ln_hh = ptr<T>(v.ln_hh), *ln_c_w = ptr<T>(v.ln_c_w), *ln_c_b = ptr<T>(v.ln_c_b);
    const T *h_mask = ptr<T>(v.h_mask), *zh = ptr<T>(v.zh), *zc = ptr<T>(v.zc);
    T *hp = h.data_ptr<T>(), *cp = c.data_ptr<T>();
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = reverse ? T_ - 1 - s : s;
      const int64_t bt = packed ? (*batch_sizes)[t] : B;
      T* hin_t = hin.data_ptr<T>() + t * B * P;                        // (B, P) variational dropout on h
      if (h_mask) for (int64_t j = 0; j < B * P; ++j) hin_t[j] = hp[j] * h_mask[j];
      else std::memcpy(hin_t, hp, sizeof(T) * B * P);
      T* a_t = gates.data_ptr<T>() + t * B * GH;                        // (B, GH) preactivations -> gates
      T* hh_t = lnh ? hhraw.data_ptr<T>() + t * B * GH : a_t;          // where h @ W_hh^T lands
      gemm_xwt<T>(bt, GH, P, hin_t, P, w_hh.data_ptr<T>(), panels, T(0), hh_t, GH);
      const T* xg_t = xg.data_ptr<T>() + t * B * GH;
      T* cs_t = (packed ? cheld : cs).data_ptr<T>() + t * B * H;   // c_t, held rows included
      T* cout_t = cs.data_ptr<T>() + t * B * H;                       // the contract's c
      T* cn_t = zoc ? cnew.data_ptr<T>() + t * B * H : cs_t;            // c' before zoneout
      T* hr_t = proj ? hraw.data_ptr<T>() + t * B * H : y.data_ptr<T>() + t * B * P;  // o ⊙ tanh(c)
      T* st_t = stats.numel() ? stats.data_ptr<T>() + t * B * 4 : nullptr;
      const T* zc_t = zc ? zc + t * B * H : nullptr;
      const T* zh_t = zh ? zh + t * B * P : nullptr;
      T* y_t = y.data_ptr<T>() + t * B * P;
      at::parallel_for(0, bt, row_grain(GH), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          T* a = a_t + b * GH;                                          // this row's [i,] f, g, o
          const T* x = xg_t + b * GH;
          if (lnh) {                                                    // xg + LN(h @ W_hh^T) · γ_hh
            const T* r = hh_t + b * GH;
            T mean, rstd;
            row_stats(r, GH, eps, mean, rstd);
            st_t[b * 4] = mean; st_t[b * 4 + 1] = rstd;
            for (int64_t j = 0; j < GH; ++j) a[j] = x[j] + (r[j] - mean) * rstd * ln_hh[j];
          } else {
            for (int64_t j = 0; j < GH; ++j) a[j] += x[j];
          }
          T *c_row = cp + b * H, *cn = cn_t + b * H, *cs_row = cs_t + b * H, *hr = hr_t + b * H;
          T* af = a + (G - 3) * H;
          cell(H, a, af, af + H, af + 2 * H, c_row, cn, cs_row, hr, w_ci, w_cf, w_co, zc_t ? zc_t + b * H : nullptr);
          if (packed) std::memcpy(cout_t + b * H, cs_row, sizeof(T) * H);
          if (lnc) {                                                    // h' = o ⊙ tanh(LN(c')·γ + β)
            T mean, rstd;
            row_stats(cn, H, eps, mean, rstd);
            st_t[b * 4 + 2] = mean; st_t[b * 4 + 3] = rstd;
            for (int64_t j = 0; j < H; ++j) hr[j] = af[2 * H + j] * tanh_((cn[j] - mean) * rstd * ln_c_w[j] + ln_c_b[j]);
          }
          if (!proj) {                                                  // zoneout on h; y = h_t
            T *h_row = hp + b * P, *y_row = y_t + b * P;
            if (zh_t) {
              for (int64_t j = 0; j < P; ++j) {
                y_row[j] = zh_t[b * P + j] * h_row[j] + (T(1) - zh_t[b * P + j]) * y_row[j];
                h_row[j] = y_row[j];
              }
            } else {
              std::memcpy(h_row, y_row, sizeof(T) * P);
            }
          }
        }
      });
      if (proj) {                                                       // h' = (o ⊙ tanh c) @ W_hr^T
        gemm_rows<T>(bt, P, H, hr_t, H, v.w_hr.data_ptr<T>(), true, T(0), hnew.data_ptr<T>(), P);
        const T* hn = hnew.data_ptr<T>();
        for (int64_t j = 0; j < bt * P; ++j) {
          const T h_next = zh_t ? zh_t[j] * hp[j] + (T(1) - zh_t[j]) * hn[j] : hn[j];
          y_t[j] = h_next;
          hp[j] = h_next;
        }
      }
      // rows >= bt hold their state; y, gates stay 0 there.
      if (bt < B) std::memcpy(cs_t + bt * H, cp + bt * H, sizeof(T) * (B - bt) * H);
    }
  });
  return {y, h, c, gates, cs, cheld, hin, cnew, hraw, hhraw, stats};
}

TORCH_LIBRARY(lstmkit, m) {
  m.def("lstm_forward(Tensor xg, Tensor h0, Tensor c0, Tensor w_hh, Tensor? w_hr, Tensor? w_ci, "
        "Tensor? w_cf, Tensor? w_co, Tensor? ln_hh, Tensor? ln_c_w, Tensor? ln_c_b, Tensor? h_mask, "
        "Tensor? zh, Tensor? zc, int[]? batch_sizes, bool reverse, float eps) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_backward(Tensor? grad_y, Tensor? grad_h_n, Tensor? grad_c_n, Tensor c0, Tensor w_hh, "
        "Tensor? w_hr, Tensor? w_ci, Tensor? w_cf, Tensor? w_co, Tensor? ln_hh, Tensor? ln_c_w, "
        "Tensor? ln_c_b, Tensor? h_mask, Tensor? zh, Tensor? zc, Tensor gates, Tensor cs, Tensor hin, "
        "Tensor cnew, Tensor hraw, Tensor hhraw, Tensor stats, int[]? batch_sizes, bool reverse, "
        "float eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, "
        "Tensor)");
}

TORCH_LIBRARY_IMPL(lstmkit, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
}

}  // namespace lstmkit
