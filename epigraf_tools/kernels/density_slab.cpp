// Fused CPU kernels for the tri-plane field (epigraf-tools): the separable density on an axis-aligned grid
// (relu_slab, softplus_slab; described here) and the renderer's off-grid feature gather (triplane_gather, below).
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
//   where nc = -c is passed in already negated. Two rows j and two sections k (three with AVX-512)
//   are done together, so each A and B vector is loaded once for several uses (the loop is load-bound
//   otherwise).
// softplus_slab (softplus hidden layer, the EG3D OSG decoder): out = bias + sum_h w_h softplus(a + b + c)
//   with a branch-free vector softplus: on AVX-512 CPUs a piecewise polynomial picked per lane by a
//   register permute, elsewhere exp and log1p polynomials (both within about 2 float32 ulps of float64
//   softplus; tools/fit_softplus_table.py fits the coefficients and reports the errors).
// softplus_product_slab (EG3D, whose grid has two terms per voxel: A + B in EG3D's axis order, B + C in the
//   model world's): the same sum with softplus(a + b) = log(1 + e^a e^b) for the units whose terms keep the
//   exponentials in range, the exponentials computed once per block and slab, so per voxel only an FMA and a
//   table logarithm remain (AVX-512 builds, and AVX2 + FMA builds in 8 lanes; a whole 512^3 volume 1.5x faster
//   than through softplus_slab on an AVX-512 CPU, 2.4-2.7x on an AVX2 one, measured; see product_block).
//
// A and B come in x-blocks: A [Ry, nb, H, X], B [T, nb, H, X] (X = relu_block or softplus_block voxels, the
// rows padded to nb X), so all H units of one block of consecutive x-voxels are one contiguous run of
// memory that the hardware prefetcher follows (with [.., H, Rx] rows the same block was H strided
// streams: 512^3 took 27% longer on one thread and on two, measured); the padding lanes are computed and
// never stored. Rows j are shared out over torch's intra-op threads (at::parallel_for), each row's A block
// stays in L1 while all T sections reuse it. Output layout is [T, Ry, Rx] (x fastest), MRC section order.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kBlockX = 64;  // x-voxels accumulated together
constexpr int64_t kLanes = 8;    // floats per vector (AVX2 width; GCC/clang split it on narrower ISAs)
constexpr int64_t kVecs = kBlockX / kLanes;
constexpr int64_t kReluBlock = 32;  // x-voxels per block in relu_slab

// relu_slab's own vector width and sections per block. With AVX-512 a vector is 16 floats (one of 32 zmm
// registers) and three sections share every A load: 3 sections x 2 rows x 2 vectors of accumulators plus
// the loaded operands fit the register file (1.3x the 8-float loop, measured on 512^3 slabs, bit-identical).
// Elsewhere 8 floats and two sections: AVX2 has 16 ymm registers, which 2 x 2 x 4 accumulators half fill.
// The gather kernels keep kLanes: their table layout (C a multiple of 8) is part of their contract.
#if defined(__AVX512F__)
constexpr int64_t kReluLanes = 16;
constexpr int kReluSections = 3;
#else
constexpr int64_t kReluLanes = kLanes;
constexpr int kReluSections = 2;
#endif

typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef int32_t vi __attribute__((vector_size(kLanes * 4)));
typedef float rvf __attribute__((vector_size(kReluLanes * 4)));  // the same type as vf where the widths agree

template <class V = vf>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class V>
inline void store(float* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}
template <class V = vf>
inline V splat(float x) {
  return V{} + x;
}
template <class V>
inline V vmax(V a, V b) {
  return a > b ? a : b;
}

