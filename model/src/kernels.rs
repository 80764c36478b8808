//! The encoder's CPU kernels on row-major `f32` matrices: linear layers (over `gemm`), layer
//! norm, GELU and self-attention over packed (unpadded) sequences.
//!
//! Element-wise loops run inside `pulp::Arch::dispatch`, which compiles them once per
//! instruction set (AVX2/FMA, AVX-512, baseline) and picks at run time, so they vectorise without
//! building the whole binary for one CPU. Row-wise work is split across rayon's pool.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

/// Rows of an element-wise kernel handled by one rayon task.
const ROWS_PER_TASK: usize = 32;

/// gemm's parallelism: rayon's pool when it has more than one thread.
fn parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// `out (m×n) += x (m×k) · wᵀ`, where `w` is an `n×k` row-major weight as stored by a torch
/// `Linear`.
pub(crate) fn matmul_add(out: &mut [f32], x: &[f32], w: &[f32], m: usize, n: usize, k: usize) {
    assert!(
        out.len() == m * n && x.len() == m * k && w.len() == n * k,
        "matmul_add: shapes do not match the slices"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices hold exactly m×n, m×k and n×k elements (asserted above) and the strides
    // address only those: `out` and `x` row-major (row strides n and k, column stride 1), `w`
    // read as its k×n transpose (row stride 1, column stride k). `out` is borrowed mutably, so it
    // aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(),
        );
    }
}

/// Sets every `bias.len()`-wide row of `out` to `bias`.
pub(crate) fn fill_rows(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// Sets every row of `out` to the same row of `residual` plus `bias`.
pub(crate) fn add_rows(out: &mut [f32], residual: &[f32], bias: &[f32]) {
    let width = bias.len();
    pulp::Arch::new().dispatch(|| {
        for (row, res) in out
            .chunks_exact_mut(width)
            .zip(residual.chunks_exact(width))
        {
            for ((o, r), b) in row.iter_mut().zip(res).zip(bias) {
                *o = r + b;
            }
        }
    });
}

/// Sum of a slice, in eight interleaved lanes so that it vectorises.
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Dot product, in eight interleaved lanes so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Layer norm of every row of `xs` in place: `(x − mean) / sqrt(var + eps) · gamma + beta`.
pub(crate) fn layer_norm(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    xs.par_chunks_mut(width * ROWS_PER_TASK).for_each(|rows| {
        pulp::Arch::new().dispatch(|| {
            for row in rows.chunks_exact_mut(width) {
                let mean = sum(row) / width as f32;
                for x in row.iter_mut() {
                    *x -= mean;
                }
                let var = dot(row, row) / width as f32;
                let scale = 1.0 / (var + eps).sqrt();
                for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                    *x = *x * scale * g + b;
                }
            }
        });
    });
}

/// The error function, as a rational approximation accurate to a few f32 ulps (the form used
/// by Eigen and XLA): branch-free, so a loop of it vectorises.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    // |x| ≥ 4 gives ±1 in f32.
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// The exact GELU of every element in place: `x · (1 + erf(x / √2)) / 2`.
pub(crate) fn gelu(xs: &mut [f32]) {
    xs.par_chunks_mut(4096).for_each(|chunk| {
        pulp::Arch::new().dispatch(|| {
            for x in chunk.iter_mut() {
                *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
            }
        });
    });
}

/// The shape of a self-attention step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    /// Number of attention heads.
    pub count: usize,
    /// Width of one head.
    pub width: usize,
}

