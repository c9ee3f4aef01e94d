//! `tanh` over a slice of `f32`, vectorized and bit for bit the classic fdlibm `tanhf` (Sun's
//! `s_tanhf.c` on its `s_expm1f.c`, the algorithm glibc's `tanhf` runs up to glibc 2.40).
//!
//! Why: the classifier's activations and the LSTM's cells called libm's `tanhf` one element
//! at a time (about 20 ns a call, 7% of the paper's meta-step). The same float operations in
//! the same order on every lane give the same roundings, so this kernel returns exactly what
//! that `tanhf` returns, on any platform, for every `f32` (checked exhaustively against the
//! C library by an ignored test, and against a literal transcription of the algorithm on
//! every branch by the unit tests). Every lane computes every branch and keeps its own: there
//! are no branches for the compiler to keep it from vectorizing. `f64` keeps the C library.
//!
//! The algorithm: `tanh |x| = 1 - 2 / (expm1(2|x|) + 2)` for `|x| >= 1` and
//! `-expm1(-2|x|) / (expm1(-2|x|) + 2)` below, with `expm1(a)` from `a = k ln 2 + r`,
//! `|r| <= ln 2 / 2`, a rational approximation of `expm1(r)` corrected for the reduction's
//! rounding `c`, and `2^k` put in through the exponent bits.

use super::simd::map_f32;
use crate::tape::Scalar;

/// `ln 2`'s leading bits: `k * LN2_HI` is exact for the `k` used here.
const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
/// `1 / ln 2`.
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
/// The scaled coefficients of `expm1`'s rational approximation on `|r| <= ln 2 / 2`.
const Q1: f32 = f32::from_bits(0xbd08_8889);
const Q2: f32 = f32::from_bits(0x3ad0_0d01);
const Q3: f32 = f32::from_bits(0xb8a6_70cd);
const Q4: f32 = f32::from_bits(0x3686_7e54);
const Q5: f32 = f32::from_bits(0xb457_edbb);

/// `tanh` of every element, in order: through [`tanh_f32`] when `T` is `f32`, through `T`'s
/// own `tanh` otherwise.
pub(crate) fn tanh_of<T: Scalar>(src: &[T]) -> Vec<T> {
    map_f32(src, tanh_f32, |x| x.tanh())
}

/// `dst[i] = tanh(src[i])`, bit for bit fdlibm's `tanhf` (module docs).
///
/// Panics if the slices differ in length.
pub(crate) fn tanh_f32(src: &[f32], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "tanh_f32: slices of different lengths"
    );
    macro_rules! with_features {
        ($feature:literal, $name:ident) => {{
            // SAFETY (of callers): unsafe only for its target features, so it may run only
            // where `by_isa!` found them; it touches nothing but the two slices.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feature)]
            unsafe fn $name(src: &[f32], dst: &mut [f32]) {
                tanh_lanes(src, dst)
            }
            $name
        }};
    }
    let ran = by_isa!(
        // SAFETY: `by_isa!` runs this only when the CPU has AVX-512F and DQ (the float <-> int
        // conversions of 16 lanes); the function reads and writes only the two slices.
        unsafe { with_features!("avx512f,avx512dq", avx512)(src, dst) },
        // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; the function reads
        // and writes only the two slices.
        unsafe { with_features!("avx2,fma", avx2)(src, dst) }
    );
    if !ran {
        tanh_lanes(src, dst);
    }
}

/// The loop the instruction-set variants compile: [`tanh_lane`] on every element.
#[inline(always)]
fn tanh_lanes(src: &[f32], dst: &mut [f32]) {
    for (y, &x) in dst.iter_mut().zip(src) {
        *y = tanh_lane(x);
    }
}

/// fdlibm's `tanhf(x)` with every branch computed and the right one selected.
#[inline(always)]
pub(crate) fn tanh_lane(x: f32) -> f32 {
    let jx = x.to_bits();
    let ix = jx & 0x7fff_ffff;
    let ax = f32::from_bits(ix);
    // |x| >= 1 takes expm1(2|x|), below expm1(-2|x|).
    let big = ix >= 0x3f80_0000;
    let t = expm1_lane(if big { ax + ax } else { ax * -2.0 }, !big);
    // One division for both forms: 1 - 2 / (t + 2) and -t / (t + 2).
    let quotient = (if big { 2.0 } else { -t }) / (t + 2.0);
    let z = if ix >= 0x41b0_0000 {
        // |x| >= 22: fdlibm's `1 - tiny`, which rounds to 1.
        1.0
    } else if big {
        1.0 - quotient
    } else {
        quotient
    };
    let signed = if (jx as i32) < 0 { -z } else { z };
    if ix >= 0x7f80_0000 {
        // tanh(±inf) = ±1; a NaN comes back quieted, as `1 / x + 1` gives it.
        if ix > 0x7f80_0000 {
            x + x
        } else if (jx as i32) < 0 {
            -1.0
        } else {
            1.0
        }
    } else if ix == 0 {
        x
    } else if ix < 0x2400_0000 {
        // |x| < 2^-55: tanh x = x (1 + x) to the last bit.
        (1.0 + x) * x
    } else {
        signed
    }
}