// Pins a loaded vector in a register: without it gcc re-reads the operand from memory for every
// use (rematerialisation), which keeps the relu loop load-bound. Only with AVX: an 8-float vector fits
// one register there (a 16-float one with AVX-512), while the SSE2-only portable build (two 4-float
// halves) has no such constraint.
template <class V>
inline void keep_in_register(V& v) {
#if defined(__x86_64__) && defined(__GNUC__) && defined(__AVX__)
  static_assert(sizeof(V) == 32 || (sizeof(V) == 64 && kReluLanes == 16), "a vector wider than a register");
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

// Polynomial coefficients (constants shared by both softplus paths below).
// clang-format off
// Generated by tools/fit_softplus_table.py --intervals 32 --degree 5 --scale 1.5; do not edit by hand.
constexpr float kSoftplusScale = 1.5f;  // intervals per unit of |v|
constexpr int kSoftplusDegree = 5;
constexpr float kSoftplusTop = 20.9999981f;  // |v| clamp: index <= last
alignas(64) constexpr float kSoftplusTable[6][32] = {
    {0.693147182f, 0.41437009f, 0.233962521f, 0.126928002f,
     0.0671757758f, 0.035052415f, 0.0181499291f, 0.00935962424f,
     0.00481633283f, 0.00247568521f, 0.0012718247f, 0.000653178664f,
     0.000335406396f, 0.000172217435f, 8.84230831e-05f, 4.53989014e-05f,
     2.33088304e-05f, 1.19672204e-05f, 6.14419378e-06f, 3.15453894e-06f,
     1.61959554e-06f, 8.31528439e-07f, 4.26921019e-07f, 2.19188578e-07f,
     1.12535176e-07f, 5.77774877e-08f, 2.96639513e-08f, 1.52299808e-08f,
     7.81933274e-09f, 4.01457934e-09f, 2.06115369e-09f, 1.05823161e-09f},
    {-0.333333313f, -0.226162419f, -0.139072374f, -0.0794686079f,
     -0.0433127806f, -0.0229634624f, -0.011990807f, -0.00621063868f,
     -0.00320316805f, -0.00164841511f, -0.000847343996f, -0.00043531027f,
     -0.000223566763f, -0.000114801704f, -5.89460979e-05f, -3.02652388e-05f,
     -1.55390353e-05f, -7.97809662e-06f, -4.09611539e-06f, -2.1030221e-06f,
     -1.07972915e-06f, -5.54352084e-07f, -2.84613975e-07f, -1.46125657e-07f,
     -7.50234435e-08f, -3.85183263e-08f, -1.97759622e-08f, -1.01533209e-08f,
     -5.21288701e-09f, -2.676386e-09f, -1.37410205e-09f, -7.05487502e-10f},
    {0.0555547401f, 0.0498124845f, 0.036687322f, 0.0233324599f,
     0.0134996735f, 0.0073908451f, 0.00392497983f, 0.00205090665f,
     0.00106257945f, 0.000548104639f, 0.000282084889f, 0.000145005353f,
     7.44959107e-05f, 3.82599428e-05f, 1.96466171e-05f, 1.00877733e-05f,
     5.1794691e-06f, 2.65928816e-06f, 1.36533868e-06f, 7.00993098e-07f,
     3.59903083e-07f, 1.84779765e-07f, 9.48695558e-08f, 4.87076441e-08f,
     2.50073562e-08f, 1.2839207e-08f, 6.59186439e-09f, 3.38436457e-09f,
     1.73759662e-09f, 8.92112162e-10f, 4.58026228e-10f, 2.35158171e-10f},
    {-4.58760496e-07f, -0.00355886878f, -0.00475083012f, -0.00394903356f,
     -0.00261009904f, -0.00152929954f, -0.000840833469f, -0.000447286555f,
     -0.000233872313f, -0.000121205776f, -6.25299581e-05f, -3.21803927e-05f,
     -1.6544047e-05f, -8.49983371e-06f, -4.36544042e-06f, -2.24166729e-06f,
     -1.15101011e-06f, -5.90980846e-07f, -3.03424912e-07f, -1.55785003e-07f,
     -7.99838276e-08f, -4.10611776e-08f, -2.10824709e-08f, -1.08246487e-08f,
     -5.55737145e-09f, -2.85321344e-09f, -1.46494616e-09f, -7.52063356e-10f,
     -3.86156856e-10f, -1.98254607e-10f, -1.01790548e-10f, -5.22610809e-11f},
    {-0.0010183152f, -0.000633349293f, 7.9049214e-06f, 0.000314947451f,
     0.000316754682f, 0.000219172915f, 0.000130501707f, 7.20345488e-05f,
     3.83993392e-05f, 2.0100335e-05f, 1.04205174e-05f, 5.38124596e-06f,
     2.76840183e-06f, 1.42335671e-06f, 7.31217824e-07f, 3.75564781e-07f,
     1.92839792e-07f, 9.90169866e-08f, 5.08440117e-08f, 2.61026365e-08f,
     1.34012241e-08f, 6.88341739e-09f, 3.53263085e-09f, 1.81394288e-09f,
     9.31223654e-10f, 4.78095397e-10f, 2.45491988e-10f, 1.26076552e-10f,
     6.4711507e-11f, 3.32217413e-11f, 1.70554352e-11f, 8.75760315e-12f},
    {1.65674589e-06f, 0.000132018744f, 0.000102051032f, 2.42445913e-05f,
     -1.55473936e-05f, -2.02193187e-05f, -1.48280978e-05f, -8.79303661e-06f,
     -4.87529451e-06f, -2.60250977e-06f, -1.36228573e-06f, -7.17790613e-07f,
     -3.65903134e-07f, -1.8773855e-07f, -9.64663656e-08f, -4.95883512e-08f,
     -2.54704684e-08f, -1.3066046e-08f, -6.71404887e-09f, -3.44805873e-09f,
     -1.76863757e-09f, -9.20494347e-10f, -4.68775629e-10f, -2.39511189e-10f,
     -1.23381083e-10f, -6.34280406e-11f, -3.24421254e-11f, -1.68632903e-11f,
     -8.54919087e-12f, -4.39983249e-12f, -2.25143081e-12f, -1.15595717e-12f},
};
// exp(r), r in [-ln2/2, ln2/2], degree 6
constexpr float kExpPoly[7] = {1.0f, 1.0f, 0.49999994f, 0.166665211f,
    0.0416682661f, 0.00836867001f, 0.0013820685f};
// log1p(e) / e, e in [0, 1], degree 9
constexpr float kLog1pPoly[10] = {1.0f, -0.499999344f, 0.333305508f, -0.249589443f,
    0.196970522f, -0.153597698f, 0.106874511f, -0.0577284433f,
    0.0202368554f, -0.00332529075f};
// Fit errors against float64 softplus over [-40, 40] (float32 arithmetic emulated with FMAs):
// max |error| 4.77e-07; max error in float32 ulps of softplus(v) where |v| lies in the table: 2.00; tail g(a_max) = 7.6e-10
// portable path: max |error| 4.77e-07; max error in float32 ulps where |v| < 21: 1.91
// clang-format on

constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: x + it rounds x to an integer kept in the low mantissa bits
constexpr float kLog2e = 1.44269504f;
// softplus_product_slab's flag bound: |a|, |b|, a + b <= it keeps e^a, e^b and e^a e^b normal floats
constexpr float kProductLimit = 80.0f;
constexpr float kLn2 = 0.693147182f;
constexpr float kLn2Hi = 0.693145752f;    // ln 2 = kLn2Hi + kLn2Lo, kLn2Hi with trailing zero bits so that
constexpr float kLn2Lo = 1.42860677e-6f;  // n * kLn2Hi is exact (an exact range reduction)

// sum_j c[j] x^j by Horner's rule (unrolled: N is a compile-time constant).
template <std::size_t N>
inline vf horner(const float (&c)[N], vf x) {
  vf p = splat(c[N - 1]);
  for (std::size_t j = N - 1; j-- > 0;) p = p * x + c[j];
  return p;
}

// exp(x) for x <= 88 (clamped at -87, where it is ~1e-38): 2^n p(r), n = round(x log2e), r = x - n ln2 in
// [-ln2/2, ln2/2]. Rounding by the magic constant leaves n in y's low bits, so 2^n is one integer add and
// shift of y's bits (the constant's own bits shift out) and n needs no float-int conversions.
inline vf exp_bounded(vf x) {
  x = vmax(x, splat(-87.0f));
  const vf y = x * kLog2e + kRoundMagic;
  const vf n = y - kRoundMagic;
  const vf r = (x - n * kLn2Hi) - n * kLn2Lo;
  return horner(kExpPoly, r) * (vf)(((vi)y + 127) << 23);
}

// softplus(v) = max(v, 0) + log1p(exp(-|v|)), log1p(e) = e q(e) for e in (0, 1]; -|v| is v with the sign bit
// set. Beyond |v| ~ 17 the log term is below float32 rounding of max(v, 0), or the tiny exp(v) itself.
inline vf softplus(vf v) {
  const vf e = exp_bounded((vf)((vi)v | INT32_MIN));
  return vmax(v, splat(0.0f)) + e * horner(kLog1pPoly, e);
}

// A product block's per-row term: for an A + B slab, exp = e^a vectors (row r, product unit f at exp + r
// stride + f X) and raw = A's rows (unit h of row r at raw + r raw_stride + h X); for a B + C slab, exp = e^c
// scalars (exp + r stride + f) and raw = C's rows (raw + r raw_stride + h).
struct ProductRows {
  const float* exp;
  int64_t stride;
  const float* raw;
  int64_t raw_stride;
};

#if defined(__AVX512F__)
// The AVX-512 softplus: max(v, 0) + g(|v|), g(a) = log1p(exp(-a)) from the piecewise table above. Interval
// k = round(|v| kSoftplusScale) holds a degree-kSoftplusDegree polynomial in t = |v| kSoftplusScale - k in
// [-1/2, 1/2]; the 32 intervals cover |v| < 21, beyond which g < 1e-9 and the clamped |v| returns g(21).
// Each coefficient's 32 values sit in two registers (intervals 0-15 and 16-31), and
// _mm512_permutex2var_ps picks every lane's value by the low 5 bits of k. About 20 instructions per 16
// lanes, against about 30 per 8 lanes for exp and log1p polynomials.
struct SoftplusTable512 {
  __m512 lo[kSoftplusDegree + 1], hi[kSoftplusDegree + 1];
  SoftplusTable512() {
    for (int j = 0; j <= kSoftplusDegree; ++j) {
      lo[j] = _mm512_load_ps(kSoftplusTable[j]);
      hi[j] = _mm512_load_ps(kSoftplusTable[j] + 16);
    }
  }
};

inline __m512 softplus512(__m512 v, const SoftplusTable512& tab) {
  const __m512 scale = _mm512_set1_ps(kSoftplusScale), magic = _mm512_set1_ps(kRoundMagic);
#if defined(__AVX512DQ__)
  // min(|v|, top) in one instruction (range: the smaller magnitude, sign cleared); 3% faster measured
  const __m512 s = _mm512_range_ps(v, _mm512_set1_ps(kSoftplusTop), 0b1010);
#else
  const __m512 s = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(kSoftplusTop));
#endif
  const __m512 y = _mm512_fmadd_ps(s, scale, magic);  // k = round(s scale) in the low bits
  const __m512i k = _mm512_castps_si512(y);
  const __m512 t = _mm512_fmsub_ps(s, scale, _mm512_sub_ps(y, magic));
  __m512 p = _mm512_permutex2var_ps(tab.lo[kSoftplusDegree], k, tab.hi[kSoftplusDegree]);
  for (int j = kSoftplusDegree - 1; j >= 0; --j)
    p = _mm512_fmadd_ps(p, t, _mm512_permutex2var_ps(tab.lo[j], k, tab.hi[j]));
  return _mm512_add_ps(_mm512_max_ps(v, _mm512_setzero_ps()), p);
}

constexpr int64_t kLanes512 = 16;
using OtherUnits = SoftplusTable512;  // the unflagged units of a product block take softplus512
#define EPIGRAF_PRODUCT_FORM_AVX512 1

// Rows j .. j + ROWS - 1 of one section, one x-block: o[r ostride + i] = bias + sum_h w_h softplus(a[r rs + h X + i]
// + b[h X + i] + c[r H + h]) (X = kBlockX; a or c may be null: no such term). The rows share each B vector: at
// 512^3 a slab's B is megabytes and comes from L3 for every row otherwise (40% slower per voxel than at
// 256^3, measured).
template <int ROWS>
inline void softplus_block512(const float* a, int64_t rs, const float* b, const float* c, const float* w, int64_t H,
                              float bias, float* o, int64_t ostride, const SoftplusTable512& tab) {
  constexpr int64_t kQ = kBlockX / kLanes512;
  __m512 acc[ROWS][kQ];
  for (int r = 0; r < ROWS; ++r)
    for (int64_t q = 0; q < kQ; ++q) acc[r][q] = _mm512_set1_ps(bias);
  for (int64_t h = 0; h < H; ++h) {
    const __m512 wh = _mm512_set1_ps(w[h]);
    __m512 bv[kQ];
    for (int64_t q = 0; q < kQ; ++q) bv[q] = _mm512_loadu_ps(b + h * kBlockX + q * kLanes512);
    for (int r = 0; r < ROWS; ++r) {
      const float* ar = a != nullptr ? a + r * rs + h * kBlockX : nullptr;
      for (int64_t q = 0; q < kQ; ++q) {
        __m512 v = ar != nullptr ? _mm512_add_ps(_mm512_loadu_ps(ar + q * kLanes512), bv[q]) : bv[q];
        if (c != nullptr) v = _mm512_add_ps(v, _mm512_set1_ps(c[r * H + h]));
        acc[r][q] = _mm512_fmadd_ps(wh, softplus512(v, tab), acc[r][q]);
      }
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int64_t q = 0; q < kQ; ++q) _mm512_storeu_ps(o + r * ostride + q * kLanes512, acc[r][q]);
}

// The product form of softplus for two-term sums (softplus_product_slab): softplus(a + b) = log(1 + e^a e^b),
// with e^a and e^b computed once per block and slab, so per voxel and unit one FMA gives u = 1 + e^a e^b and
// only a logarithm remains: u = m 2^e with m in [1, 2) (getexp, getmant), c_j = 1 + j / 16 the left end of
// m's interval (j: m's top 4 mantissa bits), r = m / c_j - 1 in [0, 1/16), and log u = e ln 2 + log c_j +
// r p(r), p the minimax quadratic of log1p(r) / r on that range (within 6.5e-8). The unit's weight is folded
// into the constants, so the sum is a plain add. About 12 instructions per 16 lanes against about 20 for
// softplus512, with two single-register permutes in place of six two-register ones (the permutes were the
// costly part): the slab calls of a 512^3 EG3D volume ran 1.57x faster on 2 threads, 1.75x on 1 (measured).
// Error: within 2 ulps plus 1.2e-7 absolute of float64 softplus (measured over the flagged range; the test
// allows 3 ulps plus 2e-7). The absolute part is u's float32 rounding: where a + b is very negative the
// result is right in absolute terms, not to a few ulps as softplus512 is.
constexpr float kLogP1 = -0.49948016f, kLogP2 = 0.3103998f;  // r p(r) = r + kLogP1 r^2 + kLogP2 r^3
constexpr int kProductEntries = 16;

struct ProductLogTable {
  __m512 inv;                 // fl(1 / c_j)
  alignas(64) float unit_constant[16];  // log c_j as -log(inv_j), so that log m = log c_j + log1p(m inv_j - 1)
                                      // holds for the rounded inv_j
  ProductLogTable() {
    alignas(64) float iv[16];
    for (int j = 0; j < 16; ++j) {
      iv[j] = static_cast<float>(1.0 / (1.0 + j / 16.0));
      unit_constant[j] = static_cast<float>(-std::log(static_cast<double>(iv[j])));
    }
    inv = _mm512_load_ps(iv);
  }
};

// One product unit's constants: w log c_j (16 lanes), w ln 2, and w times p's coefficients.
struct WeightedLog {
  __m512 wlogc, wln2, wp2, wp1, w;
  WeightedLog(const float* wlogc_row, float wv)
      : wlogc(_mm512_loadu_ps(wlogc_row)),
        wln2(_mm512_set1_ps(wv * kLn2)),
        wp2(_mm512_set1_ps(wv * kLogP2)),
        wp1(_mm512_set1_ps(wv * kLogP1)),
        w(_mm512_set1_ps(wv)) {}
};

// w log(1 + ea eb)
inline __m512 weighted_log1p_product(__m512 ea, __m512 eb, __m512 inv, const WeightedLog& c) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 u = _mm512_fmadd_ps(ea, eb, one);
  const __m512 e = _mm512_getexp_ps(u);
  const __m512 m = _mm512_getmant_ps(u, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  const __m512i j = _mm512_srli_epi32(_mm512_castps_si512(u), 19);  // the permutes read the low 4 bits
  const __m512 r = _mm512_fmsub_ps(m, _mm512_permutexvar_ps(j, inv), one);
  const __m512 lead = _mm512_fmadd_ps(e, c.wln2, _mm512_permutexvar_ps(j, c.wlogc));
  const __m512 p = _mm512_fmadd_ps(_mm512_fmadd_ps(c.wp2, r, c.wp1), r, c.w);
  return _mm512_fmadd_ps(p, r, lead);
}

// e^x for |x| <= 87: 2^n q(x - n ln 2), n = round(x log2 e), kExpPoly on [-ln2/2, ln2/2], 2^n by scalef.
inline __m512 exp512(__m512 x) {
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x));
  __m512 q = _mm512_set1_ps(kExpPoly[6]);
  for (int k = 5; k >= 0; --k) q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(kExpPoly[k]));
  return _mm512_scalef_ps(q, n);
}

