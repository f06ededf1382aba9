// Backward of the fused CPU LSTM recurrence (see lstm_forward.cpp for the forward and the saved tensors).
//
// Walks the steps in reverse processing order carrying dh = ∂L/∂h_t (B, P) and dc = ∂L/∂c_t (B, H).
// Per step: a pass over h rows (zoneout split of dh, ∂y added), the projection GEMM if any, one fused
// pass per row that turns (dh', dc) into the preactivation gradients dA (B, GH) and ∂L/∂c_{t-1}, the
// layer-norm backward of the hh part if any, and one GEMM dA @ W_hh for ∂L/∂h_{t-1}. Weight gradients
// are large GEMMs / reductions over all T·B rows afterwards (not T small ones).
#include "cpu_math.h"
#include <torch/library.h>
#include <tuple>
#include <vector>

namespace lstmkit {
// Backward of the cell for one batch row, one pass over H units: from ∂L/∂(o ⊙ tanh c) (dhr) and
// ∂L/∂c_t (dc, overwritten with ∂L/∂c_{t-1}) to the preactivation gradients. Templated like the
// forward's cell_row so the loop is branch-free and vectorises. With LNC the caller has already put
// ∂L/∂c' through h in dcn_h and the output gate's gradient in dao.
template <typename T, bool COUPLED, bool LNC, bool ZC>
void cell_row_backward(int64_t H, const T* __restrict__ ai, const T* __restrict__ af, const T* __restrict__ ag,
                       const T* __restrict__ ao, T* __restrict__ dai, T* __restrict__ daf, T* __restrict__ dag,
                       T* __restrict__ dao, const T* __restrict__ cn, const T* __restrict__ c_prev,
                       const T* __restrict__ dhr, T* __restrict__ dc, const T* __restrict__ dcn_h,
                       const T* __restrict__ w_ci, const T* __restrict__ w_cf, const T* __restrict__ w_co,
                       const T* __restrict__ zc) {
  for (int64_t j = 0; j < H; ++j) {
    const T f = af[j], g = ag[j], o = ao[j], i = COUPLED ? T(1) - f : ai[j];
    T d_o, dcn;                                              // ∂L/∂a_o, ∂L/∂c'
    if (LNC) {
      d_o = dao[j];
      dcn = dcn_h[j];
    } else {
      const T tc = tanh_(cn[j]);
      d_o = dhr[j] * tc * o * (T(1) - o);                    // through σ of the output gate
      dcn = dhr[j] * o * (T(1) - tc * tc);
    }
    // c_t = zc ⊙ c_{t-1} + (1 - zc) ⊙ c'; the output peephole reads c'.
    dcn += (ZC ? (T(1) - zc[j]) * dc[j] : dc[j]) + d_o * w_co[j];
    const T di = dcn * g;
    const T df = dcn * c_prev[j] - (COUPLED ? di : T(0));   // coupled: i = 1 - f
    const T d_f = df * f * (T(1) - f);
    const T d_g = dcn * i * (T(1) - g * g);
    const T d_i = COUPLED ? T(0) : di * i * (T(1) - i);
    // ∂L/∂c_{t-1}: through f, zoneout's direct path, and the i/f peepholes
    dc[j] = (ZC ? zc[j] * dc[j] : T(0)) + dcn * f + d_f * w_cf[j] + (COUPLED ? T(0) : d_i * w_ci[j]);
    if (!COUPLED) dai[j] = d_i;
    daf[j] = d_f; dag[j] = d_g; dao[j] = d_o;
  }
}

template <typename T>
using CellRowBackward = void (*)(int64_t, const T*, const T*, const T*, const T*, T*, T*, T*, T*, const T*,
                                 const T*, const T*, T*, const T*, const T*, const T*, const T*, const T*);

template <typename T>
CellRowBackward<T> pick_cell_row_backward(bool coupled, bool lnc, bool zc) {
  const CellRowBackward<T> table[8] = {
      cell_row_backward<T, 0, 0, 0>, cell_row_backward<T, 0, 0, 1>, cell_row_backward<T, 0, 1, 0>,
      cell_row_backward<T, 0, 1, 1>, cell_row_backward<T, 1, 0, 0>, cell_row_backward<T, 1, 0, 1>,
      cell_row_backward<T, 1, 1, 0>, cell_row_backward<T, 1, 1, 1>};
  return table[coupled * 4 + lnc * 2 + zc];
}

using Bwd = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// Returns (d_xg, d_h0, d_c0, d_w_hh, d_w_hr, d_w_ci, d_w_cf, d_w_co, d_ln_hh, d_ln_c_w, d_ln_c_b);
// gradients of absent inputs are empty tensors. h_mask, zh, zc get none (they are masks).
Bwd lstm_backward(const OptT& grad_y_, const OptT& grad_h_n, const OptT& grad_c_n, const Tensor& c0_,
                  const Tensor& w_hh_, const OptT& w_hr_, const OptT& w_ci_, const OptT& w_cf_,
                  const OptT& w_co_, const OptT& ln_hh_, const OptT& ln_c_w_, const OptT& ln_c_b_,
                  const OptT& h_mask_, const OptT& zh_, const OptT& zc_, const Tensor& gates,
                  const Tensor& cs, const Tensor& hin, const Tensor& cnew, const Tensor& hraw,
                  const Tensor& hhraw, const Tensor& stats, at::OptionalIntArrayRef batch_sizes,
                  bool reverse, double eps_) {
  const Tensor w_hh = w_hh_.contiguous(), c0 = c0_.contiguous();
  const Variant v(w_hr_, w_ci_, w_cf_, w_co_, ln_hh_, ln_c_w_, ln_c_b_, h_mask_, zh_, zc_);
  const int64_t T_ = gates.size(0), B = gates.size(1), GH = gates.size(2), H = cs.size(2), P = hin.size(2);
  const int64_t G = GH / H;
  const bool packed = batch_sizes.has_value();
  const bool proj = v.w_hr.defined(), lnh = v.ln_hh.defined(), lnc = v.ln_c_w.defined();
  const bool zoc = v.zc.defined();
  auto opts = gates.options();
  auto alloc = [&](at::IntArrayRef s) { return packed ? at::zeros(s, opts) : at::empty(s, opts); };
  const Tensor grad_y = given(grad_y_) ? grad_y_->contiguous() : Tensor();
  Tensor dh = given(grad_h_n) ? grad_h_n->contiguous().clone() : at::zeros({B, P}, opts);  // ∂L/∂h_t
  Tensor dc = given(grad_c_n) ? grad_c_n->contiguous().clone() : at::zeros({B, H}, opts);  // ∂L/∂c_t
  Tensor dA = alloc({T_, B, GH});                            // (T, B, GH) = ∂L/∂xg
  Tensor dAhh = lnh ? alloc({T_, B, GH}) : dA;               // ∂L/∂(h @ W_hh^T), before the hh norm
  Tensor dhn_seq = proj ? alloc({T_, B, P}) : Tensor();      // ∂L/∂h' (projected), kept for ∂W_hr
  Tensor dhn_buf = at::empty({B, P}, opts);                  // ∂L/∂h' for this step (no projection)
  Tensor dhraw = proj ? at::empty({B, H}, opts) : Tensor();  // ∂L/∂(o ⊙ tanh c) (B, H)
  // Gradients of the gains and peepholes are sums over all (t, b): each thread adds its rows into its own
  // slice [γ_hh (GH) | γ_c, β_c, w_ci, w_cf, w_co (H each)], summed at the end (no (T, B, ·) temporaries).
  const bool peep = v.w_cf.defined() || v.w_co.defined();
  Tensor part = (lnh || lnc || peep) ? at::zeros({at::get_num_threads(), GH + 5 * H}, opts) : Tensor();
  Tensor dtmp = at::empty({B, P}, opts);
  const Tensor& cn_seq = zoc ? cnew : cs;                    // c' (before zoneout)

  const Tensor w_hh_packed = maybe_panels_xw(w_hh, B);  // packed once for small batches
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    using T = scalar_t;
    const Tensor zeros = at::zeros({H}, opts);                     // stands in for absent peepholes
    const T* zero = zeros.data_ptr<T>();
    const T *w_ci = v.w_ci.defined() ? ptr<T>(v.w_ci) : zero, *w_cf = v.w_cf.defined() ? ptr<T>(v.w_cf) : zero;
    const T* w_co = v.w_co.defined() ? ptr<T>(v.w_co) : zero;
    const CellRowBackward<T> cell = pick_cell_row_backward<T>(G == 3, lnc, zoc);
    const T *ln_hh = ptr<T>(v.ln_hh), *ln_c_w = ptr<T>(v.ln_c_w), *ln_c_b = ptr<T>(v.ln_c_b);
    const T *h_mask = ptr<T>(v.h_mask), *zh = ptr<T>(v.zh), *zc = ptr<T>(v.zc);
    const T* gy = ptr<T>(grad_y);
    T *dhp = dh.data_ptr<T>(), *dcp = dc.data_ptr<T>();
    for (int64_t s = T_ - 1; s >= 0; --s) {
      const int64_t t = reverse ? T_ - 1 - s : s;
      const int64_t bt = packed ? (*batch_sizes)[t] : B;
      // c_{t-1}: the state before this step, i.e. after the previous one in processing order.
      const T* cprev_t = s == 0 ? c0.data_ptr<T>() : cs.data_ptr<T>() + (reverse ? t + 1 : t - 1) * B * H;
      T* dhn_t = proj ? dhn_seq.data_ptr<T>() + t * B * P : dhn_buf.data_ptr<T>();
      const T* zh_t = zh ? zh + t * B * P : nullptr;
      const T* gy_t = gy ? gy + t * B * P : nullptr;
      // h_t = zh ⊙ h_{t-1} + (1 - zh) ⊙ h'; y_t = h_t. dh keeps the direct zh part, the GEMM adds the rest.
      for (int64_t j = 0; j < bt * P; ++j) dhn_t[j] = gy_t ? dhp[j] + gy_t[j] : dhp[j];
      if (zh_t) {
        for (int64_t j = 0; j < bt * P; ++j) {
          dhp[j] = zh_t[j] * dhn_t[j];
          dhn_t[j] -= dhp[j];                                    // (1 - zh) ⊙ d
        }
      } else {
        std::memset(dhp, 0, sizeof(T) * bt * P);
      }
      if (proj) gemm_rows<T>(bt, H, P, dhn_t, P, v.w_hr.data_ptr<T>(), false, T(0), dhraw.data_ptr<T>(), H);
      const T* dhr_t = proj ? dhraw.data_ptr<T>() : dhn_t;     // (B, H) ∂L/∂(o ⊙ tanh c)
      const T* g_t = gates.data_ptr<T>() + t * B * GH;
      const T* cn_t = cn_seq.data_ptr<T>() + t * B * H;
      const T* st_t = stats.numel() ? stats.data_ptr<T>() + t * B * 4 : nullptr;
      const T* zc_t = zc ? zc + t * B * H : nullptr;
      T* dA_t = dA.data_ptr<T>() + t * B * GH;
      T* dAhh_t = dAhh.data_ptr<T>() + t * B * GH;
      at::parallel_for(0, bt, row_grain(GH), [&](int64_t b0, int64_t b1) {
        std::vector<T> dcn_h(lnc ? H : 0);                     // ∂L/∂c' through h (layer-normed c)
        T* acc = part.defined() ? part.data_ptr<T>() + at::get_thread_num() * (GH + 5 * H) : nullptr;
        for (int64_t b = b0; b < b1; ++b) {
          const T* a = g_t + b * GH;
          const T* ai = G == 4 ? a : nullptr;
          const T *af = a + (G - 3) * H, *ag = af + H, *ao = ag + H;
          T* da = dA_t + b * GH;
          T* dai = G == 4 ? da : nullptr;
          T *daf = da + (G - 3) * H, *dag = daf + H, *dao = dag + H;
          const T *cn = cn_t + b * H, *c_prev = cprev_t + b * H, *dhr = dhr_t + b * H;
          const T* zc_row = zc_t ? zc_t + b * H : nullptr;
          T* dc_row = dcp + b * H;
          if (lnc) {                                           // through tanh(LN(c')·γ + β) and the norm
            const T mean = st_t[b * 4 + 2], rstd = st_t[b * 4 + 3];
            for (int64_t j = 0; j < H; ++j) {
              const T tc = tanh_((cn[j] - mean) * rstd * ln_c_w[j] + ln_c_b[j]);
              const T d_shown = dhr[j] * ao[j] * (T(1) - tc * tc);
              acc[GH + j] += d_shown * (cn[j] - mean) * rstd;   // γ_c
              acc[GH + H + j] += d_shown;                          // β_c
              dcn_h[j] = d_shown * ln_c_w[j];
              dao[j] = dhr[j] * tc * ao[j] * (T(1) - ao[j]);
            }
            ln_backward_row(dcn_h.data(), cn, H, mean, rstd);
          }
          cell(H, ai, af, ag, ao, dai, daf, dag, dao, cn, c_prev, dhr, dc_row, lnc ? dcn_h.data() : nullptr,
               w_ci, w_cf, w_co, zc_row);
          if (peep) {                                          // i, f read c_{t-1}; o reads c'
            for (int64_t j = 0; j < H; ++j) {
              if (dai) acc[GH + 2 * H + j] += dai[j] * c_prev[j];
              acc[GH + 3 * H + j] += daf[j] * c_prev[j];
              acc[GH + 4 * H + j] += dao[j] * cn[j];
            }
          }
          if (lnh) {                                           // gates = xg + LN(hh)·γ_hh
            T* dr = dAhh_t + b * GH;
            const T* raw = hhraw.data_ptr<T>() + (t * B + b) * GH;
            const T mean = st_t[b * 4], rstd = st_t[b * 4 + 1];
            for (int64_t j = 0; j < GH; ++j) {
              acc[j] += da[j] * (raw[j] - mean) * rstd;
              dr[j] = da[j] * ln_hh[j];
            }
            ln_backward_row(dr, raw, GH, mean, rstd);
          }
        }
      });
      // ∂L/∂h_{t-1} += (dA_hh @ W_hh) ⊙ mask
      if (h_mask) {
        gemm_xw<T>(bt, P, GH, dAhh_t, GH, w_hh.data_ptr<T>(), w_hh_packed, T(0), dtmp.data_ptr<T>(), P);
        const T* d = dtmp.data_ptr<T>();
        for (int64_t j = 0; j < bt * P; ++j) dhp[j] += d[j] * h_mask[j];
      } else {
        gemm_xw<T>(bt, P, GH, dAhh_t, GH, w_hh.data_ptr<T>(), w_hh_packed, T(1), dhp, P);
      }
    }
  });

  // Weight gradients over all T·B rows at once.
  Tensor d_w_hh = big_mm(dAhh.reshape({T_ * B, GH}).t(), hin.reshape({T_ * B, P}));
  Tensor d_w_hr = proj ? big_mm(dhn_seq.reshape({T_ * B, P}).t(), hraw.reshape({T_ * B, H})) : none_like(gates);
  Tensor sums = part.defined() ? part.sum(0) : Tensor();   // (GH + 5H,)
  auto piece = [&](bool present, int64_t from, int64_t n) { return present ? sums.slice(0, from, from + n).clone() : none_like(gates); };
  Tensor d_ln_hh = piece(lnh, 0, GH), d_ln_c_w = piece(lnc, GH, H), d_ln_c_b = piece(lnc, GH + H, H);
  Tensor d_w_ci = piece(v.w_ci.defined(), GH + 2 * H, H), d_w_cf = piece(v.w_cf.defined(), GH + 3 * H, H);
  Tensor d_w_co = piece(v.w_co.defined(), GH + 4 * H, H);
  return {dA, dh, dc, d_w_hh, d_w_hr, d_w_ci, d_w_cf, d_w_co, d_ln_hh, d_ln_c_w, d_ln_c_b};
}

TORCH_LIBRARY_IMPL(lstmkit, CPU, m) { m.impl("lstm_backward", &lstm_backward); }

}  // namespace lstmkit
