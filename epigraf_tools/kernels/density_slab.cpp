// Fused CPU kernel for the separable tri-plane density on an axis-aligned grid (epigraf-tools).
//
// For a slab of T z-sections the density of voxel (k, j, i) is
//     raw = bias + sum_h w[h] * lrelu(A[j, h, i] + B[k, h, i] + C[k, j, h])
// where A, B, C are the first MLP layer applied to the xy-, xz- and yz-plane features (with the
// 1/3 mean and the first-layer bias already folded in), and w is the density row of the last layer
// (with its runtime gain and the activation gain folded in). A and B are stored hidden-major
// ([.., H, Rx]) so a block of consecutive x-voxels is a vector: the loop over h accumulates whole
// vectors of voxels with no horizontal sums and no branches, and the hidden vector never goes
// to memory.
//
// Output layout is [T, Ry, Rx] (x fastest), i.e. MRC section order, so a slab can be written
// straight into a memory-mapped MRC file.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t kBlockX = 64;  // x-voxels accumulated together (a few vector registers)

inline float activate_output(float raw, int64_t mode, float shift) {
  if (mode == 0) return raw;
  const float v = raw + shift;
  if (mode == 1) return v > 20.0f ? v : std::log1p(std::exp(v));  // softplus, beta 1, threshold 20
  return v > 0.0f ? v : 0.0f;                                        // relu
}

}  // namespace

// A [Ry, H, Rx], B [T, H, Rx], C [T, Ry, H], w [H] -> out [T, Ry, Rx] (written in place).
// slope: leaky-ReLU slope of the hidden layer (1 for a linear one, must lie in [0, 1]).
// mode: 0 raw, 1 softplus(raw + shift), 2 relu(raw + shift).
void density_slab(const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& w,
                  double bias, double slope, int64_t mode, double shift, torch::Tensor out) {
  TORCH_CHECK(A.device().is_cpu() && B.device().is_cpu() && C.device().is_cpu() && w.device().is_cpu() &&
                  out.device().is_cpu(),
              "density_slab runs on CPU tensors only");
  const torch::Tensor* all[] = {&A, &B, &C, &w, &out};
  for (const torch::Tensor* t : all) {
    TORCH_CHECK(t->scalar_type() == torch::kFloat32, "density_slab expects float32 tensors");
    TORCH_CHECK(t->is_contiguous(), "density_slab expects contiguous tensors");
  }
  TORCH_CHECK(A.dim() == 3 && B.dim() == 3 && C.dim() == 3 && w.dim() == 1 && out.dim() == 3,
              "density_slab expects A [Ry,H,Rx], B [T,H,Rx], C [T,Ry,H], w [H], out [T,Ry,Rx]");
  TORCH_CHECK(slope >= 0.0 && slope <= 1.0, "density_slab: slope must lie in [0, 1]");
  const int64_t Ry = A.size(0), H = A.size(1), Rx = A.size(2), T = B.size(0);
  TORCH_CHECK(B.size(1) == H && B.size(2) == Rx && C.size(0) == T && C.size(1) == Ry && C.size(2) == H &&
                  w.size(0) == H && out.size(0) == T && out.size(1) == Ry && out.size(2) == Rx,
              "density_slab: inconsistent shapes");

  const float* pa = A.data_ptr<float>();
  const float* pb = B.data_ptr<float>();
  const float* pc = C.data_ptr<float>();
  const float* pw = w.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float fbias = static_cast<float>(bias), fslope = static_cast<float>(slope), fshift = static_cast<float>(shift);

  // Rows j are independent. Within a row, an x-block of A (H * kBlockX floats) stays in L1 while
  // all T sections reuse it; the matching B blocks (T * H * kBlockX floats) stay in L2.
  at::parallel_for(0, Ry, 1, [&](int64_t j_begin, int64_t j_end) {
    float acc[kBlockX];
    for (int64_t j = j_begin; j < j_end; ++j) {
      for (int64_t i0 = 0; i0 < Rx; i0 += kBlockX) {
        const int64_t n = std::min(kBlockX, Rx - i0);
        const float* a = pa + j * H * Rx + i0;
        for (int64_t k = 0; k < T; ++k) {
          const float* b = pb + k * H * Rx + i0;
          const float* c = pc + (k * Ry + j) * H;
          if (n == kBlockX) {
            for (int64_t l = 0; l < kBlockX; ++l) acc[l] = fbias;
            for (int64_t h = 0; h < H; ++h) {
              const float ch = c[h], wh = pw[h];
              const float* ah = a + h * Rx;
              const float* bh = b + h * Rx;
              for (int64_t l = 0; l < kBlockX; ++l) {
                const float v = ah[l] + bh[l] + ch;
                acc[l] += std::max(v, v * fslope) * wh;  // leaky ReLU for slope in [0, 1], branch-free
              }
            }
          } else {  // the ragged end of a row
            for (int64_t l = 0; l < n; ++l) acc[l] = fbias;
            for (int64_t h = 0; h < H; ++h) {
              const float ch = c[h], wh = pw[h];
              for (int64_t l = 0; l < n; ++l) {
                const float v = a[h * Rx + l] + b[h * Rx + l] + ch;
                acc[l] += std::max(v, v * fslope) * wh;
              }
            }
          }
          float* o = po + (k * Ry + j) * Rx + i0;
          for (int64_t l = 0; l < n; ++l) o[l] = activate_output(acc[l], mode, fshift);
        }
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("density_slab", &density_slab, "Fused separable tri-plane density for a slab of z-sections (CPU)");
}
