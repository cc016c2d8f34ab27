// Fused CPU kernels for the separable tri-plane density on an axis-aligned grid (epigraf-tools).
//
// On such a grid the first MLP layer of voxel (k, j, i) is a sum of three per-plane terms
// A[j, h, i] + B[k, h, i] + C[k, j, h] (the first layer applied to each plane's features, the
// plane mean and the first-layer bias folded in). The kernels below do the per-voxel rest:
//
// relu_slab (leaky-ReLU hidden layer, EpiGRAF): with slope s, lrelu(v) = s v + (1 - s) relu(v),
//   and relu(a + b + c) = max(a + b, -c) + c. The linear parts are separable again, so Python
//   precomputes them as three 2-D maps (alpha [Ry, Rx], beta [T, Rx], gamma [T, Ry]); the hidden
//   weights are folded into A, B, C by scaling unit h by |w_h| (1 - s) (positive units first,
//   npos of them). Per voxel and hidden unit that leaves one add, one max and one add or subtract:
//       out = alpha + beta + gamma + sum_{h < npos} max(a + b, nc) - sum_{h >= npos} max(a + b, nc)
//   where nc = -c is passed in already negated. Two rows j and two sections k are done together,
//   so each A and B vector is loaded once for two uses (the loop is load-bound otherwise).
// softplus_slab (softplus hidden layer, the EG3D OSG decoder): out = bias + sum_h w_h softplus(a + b + c)
//   with a branch-free vector softplus (exp and log1p from short polynomials; absolute error about
//   2e-7 per unit, below float32 rounding of the sums).
//
// A and B are hidden-major ([.., H, Rx]) so a block of consecutive x-voxels is a vector; rows j are
// shared out over torch's intra-op threads (at::parallel_for), each row's A block stays in L1 while
// all T sections reuse it. Output layout is [T, Ry, Rx] (x fastest), MRC section order.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr int64_t kBlockX = 64;  // x-voxels accumulated together
constexpr int64_t kLanes = 8;    // floats per vector (AVX2 width; GCC/clang split it on narrower ISAs)
constexpr int64_t kVecs = kBlockX / kLanes;
constexpr int64_t kReluBlock = 32;  // x-voxels per block in relu_slab (2 sections x 2 rows x 4 vectors)

typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef int32_t vi __attribute__((vector_size(kLanes * 4)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
inline vf splat(float x) { return vf{} + x; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// Pins a loaded vector in a register: without it gcc re-reads the operand from memory for every
// use (rematerialisation), which keeps the relu loop load-bound.
inline void keep_in_register(vf& v) {
#if defined(__x86_64__) && defined(__GNUC__)
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}  // compiles to one max instruction (maxps semantics)

// exp(x) for x <= 0 (clamped at -87, where it is ~1e-38): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2].
inline vf exp_nonpositive(vf x) {
  x = vmax(x, splat(-87.0f));
  const vf n = __builtin_convertvector(__builtin_convertvector(x * 1.44269504f - 0.5f, vi), vf);  // floor(x log2e + .5)
  const vf r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln2 split in two for an exact reduction
  vf p = splat(1.39489269e-3f);
  p = p * r + 8.37537088e-3f;
  p = p * r + 4.16662134e-2f;
  p = p * r + 1.66664124e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vi scale = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)scale;
}

// log1p(e) for e in [0, 1]: e * q(e), q a degree-9 fit of log1p(e) / e on [0, 1].
inline vf log1p_unit(vf e) {
  vf q = splat(-3.25637846e-3f);
  q = q * e + 1.99071616e-2f;
  q = q * e - 5.70642017e-2f;
  q = q * e + 1.06142648e-1f;
  q = q * e - 1.53118625e-1f;
  q = q * e + 1.96781173e-1f;
  q = q * e - 2.49545589e-1f;
  q = q * e + 3.33300054e-1f;
  q = q * e - 4.99999046e-1f;
  q = q * e + 1.0f;
  return q * e;
}

// softplus(v) = max(v, 0) + log1p(exp(-|v|)); beyond |v| ~ 17 the log term is below float32 rounding.
inline vf softplus(vf v) {
  const vf a = (vf)((vi)v & 0x7fffffff);
  return vmax(v, splat(0.0f)) + log1p_unit(exp_nonpositive(-a));
}

inline float softplus_scalar(float v) { return std::max(v, 0.0f) + std::log1p(std::exp(-std::fabs(v))); }

inline float activate_output(float raw, int64_t mode, float shift) {
  if (mode == 0) return raw;
  const float v = raw + shift;
  if (mode == 1) return v > 20.0f ? v : std::log1p(std::exp(v));  // softplus, beta 1, threshold 20 (torch's)
  return v > 0.0f ? v : 0.0f;                                        // relu
}

void check_float_cpu(std::initializer_list<const torch::Tensor*> tensors, const char* name) {
  for (const torch::Tensor* t : tensors) {
    TORCH_CHECK(t->device().is_cpu(), name, " runs on CPU tensors only");
    TORCH_CHECK(t->scalar_type() == torch::kFloat32, name, " expects float32 tensors");
    TORCH_CHECK(t->is_contiguous(), name, " expects contiguous tensors");
  }
}

struct ReluArgs {
  const float *a, *b, *nc, *alpha, *beta, *gamma;
  float* out;
  int64_t Ry, H, Rx, npos, mode;
  float shift;
};

constexpr int64_t kReluVecs = kReluBlock / kLanes;

// acc[s][r] += (ADD) or -= the sum over units [h0, h1) of max(a + b, nc), for sections k + s and rows
// j + r, x-voxels i0 .. i0 + kReluBlock - 1. Each A and B vector is loaded once per unit and used
// KS resp. ROWS times: the loop is load-bound otherwise.
template <int KS, int ROWS, bool ADD>
inline void relu_units(const ReluArgs& g, int64_t j, int64_t k, int64_t i0, int64_t h0, int64_t h1,
                       vf (&acc)[KS][ROWS][kReluVecs]) {
  const int64_t H = g.H, Rx = g.Rx;
  for (int64_t h = h0; h < h1; ++h) {
    vf av[ROWS][kReluVecs], bv[KS][kReluVecs];
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kReluVecs; ++q) {
        av[r][q] = load(g.a + ((j + r) * H + h) * Rx + i0 + q * kLanes);
        if (KS > 1) keep_in_register(av[r][q]);
      }
    for (int s = 0; s < KS; ++s)
      for (int64_t q = 0; q < kReluVecs; ++q) {
        bv[s][q] = load(g.b + ((k + s) * H + h) * Rx + i0 + q * kLanes);
        if (ROWS > 1) keep_in_register(bv[s][q]);
      }
    for (int s = 0; s < KS; ++s) {
      for (int r = 0; r < ROWS; ++r) {
        const vf ch = splat(g.nc[((k + s) * g.Ry + j + r) * H + h]);
        for (int64_t q = 0; q < kReluVecs; ++q) {
          const vf m = vmax(av[r][q] + bv[s][q], ch);
          if (ADD)
            acc[s][r][q] += m;
          else
            acc[s][r][q] -= m;
        }
      }
    }
  }
}

// Sections k .. k + KS - 1, rows j .. j + ROWS - 1, x-voxels i0 .. i0 + kReluBlock - 1 (or the ragged
// end of the rows from i0 when fewer remain).
template <int KS, int ROWS>
inline void relu_block(const ReluArgs& g, int64_t j, int64_t k, int64_t i0) {
  const int64_t H = g.H, Rx = g.Rx;
  if (i0 + kReluBlock <= Rx) {
    vf acc[KS][ROWS][kReluVecs];
    for (int s = 0; s < KS; ++s)
      for (int r = 0; r < ROWS; ++r)
        for (int64_t q = 0; q < kReluVecs; ++q) acc[s][r][q] = splat(0.0f);
    // Units [0, npos) add, [npos, H) subtract: two loops, so no sign test per unit.
    relu_units<KS, ROWS, true>(g, j, k, i0, 0, g.npos, acc);
    relu_units<KS, ROWS, false>(g, j, k, i0, g.npos, H, acc);
    for (int s = 0; s < KS; ++s) {
      for (int r = 0; r < ROWS; ++r) {
        float* o = g.out + ((k + s) * g.Ry + j + r) * Rx + i0;
        const float lin_kj = g.gamma[(k + s) * g.Ry + j + r];
        const float* lin_ji = g.alpha + (j + r) * Rx + i0;
        const float* lin_ki = g.beta + (k + s) * Rx + i0;
        for (int64_t q = 0; q < kReluVecs; ++q)
          store(o + q * kLanes, (load(lin_ji + q * kLanes) + load(lin_ki + q * kLanes) + lin_kj) + acc[s][r][q]);
        if (g.mode != 0)
          for (int64_t l = 0; l < kReluBlock; ++l) o[l] = activate_output(o[l], g.mode, g.shift);
      }
    }
    return;
  }
  for (int s = 0; s < KS; ++s) {  // the ragged end of the rows
    const float* b0 = g.b + (k + s) * H * Rx;
    for (int r = 0; r < ROWS; ++r) {
      const float* a = g.a + (j + r) * H * Rx;
      const float* c = g.nc + ((k + s) * g.Ry + j + r) * H;
      float* o = g.out + ((k + s) * g.Ry + j + r) * Rx;
      for (int64_t l = i0; l < Rx; ++l) {
        float acc = 0.0f;
        for (int64_t h = 0; h < g.npos; ++h) acc += std::max(a[h * Rx + l] + b0[h * Rx + l], c[h]);
        for (int64_t h = g.npos; h < H; ++h) acc -= std::max(a[h * Rx + l] + b0[h * Rx + l], c[h]);
        const float raw =
            (g.alpha[(j + r) * Rx + l] + g.beta[(k + s) * Rx + l] + g.gamma[(k + s) * g.Ry + j + r]) + acc;
        o[l] = activate_output(raw, g.mode, g.shift);
      }
    }
  }
}

}  // namespace