/// fdlibm's `expm1f(a)` for the arguments `tanh_lane` gives it: `a` in `(-2, 0)` when
/// `negative`, else in `[2, 44)`, finite (no overflow or `-1` saturation branch is needed).
#[inline(always)]
fn expm1_lane(a: f32, negative: bool) -> f32 {
    let ha = a.to_bits() & 0x7fff_ffff;
    // a = k ln2 + r: k = 0 up to ln2 / 2, ±1 up to 1.5 ln2, then round(a / ln2).
    // Truncated toward zero as C's conversion does. The clamp (a NaN goes to the lower end)
    // keeps the value in `i32`'s range, so the unchecked conversion, which vectorizes where
    // `as` does not, is defined; lanes outside tanh's range are discarded by the caller.
    // Not `clamp`: it passes a NaN through, and the conversion below needs a number.
    #[allow(clippy::manual_clamp)]
    let unrounded = (INV_LN2 * a + if negative { -0.5 } else { 0.5 })
        .max(-200.0)
        .min(200.0);
    // SAFETY: `unrounded` is finite and within ±200 (above), which `i32` holds.
    let k_rounded: i32 = unsafe { unrounded.to_int_unchecked() };
    let k: i32 = if ha <= 0x3eb1_7218 {
        0
    } else if ha < 0x3f85_1592 {
        if negative {
            -1
        } else {
            1
        }
    } else {
        k_rounded
    };
    let kf = k as f32;
    // With k = ±1 these are fdlibm's `a ∓ ln2_hi` and `±ln2_lo`; with k = 0, `a` and 0.
    let hi = a - kf * LN2_HI;
    let lo = kf * LN2_LO;
    let r = hi - lo;
    let c = (hi - r) - lo;
    let hfx = 0.5 * r;
    let hxs = r * hfx;
    let r1 = 1.0 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
    let t = 3.0 - r1 * hfx;
    let e = hxs * ((r1 - t) / (6.0 - r * t));
    let at_k0 = r - (r * e - hxs);
    let e = r * (e - c) - c;
    let e = e - hxs;
    let at_minus1 = 0.5 * (r - e) - 0.5;
    let at_plus1 = if r < -0.25 {
        -2.0 * (e - (r + 0.5))
    } else {
        1.0 + 2.0 * (r - e)
    };
    // 2^k through the exponent field (k << 23 wraps as fdlibm's int arithmetic does).
    let scale = |y: f32| f32::from_bits(y.to_bits().wrapping_add((k as u32) << 23));
    let far = scale(1.0 - (e - r)) - 1.0;
    let one_minus_ulp = f32::from_bits(0x3f80_0000 - (0x0100_0000u32 >> k.clamp(0, 31)));
    let near = scale(one_minus_ulp - (e - r));
    let two_to_minus_k = f32::from_bits(((0x7f - k) as u32) << 23);
    let mid = scale((r - (e + two_to_minus_k)) + 1.0);
    if ha < 0x3300_0000 {
        a
    } else if k == 0 {
        at_k0
    } else if k == -1 {
        at_minus1
    } else if k == 1 {
        at_plus1
    } else if k <= -2 || k > 56 {
        far
    } else if k < 23 {
        near
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// fdlibm's `expm1f` and `tanhf` written out as the C is, branch by branch, for the
    /// arguments `tanhf` passes (the reference the vectorized lanes are checked against).
    fn expm1_reference(x: f32) -> f32 {
        let hx = x.to_bits();
        let negative = hx >> 31 == 1;
        let hx = hx & 0x7fff_ffff;
        let (r, c, k) = if hx > 0x3eb1_7218 {
            let (hi, lo, k) = if hx < 0x3f85_1592 {
                if negative {
                    (x + LN2_HI, -LN2_LO, -1)
                } else {
                    (x - LN2_HI, LN2_LO, 1)
                }
            } else {
                let k = (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32;
                let t = k as f32;
                (x - t * LN2_HI, t * LN2_LO, k)
            };
            let r = hi - lo;
            (r, (hi - r) - lo, k)
        } else if hx < 0x3300_0000 {
            return x;
        } else {
            (x, 0.0, 0)
        };
        let hfx = 0.5 * r;
        let hxs = r * hfx;
        let r1 = 1.0 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
        let t = 3.0 - r1 * hfx;
        let e = hxs * ((r1 - t) / (6.0 - r * t));
        if k == 0 {
            return r - (r * e - hxs);
        }
        let e = (r * (e - c) - c) - hxs;
        if k == -1 {
            return 0.5 * (r - e) - 0.5;
        }
        if k == 1 {
            return if r < -0.25 {
                -2.0 * (e - (r + 0.5))
            } else {
                1.0 + 2.0 * (r - e)
            };
        }
        let add_k = |y: f32| f32::from_bits((y.to_bits() as i32 + (k << 23)) as u32);
        if k <= -2 || k > 56 {
            return add_k(1.0 - (e - r)) - 1.0;
        }
        if k < 23 {
            let t = f32::from_bits(0x3f80_0000 - (0x0100_0000 >> k));
            add_k(t - (e - r))
        } else {
            let t = f32::from_bits(((0x7f - k) as u32) << 23);
            add_k((r - (e + t)) + 1.0)
        }
    }

    fn tanh_reference(x: f32) -> f32 {
        let jx = x.to_bits() as i32;
        let ix = x.to_bits() & 0x7fff_ffff;
        if ix >= 0x7f80_0000 {
            return if jx >= 0 {
                1.0 / x + 1.0
            } else {
                1.0 / x - 1.0
            };
        }
        let z = if ix < 0x41b0_0000 {
            if ix == 0 {
                return x;
            }
            if ix < 0x2400_0000 {
                return x * (1.0 + x);
            }
            if ix >= 0x3f80_0000 {
                let t = expm1_reference(2.0 * x.abs());
                1.0 - 2.0 / (t + 2.0)
            } else {
                let t = expm1_reference(-2.0 * x.abs());
                -t / (t + 2.0)
            }
        } else {
            1.0 - 1e-30
        };
        if jx >= 0 {
            z
        } else {
            -z
        }
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every branch boundary of both functions, a few ulps either side, and both signs.
    fn edge_inputs() -> Vec<f32> {
        let mut bits = vec![0u32, 1, 0x0080_0000, 0x7f7f_ffff, 0x7f80_0000, 0x7fc0_0000];
        // tanh's |x| = 2^-55, 1, 22; expm1's 0.5 ln2, 1.5 ln2, 2^-25 and 27 ln2 (halved,
        // as tanh's argument), and every k = 2..64 step boundary of the rounding to k.
        let mut centres = vec![0x2400_0000u32, 0x3f80_0000, 0x41b0_0000];
        for h in [0x3eb1_7218u32, 0x3f85_1592, 0x3300_0000, 0x4195_b844] {
            centres.push((f32::from_bits(h) / 2.0).to_bits());
        }
        for k in 1..=64 {
            centres.push(((k as f32 - 0.5) * std::f32::consts::LN_2 / 2.0).to_bits());
            centres.push(((k as f32) * std::f32::consts::LN_2 / 2.0).to_bits());
        }
        for c in centres {
            for d in 0..=8u32 {
                bits.push(c.wrapping_add(d));
                bits.push(c.wrapping_sub(d));
            }
        }
        let mut out: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();
        out.extend(out.clone().into_iter().map(|x| -x));
        out
    }

    fn check_kernel_against_reference(inputs: &[f32]) {
        let mut out = vec![0.0; inputs.len()];
        tanh_f32(inputs, &mut out);
        for (&x, &y) in inputs.iter().zip(&out) {
            let want = tanh_reference(x);
            assert!(same(y, want), "tanh({x:e}) = {y:e}, the reference {want:e}");
            assert!(same(tanh_lane(x), want), "the scalar lane at {x:e}");
        }
    }

    #[test]
    fn the_kernel_gives_the_reference_bits_on_every_branch_boundary() {
        check_kernel_against_reference(&edge_inputs());
    }

    #[test]
    fn the_kernel_gives_the_reference_bits_on_random_inputs() {
        let mut rng = StdRng::seed_from_u64(7);
        // Uniform bit patterns (every exponent) and uniform values in the classifier's range;
        // odd lengths leave a tail after the vector lanes.
        let bits: Vec<f32> = (0..200_001).map(|_| f32::from_bits(rng.gen())).collect();
        check_kernel_against_reference(&bits);
        let values: Vec<f32> = (0..200_003).map(|_| rng.gen_range(-30.0..30.0)).collect();
        check_kernel_against_reference(&values);
    }

    #[test]
    fn the_reference_is_tanh_within_two_ulps() {
        let mut rng = StdRng::seed_from_u64(8);
        let inputs = edge_inputs()
            .into_iter()
            .chain((0..100_000).map(|_| rng.gen_range(-25.0f32..25.0)));
        for x in inputs.filter(|x| x.is_finite()) {
            let exact = (x as f64).tanh();
            let got = tanh_reference(x) as f64;
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            assert!(
                (got - exact).abs() <= 2.0 * ulp,
                "tanh({x:e}) = {got:e}, exactly {exact:e}"
            );
        }
    }

    /// Every `f32` against the C library's `tanhf` (fdlibm's up to glibc 2.40; from 2.41 glibc
    /// rounds correctly and differs in the last bit on some inputs). About a minute:
    /// `cargo test --release --lib tanh -- --ignored`.
    #[test]
    #[ignore]
    fn the_kernel_is_the_c_librarys_tanhf_on_every_f32() {
        let chunk = 1usize << 20;
        let mut inputs = vec![0.0f32; chunk];
        let mut out = vec![0.0f32; chunk];
        for start in (0..1u64 << 32).step_by(chunk) {
            for (i, x) in inputs.iter_mut().enumerate() {
                *x = f32::from_bits((start + i as u64) as u32);
            }
            tanh_f32(&inputs, &mut out);
            for (&x, &y) in inputs.iter().zip(&out) {
                assert!(
                    same(y, x.tanh()),
                    "tanh({x:e}): {y:e} against {:e}",
                    x.tanh()
                );
            }
        }
    }
}
