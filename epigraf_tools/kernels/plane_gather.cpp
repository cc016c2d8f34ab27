// Fused CPU kernel for the tri-plane lookup of arbitrary points (epigraf-tools), the renderer's hot loop.
//
// models/fast_field.py finds each point's 12 bilinear taps (4 corners in each of 3 planes) with a dozen
// tensor operations and then sums the weighted table rows with embedding_bag; this kernel does both for
// one point at a time, so nothing but the output row is written to memory. The table is the field's
// zero-bordered, channels-last copy of the planes ([B * 3 * (H + 3) * (W + 3), C]); texel coordinates
// are clamped to [-1, upper] so taps outside a plane land on the zero border, exactly as in Python. Each
// plane reads world axis read_x[p] as its width and read_y[p] as its height; one texel scale and shift
// serve every axis (square planes), which is the case fast_field.py calls "isotropic".
//
// The weights and the sum follow the Python order (plane 0..2; corners (y0,x0) (y0,x1) (y1,x0) (y1,x1);
// weight = wy * wx), so results differ from embedding_bag's only by the compiler's use of fused
// multiply-adds (a few float32 ulps; tests compare with a tolerance). Points are shared out over torch's
// intra-op threads.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

// One point's plane sum: 12 weighted table rows of C channels (kC > 0: the channel count known at compile
// time, accumulated in a local array the compiler unrolls into vector registers; 0: any C, in out itself).
// The lookup is memory-bound on large planes (each tap reads two fresh cache lines), not compute-bound.
template <int64_t kC>
inline void gather_one(const float* __restrict table, const float* __restrict p, float* __restrict out, int64_t C,
                       const int64_t* read_x, const int64_t* read_y, const int64_t* plane_offset, int64_t item_row,
                       float scale, float shift, float upper, int64_t pw) {
  int64_t base[3];
  float frac[3];
  for (int a = 0; a < 3; ++a) {
    float t = p[a] * scale;
    t = t + shift;
    t = t >= -1.0f ? t : -1.0f;  // also maps NaN to the zero border: never an index outside the table
    t = t <= upper ? t : upper;
    const float f = std::floor(t);
    base[a] = static_cast<int64_t>(f);
    frac[a] = t - f;
  }
  constexpr int64_t kAcc = kC > 0 ? kC : 1;
  float acc[kAcc];
  float* sum = kC > 0 ? acc : out;
  const int64_t channels = kC > 0 ? kC : C;
  for (int64_t c = 0; c < channels; ++c) sum[c] = 0.0f;
  for (int q = 0; q < 3; ++q) {
    const int64_t ax = read_x[q], ay = read_y[q];
    const float fx = frac[ax], fy = frac[ay];
    const float wx0 = 1.0f - fx, wy0 = 1.0f - fy;
    const float w[4] = {wy0 * wx0, wy0 * fx, fy * wx0, fy * fx};
    const int64_t row = item_row + plane_offset[q] + base[ay] * pw + base[ax];
    const int64_t rows[4] = {row, row + 1, row + pw, row + pw + 1};
    for (int k = 0; k < 4; ++k) {
      const float* __restrict r = table + rows[k] * channels;
      const float wk = w[k];
      for (int64_t c = 0; c < channels; ++c) sum[c] += wk * r[c];
    }
  }
  if (kC > 0)
    for (int64_t c = 0; c < channels; ++c) out[c] = acc[c];
}

template <int64_t kC>
void gather_points(const float* table, const float* pts, float* out, int64_t begin, int64_t end, int64_t C,
                   const int64_t* read_x, const int64_t* read_y, const int64_t* plane_offset, int64_t item_rows,
                   int64_t points_per_item, int64_t first_point, float scale, float shift, float upper,
                   int64_t pw) {
  const int64_t channels = kC > 0 ? kC : C;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t item = (first_point + i) / points_per_item;
    gather_one<kC>(table, pts + 3 * i, out + i * channels, C, read_x, read_y, plane_offset, item * item_rows, scale,
                   shift, upper, pw);
  }
}

}  // namespace

// table [T, C] float32; points [M, 3] float32 (the flattened points first_point .. first_point + M of a
// batch with points_per_item points per item); read_x, read_y, plane_offset [3] int64 (plane_offset: the
// table row of texel (0, 0) of each plane of item 0). Returns the plane sums [M, C].
torch::Tensor plane_gather(torch::Tensor table, torch::Tensor points, torch::Tensor read_x, torch::Tensor read_y,
                           torch::Tensor plane_offset, int64_t item_rows, int64_t points_per_item,
                           int64_t first_point, double scale, double shift, double upper, int64_t pw) {
  TORCH_CHECK(table.dim() == 2 && table.scalar_type() == torch::kFloat32 && table.is_contiguous(),
              "table must be a contiguous float32 [T, C] tensor");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3 && points.scalar_type() == torch::kFloat32,
              "points must be float32 [M, 3]");
  TORCH_CHECK(read_x.numel() == 3 && read_y.numel() == 3 && plane_offset.numel() == 3, "need 3 planes");
  TORCH_CHECK(points_per_item > 0 && pw > 0, "points_per_item and pw must be positive");
  auto pts = points.contiguous();
  auto rx = read_x.to(torch::kInt64).contiguous(), ry = read_y.to(torch::kInt64).contiguous();
  auto po = plane_offset.to(torch::kInt64).contiguous();
  for (int q = 0; q < 3; ++q)
    TORCH_CHECK(rx.data_ptr<int64_t>()[q] >= 0 && rx.data_ptr<int64_t>()[q] < 3 && ry.data_ptr<int64_t>()[q] >= 0 &&
                    ry.data_ptr<int64_t>()[q] < 3,
                "plane axes must be 0, 1 or 2");
  const int64_t M = pts.size(0), C = table.size(1);
  auto out = torch::empty({M, C}, table.options());
  const float* tp = table.data_ptr<float>();
  const float* pp = pts.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t *rxp = rx.data_ptr<int64_t>(), *ryp = ry.data_ptr<int64_t>(), *pop = po.data_ptr<int64_t>();
  const float s = static_cast<float>(scale), sh = static_cast<float>(shift), up = static_cast<float>(upper);
  at::parallel_for(0, M, 1024, [&](int64_t begin, int64_t end) {
    if (C == 32)
      gather_points<32>(tp, pp, op, begin, end, C, rxp, ryp, pop, item_rows, points_per_item, first_point, s, sh, up,
                        pw);
    else
      gather_points<0>(tp, pp, op, begin, end, C, rxp, ryp, pop, item_rows, points_per_item, first_point, s, sh, up,
                       pw);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("plane_gather", &plane_gather, "Bilinear tri-plane lookup of points: the summed 12 weighted taps [M, C]");
}
