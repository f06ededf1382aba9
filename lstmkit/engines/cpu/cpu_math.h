// Shared pieces of the fused CPU kernels: the gate nonlinearities and a thin GEMM wrapper.
//
// float32 uses a branch-free exp (Cephes' expf polynomial, ~1 ulp) so that gcc vectorises the
// gate loops; std::exp would keep them scalar. float64 uses the C library for full accuracy.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

// oneDNN's matmul, as torch's own oneDNN paths call it: on AMD CPUs it beats MKL's sgemm, which
// takes a generic path there (docs/cpu_engine.md). Internal to torch, hence weak: absent -> BLAS / at::mm instead.
namespace at::native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha)
    __attribute__((weak));
}

namespace lstmkit {
using at::Tensor;
using OptT = std::optional<Tensor>;

__attribute__((always_inline)) inline float exp_poly(float x) {
  // exp(x) = 2^n · exp(r), r = x - n·ln2 in [-ln2/2, ln2/2]; clamped so 2^n stays a normal float.
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);  // ternaries vectorise, fmin/fmax need -ffast-math
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

__attribute__((always_inline)) inline float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

__attribute__((always_inline)) inline float tanh_(float x) {
  // tanh(x) = sign(x)·(1 - e)/(1 + e), e = exp(-2|x|): no overflow, absolute error ~1e-7.
  float e = exp_poly(-2.0f * std::fabs(x));
  float t = (1.0f - e) / (1.0f + e);
  return std::copysign(t, x);
}
inline double tanh_(double x) { return std::tanh(x); }

// The BLAS that torch links (MKL on x86 builds) exports the Fortran gemm; calling it directly skips the
// dispatcher and any allocation, which matters because this runs once per time step. Declared weak:
// where torch has no such symbol the ATen fallback below is used instead.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
            const int*, const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

inline void blas_gemm(const char* ta, const char* tb, int m, int n, int k, const float* alpha, const float* a,
                      int lda, const float* b, int ldb, const float* beta, float* c, int ldc) {
  sgemm_(ta, tb, &m, &n, &k, alpha, a, &lda, b, &ldb, beta, c, &ldc);
}
inline void blas_gemm(const char* ta, const char* tb, int m, int n, int k, const double* alpha, const double* a,
                      int lda, const double* b, int ldb, const double* beta, double* c, int ldc) {
  dgemm_(ta, tb, &m, &n, &k, alpha, a, &lda, b, &ldb, beta, c, &ldc);
}
template <typename T> inline bool have_blas();
template <> inline bool have_blas<float>() { return sgemm_ != nullptr; }
template <> inline bool have_blas<double>() { return dgemm_ != nullptr; }

// Row-major C (n, m) = beta·C + A (n, k) @ op(W), A with row stride lda, C with row stride ldc.
// w_transposed: W is (m, k) and op(W) = W^T (x @ W.T as in nn.Linear); else W is (k, m).
// BLAS is column-major, so this is C^T = op(W)^T · A^T.
template <typename T>
inline void gemm_rows(int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* w,
                      bool w_transposed, T beta, T* c, int64_t ldc) {
  if (n == 0) return;
  if (have_blas<T>()) {
    const T one = 1;
    blas_gemm(w_transposed ? "T" : "N", "N", (int)m, (int)n, (int)k, &one, w, (int)(w_transposed ? k : m), a,
              (int)lda, &beta, c, (int)ldc);
    return;
  }
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor A = at::from_blob(const_cast<T*>(a), {n, k}, {lda, 1}, opts);
  Tensor W = w_transposed ? at::from_blob(const_cast<T*>(w), {m, k}, opts).t() : at::from_blob(const_cast<T*>(w), {k, m}, opts);
  Tensor C = at::from_blob(c, {n, m}, {ldc, 1}, opts);
  if (beta == T(0)) C.copy_(at::mm(A, W)); else C.add_(at::mm(A, W));  // beta is 0 or 1 here
}


inline bool given(const OptT& t) { return t.has_value() && t->defined(); }
inline Tensor contig(const OptT& t) { return given(t) ? t->contiguous() : Tensor(); }
template <typename T>
const T* ptr(const Tensor& t) { return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr; }
inline Tensor none_like(const Tensor& like) { return at::empty({0}, like.options()); }

// The variant tensors (contiguous), shared by forward and backward.
struct Variant {
  Tensor w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc;
  Variant(const OptT& w_hr_, const OptT& w_ci_, const OptT& w_cf_, const OptT& w_co_, const OptT& ln_hh_,
          const OptT& ln_c_w_, const OptT& ln_c_b_, const OptT& h_mask_, const OptT& zh_, const OptT& zc_)
      : w_hr(contig(w_hr_)), w_ci(contig(w_ci_)), w_cf(contig(w_cf_)), w_co(contig(w_co_)),
        ln_hh(contig(ln_hh_)), ln_c_w(contig(ln_c_w_)), ln_c_b(contig(ln_c_b_)), h_mask(contig(h_mask_)),
        zh(contig(zh_)), zc(contig(zc_)) {}
};

// Sum of f(j) over j < n in 8 interleaved partial sums: without -ffast-math gcc only vectorises a
// reduction written this way (the order differs from a serial sum by rounding only).
template <typename T, typename F>
__attribute__((always_inline)) inline T sum8(int64_t n, F f) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(j + k);
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; ++j) s += f(j);
  return s;
}

