"""Fit the piecewise-polynomial softplus table of the AVX-512 path in epigraf_tools/kernels/density_slab.cpp.

The kernel computes softplus(v) = max(v, 0) + g(|v|) with g(a) = log1p(exp(-a)), a >= 0. g is smooth and
decays like exp(-a), so it is tabulated on INTERVALS intervals of width 1 / SCALE centred on k / SCALE
(k = round(a * SCALE), the local variable t = a * SCALE - k lies in [-1/2, 1/2]); beyond the last interval
g(a) is below 1e-10 and the clamped argument gives that tiny value instead. Each interval holds a degree-DEGREE
polynomial in t, fitted in float64 for the smallest maximum *relative* error (Lawson's iteratively reweighted
least squares on Chebyshev nodes, which converges to the minimax fit), so that small values of softplus(v)
for negative v keep their float32 precision too. The coefficients are then rounded to float32 one at a time,
refitting the remaining ones after each rounding (so the rounding of c0 is absorbed by c1.., and so on).

Run it to print the C++ table (pasted into density_slab.cpp) and the error report; the error is measured by
emulating the kernel's float32 Horner evaluation with fused multiply-adds:

    python tools/fit_softplus_table.py [--intervals 32] [--degree 5] [--scale 1.5] [--exp-degree 6] [--log-degree 9]

``--product-intervals 8`` prints instead the constants of the AVX2 product form (softplus(a + b) as
log(1 + e^a e^b), a table of 8 intervals of u's mantissa and a cubic q(r) ~ log1p(r) / r on each) and its
error over the flagged range, emulated the same way.
"""

from __future__ import annotations

import argparse

import numpy as np


def g(a: np.ndarray) -> np.ndarray:
    """log1p(exp(-a)) in float64 (the part of softplus that the table holds)."""
    return np.log1p(np.exp(-a))


def lawson(cols: np.ndarray, rhs: np.ndarray, iterations: int) -> np.ndarray:
    """Minimax solution of cols @ sol ~ rhs: weighted least squares whose weights grow where the error is largest."""
    weights = np.full(len(rhs), 1.0 / len(rhs))
    for _ in range(iterations):
        sw = np.sqrt(weights)
        sol = np.linalg.lstsq(cols * sw[:, None], rhs * sw, rcond=None)[0]
        weights = weights * (np.abs(rhs - cols @ sol) + 1e-30)
        weights /= weights.sum()
    return sol


def minimax_fit(x: np.ndarray, y: np.ndarray, degree: int, iterations: int = 60) -> np.ndarray:
    """float32 coefficients c0..cD of p(x) ~ y, minimax in relative error (x: Chebyshev nodes plus the ends).

    Lawson's iteration: weighted least squares whose weights grow where the relative error is largest.
    The coefficients are rounded to float32 one at a time, refitting the others after each rounding.
    """
    basis = np.vander(x, degree + 1, increasing=True)
    coef = np.zeros(degree + 1)
    for fixed in range(degree + 1):  # coefficients [0, fixed) are already float32
        rhs = (y - basis[:, :fixed] @ coef[:fixed]) / y
        cols = basis[:, fixed:] / y[:, None]
        coef[fixed:] = lawson(cols, rhs, iterations)
        coef[fixed] = np.float32(coef[fixed])
    return coef.astype(np.float32)


def chebyshev_nodes(lo: float, hi: float, n: int = 64) -> np.ndarray:
    """n Chebyshev nodes of [lo, hi] and the two ends."""
    x = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return np.concatenate([x, [lo, hi]])


def fit_interval(k: int, scale: float, degree: int) -> np.ndarray:
    """float32 coefficients of p(t) ~ g((k + t) / scale) on t in [-1/2, 1/2], minimax in relative error."""
    t = chebyshev_nodes(-0.5, 0.5)
    return minimax_fit(t, g((k + t) / scale), degree)


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add (the product of two float32 values is exact in float64)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def table_top(intervals: int, scale: np.float32) -> np.float32:
    """The largest float32 |v| whose interval index round(|v| * scale) is still the table's last one."""
    top = np.float32((intervals - 0.5) / float(scale))
    while np.float32(top) * np.float64(scale) >= intervals - 0.5:
        top = np.nextafter(top, np.float32(0))
    return top