// dst[0 .. n) = e^src (n a multiple of 16, dst 64-byte aligned)
inline void exp_run(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes512) _mm512_store_ps(dst + i, exp512(_mm512_loadu_ps(src + i)));
}

// Rows of one section and x-block: the product units (e^b at eb [nf][X], their w log c_j at wlogc [nf][16],
// weights wf) in the product form, then the other units (indices other, raw b and the raw row term) by
// softplus512; o[r ostride + i] = bias + the sum over all units. SCALAR: the row term is C's (one value per
// row and unit), else A's (one vector per row and unit).
template <int ROWS, bool SCALAR>
inline void product_block(const ProductRows& rt, const float* eb, const float* wlogc, const float* wf, int64_t nf,
                          const float* b, const int64_t* other, int64_t no, const float* w, float bias, float* o,
                          int64_t ostride, const ProductLogTable& lt, const OtherUnits& tab) {
  constexpr int64_t kQ = kBlockX / kLanes512;
  __m512 acc[ROWS][kQ];
  for (int r = 0; r < ROWS; ++r)
    for (int64_t q = 0; q < kQ; ++q) acc[r][q] = _mm512_set1_ps(bias);
  for (int64_t f = 0; f < nf; ++f) {
    const WeightedLog c(wlogc + f * kProductEntries, wf[f]);
    __m512 bv[kQ];
    for (int64_t q = 0; q < kQ; ++q) bv[q] = _mm512_load_ps(eb + f * kBlockX + q * kLanes512);
    for (int r = 0; r < ROWS; ++r) {
      if constexpr (SCALAR) {
        const __m512 er = _mm512_set1_ps(rt.exp[r * rt.stride + f]);
        for (int64_t q = 0; q < kQ; ++q)
          acc[r][q] = _mm512_add_ps(acc[r][q], weighted_log1p_product(er, bv[q], lt.inv, c));
      } else {
        const float* er = rt.exp + r * rt.stride + f * kBlockX;
        for (int64_t q = 0; q < kQ; ++q)
          acc[r][q] =
              _mm512_add_ps(acc[r][q], weighted_log1p_product(_mm512_load_ps(er + q * kLanes512), bv[q], lt.inv, c));
      }
    }
  }
  for (int64_t s = 0; s < no; ++s) {
    const int64_t h = other[s];
    const __m512 wh = _mm512_set1_ps(w[h]);
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kQ; ++q) {
        const __m512 bq = _mm512_loadu_ps(b + h * kBlockX + q * kLanes512);
        __m512 v;  // the same sums, in the same order, as softplus_block512's
        if constexpr (SCALAR)
          v = _mm512_add_ps(bq, _mm512_set1_ps(rt.raw[r * rt.raw_stride + h]));
        else
          v = _mm512_add_ps(_mm512_loadu_ps(rt.raw + r * rt.raw_stride + h * kBlockX + q * kLanes512), bq);
        acc[r][q] = _mm512_fmadd_ps(wh, softplus512(v, tab), acc[r][q]);
      }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int64_t q = 0; q < kQ; ++q) _mm512_storeu_ps(o + r * ostride + q * kLanes512, acc[r][q]);
}

#endif

// 64-byte aligned start within a buffer allocated kAlignFloats floats longer
constexpr int64_t kAlignFloats = 16;
inline float* aligned64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define EPIGRAF_PRODUCT_FORM_AVX2 1
// The product form on AVX2 CPUs (most x86 machines without AVX-512: AMD Zen 1-3, Intel chips without it),
// 8 lanes: the same log(1 + e^a e^b) as weighted_log1p_product, with what AVX2 has. There is no
// getexp/getmant and a register permute holds 8 floats, so u's bits give everything: k = (bits(u) - bits(1))
// >> 20 = 8 e + j (e the exponent, j m's top 3 mantissa bits, the permute reads k's low 3 bits), m = the
// mantissa bits under the exponent of 1.0, and log u = k ln2 / 8 + corr_j + r q(r) with corr_j = log c_j -
// j ln2 / 8 (c_j = 1 + j / 8), r = m / c_j - 1 in [0, 1/8) and q the minimax cubic of log1p(r) / r there. k is
// a small integer, so k ln2 / 8 is one rounding. About 15 instructions per 8 lanes against about 30 for
// softplus (exp and log1p polynomials): a whole 512^3 EG3D volume 2.4-2.7x faster on an AVX2 AMD EPYC (Zen 1;
// measured, RESULTS.md). Error: within 1.1 ulps plus 1.22e-7 of float64 softplus (measured; the test allows 3
// ulps plus 2e-7).
// q(r) = 1 + Q1 r + Q2 r^2 + Q3 r^3 (the tool reports: max |error| 7.63e-06, 1.66 ulps beyond 1.22e-7):
// Generated by tools/fit_softplus_table.py --product-intervals 8 --product-degree 3
constexpr float kLog8Q1 = -0.499941438f, kLog8Q2 = 0.330427408f, kLog8Q3 = -0.208026782f;
constexpr int kProductEntries = 8;

inline vf fma8(vf a, vf b, vf c) { return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
inline vf permute8(vf table, vi index) { return (vf)_mm256_permutevar8x32_ps((__m256)table, (__m256i)index); }

struct ProductLogTable {
  vf inv;                     // fl(1 / c_j)
  float unit_constant[8];     // corr_j = -log(inv_j) - j ln2 / 8 (for the rounded inv_j)
  ProductLogTable() {
    alignas(32) float iv[8];
    for (int j = 0; j < 8; ++j) {
      iv[j] = static_cast<float>(1.0 / (1.0 + j / 8.0));
      unit_constant[j] = static_cast<float>(-std::log(static_cast<double>(iv[j])) - j * std::log(2.0) / 8.0);
    }
    inv = load(iv);
  }
};

// One product unit's constants: w corr_j (8 lanes), w ln2 / 8, and w times q's coefficients.
struct WeightedLog8 {
  vf wcorr, wln2, wq3, wq2, wq1, w;
  WeightedLog8(const float* wcorr_row, float wv)
      : wcorr(load(wcorr_row)),
        wln2(splat(wv * (kLn2 / 8.0f))),
        wq3(splat(wv * kLog8Q3)),
        wq2(splat(wv * kLog8Q2)),
        wq1(splat(wv * kLog8Q1)),
        w(splat(wv)) {}
};

// w log(1 + ea eb)
inline vf weighted_log1p_product8(vf ea, vf eb, vf inv, const WeightedLog8& c) {
  const vf u = fma8(ea, eb, splat(1.0f));
  const vi bits = (vi)u;
  const vi k = (bits - 0x3F800000) >> 20;  // u >= 1: never negative
  const vf m = (vf)((bits & 0x7FFFFF) | 0x3F800000);
  const vf r = fma8(m, permute8(inv, k), splat(-1.0f));
  const vf lead = fma8(__builtin_convertvector(k, vf), c.wln2, permute8(c.wcorr, k));
  const vf q = fma8(fma8(fma8(c.wq3, r, c.wq2), r, c.wq1), r, c.w);
  return fma8(q, r, lead);
}

// dst[0 .. n) = e^src for |src| <= 87 (n a multiple of 8)
inline void exp_run(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) store(dst + i, exp_bounded(load(src + i)));
}