// mean and 1/sqrt(var + eps) of one row (biased variance, as F.layer_norm).
template <typename T>
inline void row_stats(const T* __restrict__ x, int64_t n, T eps, T& mean, T& rstd) {
  mean = sum8<T>(n, [&](int64_t j) { return x[j]; }) / T(n);
  const T m = mean;
  const T var = sum8<T>(n, [&](int64_t j) { return (x[j] - m) * (x[j] - m); }) / T(n);
  rstd = T(1) / std::sqrt(var + eps);
}

// Layer-norm backward of one row, in place on dy (the gradient w.r.t. x̂ = (x - mean)·rstd):
// dx = rstd · (dy - mean(dy) - x̂ · mean(dy · x̂)).
template <typename T>
inline void ln_backward_row(T* __restrict__ dy, const T* __restrict__ x, int64_t n, T mean, T rstd) {
  const T s1 = sum8<T>(n, [&](int64_t j) { return dy[j]; }) / T(n);
  const T s2 = sum8<T>(n, [&](int64_t j) { return dy[j] * (x[j] - mean) * rstd; }) / T(n);
  for (int64_t j = 0; j < n; ++j) dy[j] = rstd * (dy[j] - s1 - (x[j] - mean) * rstd * s2);
}

// Skinny GEMM for small batches (n <= 16 rows), float32, AVX2+FMA builds only. MKL's sgemm is
// slow for such shapes on some CPUs (it repacks W on every call); here W is read as 16-column
// panels and each panel is used for up to 4 rows at once from registers: 1.5-3x faster at B=4-8.
// C (n, m) = A (n, k) @ Wp, or += when accumulate, where Wp's 16-column block j starts at
// w + j·block_stride and its row kk at + kk·row_stride (so a pre-packed panel and a plain
// row-major (k, m) matrix are both served). m must be a multiple of 16.
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
constexpr bool kSmallGemm = true;
// Always inlined: gcc may keep it out of line once several callers use it, and the call then costs
// more than the block's work at small batches.
template <int NB>
__attribute__((always_inline)) inline void small_block(int64_t k, const float* __restrict__ w, int64_t row_stride,
                                                       const float* __restrict__ a, int64_t lda, bool accumulate,
                                                       float* __restrict__ c, int64_t ldc) {
  __m256 acc[NB][2];
  for (int b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m256 w0 = _mm256_loadu_ps(w + kk * row_stride), w1 = _mm256_loadu_ps(w + kk * row_stride + 8);
    for (int b = 0; b < NB; ++b) {
      const __m256 x = _mm256_broadcast_ss(a + b * lda + kk);
      acc[b][0] = _mm256_fmadd_ps(w0, x, acc[b][0]);
      acc[b][1] = _mm256_fmadd_ps(w1, x, acc[b][1]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    float* cb = c + b * ldc;
    if (accumulate) {
      acc[b][0] = _mm256_add_ps(acc[b][0], _mm256_loadu_ps(cb));
      acc[b][1] = _mm256_add_ps(acc[b][1], _mm256_loadu_ps(cb + 8));
    }
    _mm256_storeu_ps(cb, acc[b][0]);
    _mm256_storeu_ps(cb + 8, acc[b][1]);
  }
}

// One row of A against four adjacent 16-column blocks (64 columns): the matrix-vector form. One
// row alone gives small_block<1> only two accumulator chains, bound by the FMA latency; four blocks
// give eight and read four sequential streams, so W comes in at nearly the cache's read bandwidth
// (faster than dot_gemm, close to a plain read of W: docs/cpu_engine.md). Every column
// sums over kk in the same order as small_block does, so a row's result does not depend on the batch.
__attribute__((always_inline)) inline void wide_block(int64_t k, const float* __restrict__ w, int64_t block_stride,
                                                      int64_t row_stride, const float* __restrict__ a, bool accumulate,
                                                      float* __restrict__ c) {
  __m256 acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m256 x = _mm256_broadcast_ss(a + kk);
    for (int q = 0; q < 4; ++q) {
      const float* wq = w + q * block_stride + kk * row_stride;
      acc[2 * q] = _mm256_fmadd_ps(_mm256_loadu_ps(wq), x, acc[2 * q]);
      acc[2 * q + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(wq + 8), x, acc[2 * q + 1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    if (accumulate) acc[r] = _mm256_add_ps(acc[r], _mm256_loadu_ps(c + 8 * r));
    _mm256_storeu_ps(c + 8 * r, acc[r]);
  }
}

inline void small_gemm(int64_t n, int64_t m, int64_t k, const float* a, int64_t lda, const float* w,
                       int64_t block_stride, int64_t row_stride, bool accumulate, float* c, int64_t ldc) {
  const int64_t blocks = m / 16;
  // Threads take whole groups of 4 blocks, so that one row can use wide_block throughout; a thread
  // gets at least 16 K multiply-adds at one row (as dot_gemm did), 1 M at more (as before).
  const int64_t groups = (blocks + 3) / 4;
  const int64_t grain = std::max<int64_t>(1, (n == 1 ? 256 : 16384) / std::max<int64_t>(1, k * n));
  at::parallel_for(0, groups, grain, [&](int64_t g0, int64_t g1) {
    const int64_t j1 = std::min(4 * g1, blocks);
    int64_t j = 4 * g0;
    if (n == 1)
      for (; j + 4 <= j1; j += 4) wide_block(k, w + j * block_stride, block_stride, row_stride, a, accumulate, c + j * 16);
    for (; j < j1; ++j) {
      const float* wj = w + j * block_stride;
      float* cj = c + j * 16;
      int64_t b = 0;
      for (; b + 4 <= n; b += 4) small_block<4>(k, wj, row_stride, a + b * lda, lda, accumulate, cj + b * ldc, ldc);
      switch (n - b) {
        case 3: small_block<3>(k, wj, row_stride, a + b * lda, lda, accumulate, cj + b * ldc, ldc); break;
        case 2: small_block<2>(k, wj, row_stride, a + b * lda, lda, accumulate, cj + b * ldc, ldc); break;
        case 1: small_block<1>(k, wj, row_stride, a + b * lda, lda, accumulate, cj + b * ldc, ldc); break;
        default: break;
      }
    }
  });
}

// Dot-product form for unpacked weights at the smallest batches: C (n, m) = A (n, k) @ W^T with
// W (m, k) row-major and unpacked, read once: 4 rows of W at a time, each against up to 2 rows of A,
// 8 independent accumulators: about twice as fast as BLAS's sgemv here, though packed panels through
// wide_block are faster still. For matrices that are not packed.
template <int NB>
inline void dot_block(int64_t k, const float* __restrict__ w, const float* __restrict__ a, int64_t lda,
                      bool accumulate, float* __restrict__ c, int64_t ldc) {
  __m256 acc[NB][4];
  for (int b = 0; b < NB; ++b)
    for (int r = 0; r < 4; ++r) acc[b][r] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[4];
    for (int r = 0; r < 4; ++r) wv[r] = _mm256_loadu_ps(w + r * k + kk);
    for (int b = 0; b < NB; ++b) {
      const __m256 x = _mm256_loadu_ps(a + b * lda + kk);
      for (int r = 0; r < 4; ++r) acc[b][r] = _mm256_fmadd_ps(wv[r], x, acc[b][r]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    // hadd twice leaves [row0..row3 of the low 128 bits | the same of the high 128 bits]
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(acc[b][0], acc[b][1]), _mm256_hadd_ps(acc[b][2], acc[b][3]));
    float out[4];
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
    for (int r = 0; r < 4; ++r) {
      for (int64_t t = kk; t < k; ++t) out[r] += w[r * k + t] * a[b * lda + t];  // k % 8 tail
      c[b * ldc + r] = accumulate ? c[b * ldc + r] + out[r] : out[r];
    }
  }
}

inline void dot_gemm(int64_t n, int64_t m, int64_t k, const float* a, int64_t lda, const float* w,
                     bool accumulate, float* c, int64_t ldc) {
  const int64_t groups = m / 4;
  at::parallel_for(0, groups, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, 4 * k)), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      int64_t b = 0;
      for (; b + 2 <= n; b += 2) dot_block<2>(k, w + 4 * g * k, a + b * lda, lda, accumulate, c + b * ldc + 4 * g, ldc);
      if (b < n) dot_block<1>(k, w + 4 * g * k, a + b * lda, lda, accumulate, c + b * ldc + 4 * g, ldc);
    }
  });
  for (int64_t j = groups * 4; j < m; ++j)  // m % 4 leftover rows of W
    for (int64_t b = 0; b < n; ++b) {
      float sum = 0.0f;
      for (int64_t t = 0; t < k; ++t) sum += w[j * k + t] * a[b * lda + t];
      c[b * ldc + j] = accumulate ? c[b * ldc + j] + sum : sum;
    }
}
#else
constexpr bool kSmallGemm = false;
inline void small_gemm(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, int64_t, bool,
                       float*, int64_t) {}