// A [Ry, H, Rx], B [T, H, Rx], nC [T, Ry, H] (negated), alpha [Ry, Rx], beta [T, Rx], gamma [T, Ry]
// -> out [T, Ry, Rx] (written in place). mode: 0 raw, 1 softplus(raw + shift), 2 relu(raw + shift).
void relu_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& nC, const torch::Tensor& alpha,
               const torch::Tensor& beta, const torch::Tensor& gamma, int64_t npos, int64_t mode, double shift,
               torch::Tensor out) {
  check_float_cpu({&A, &B, &nC, &alpha, &beta, &gamma, &out}, "relu_slab");
  TORCH_CHECK(A.dim() == 3 && B.dim() == 3 && nC.dim() == 3 && alpha.dim() == 2 && beta.dim() == 2 &&
                  gamma.dim() == 2 && out.dim() == 3,
              "relu_slab expects A [Ry,H,Rx], B [T,H,Rx], nC [T,Ry,H], alpha [Ry,Rx], beta [T,Rx], gamma [T,Ry], "
              "out [T,Ry,Rx]");
  const int64_t Ry = A.size(0), H = A.size(1), Rx = A.size(2), T = B.size(0);
  TORCH_CHECK(B.size(1) == H && B.size(2) == Rx && nC.size(0) == T && nC.size(1) == Ry && nC.size(2) == H &&
                  alpha.size(0) == Ry && alpha.size(1) == Rx && beta.size(0) == T && beta.size(1) == Rx &&
                  gamma.size(0) == T && gamma.size(1) == Ry && out.size(0) == T && out.size(1) == Ry &&
                  out.size(2) == Rx,
              "relu_slab: inconsistent shapes");
  TORCH_CHECK(npos >= 0 && npos <= H, "relu_slab: npos must lie in [0, H]");
  const float *pa = A.data_ptr<float>(), *pb = B.data_ptr<float>(), *pc = nC.data_ptr<float>();
  const float *pal = alpha.data_ptr<float>(), *pbe = beta.data_ptr<float>(), *pga = gamma.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float fshift = static_cast<float>(shift);

  const ReluArgs args{pa, pb, pc, pal, pbe, pga, po, Ry, H, Rx, npos, mode, fshift};
  // Pairs of rows j share every B load (B is the operand that comes from L2); an odd last row goes alone.
  const int64_t pairs = (Ry + 1) / 2;
  at::parallel_for(0, pairs, 1, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t j = 2 * p;
      // The pair's A block (2 x H x kReluBlock floats) stays in L1 while every section k reuses it.
      for (int64_t i0 = 0; i0 < Rx; i0 += kReluBlock) {
        int64_t k = 0;
        for (; k + 1 < T; k += 2) {  // two sections at a time share every A load
          if (j + 1 < Ry)
            relu_block<2, 2>(args, j, k, i0);
          else
            relu_block<2, 1>(args, j, k, i0);
        }
        if (k < T) {
          if (j + 1 < Ry)
            relu_block<1, 2>(args, j, k, i0);
          else
            relu_block<1, 1>(args, j, k, i0);
        }
      }
    }
  });
}