struct OtherUnits {};  // the unflagged units take the portable softplus, which needs no table

// product_block's loop in 8 lanes: the 64-voxel block in two halves of 32 (16 ymm registers hold a half's
// accumulators for two rows and its e^b vectors, not a whole block's). The unflagged units add their terms in
// softplus_block's order and form, so with no unit flagged the result is softplus_slab's, bit for bit.
template <int ROWS, bool SCALAR>
inline void product_block(const ProductRows& rt, const float* eb, const float* wcorr, const float* wf, int64_t nf,
                          const float* b, const int64_t* other, int64_t no, const float* w, float bias, float* o,
                          int64_t ostride, const ProductLogTable& lt, const OtherUnits&) {
  constexpr int64_t kHalf = 32, kQ = kHalf / kLanes;
  for (int64_t x0 = 0; x0 < kBlockX; x0 += kHalf) {
    vf acc[ROWS][kQ];
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kQ; ++q) acc[r][q] = splat(bias);
    for (int64_t f = 0; f < nf; ++f) {
      const WeightedLog8 c(wcorr + f * kProductEntries, wf[f]);
      vf bv[kQ];
      for (int64_t q = 0; q < kQ; ++q) bv[q] = load(eb + f * kBlockX + x0 + q * kLanes);
      for (int r = 0; r < ROWS; ++r) {
        if constexpr (SCALAR) {
          const vf er = splat(rt.exp[r * rt.stride + f]);
          for (int64_t q = 0; q < kQ; ++q) acc[r][q] += weighted_log1p_product8(er, bv[q], lt.inv, c);
        } else {
          const float* er = rt.exp + r * rt.stride + f * kBlockX + x0;
          for (int64_t q = 0; q < kQ; ++q)
            acc[r][q] += weighted_log1p_product8(load(er + q * kLanes), bv[q], lt.inv, c);
        }
      }
    }
    for (int64_t s = 0; s < no; ++s) {
      const int64_t h = other[s];
      const vf wh = splat(w[h]);
      for (int r = 0; r < ROWS; ++r)
        for (int64_t q = 0; q < kQ; ++q) {
          const vf bq = load(b + h * kBlockX + x0 + q * kLanes);
          if constexpr (SCALAR)
            acc[r][q] += wh * softplus(splat(0.0f) + bq + splat(rt.raw[r * rt.raw_stride + h]));
          else
            acc[r][q] += wh * softplus(load(rt.raw + r * rt.raw_stride + h * kBlockX + x0 + q * kLanes) + bq +
                                       splat(0.0f));
        }
    }
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kQ; ++q) store(o + r * ostride + x0 + q * kLanes, acc[r][q]);
  }
}
#endif

inline float softplus_scalar(float v) { return std::max(v, 0.0f) + std::log1p(std::exp(-std::fabs(v))); }

// One row of one section, one x-block, with the portable vectors: o[i] = bias + sum_h w_h softplus(a[h X + i]
// + b[h X + i] + c[h]) (X = kBlockX, a or c may be null).
inline void softplus_block(const float* a, const float* b, const float* c, const float* w, int64_t H, float bias,
                           float* o) {
  vf acc[kVecs];
  for (int64_t q = 0; q < kVecs; ++q) acc[q] = splat(bias);
  for (int64_t h = 0; h < H; ++h) {
    const vf ch = splat(c != nullptr ? c[h] : 0.0f), wh = splat(w[h]);
    for (int64_t q = 0; q < kVecs; ++q)
      acc[q] += wh * softplus((a != nullptr ? load(a + h * kBlockX + q * kLanes) : splat(0.0f)) +
                              load(b + h * kBlockX + q * kLanes) + ch);
  }
  for (int64_t q = 0; q < kVecs; ++q) store(o + q * kLanes, acc[q]);
}

inline float activate_output(float raw, int64_t mode, float shift) {
  if (mode == 0) return raw;
  const float v = raw + shift;
  if (mode == 1) return v > 20.0f ? v : std::log1p(std::exp(v));  // softplus, beta 1, threshold 20 (torch's)
  return v > 0.0f ? v : 0.0f;                                        // relu
}

// The softplus kernels' last step for one x-block of `rows` rows at o0 (row stride rx): a partial block's n
// valid voxels come out of `part` (row stride kBlockX), then the output activation (mode as relu_slab).
inline void finish_block(float* o0, const float* part, int64_t rows, int64_t n, int64_t rx, int64_t mode,
                         float shift) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = o0 + r * rx;
    if (n < kBlockX) std::copy(part + r * kBlockX, part + r * kBlockX + n, o);
    if (mode != 0)
      for (int64_t l = 0; l < n; ++l) o[l] = activate_output(o[l], mode, shift);
  }
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
  int64_t Ry, H, Rx, nb, npos, mode;
  float shift;
};

constexpr int64_t kReluVecs = kReluBlock / kReluLanes;

// acc[s][r] += (ADD) or -= the sum over units [h0, h1) of max(a + b, nc), for sections k + s and rows
// j + r, x-block ib. Each A and B vector is loaded once per unit and used KS resp. ROWS times: the loop
// is load-bound otherwise.
template <int KS, int ROWS, bool ADD>
inline void relu_units(const ReluArgs& g, int64_t j, int64_t k, int64_t ib, int64_t h0, int64_t h1,
                       rvf (&acc)[KS][ROWS][kReluVecs]) {
  const int64_t H = g.H, block = H * kReluBlock;  // floats per (row or section, x-block)
  const float* a = g.a + (j * g.nb + ib) * block;
  const float* b = g.b + (k * g.nb + ib) * block;
  for (int64_t h = h0; h < h1; ++h) {
    rvf av[ROWS][kReluVecs], bv[KS][kReluVecs];
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kReluVecs; ++q) {
        av[r][q] = load<rvf>(a + r * g.nb * block + h * kReluBlock + q * kReluLanes);
        if (KS > 1) keep_in_register(av[r][q]);
      }
    for (int s = 0; s < KS; ++s)
      for (int64_t q = 0; q < kReluVecs; ++q) {
        bv[s][q] = load<rvf>(b + s * g.nb * block + h * kReluBlock + q * kReluLanes);
        if (ROWS > 1) keep_in_register(bv[s][q]);
      }
    for (int s = 0; s < KS; ++s) {
      for (int r = 0; r < ROWS; ++r) {
        const rvf ch = splat<rvf>(g.nc[((k + s) * g.Ry + j + r) * H + h]);
        for (int64_t q = 0; q < kReluVecs; ++q) {
          const rvf m = vmax(av[r][q] + bv[s][q], ch);
          if (ADD)
            acc[s][r][q] += m;
          else
            acc[s][r][q] -= m;
        }
      }
    }
  }
}

// Sections k .. k + KS - 1, rows j .. j + ROWS - 1, x-block ib (the voxels of it that lie in the row).
template <int KS, int ROWS>
inline void relu_block(const ReluArgs& g, int64_t j, int64_t k, int64_t ib) {
  rvf acc[KS][ROWS][kReluVecs];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < ROWS; ++r)
      for (int64_t q = 0; q < kReluVecs; ++q) acc[s][r][q] = splat<rvf>(0.0f);
  // Units [0, npos) add, [npos, H) subtract: two loops, so no sign test per unit.
  relu_units<KS, ROWS, true>(g, j, k, ib, 0, g.npos, acc);
  relu_units<KS, ROWS, false>(g, j, k, ib, g.npos, g.H, acc);
  const int64_t i0 = ib * kReluBlock, n = std::min(kReluBlock, g.Rx - i0);
  for (int s = 0; s < KS; ++s) {
    for (int r = 0; r < ROWS; ++r) {
      float* o = g.out + ((k + s) * g.Ry + j + r) * g.Rx + i0;
      const float lin_kj = g.gamma[(k + s) * g.Ry + j + r];
      const float* lin_ji = g.alpha + (j + r) * g.Rx + i0;
      const float* lin_ki = g.beta + (k + s) * g.Rx + i0;
      if (n == kReluBlock) {
        for (int64_t q = 0; q < kReluVecs; ++q)
          store(o + q * kReluLanes,
                (load<rvf>(lin_ji + q * kReluLanes) + load<rvf>(lin_ki + q * kReluLanes) + lin_kj) + acc[s][r][q]);
      } else {  // the row's last, partial block: the same sums, lane by lane
        alignas(64) float part[kReluBlock];
        for (int64_t q = 0; q < kReluVecs; ++q) store(part + q * kReluLanes, acc[s][r][q]);
        for (int64_t l = 0; l < n; ++l) o[l] = (lin_ji[l] + lin_ki[l] + lin_kj) + part[l];
      }
      if (g.mode != 0)
        for (int64_t l = 0; l < n; ++l) o[l] = activate_output(o[l], g.mode, g.shift);
    }
  }
}