def kernel_softplus(v: np.ndarray, table: np.ndarray, scale: np.float32) -> np.ndarray:
    """The AVX-512 path's softplus in numpy float32, step by step as the kernel does it."""
    v = v.astype(np.float32)
    a = np.abs(v)
    s = np.minimum(a, table_top(table.shape[1], scale))
    magic = np.float32(12582912.0)  # 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
    y = fma32(s, np.full_like(s, scale), np.full_like(s, magic))
    k = y.view(np.int32) & (table.shape[1] - 1)
    kf = (y - magic).astype(np.float32)
    t = fma32(s, np.full_like(s, scale), -kf)
    p = table[-1, k]
    for j in range(table.shape[0] - 2, -1, -1):
        p = fma32(p, t, table[j, k])
    return (np.maximum(v, np.float32(0)) + p).astype(np.float32)


LN2_HI = np.float32(0.693145752)  # ln 2 split so that n * LN2_HI is exact for |n| < 2^11 (Cody-Waite)
LN2_LO = np.float32(np.log(2.0) - float(LN2_HI))
LOG2E = np.float32(1.0 / np.log(2.0))
MAGIC = np.float32(12582912.0)  # 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits


def fit_fallback(exp_degree: int, log_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """The portable path's polynomials: exp(r) on [-ln2/2, ln2/2] and log1p(e) / e on [0, 1]."""
    r = chebyshev_nodes(-0.5 * np.log(2.0) - 1e-6, 0.5 * np.log(2.0) + 1e-6)
    e = chebyshev_nodes(0.0, 1.0)
    log1p_over_e = np.where(e > 0, np.log1p(e) / np.where(e > 0, e, 1.0), 1.0)
    return minimax_fit(r, np.exp(r), exp_degree), minimax_fit(e, log1p_over_e, log_degree)


def horner32(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum_j coef[j] x^j by Horner's rule with float32 fused multiply-adds (as the kernel evaluates it)."""
    p = np.full_like(x, coef[-1])
    for c in coef[-2::-1]:
        p = fma32(p, x, np.full_like(x, c))
    return p


def fallback_softplus(v: np.ndarray, exp_coef: np.ndarray, log_coef: np.ndarray) -> np.ndarray:
    """The portable path's softplus in numpy float32: max(v, 0) + log1p(exp(-|v|)), step by step."""
    v = v.astype(np.float32)
    x = np.maximum(-np.abs(v), np.float32(-87.0))
    y = fma32(x, np.full_like(x, LOG2E), np.full_like(x, MAGIC))
    n = (y - MAGIC).astype(np.float32)
    r = fma32(n, np.full_like(n, -LN2_HI), x)
    r = fma32(n, np.full_like(n, -LN2_LO), r)
    two_n = ((y.view(np.int32) + np.int32(127)) << np.int32(23)).view(np.float32)
    e = (horner32(exp_coef, r) * two_n).astype(np.float32)
    return (np.maximum(v, np.float32(0)) + e * horner32(log_coef, e)).astype(np.float32)


def fit_product_log(intervals: int, degree: int, iterations: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """The product form's logarithm: q(r) = 1 + q1 r + .. + qD r^D ~ log1p(r) / r, minimax in relative error.

    r = m fl(1 / c_j) - 1 for m in [c_j, c_j + 1 / intervals), c_j = 1 + j / intervals, so r covers
    [~0, 1 / intervals) plus the rounding of fl(1 / c_j). Returns (q1..qD as float32, fl(1 / c_j)).
    """
    inv = (1.0 / (1.0 + np.arange(intervals) / intervals)).astype(np.float32)
    c = 1.0 + np.arange(intervals) / intervals
    lo = min(float((c * inv).min()) - 1.0, 0.0)
    hi = float(((c + 1.0 / intervals) * inv).max()) - 1.0
    r = chebyshev_nodes(lo, hi, 200)
    r = r[np.abs(r) > 1e-12]
    y = np.log1p(r)
    basis = np.stack([r ** (k + 2) for k in range(degree)], axis=1)  # r q(r) - r = sum_k q_k r^(k + 1)
    coef = np.zeros(degree)
    for fixed in range(degree):  # as minimax_fit: round one coefficient at a time, refit the rest
        rhs = (y - r - basis[:, :fixed] @ coef[:fixed]) / np.abs(y)
        cols = basis[:, fixed:] / np.abs(y)[:, None]
        coef[fixed:] = lawson(cols, rhs, iterations)
        coef[fixed] = np.float32(coef[fixed])
    return coef.astype(np.float32), inv


def product_softplus(a: np.ndarray, b: np.ndarray, coef: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """The AVX2 kernel's softplus(a + b) = log(1 + e^a e^b) in numpy float32, step by step (weight 1).

    k = (bits(u) - bits(1)) >> (23 - log2 intervals) = intervals e + j, m = u's mantissa in [1, 2),
    log u = k ln2 / intervals + corr_j + r q(r) with corr_j = -log(inv_j) - j ln2 / intervals.
    """
    n = len(inv)
    one = np.float32(1.0)
    u = fma32(
        np.exp(a.astype(np.float32)).astype(np.float32),
        np.exp(b.astype(np.float32)).astype(np.float32),
        np.full(a.shape, one),
    )
    bits = u.view(np.int32)
    k = (bits - np.int32(0x3F800000)) >> np.int32(23 - int(np.log2(n)))
    j = k & (n - 1)
    m = ((bits & np.int32(0x7FFFFF)) | np.int32(0x3F800000)).view(np.float32)
    r = fma32(m, inv[j], np.full(m.shape, -one))
    corr = (-np.log(inv.astype(np.float64)) - np.arange(n) * np.log(2.0) / n).astype(np.float32)
    lead = fma32(k.astype(np.float32), np.full(k.shape, np.float32(np.log(2.0) / n)), corr[j])
    q = horner32(np.concatenate([[one], coef]).astype(np.float32), r)
    return fma32(q, r, lead)


def product_report(intervals: int, degree: int) -> str:
    """The C++ constants of the AVX2 product form and its error over the flagged range |a|, |b|, a + b <= 80."""
    coef, inv = fit_product_log(intervals, degree)
    rng = np.random.default_rng(0)
    v = np.concatenate([np.linspace(-80.0, 80.0, 400_001), rng.uniform(-3.0, 3.0, 100_000)])
    a = np.clip(v * rng.uniform(-0.5, 1.5, v.size), -80.0, 80.0).astype(np.float32)
    b = np.clip(v - a, -80.0, np.minimum(80.0, 80.0 - a)).astype(np.float32)
    want = np.logaddexp(0.0, a.astype(np.float64) + b.astype(np.float64))
    err = np.abs(product_softplus(a, b, coef, inv).astype(np.float64) - want)
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    names = ", ".join(f"kLog{intervals}Q{i + 1} = {cxx_float(c)}" for i, c in enumerate(coef))
    return (
        f"// Generated by tools/fit_softplus_table.py --product-intervals {intervals} --product-degree {degree}\n"
        f"constexpr float {names};\n"
        f"// product form: max |error| {err.max():.3g}; max error in float32 ulps beyond 1.22e-7: "
        f"{(np.clip(err - 1.22e-7, 0.0, None) / ulp).max():.2f}"
    )


def cxx_array(name: str, values: np.ndarray, comment: str) -> str:
    """One C++ float array declaration."""
    return f"// {comment}\nconstexpr float {name}[{len(values)}] = {{{cxx_rows(values, ' ' * 4)}}};"


def cxx_float(x: float) -> str:
    """A C++ float literal that reads back as exactly the float32 value x (9 significant digits suffice)."""
    text = f"{float(x):.9g}"
    return (text if any(ch in text for ch in ".en") else text + ".0") + "f"


def cxx_rows(values: np.ndarray, indent: str) -> str:
    """Comma-separated float literals, four to a line."""
    literals = [cxx_float(x) for x in values]
    return f",\n{indent}".join(", ".join(literals[i : i + 4]) for i in range(0, len(literals), 4))


def cxx_table(table: np.ndarray, scale: np.float32, degree: int) -> str:
    """The C++ declarations for density_slab.cpp (one row per coefficient; 9 digits give the float32 exactly)."""
    lines = [
        "// Generated by tools/fit_softplus_table.py "
        f"--intervals {table.shape[1]} --degree {degree} --scale {float(scale)!r}; do not edit by hand.",
        f"constexpr float kSoftplusScale = {float(scale)!r}f;  // intervals per unit of |v|",
        f"constexpr int kSoftplusDegree = {degree};",
        f"constexpr float kSoftplusTop = {cxx_float(table_top(table.shape[1], scale))};  // |v| clamp: index <= last",
        f"alignas(64) constexpr float kSoftplusTable[{degree + 1}][{table.shape[1]}] = {{",
    ]
    for j in range(degree + 1):
        lines.append(f"    {{{cxx_rows(table[j], ' ' * 5)}}},")
    lines.append("};")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", type=int, default=32, help="table length (32 = two AVX-512 registers)")
    parser.add_argument("--degree", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.5, help="intervals per unit of |v|")
    parser.add_argument("--exp-degree", type=int, default=6, help="portable path: exp(r) polynomial")
    parser.add_argument("--log-degree", type=int, default=9, help="portable path: log1p(e) / e polynomial")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--product-intervals", type=int, default=0, help="print the AVX2 product form's constants")
    parser.add_argument("--product-degree", type=int, default=3, help="degree of q(r) ~ log1p(r) / r")
    args = parser.parse_args()
    if args.product_intervals:
        print(product_report(args.product_intervals, args.product_degree))
        return
    scale = np.float32(args.scale)
    table = np.stack([fit_interval(k, float(scale), args.degree) for k in range(args.intervals)], axis=1)

    v = np.concatenate([np.linspace(-40, 40, 2_000_001), [-1e30, -88.0, 88.0, 1e30, 0.0]]).astype(np.float32)
    got = kernel_softplus(v, table, scale).astype(np.float64)
    want = np.logaddexp(0.0, v.astype(np.float64))
    abs_err = np.abs(got - want)
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    in_table = np.abs(v) < (args.intervals - 0.5) / float(scale)
    exp_coef, log_coef = fit_fallback(args.exp_degree, args.log_degree)
    portable = np.abs(fallback_softplus(v, exp_coef, log_coef).astype(np.float64) - want)
    if not args.report_only:
        print(cxx_table(table, scale, args.degree))
        print(cxx_array("kExpPoly", exp_coef, f"exp(r), r in [-ln2/2, ln2/2], degree {args.exp_degree}"))
        print(cxx_array("kLog1pPoly", log_coef, f"log1p(e) / e, e in [0, 1], degree {args.log_degree}"))
    print(
        f"// max |error| {abs_err.max():.3g}; max error in float32 ulps of softplus(v) where |v| lies in the "
        f"table: {(abs_err / ulp)[in_table].max():.2f}; tail g(a_max) = {g((args.intervals - 0.5) / float(scale)):.2g}"
    )
    print(
        f"// portable path: max |error| {portable.max():.3g}; max error in float32 ulps where |v| < 21: "
        f"{(portable / ulp)[np.abs(v) < 21].max():.2f}"
    )


if __name__ == "__main__":
    main()