inline void dot_gemm(int64_t, int64_t, int64_t, const float*, int64_t, const float*, bool, float*, int64_t) {}
#endif
// Batch rows up to which the packed small_gemm (wide_block at one row) beats BLAS; measured on the
// AVX2 EPYC, I=H=256, 1 thread. Matrices whose width is not a multiple of 16 are not packed: at one
// row they take dot_gemm, else BLAS.
constexpr int64_t kSmallGemmRows = 16;

// Panels of 16 columns of op(W), each stored row after row: panel[j][kk][q] = op(W)[kk][16j + q], so
// small_gemm reads it with block_stride 16·k and row_stride 16, as one sequential stream per panel.
// pack_panels takes W (m, k) for A @ W^T (op = transpose); pack_panels_xw takes W (k, m) for A @ W.
inline Tensor pack_panels(const Tensor& w_) {
  // Written out with 8x8 register transposes, several times faster than torch's strided copy (view,
  // transpose, contiguous) or a scalar loop: it runs once per sequence and per step pack.
  const Tensor w = w_.contiguous();
  const int64_t m = w.size(0), k = w.size(1);
  Tensor out = at::empty({m / 16, k, 16}, w.options());
  const float* src = w.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t j = 0; j < m / 16; ++j) {
    int64_t kk = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; kk + 8 <= k; kk += 8)
      for (int64_t half = 0; half < 2; ++half) {                 // rows 16j + 8·half .. + 7
        __m256 r[8], t[8];
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(src + (16 * j + 8 * half + q) * k + kk);
        for (int q = 0; q < 8; q += 2) {
          t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
          t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
        }
        for (int q = 0; q < 8; q += 4) {
          r[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
          r[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
          r[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
          r[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
        }
        // r[0..3] hold columns {0,4},{1,5},{2,6},{3,7} of rows 0-3 in their halves; r[4..7] of rows 4-7
        for (int q = 0; q < 4; ++q) {
          float* d0 = dst + (j * k + kk + q) * 16 + 8 * half;
          _mm256_storeu_ps(d0, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
          _mm256_storeu_ps(d0 + 4 * 16, _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
        }
      }
#endif
    for (; kk < k; ++kk)
      for (int64_t q = 0; q < 16; ++q) dst[(j * k + kk) * 16 + q] = src[(16 * j + q) * k + kk];
  }
  return out;                                                      // (m/16, k, 16)
}
inline Tensor pack_panels_xw(const Tensor& w) {
  const int64_t k = w.size(0), m = w.size(1);
  return w.view({k, m / 16, 16}).transpose(0, 1).contiguous();   // (m/16, k, 16)
}

// Whether torch's internal oneDNN matmul takes float32 on this CPU: some torch builds accept only
// bfloat16/float16 there unless the CPU has AVX-512 (or AVX-NE-CONVERT), and throw otherwise. So it
// is probed once, on a 2x2 product checked against at::mm; any failure means BLAS from then on.
inline bool have_onednn_mm() {
  static const bool usable = [] {
    if (at::native::mkldnn_matmul == nullptr || !at::hasMKLDNN()) return false;
    try {
      const Tensor a = at::arange(4, at::kFloat).view({2, 2});
      Tensor out = at::empty({2, 2}, a.options());
      at::native::mkldnn_matmul(a, a, out, 0.0f, 1.0f);
      return out.equal(a.mm(a));
    } catch (const std::exception&) {
      return false;
    }
  }();
  return usable;
}

// out = beta·out + a @ b for float tensors through oneDNN (a, b may be strided views); false if not taken.
inline bool onednn_mm(const Tensor& a, const Tensor& b, const Tensor& out, float beta) {
  if (a.scalar_type() != at::kFloat || !have_onednn_mm()) return false;
  at::native::mkldnn_matmul(a, b, out, beta, 1.0f);
  return true;
}

// a @ b as a new tensor: oneDNN for float32, at::mm otherwise. For the weight gradients over T·B rows.
inline Tensor big_mm(const Tensor& a, const Tensor& b) {
  if (a.scalar_type() == at::kFloat && have_onednn_mm()) {
    Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
    at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
    return out;
  }
  return a.mm(b);
}

// The per-step products of the recurrences and the step. A recurrence packs W once per sequence
// (maybe_panels / maybe_panels_xw, undefined when not worth it) and passes the result to every step:
// a 3-d (m/16, k, 16) tensor is a pack for small_gemm; maybe_panels_xw gives a 2-d W^T for dot_gemm
// instead when W's width is not a multiple of 16 and the batch is one row.
inline bool packable(const Tensor& w, int64_t width, int64_t batch) {
  return kSmallGemm && w.scalar_type() == at::kFloat && batch <= kSmallGemmRows && width % 16 == 0;
}
inline Tensor maybe_panels(const Tensor& w, int64_t batch) {           // W (m, k), for gemm_xwt
  return packable(w, w.size(0), batch) ? pack_panels(w) : Tensor();
}
inline Tensor maybe_panels_xw(const Tensor& w, int64_t batch) {        // W (k, m), for gemm_xw
  if (packable(w, w.size(1), batch)) return pack_panels_xw(w);
  const bool one_row = kSmallGemm && w.scalar_type() == at::kFloat && batch == 1;
  return one_row ? w.t().contiguous() : Tensor();
}

// C (n, m) = beta·C + A (n, k) @ W^T, W (m, k); beta is 0 or 1; panels = maybe_panels(W, n) or undefined.
template <typename T>
inline void gemm_xwt(int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* w, const Tensor& panels,
                     T beta, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (panels.defined() && n <= kSmallGemmRows) {
      small_gemm(n, m, k, a, lda, panels.data_ptr<float>(), 16 * k, 16, beta != 0.0f, c, ldc);
      return;
    }
    if (kSmallGemm && n == 1) {
      dot_gemm(n, m, k, a, lda, w, beta != 0.0f, c, ldc);
      return;
    }
    if (n > kSmallGemmRows && have_onednn_mm()) {
      auto f = at::TensorOptions().dtype(at::kFloat);
      onednn_mm(at::from_blob(const_cast<float*>(a), {n, k}, {lda, 1}, f),
                at::from_blob(const_cast<float*>(w), {m, k}, f).t(), at::from_blob(c, {n, m}, {ldc, 1}, f), beta);
      return;
    }
  }
  gemm_rows<T>(n, m, k, a, lda, w, true, beta, c, ldc);
}

// C (n, m) = A (n, k) @ W^T for W (m, k) row-major, unpacked (the step's projection W_hr): dot_gemm
// for the smallest float batches (up to 4 rows, where it measured faster than BLAS), else BLAS.
constexpr int64_t kDotStepRows = 4;
template <typename T>
inline void gemm_xwt_unpacked(int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* w, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (kSmallGemm && n <= kDotStepRows) {
      dot_gemm(n, m, k, a, lda, w, false, c, ldc);
      return;
    }
  }
  gemm_rows<T>(n, m, k, a, lda, w, true, T(0), c, ldc);
}

// C (n, m) = beta·C + A (n, k) @ W, W (k, m) row-major; beta is 0 or 1; prepared = maybe_panels_xw(W, n).
template <typename T>
inline void gemm_xw(int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* w, const Tensor& prepared,
                    T beta, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (prepared.dim() == 3 && n <= kSmallGemmRows) {
      small_gemm(n, m, k, a, lda, prepared.data_ptr<float>(), 16 * k, 16, beta != 0.0f, c, ldc);
      return;
    }
    if (prepared.dim() == 2 && n == 1) {
      dot_gemm(n, m, k, a, lda, prepared.data_ptr<float>(), beta != 0.0f, c, ldc);
      return;
    }
    if (n > kSmallGemmRows && have_onednn_mm()) {
      auto f = at::TensorOptions().dtype(at::kFloat);
      onednn_mm(at::from_blob(const_cast<float*>(a), {n, k}, {lda, 1}, f),
                at::from_blob(const_cast<float*>(w), {k, m}, f), at::from_blob(c, {n, m}, {ldc, 1}, f), beta);
      return;
    }
  }
  gemm_rows<T>(n, m, k, a, lda, w, false, beta, c, ldc);
}

// Grain for parallel loops over batch rows: don't split unless each thread gets real work.
inline int64_t row_grain(int64_t row_width) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, row_width)); }

}  // namespace lstmkit