// relu_block for rows j and j + 1 (j alone where it is the last row).
template <int KS>
inline void relu_rows(const ReluArgs& g, int64_t j, int64_t k, int64_t ib) {
  if (j + 1 < g.Ry)
    relu_block<KS, 2>(g, j, k, ib);
  else
    relu_block<KS, 1>(g, j, k, ib);
}

// The x-block count of a row of rx voxels, and the checks of an x-blocked operand [n, nb, H, X].
int64_t x_blocks(int64_t rx, int64_t width) { return (rx + width - 1) / width; }

void check_x_blocked(const torch::Tensor& t, int64_t n, int64_t H, int64_t rx, int64_t width, const char* what) {
  TORCH_CHECK(t.dim() == 4 && t.size(0) == n && t.size(1) == x_blocks(rx, width) && t.size(2) == H &&
                  t.size(3) == width,
              what, " must be x-blocked [", n, ", ", x_blocks(rx, width), ", ", H, ", ", width, "], got ", t.sizes());
}

}  // namespace

// A [Ry, nb, H, X], B [T, nb, H, X] (x-blocked, X = relu_block), nC [T, Ry, H] (negated), alpha [Ry, Rx],
// beta [T, Rx], gamma [T, Ry] -> out [T, Ry, Rx] (written in place). mode: 0 raw, 1 softplus(raw + shift),
// 2 relu(raw + shift).
void relu_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& nC, const torch::Tensor& alpha,
               const torch::Tensor& beta, const torch::Tensor& gamma, int64_t npos, int64_t mode, double shift,
               torch::Tensor out) {
  check_float_cpu({&A, &B, &nC, &alpha, &beta, &gamma, &out}, "relu_slab");
  TORCH_CHECK(nC.dim() == 3 && alpha.dim() == 2 && beta.dim() == 2 && gamma.dim() == 2 && out.dim() == 3 &&
                  A.dim() == 4 && B.dim() == 4,
              "relu_slab expects A [Ry,nb,H,X], B [T,nb,H,X], nC [T,Ry,H], alpha [Ry,Rx], beta [T,Rx], gamma [T,Ry], "
              "out [T,Ry,Rx]");
  const int64_t T = out.size(0), Ry = out.size(1), Rx = out.size(2), H = nC.size(2);
  check_x_blocked(A, Ry, H, Rx, kReluBlock, "relu_slab: A");
  check_x_blocked(B, T, H, Rx, kReluBlock, "relu_slab: B");
  TORCH_CHECK(nC.size(0) == T && nC.size(1) == Ry && alpha.size(0) == Ry && alpha.size(1) == Rx &&
                  beta.size(0) == T && beta.size(1) == Rx && gamma.size(0) == T && gamma.size(1) == Ry,
              "relu_slab: inconsistent shapes");
  TORCH_CHECK(npos >= 0 && npos <= H, "relu_slab: npos must lie in [0, H]");
  const float *pa = A.data_ptr<float>(), *pb = B.data_ptr<float>(), *pc = nC.data_ptr<float>();
  const float *pal = alpha.data_ptr<float>(), *pbe = beta.data_ptr<float>(), *pga = gamma.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float fshift = static_cast<float>(shift);
  const int64_t nb = x_blocks(Rx, kReluBlock);

  const ReluArgs args{pa, pb, pc, pal, pbe, pga, po, Ry, H, Rx, nb, npos, mode, fshift};
  // Pairs of rows j share every B load (B is the operand that comes from L2); an odd last row goes alone.
  const int64_t pairs = (Ry + 1) / 2;
  at::parallel_for(0, pairs, 1, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t j = 2 * p;
      // The pair's A block (2 x H x kReluBlock floats) stays in L1 while every section k reuses it.
      for (int64_t ib = 0; ib < nb; ++ib) {
        int64_t k = 0;
        for (; k + kReluSections <= T; k += kReluSections)  // the sections of a step share every A load
          relu_rows<kReluSections>(args, j, k, ib);
        if (T - k >= 2) {  // what is left: at most kReluSections - 1 sections
          relu_rows<2>(args, j, k, ib);
          k += 2;
        }
        if (k < T) relu_rows<1>(args, j, k, ib);
      }
    }
  });
}

// A [Ry, nb, H, X] or an empty tensor, B [T, nb, H, X] (x-blocked, X = softplus_block), C [T, Ry, H] or an
// empty tensor (no such term), w [H] -> out [T, Ry, Rx] = act(bias + sum_h w_h softplus(A + B + C)) (written in
// place); mode as relu_slab.
void softplus_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& w,
                   double bias, int64_t mode, double shift, torch::Tensor out) {
  check_float_cpu({&A, &B, &C, &w, &out}, "softplus_slab");
  TORCH_CHECK(B.dim() == 4 && w.dim() == 1 && out.dim() == 3,
              "softplus_slab expects A [Ry,nb,H,X] or empty, B [T,nb,H,X], C [T,Ry,H] or empty, w [H], out [T,Ry,Rx]");
  const int64_t T = out.size(0), Ry = out.size(1), Rx = out.size(2), H = w.size(0);
  const bool has_a = A.numel() > 0, has_c = C.numel() > 0;
  if (has_a) check_x_blocked(A, Ry, H, Rx, kBlockX, "softplus_slab: A");
  check_x_blocked(B, T, H, Rx, kBlockX, "softplus_slab: B");
  TORCH_CHECK(!has_c || (C.dim() == 3 && C.size(0) == T && C.size(1) == Ry && C.size(2) == H),
              "softplus_slab: inconsistent shapes");
  const float *pb = B.data_ptr<float>(), *pw = w.data_ptr<float>();
  const float* pa = has_a ? A.data_ptr<float>() : nullptr;
  const float* pc = has_c ? C.data_ptr<float>() : nullptr;
  float* po = out.data_ptr<float>();
  const float fbias = static_cast<float>(bias), fshift = static_cast<float>(shift);
  const int64_t nb = x_blocks(Rx, kBlockX), block = H * kBlockX;

  // Rows go in pairs (an odd last row alone): on the AVX-512 path the pair shares every B load.
  const int64_t pairs = (Ry + 1) / 2;
  at::parallel_for(0, pairs, 1, [&](int64_t p_begin, int64_t p_end) {
#if defined(__AVX512F__)
    const SoftplusTable512 tab;
#endif
    alignas(64) float part[2 * kBlockX];  // a partial block's rows before their valid voxels are copied out
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t j0 = 2 * p, rows = std::min<int64_t>(2, Ry - j0);
      for (int64_t ib = 0; ib < nb; ++ib) {
        const int64_t i0 = ib * kBlockX, n = std::min(kBlockX, Rx - i0);
        const float* a0 = has_a ? pa + (j0 * nb + ib) * block : nullptr;
        for (int64_t k = 0; k < T; ++k) {
          const float* b = pb + (k * nb + ib) * block;
          const float* c0 = has_c ? pc + (k * Ry + j0) * H : nullptr;
          float* o0 = po + (k * Ry + j0) * Rx + i0;
          float* dst = n == kBlockX ? o0 : part;
          const int64_t dstride = n == kBlockX ? Rx : kBlockX;
#if defined(__AVX512F__)
          if (rows == 2)
            softplus_block512<2>(a0, nb * block, b, c0, pw, H, fbias, dst, dstride, tab);
          else
            softplus_block512<1>(a0, nb * block, b, c0, pw, H, fbias, dst, dstride, tab);
#else
          for (int64_t r = 0; r < rows; ++r)
            softplus_block(has_a ? a0 + r * nb * block : nullptr, b, has_c ? c0 + r * H : nullptr, pw, H, fbias,
                           dst + r * dstride);
#endif
          finish_block(o0, part, rows, n, Rx, mode, fshift);
        }
      }
    }
  });
}