/// Multi-head self-attention over packed sequences: `qkv` holds one row per token of
/// `[query | key | value]` (each `heads.count × heads.width` wide), `sequences` the token rows
/// of each sequence (consecutive, in order); each token attends to the tokens of its own
/// sequence. Writes the heads' outputs side by side into `ctx`, one row per token.
pub(crate) fn attention(qkv: &[f32], ctx: &mut [f32], sequences: &[Range<usize>], heads: Heads) {
    let hidden = heads.count * heads.width;
    let scale = 1.0 / (heads.width as f32).sqrt();
    let mut parts = Vec::with_capacity(sequences.len());
    let mut rest = ctx;
    for seq in sequences {
        let (part, tail) = rest.split_at_mut(seq.len() * hidden);
        parts.push((seq.clone(), part));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(seq, out)| {
        let tokens = &qkv[seq.start * 3 * hidden..seq.end * 3 * hidden];
        let len = seq.len();
        let mut scores = vec![0f32; len];
        pulp::Arch::new().dispatch(|| {
            for h in 0..heads.count {
                let q_at = h * heads.width;
                let k_at = hidden + q_at;
                let v_at = 2 * hidden + q_at;
                for i in 0..len {
                    let q = &tokens[i * 3 * hidden + q_at..][..heads.width];
                    let mut max = f32::NEG_INFINITY;
                    for (j, score) in scores.iter_mut().enumerate() {
                        let k = &tokens[j * 3 * hidden + k_at..][..heads.width];
                        *score = dot(q, k) * scale;
                        max = max.max(*score);
                    }
                    let mut total = 0.0;
                    for score in scores.iter_mut() {
                        *score = (*score - max).exp();
                        total += *score;
                    }
                    let o = &mut out[i * hidden + q_at..][..heads.width];
                    o.fill(0.0);
                    for (j, p) in scores.iter().enumerate() {
                        let v = &tokens[j * 3 * hidden + v_at..][..heads.width];
                        let p = p / total;
                        for (o, v) in o.iter_mut().zip(v) {
                            *o += p * v;
                        }
                    }
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (converges well for |x| ≤ 4).
    fn erf_series(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_the_series_to_f32_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let want = if x.abs() > 4.5 {
                x.signum()
            } else {
                erf_series(x)
            };
            worst = worst.max((f64::from(erf(x as f32)) - want).abs());
        }
        assert!(worst < 1e-6, "max |erf error| {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(f32::INFINITY) - 1.0).abs() < 1e-6);
        assert!((erf(f32::NEG_INFINITY) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_is_the_exact_form() {
        let mut xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| {
                let x = f64::from(x);
                let z = x / std::f64::consts::SQRT_2;
                let erf = if z.abs() > 4.5 {
                    z.signum()
                } else {
                    erf_series(z)
                };
                0.5 * x * (1.0 + erf)
            })
            .collect();
        gelu(&mut xs);
        for (got, want) in xs.iter().zip(&want) {
            assert!((f64::from(*got) - want).abs() < 5e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn matmul_add_accumulates_x_times_w_transposed() {
        // x: 2×3, w: 4×3 (n×k), out starts at 1.
        let x = [1.0, 2.0, 3.0, -1.0, 0.5, 2.0];
        let w = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let mut out = [1.0f32; 8];
        matmul_add(&mut out, &x, &w, 2, 4, 3);
        assert_eq!(out, [2.0, 3.0, 4.0, 7.0, 0.0, 1.5, 3.0, 2.5]);
    }

    #[test]
    fn layer_norm_centres_and_scales_each_row() {
        let mut xs = vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0];
        layer_norm(&mut xs, &[1.0, 1.0, 2.0, 1.0], &[0.0, 0.0, 0.0, 1.0], 1e-12);
        let s = 1.0 / 1.25f32.sqrt();
        let want = [
            -1.5 * s,
            -0.5 * s,
            2.0 * 0.5 * s,
            1.5 * s + 1.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ];
        for (got, want) in xs.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{xs:?}");
        }
    }

    #[test]
    fn attention_stays_within_each_sequence() {
        // Two heads of width 2; sequence A has 2 tokens, B has 1.
        let heads = Heads { count: 2, width: 2 };
        let hidden = 4;
        let row = |q: [f32; 4], k: [f32; 4], v: [f32; 4]| [q, k, v].concat();
        let qkv = [
            row(
                [1.0, 0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0, 0.0],
                [1.0, 2.0, 3.0, 4.0],
            ),
            row(
                [0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.0],
                [5.0, 6.0, 7.0, 8.0],
            ),
            row(
                [9.0, 9.0, 9.0, 9.0],
                [9.0, 9.0, 9.0, 9.0],
                [-1.0, -2.0, -3.0, -4.0],
            ),
        ]
        .concat();
        let mut ctx = vec![0f32; 3 * hidden];
        attention(&qkv, &mut ctx, &[0..2, 2..3], heads);
        // A lone token attends only to itself.
        assert_eq!(&ctx[8..12], &[-1.0, -2.0, -3.0, -4.0]);
        // Token 0, head 0: scores (1·1, 0)/√2 → softmax weights.
        let e = (1.0f32 / 2f32.sqrt()).exp();
        let (p0, p1) = (e / (e + 1.0), 1.0 / (e + 1.0));
        let want0 = [p0 * 1.0 + p1 * 5.0, p0 * 2.0 + p1 * 6.0, 5.0, 6.0];
        for (got, want) in ctx[0..4].iter().zip(want0) {
            assert!((got - want).abs() < 1e-6, "{ctx:?}");
        }
        // Token 1 scores 0 against both keys in both heads: the plain mean of the values.
        assert_eq!(&ctx[4..8], &[3.0, 4.0, 5.0, 6.0]);
    }
}