// A [Ry, H, Rx], B [T, H, Rx], C [T, Ry, H] or an empty tensor (no third term), w [H]
// -> out [T, Ry, Rx] = act(bias + sum_h w_h softplus(A + B + C)) (written in place); mode as relu_slab.
void softplus_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& w,
                   double bias, int64_t mode, double shift, torch::Tensor out) {
  check_float_cpu({&A, &B, &C, &w, &out}, "softplus_slab");
  TORCH_CHECK(A.dim() == 3 && B.dim() == 3 && w.dim() == 1 && out.dim() == 3,
              "softplus_slab expects A [Ry,H,Rx], B [T,H,Rx], C [T,Ry,H] or empty, w [H], out [T,Ry,Rx]");
  const int64_t Ry = A.size(0), H = A.size(1), Rx = A.size(2), T = B.size(0);
  const bool has_c = C.numel() > 0;
  TORCH_CHECK(B.size(1) == H && B.size(2) == Rx && w.size(0) == H && out.size(0) == T && out.size(1) == Ry &&
                  out.size(2) == Rx && (!has_c || (C.dim() == 3 && C.size(0) == T && C.size(1) == Ry && C.size(2) == H)),
              "softplus_slab: inconsistent shapes");
  const float *pa = A.data_ptr<float>(), *pb = B.data_ptr<float>(), *pw = w.data_ptr<float>();
  const float* pc = has_c ? C.data_ptr<float>() : nullptr;
  float* po = out.data_ptr<float>();
  const float fbias = static_cast<float>(bias), fshift = static_cast<float>(shift);

  at::parallel_for(0, Ry, 1, [&](int64_t j_begin, int64_t j_end) {
    for (int64_t j = j_begin; j < j_end; ++j) {
      for (int64_t i0 = 0; i0 < Rx; i0 += kBlockX) {
        const int64_t n = std::min(kBlockX, Rx - i0);
        const float* a = pa + j * H * Rx + i0;
        for (int64_t k = 0; k < T; ++k) {
          const float* b = pb + k * H * Rx + i0;
          const float* c = has_c ? pc + (k * Ry + j) * H : nullptr;
          float* o = po + (k * Ry + j) * Rx + i0;
          if (n == kBlockX) {
            vf acc[kVecs];
            for (int64_t q = 0; q < kVecs; ++q) acc[q] = splat(fbias);
            for (int64_t h = 0; h < H; ++h) {
              const vf ch = splat(has_c ? c[h] : 0.0f), wh = splat(pw[h]);
              for (int64_t q = 0; q < kVecs; ++q)
                acc[q] += wh * softplus(load(a + h * Rx + q * kLanes) + load(b + h * Rx + q * kLanes) + ch);
            }
            for (int64_t q = 0; q < kVecs; ++q) store(o + q * kLanes, acc[q]);
            if (mode != 0)
              for (int64_t l = 0; l < kBlockX; ++l) o[l] = activate_output(o[l], mode, fshift);
          } else {
            for (int64_t l = 0; l < n; ++l) {
              float acc = fbias;
              for (int64_t h = 0; h < H; ++h)
                acc += pw[h] * softplus_scalar(a[h * Rx + l] + b[h * Rx + l] + (has_c ? c[h] : 0.0f));
              o[l] = activate_output(acc, mode, fshift);
            }
          }
        }
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("relu_slab", &relu_slab, "Separable tri-plane density, (leaky) ReLU hidden layer, for a slab of z-sections");
  m.def("softplus_slab", &softplus_slab, "Separable tri-plane density, softplus hidden layer, for a slab of z-sections");
}