// softplus_slab for two-term sums, A + B (no C: EG3D's own grid order) or B + C (no A: EG3D's volume in the
// model world's MRC order), the units with product[h] != 0 in the product form (product_block). The
// caller flags a unit only where both terms and their sum stay within kProductLimit over the slab (then the
// exponentials and 1 + their product are normal floats); the others take the build's plain softplus. Builds
// with neither AVX-512 nor AVX2 + FMA run softplus_slab.
void softplus_product_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                           const torch::Tensor& w, const torch::Tensor& product, double bias, int64_t mode,
                           double shift, torch::Tensor out) {
  TORCH_CHECK(product.device().is_cpu() && product.scalar_type() == torch::kUInt8 && product.is_contiguous() &&
                  product.dim() == 1 && product.size(0) == w.size(0),
              "softplus_product_slab expects product [H] uint8 (one flag per hidden unit)");
  const bool has_a = A.numel() > 0, has_c = C.numel() > 0;
  TORCH_CHECK(has_a != has_c, "softplus_product_slab takes two terms: A and B, or B and C");
#if !defined(EPIGRAF_PRODUCT_FORM_AVX512) && !defined(EPIGRAF_PRODUCT_FORM_AVX2)
  softplus_slab(A, B, C, w, bias, mode, shift, out);
#else
  check_float_cpu({&A, &B, &C, &w, &out}, "softplus_product_slab");
  TORCH_CHECK(B.dim() == 4 && w.dim() == 1 && out.dim() == 3,
              "softplus_product_slab expects A [Ry,nb,H,X] or C [T,Ry,H], B [T,nb,H,X], w [H], out [T,Ry,Rx]");
  const int64_t T = out.size(0), Ry = out.size(1), Rx = out.size(2), H = w.size(0);
  if (has_a) check_x_blocked(A, Ry, H, Rx, kBlockX, "softplus_product_slab: A");
  check_x_blocked(B, T, H, Rx, kBlockX, "softplus_product_slab: B");
  TORCH_CHECK(!has_c || (C.dim() == 3 && C.size(0) == T && C.size(1) == Ry && C.size(2) == H),
              "softplus_product_slab: C must be [T, Ry, H]");
  const float *pb = B.data_ptr<float>(), *pw = w.data_ptr<float>();
  const float* pa = has_a ? A.data_ptr<float>() : nullptr;
  const float* pc = has_c ? C.data_ptr<float>() : nullptr;
  const uint8_t* flags = product.data_ptr<uint8_t>();
  float* po = out.data_ptr<float>();
  const float fbias = static_cast<float>(bias), fshift = static_cast<float>(shift);
  const int64_t nb = x_blocks(Rx, kBlockX), block = H * kBlockX;

  std::vector<int64_t> units, other;  // product units, then the rest
  for (int64_t h = 0; h < H; ++h) (flags[h] != 0 ? units : other).push_back(h);
  const int64_t nf = static_cast<int64_t>(units.size()), no = static_cast<int64_t>(other.size());
  const int64_t fblock = nf * kBlockX;
  const ProductLogTable lt;
  std::vector<float> wf(nf), wlogc(kProductEntries * nf);
  for (int64_t f = 0; f < nf; ++f) {
    wf[f] = pw[units[f]];
    for (int j = 0; j < kProductEntries; ++j) wlogc[kProductEntries * f + j] = wf[f] * lt.unit_constant[j];
  }
  // e^b of the product units, [T, nb, nf, X]: every row of the slab reuses it
  torch::Tensor eb_store = torch::empty({T * nb * fblock + kAlignFloats}, torch::kFloat32);
  float* eb = aligned64(eb_store.data_ptr<float>());
  at::parallel_for(0, T * nb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t kb = begin; kb < end; ++kb)
      for (int64_t f = 0; f < nf; ++f)
        exp_run(pb + kb * block + units[f] * kBlockX, eb + kb * fblock + f * kBlockX, kBlockX);
  });
  const int64_t pairs = (Ry + 1) / 2;
  // x-block ib of rows j0 .. j0 + rows - 1 of section k (row term rt; SCALAR: C's), then the block's finish
  auto run_block = [&](auto scalar, const ProductRows& rt, int64_t k, int64_t j0, int64_t rows, int64_t ib,
                       float* part, const OtherUnits& tab) {
    constexpr bool kScalar = decltype(scalar)::value;
    const int64_t i0 = ib * kBlockX, n = std::min(kBlockX, Rx - i0);
    const float* b = pb + (k * nb + ib) * block;
    const float* ebk = eb + (k * nb + ib) * fblock;
    float* o0 = po + (k * Ry + j0) * Rx + i0;
    float* dst = n == kBlockX ? o0 : part;
    const int64_t dstride = n == kBlockX ? Rx : kBlockX;
    if (rows == 2)
      product_block<2, kScalar>(rt, ebk, wlogc.data(), wf.data(), nf, b, other.data(), no, pw, fbias, dst, dstride,
                                lt, tab);
    else
      product_block<1, kScalar>(rt, ebk, wlogc.data(), wf.data(), nf, b, other.data(), no, pw, fbias, dst, dstride,
                                lt, tab);
    finish_block(o0, part, rows, n, Rx, mode, fshift);
  };

  if (has_c) {
    // B + C: e^c [T, Ry, nf], one scalar per section, row and unit. Work items are (section, row pair),
    // section-major, so a thread's consecutive items reuse one section's e^b (nb blocks) from cache.
    std::vector<float> ec(T * Ry * nf);
    at::parallel_for(0, T * Ry, 1, [&](int64_t begin, int64_t end) {
      const int64_t padded = (H + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
      std::vector<float> row_store(2 * padded + kAlignFloats, 0.0f);
      float* src = aligned64(row_store.data());
      float* dst = src + padded;
      for (int64_t kj = begin; kj < end; ++kj) {
        std::copy(pc + kj * H, pc + (kj + 1) * H, src);
        exp_run(src, dst, padded);
        for (int64_t f = 0; f < nf; ++f) ec[kj * nf + f] = dst[units[f]];
      }
    });
    at::parallel_for(0, T * pairs, 1, [&](int64_t begin, int64_t end) {
      const OtherUnits tab;
      alignas(64) float part[2 * kBlockX];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t k = item / pairs, j0 = 2 * (item % pairs), rows = std::min<int64_t>(2, Ry - j0);
        const ProductRows rt{ec.data() + (k * Ry + j0) * nf, nf, pc + (k * Ry + j0) * H, H};
        for (int64_t ib = 0; ib < nb; ++ib) run_block(std::true_type{}, rt, k, j0, rows, ib, part, tab);
      }
    });
    return;
  }

  // A + B: rows in pairs as softplus_slab; e^a of a pair's block is computed once for its T sections.
  at::parallel_for(0, pairs, 1, [&](int64_t p_begin, int64_t p_end) {
    const OtherUnits tab;
    std::vector<float> ea_store(2 * fblock + kAlignFloats);
    float* ea = aligned64(ea_store.data());
    alignas(64) float part[2 * kBlockX];
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int64_t j0 = 2 * p, rows = std::min<int64_t>(2, Ry - j0);
      for (int64_t ib = 0; ib < nb; ++ib) {
        const float* a0 = pa + (j0 * nb + ib) * block;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t f = 0; f < nf; ++f)
            exp_run(a0 + r * nb * block + units[f] * kBlockX, ea + (r * nf + f) * kBlockX, kBlockX);
        const ProductRows rt{ea, nf * kBlockX, a0, nb * block};
        for (int64_t k = 0; k < T; ++k) run_block(std::false_type{}, rt, k, j0, rows, ib, part, tab);
      }
    }
  });
#endif
}

// Off-grid points (rendering): for each world point, its bilinear taps on the three zero-bordered planes of
// FastTriPlaneField's table (models/fast_field.py, which computes the same rows and weights with a dozen tensor
// operations and one weighted embedding_bag) summed into one feature row. table [rows, C] channels last;
// points [B, N, 3]; axes: (width axis, height axis) of each plane; affine: texel = p * scale + shift,
// clamped to [-1, upper]; pw: padded row length, plane_rows and batch_rows: rows per plane and per
// sample; the first texel of each plane sits pw + 1 rows into it. The 12 taps are summed in the
// embedding_bag's order (planes, then corners (x0,y0) (x1,y0) (x0,y1) (x1,y1)).
struct GatherArgs {
  const float* points;
  const float* table;
  int64_t B, N, C, pw, plane_rows, batch_rows, vectors;
  int64_t axes[6];
  float sx, sy, hx, hy, ux, uy;
};

GatherArgs gather_args(const torch::Tensor& points, const torch::Tensor& table, const std::vector<int64_t>& axes,
                       const std::vector<double>& affine, int64_t pw, int64_t plane_rows, int64_t batch_rows) {
  check_float_cpu({&points, &table}, "triplane_gather");
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 3 && table.dim() == 2,
              "triplane_gather expects points [B, N, 3] and table [rows, C]");
  TORCH_CHECK(axes.size() == 6 && affine.size() == 6, "triplane_gather: 6 axes and 6 affine values");
  GatherArgs g{points.data_ptr<float>(), table.data_ptr<float>(), points.size(0), points.size(1), table.size(1),
               pw, plane_rows, batch_rows, 0, {}, 0, 0, 0, 0, 0, 0};
  TORCH_CHECK(g.B * batch_rows <= table.size(0) && 3 * plane_rows <= batch_rows, "triplane_gather: table too small");
  for (int k = 0; k < 6; ++k) {
    TORCH_CHECK(axes[k] >= 0 && axes[k] < 3, "triplane_gather: axes must be 0, 1 or 2");
    g.axes[k] = axes[k];
  }
  g.sx = static_cast<float>(affine[0]), g.sy = static_cast<float>(affine[1]);
  g.hx = static_cast<float>(affine[2]), g.hy = static_cast<float>(affine[3]);
  g.ux = static_cast<float>(affine[4]), g.uy = static_cast<float>(affine[5]);
  // clamped to [-1, upper], the floor lies in [-1, upper] and the x1/y1 corner one further: all inside the
  // plane's zero border, which the table allots (1 before, 2 after)
  TORCH_CHECK(g.ux >= 0.0f && g.uy >= 0.0f && g.ux + 3 <= pw && (g.uy + 3) * pw <= plane_rows,
              "triplane_gather: texel range beyond the padded plane");
  g.vectors = g.C % kLanes == 0 && g.C <= 8 * kLanes ? g.C / kLanes : 0;  // 0: the scalar sum
  return g;
}

// The weighted sum of one point's 12 table rows (C = V * kLanes floats each) into o, in registers, in tap order.
template <int V>
inline void sum_taps(const float* tab, const int64_t* r, const float* w, int64_t C, float* o) {
  vf acc[V];
  for (int q = 0; q < V; ++q) acc[q] = splat(0.0f);
  for (int t = 0; t < 12; ++t) {
    const float* row = tab + r[t] * C;
    const vf wt = splat(w[t]);
    for (int q = 0; q < V; ++q) acc[q] += wt * load(row + q * kLanes);
  }
  for (int q = 0; q < V; ++q) store(o + q * kLanes, acc[q]);
}

// Point n's features into o [C].
inline void gather_point(const GatherArgs& g, int64_t n, float* o) {
  const float* p = g.points + n * 3;
  const int64_t batch_base = (n / g.N) * g.batch_rows + g.pw + 1;
  int64_t r[12];
  float w[12];
  for (int plane = 0; plane < 3; ++plane) {
    float x = p[g.axes[2 * plane]] * g.sx;
    x = x + g.hx;
    float y = p[g.axes[2 * plane + 1]] * g.sy;
    y = y + g.hy;
    x = std::min(std::max(x, -1.0f), g.ux);  // (a NaN passes through both)
    y = std::min(std::max(y, -1.0f), g.uy);
    const float bx = std::floor(x), by = std::floor(y);
    const float fx = x - bx, fy = y - by;
    // a NaN coordinate reads the zero border with NaN weights: NaN features, never an index out of range
    const int64_t ix = bx == bx ? static_cast<int64_t>(bx) : -1, iy = by == by ? static_cast<int64_t>(by) : -1;
    const int64_t r0 = batch_base + plane * g.plane_rows + iy * g.pw + ix;
    int64_t* rp = r + 4 * plane;
    float* wp = w + 4 * plane;
    rp[0] = r0, rp[1] = r0 + 1, rp[2] = r0 + g.pw, rp[3] = r0 + g.pw + 1;
    wp[0] = (1 - fy) * (1 - fx), wp[1] = (1 - fy) * fx, wp[2] = fy * (1 - fx), wp[3] = fy * fx;
  }
  switch (g.vectors) {
    case 1: sum_taps<1>(g.table, r, w, g.C, o); break;
    case 2: sum_taps<2>(g.table, r, w, g.C, o); break;
    case 3: sum_taps<3>(g.table, r, w, g.C, o); break;
    case 4: sum_taps<4>(g.table, r, w, g.C, o); break;
    case 5: sum_taps<5>(g.table, r, w, g.C, o); break;
    case 6: sum_taps<6>(g.table, r, w, g.C, o); break;
    case 7: sum_taps<7>(g.table, r, w, g.C, o); break;
    case 8: sum_taps<8>(g.table, r, w, g.C, o); break;
    default:
      for (int64_t c = 0; c < g.C; ++c) {
        float acc = 0.0f;
        for (int t = 0; t < 12; ++t) acc += w[t] * g.table[r[t] * g.C + c];
        o[c] = acc;
      }
  }
}

// out [B * N, C]: every point's features.
void triplane_gather(const torch::Tensor& points, const torch::Tensor& table, std::vector<int64_t> axes,
                     std::vector<double> affine, int64_t pw, int64_t plane_rows, int64_t batch_rows,
                     torch::Tensor out) {
  const GatherArgs g = gather_args(points, table, axes, affine, pw, plane_rows, batch_rows);
  check_float_cpu({&out}, "triplane_gather");
  TORCH_CHECK(out.dim() == 2 && out.size(0) == g.B * g.N && out.size(1) == g.C, "triplane_gather: out must be [B*N, C]");
  float* po = out.data_ptr<float>();
  at::parallel_for(0, g.B * g.N, 256, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) gather_point(g, n, po + n * g.C);
  });
}

// --------------------------------------------------------------------------- the field's MLP, per point
constexpr int64_t kMaxWidth = 512;  // widest layer triplane_field takes (the tri-plane MLPs have 32-64)

// y[j0 .. j0 + V kLanes) = b + x W for a wide layer, Wt [in, out] (W transposed): the outputs are vectors.
template <int V>
inline void dense_block(const float* x, int64_t in, const float* wt, int64_t out, int64_t j0, const float* b,
                        float* y) {
  vf acc[V];
  for (int q = 0; q < V; ++q) acc[q] = b != nullptr ? load(b + j0 + q * kLanes) : splat(0.0f);
  for (int64_t i = 0; i < in; ++i) {
    const vf xi = splat(x[i]);
    const float* row = wt + i * out + j0;
    for (int q = 0; q < V; ++q) acc[q] += xi * load(row + q * kLanes);
  }
  for (int q = 0; q < V; ++q) store(y + j0 + q * kLanes, acc[q]);
}

// y = b + x W. Wide layers (out a multiple of kLanes) take Wt [in, out]; narrow ones (e.g. 4 outputs) take
// W [out, in] and compute each output as a dot product over the inputs.
inline void dense(const float* x, int64_t in, const float* w, int64_t out, const float* b, float* y) {
  if (out % kLanes == 0) {
    for (int64_t j0 = 0; j0 < out; j0 += 8 * kLanes) {
      switch (std::min<int64_t>(8, (out - j0) / kLanes)) {
        case 1: dense_block<1>(x, in, w, out, j0, b, y); break;
        case 2: dense_block<2>(x, in, w, out, j0, b, y); break;
        case 3: dense_block<3>(x, in, w, out, j0, b, y); break;
        case 4: dense_block<4>(x, in, w, out, j0, b, y); break;
        case 5: dense_block<5>(x, in, w, out, j0, b, y); break;
        case 6: dense_block<6>(x, in, w, out, j0, b, y); break;
        case 7: dense_block<7>(x, in, w, out, j0, b, y); break;
        default: dense_block<8>(x, in, w, out, j0, b, y); break;
      }
    }
    return;
  }
  for (int64_t j = 0; j < out; ++j) {
    const float* row = w + j * in;
    int64_t i = 0;
    float acc = 0.0f;
    if (in >= kLanes) {
      vf v = splat(0.0f);
      for (; i + kLanes <= in; i += kLanes) v += load(x + i) * load(row + i);
      for (int64_t l = 0; l < kLanes; ++l) acc += v[l];
    }
    for (; i < in; ++i) acc += x[i] * row[i];
    y[j] = (b != nullptr ? b[j] : 0.0f) + acc;
  }
}

// act: 0 linear, 1 leaky ReLU (slope 0.2, gains folded away), 2 softplus.
inline void activate(float* y, int64_t n, int64_t act) {
  if (act == 0) return;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vf v = load(y + i);
    store(y + i, act == 1 ? (v > 0.0f ? v : v * 0.2f) : softplus(v));
  }
  for (; i < n; ++i) y[i] = act == 1 ? (y[i] > 0.0f ? y[i] : y[i] * 0.2f) : softplus_scalar(y[i]);
}

// triplane_gather's features of each point through the folded MLP of FastTriPlaneField, per point in
// registers and L1: no [points, hidden] tensors. weights[l] as dense() takes them, biases[l] [out] or empty,
// acts[l] as activate(); the last layer's outputs are scaled by out_gain. out [B * N, last out].
void triplane_field(const torch::Tensor& points, const torch::Tensor& table, std::vector<int64_t> axes,
                    std::vector<double> affine, int64_t pw, int64_t plane_rows, int64_t batch_rows,
                    std::vector<torch::Tensor> weights, std::vector<torch::Tensor> biases, std::vector<int64_t> acts,
                    double out_gain, torch::Tensor out) {
  const int64_t layers = static_cast<int64_t>(weights.size());
  TORCH_CHECK(layers >= 1 && static_cast<int64_t>(biases.size()) == layers &&
                  static_cast<int64_t>(acts.size()) == layers,
              "triplane_field: one weight, bias and activation per layer");
  check_float_cpu({&out}, "triplane_field");
  std::vector<int64_t> ins(layers), outs(layers);
  std::vector<const float*> wp(layers), bp(layers);
  int64_t width = table.size(1);
  for (int64_t l = 0; l < layers; ++l) {
    check_float_cpu({&weights[l]}, "triplane_field");
    TORCH_CHECK(weights[l].dim() == 2, "triplane_field: 2-D weights");
    TORCH_CHECK(acts[l] >= 0 && acts[l] <= 2, "triplane_field: activation 0, 1 or 2");
    // wide layers arrive as [in, out], narrow ones as [out, in]
    const bool wide = weights[l].size(1) % kLanes == 0 && weights[l].size(0) == width;
    ins[l] = width;
    outs[l] = wide ? weights[l].size(1) : weights[l].size(0);
    TORCH_CHECK(wide || (weights[l].size(1) == width && outs[l] % kLanes != 0),
                "triplane_field: layer ", l, " does not take ", width, " inputs");
    TORCH_CHECK(outs[l] <= kMaxWidth && width <= kMaxWidth, "triplane_field: layers wider than ", kMaxWidth);
    wp[l] = weights[l].data_ptr<float>();
    if (biases[l].numel() > 0) {
      check_float_cpu({&biases[l]}, "triplane_field");
      TORCH_CHECK(biases[l].numel() == outs[l], "triplane_field: bias size");
      bp[l] = biases[l].data_ptr<float>();
    } else {
      bp[l] = nullptr;
    }
    width = outs[l];
  }
  const GatherArgs g = gather_args(points, table, axes, affine, pw, plane_rows, batch_rows);
  const int64_t n_out = width;
  TORCH_CHECK(out.dim() == 2 && out.size(0) == g.B * g.N && out.size(1) == n_out,
              "triplane_field: out must be [B*N, ", n_out, "]");
  float* po = out.data_ptr<float>();
  const float gain = static_cast<float>(out_gain);
  at::parallel_for(0, g.B * g.N, 256, [&](int64_t begin, int64_t end) {
    alignas(64) float f[kMaxWidth], a[kMaxWidth], b[kMaxWidth];
    for (int64_t n = begin; n < end; ++n) {
      gather_point(g, n, f);
      const float* x = f;
      for (int64_t l = 0; l < layers; ++l) {
        float* y = (l % 2 == 0) ? a : b;
        dense(x, ins[l], wp[l], outs[l], bp[l], y);
        activate(y, outs[l], acts[l]);
        x = y;
      }
      float* o = po + n * n_out;
      for (int64_t j = 0; j < n_out; ++j) o[j] = x[j] * gain;
    }
  });
}

// Whether softplus_product_slab has its own (product form) path in this build: AVX-512, or AVX2 with FMA.
bool product_form_compiled() {
#if defined(EPIGRAF_PRODUCT_FORM_AVX512) || defined(EPIGRAF_PRODUCT_FORM_AVX2)
  return true;
#else
  return false;
#endif
}

// Which softplus this build compiled in (tests and benchmarks report it; both paths give the same values to
// about 2 float32 ulps).
std::string softplus_path() {
#if defined(__AVX512F__)
  return "avx512-table";
#else
  return "exp-log1p";
#endif
}

// Bilinear samples of plane [C, H, W] on an axis-aligned grid -> out [C, n, Rx]: row r blends plane rows y0[r]
// and y1[r] with weights wy0[r], wy1[r]; column i blends columns x0[i], x1[i] with wx0[i], wx1[i]. The caller
// computes the taps (grid_sample's source coordinates; a tap outside the plane has weight 0 and a clamped
// index), so one loop serves both corner conventions. grid_sample took 47-64 ms per 512^2 x 32 plane map
// whatever the thread count, a third of a 512^3 volume's work outside relu_slab.
torch::Tensor plane_rows(const torch::Tensor& plane, const torch::Tensor& y0, const torch::Tensor& y1,
                         const torch::Tensor& wy0, const torch::Tensor& wy1, const torch::Tensor& x0,
                         const torch::Tensor& x1, const torch::Tensor& wx0, const torch::Tensor& wx1) {
  check_float_cpu({&plane, &wy0, &wy1, &wx0, &wx1}, "plane_rows");
  TORCH_CHECK(plane.dim() == 3, "plane_rows expects plane [C, H, W]");
  const int64_t C = plane.size(0), H = plane.size(1), W = plane.size(2), n = y0.numel(), rx = x0.numel();
  const int64_t* taps[4] = {nullptr, nullptr, nullptr, nullptr};
  const torch::Tensor* index[4] = {&y0, &y1, &x0, &x1};
  for (int t = 0; t < 4; ++t) {
    const torch::Tensor& ix = *index[t];
    TORCH_CHECK(ix.device().is_cpu() && ix.scalar_type() == torch::kInt64 && ix.is_contiguous() && ix.dim() == 1,
                "plane_rows: tap indices must be contiguous 1-D int64 CPU tensors");
    TORCH_CHECK(ix.numel() == (t < 2 ? n : rx), "plane_rows: inconsistent tap counts");
    const int64_t limit = t < 2 ? H : W;
    taps[t] = ix.data_ptr<int64_t>();
    for (int64_t e = 0; e < ix.numel(); ++e)
      TORCH_CHECK(taps[t][e] >= 0 && taps[t][e] < limit, "plane_rows: a tap index lies outside the plane");
  }
  TORCH_CHECK(wy0.numel() == n && wy1.numel() == n && wx0.numel() == rx && wx1.numel() == rx,
              "plane_rows: inconsistent weight counts");
  torch::Tensor out = torch::empty({C, n, rx}, plane.options());
  const float *p = plane.data_ptr<float>(), *py0 = wy0.data_ptr<float>(), *py1 = wy1.data_ptr<float>();
  const float *px0 = wx0.data_ptr<float>(), *px1 = wx1.data_ptr<float>();
  const int64_t *iy0 = taps[0], *iy1 = taps[1], *ix0 = taps[2], *ix1 = taps[3];
  float* o = out.data_ptr<float>();
  at::parallel_for(0, C * n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t cr = begin; cr < end; ++cr) {
      const int64_t c = cr / n, r = cr % n;
      const float* r0 = p + (c * H + iy0[r]) * W;
      const float* r1 = p + (c * H + iy1[r]) * W;
      const float a = py0[r], b = py1[r];
      float* orow = o + cr * rx;
      for (int64_t i = 0; i < rx; ++i)
        orow[i] = a * (px0[i] * r0[ix0[i]] + px1[i] * r0[ix1[i]]) + b * (px0[i] * r1[ix0[i]] + px1[i] * r1[ix1[i]]);
    }
  });
  return out;
}

// Statistics of a float32 tensor in one pass: (min, max, sum, sum of squares, any NaN). min and max skip
// NaN values (inf and -inf when every value is NaN); the sums are float64 and take NaN in. Chunks of
// kMomentChunk values go to torch's threads and their partial results are combined in chunk order, so the
// result does not depend on the thread count. export-volume's statistics over a 512^3 volume were five
// single-threaded NumPy passes per slab (min, max, the float64 copy, its sum and its squares).
constexpr int64_t kMomentChunk = 1 << 16;

struct Moments {
  float lo = INFINITY, hi = -INFINITY;
  double sum = 0.0, sumsq = 0.0;
  bool nan = false;
};

Moments chunk_moments(const float* p, int64_t n) {
  typedef double vd __attribute__((vector_size(kLanes * 8)));
  vf lo = splat(INFINITY), hi = splat(-INFINITY);
  vi nan{};
  vd sum{}, sumsq{};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vf v = load(p + i);
    lo = v < lo ? v : lo;  // false for NaN: the old value stays
    hi = v > hi ? v : hi;
    nan |= (vi)(v != v);
    const vd d = __builtin_convertvector(v, vd);
    sum += d;
    sumsq += d * d;
  }
  Moments m;
  for (int64_t l = 0; l < kLanes; ++l) {
    m.lo = std::min(m.lo, lo[l]);
    m.hi = std::max(m.hi, hi[l]);
    m.nan = m.nan || nan[l] != 0;
    m.sum += sum[l];
    m.sumsq += sumsq[l];
  }
  for (; i < n; ++i) {
    const float v = p[i];
    if (v != v) {
      m.nan = true;
    } else {
      m.lo = std::min(m.lo, v);
      m.hi = std::max(m.hi, v);
    }
    m.sum += v;
    m.sumsq += static_cast<double>(v) * v;
  }
  return m;
}

std::tuple<double, double, double, double, bool> value_moments(const torch::Tensor& x) {
  check_float_cpu({&x}, "value_moments");
  const float* p = x.data_ptr<float>();
  const int64_t n = x.numel(), chunks = (n + kMomentChunk - 1) / kMomentChunk;
  std::vector<Moments> parts(static_cast<std::size_t>(chunks));
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      parts[c] = chunk_moments(p + c * kMomentChunk, std::min(kMomentChunk, n - c * kMomentChunk));
  });
  Moments all;
  for (const Moments& m : parts) {
    all.lo = std::min(all.lo, m.lo);
    all.hi = std::max(all.hi, m.hi);
    all.nan = all.nan || m.nan;
    all.sum += m.sum;
    all.sumsq += m.sumsq;
  }
  return {all.lo, all.hi, all.sum, all.sumsq, all.nan};
}

// Whether this build shares rows over torch's threads: at::parallel_for is serial unless the file is
// compiled with OpenMP (the extension links no runtime of its own; it uses the one torch loaded).
bool threaded() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

// The slab kernels touch no Python object, so they let other Python threads run meanwhile (export-volume's
// disk writer hands the previous slab to the disk while this one is computed).
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("relu_slab", &relu_slab, "Separable tri-plane density, (leaky) ReLU hidden layer, for a slab of z-sections",
        py::call_guard<py::gil_scoped_release>());
  m.def("softplus_slab", &softplus_slab, "Separable tri-plane density, softplus hidden layer, for a slab of z-sections",
        py::call_guard<py::gil_scoped_release>());
  m.def("triplane_gather", &triplane_gather, "Bilinear taps of off-grid points on a tri-plane table, summed",
        py::call_guard<py::gil_scoped_release>());
  m.def("triplane_field", &triplane_field, "triplane_gather's features through the folded tri-plane MLP, per point",
        py::call_guard<py::gil_scoped_release>());
  m.def("softplus_product_slab", &softplus_product_slab,
        "softplus_slab of two terms (A + B or B + C), the flagged units in the product form log(1 + e^a e^b)",
        py::call_guard<py::gil_scoped_release>());
  m.attr("product_form") = product_form_compiled();  // whether softplus_product_slab has its own path here
  m.attr("product_limit") = kProductLimit;          // |a|, |b|, a + b bound for flagging a unit
  m.attr("relu_block") = kReluBlock;   // x-voxels per block of relu_slab's A and B (x-blocked operands)
  m.attr("softplus_block") = kBlockX;  // the same for softplus_slab
  m.def("plane_rows", &plane_rows, "Bilinear samples of a plane on an axis-aligned grid, from precomputed taps",
        py::call_guard<py::gil_scoped_release>());
  m.def("value_moments", &value_moments, "(min, max, float64 sum, sum of squares, any NaN) of a float32 tensor",
        py::call_guard<py::gil_scoped_release>());
  m.def("softplus_path", &softplus_path, "The softplus code path compiled in: 'avx512-table' or 'exp-log1p'");
  m.def("threaded", &threaded, "Whether the slab loops run over torch's intra-op threads (an OpenMP build)");
}
