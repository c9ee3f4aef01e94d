//! `exp` over a slice of `f32`, vectorized and bit for bit the `expf` that glibc runs on CPUs
//! with FMA (Szabolcs Nagy's algorithm from Arm's optimized-routines, glibc 2.28 and later).
//!
//! Why: softmax, sigmoid and `Var::exp` called libm's `expf` one element at a time (3% of
//! the paper's meta-step, 8% of an evaluation run). The same double-precision operations,
//! fused where that `expf` fuses them, on every lane give the same roundings, so this kernel
//! returns exactly what it returns, for every `f32` (checked exhaustively against the C
//! library by an ignored test, and against a literal transcription on every branch by the unit
//! tests). Unlike the C library, it gives these bits on every CPU: glibc's variant for CPUs
//! without FMA rounds the reduction twice, so it can differ in the last bit. `f64` keeps the
//! C library.
//!
//! The algorithm: `x = (k + r) ln2 / 32` with integer `k` and `|r| <= 1/2` (`k` rounded by
//! adding and subtracting `1.5 * 2^52`), `exp x = 2^(k / 32) 2^(r / 32)`; `2^(k / 32)` from a
//! table of the 32 `2^(i / 32)` with `k / 32`'s integer part added to the exponent field, and
//! `2^(r / 32)` from a cubic, all in `f64`, rounded to `f32` once at the end.

use super::simd::map_f32;
use crate::tape::Scalar;

/// `32 / ln 2`.
const INV_LN2_N: f64 = f64::from_bits(0x4047_1547_652b_82fe);
/// `1.5 * 2^52`: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = f64::from_bits(0x4338_0000_0000_0000);
/// The cubic `2^(r / 32) ~ C0 r^3 + C1 r^2 + C2 r + 1` (minimax on `|r| <= 1/2`).
const C0: f64 = f64::from_bits(0x3ebc_6af8_4b91_2394);
const C1: f64 = f64::from_bits(0x3f2e_bfce_50fa_c4f3);
const C2: f64 = f64::from_bits(0x3f96_2e42_ff0c_52d6);
/// The bits of `2^(i / 32)` (correctly rounded) minus `i << 47`, so that adding `k << 47`
/// for `k = 32 q + i` puts `2^q` into the exponent field.
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
/// Above this `exp` overflows (`log(2^128)`, rounded down).
const OVERFLOW: f32 = f32::from_bits(0x42b1_7217);
/// Below this `exp` underflows to 0 (`log(2^-150)`).
const UNDERFLOW: f32 = f32::from_bits(0xc2cf_f1b4);
/// Below this (and above `UNDERFLOW`) the C library returns the least subnormal.
const MAY_UNDERFLOW: f32 = f32::from_bits(0xc2ce_8ecf);

/// `exp` of every element, in order: through [`exp_f32`] when `T` is `f32`, through `T`'s own
/// `exp` otherwise.
pub(crate) fn exp_of<T: Scalar>(src: &[T]) -> Vec<T> {
    map_f32(src, exp_f32, |x| x.exp())
}

/// `dst[i] = exp(src[i])`, bit for bit glibc's `expf` on FMA hardware (module docs).
///
/// Panics if the slices differ in length.
pub(crate) fn exp_f32(src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "exp_f32: slices of different lengths");
    macro_rules! with_features {
        ($feature:literal, $name:ident) => {{
            // SAFETY (of callers): unsafe only for its target features, so it may run only
            // where `by_isa!` found them; it touches nothing but the two slices.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feature)]
            unsafe fn $name(src: &[f32], dst: &mut [f32]) {
                exp_lanes(src, dst)
            }
            $name
        }};
    }
    let ran = by_isa!(
        // SAFETY: `by_isa!` runs this only when the CPU has AVX-512F and DQ (the conversions
        // and 64-bit lanes) and FMA (the fused steps); it reads and writes only the slices.
        unsafe { with_features!("avx512f,avx512dq,fma", avx512)(src, dst) },
        // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; it reads and writes
        // only the two slices.
        unsafe { with_features!("avx2,fma", avx2)(src, dst) }
    );
    if !ran {
        // `mul_add` is fused here too (in software if need be): the same bits, slower.
        exp_lanes(src, dst);
    }
}

/// The loop the instruction-set variants compile: [`exp_lane`] on every element.
#[inline(always)]
fn exp_lanes(src: &[f32], dst: &mut [f32]) {
    for (y, &x) in dst.iter_mut().zip(src) {
        *y = exp_lane(x);
    }
}

/// glibc's `expf(x)` with the special cases selected after the main path.
#[inline(always)]
pub(crate) fn exp_lane(x: f32) -> f32 {
    let xd = x as f64;
    let kd = INV_LN2_N.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INV_LN2_N.mul_add(xd, -kd);
    let scale = TABLE[(ki & 31) as usize].wrapping_add(ki << 47);
    let s = f64::from_bits(scale);
    let z = C0.mul_add(r, C1);
    let r2 = r * r;
    let y = C2.mul_add(r, 1.0);
    let y = z.mul_add(r2, y);
    let main = (y * s) as f32;
    let bits = x.to_bits();
    if (bits >> 20) & 0x7ff < 0x42b {
        // |x| < 88 (the common case).
        main
    } else if bits == 0xff80_0000 {
        0.0
    } else if (bits >> 20) & 0x7ff >= 0x7f8 {
        // NaN (quieted) or +inf.
        x + x
    } else if x > OVERFLOW {
        f32::INFINITY
    } else if x < UNDERFLOW {
        0.0
    } else if x < MAY_UNDERFLOW {
        f32::from_bits(1)
    } else {
        main
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The C written out step by step, its special cases first (the reference of the lanes).
    fn exp_reference(x: f32) -> f32 {
        let abstop = (x.to_bits() >> 20) & 0x7ff;
        if abstop >= 0x42b {
            if x == f32::NEG_INFINITY {
                return 0.0;
            }
            if abstop >= 0x7f8 {
                return x + x;
            }
            if x > OVERFLOW {
                return f32::INFINITY;
            }
            if x < UNDERFLOW {
                return 0.0;
            }
            if x < MAY_UNDERFLOW {
                return f32::from_bits(1);
            }
        }
        let xd = x as f64;
        let z = INV_LN2_N.mul_add(xd, SHIFT);
        let ki = z.to_bits();
        let kd = z - SHIFT;
        let r = INV_LN2_N.mul_add(xd, -kd);
        let t = TABLE[(ki % 32) as usize].wrapping_add(ki << 47);
        let s = f64::from_bits(t);
        let z = C0.mul_add(r, C1);
        let r2 = r * r;
        let y = C2.mul_add(r, 1.0);
        let y = z.mul_add(r2, y);
        (y * s) as f32
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    fn check_kernel_against_reference(inputs: &[f32]) {
        let mut out = vec![0.0; inputs.len()];
        exp_f32(inputs, &mut out);
        for (&x, &y) in inputs.iter().zip(&out) {
            let want = exp_reference(x);
            assert!(same(y, want), "exp({x:e}) = {y:e}, the reference {want:e}");
            assert!(same(exp_lane(x), want), "the scalar lane at {x:e}");
        }
    }

    /// The special-case thresholds and infinities, a few ulps either side, and zeros.
    fn edge_inputs() -> Vec<f32> {
        let mut out = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        for c in [
            88.0f32,
            -88.0,
            OVERFLOW,
            UNDERFLOW,
            MAY_UNDERFLOW,
            f32::MAX,
            -f32::MAX,
        ] {
            for d in 0..=8u32 {
                out.push(f32::from_bits(c.to_bits().wrapping_add(d)));
                out.push(f32::from_bits(c.to_bits().wrapping_sub(d)));
            }
        }
        out
    }

    #[test]
    fn the_table_holds_the_powers_of_two_to_the_last_bit() {
        for (i, &t) in TABLE.iter().enumerate() {
            let value = f64::from_bits(t + ((i as u64) << 47));
            let exact = (i as f64 / 32.0).exp2();
            assert!((value - exact).abs() <= exact * f64::EPSILON, "2^({i}/32)");
        }
    }

    #[test]
    fn the_kernel_gives_the_reference_bits() {
        check_kernel_against_reference(&edge_inputs());
        let mut rng = StdRng::seed_from_u64(9);
        let bits: Vec<f32> = (0..200_001).map(|_| f32::from_bits(rng.gen())).collect();
        check_kernel_against_reference(&bits);
        let values: Vec<f32> = (0..200_003).map(|_| rng.gen_range(-110.0..90.0)).collect();
        check_kernel_against_reference(&values);
    }

    #[test]
    fn the_reference_is_exp_within_one_ulp() {
        let mut rng = StdRng::seed_from_u64(10);
        for _ in 0..200_000 {
            let x: f32 = rng.gen_range(-87.0..88.0);
            let exact = (x as f64).exp();
            let got = exp_reference(x) as f64;
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            assert!(
                (got - exact).abs() <= ulp,
                "exp({x:e}) = {got:e}, exactly {exact:e}"
            );
        }
    }

    /// Every `f32` against the C library's `expf` (on a CPU with FMA; glibc 2.28 or later).
    /// About two minutes: `cargo test --release --lib exp -- --ignored`.
    #[test]
    #[ignore]
    fn the_kernel_is_the_c_librarys_expf_on_every_f32() {
        let chunk = 1usize << 20;
        let mut inputs = vec![0.0f32; chunk];
        let mut out = vec![0.0f32; chunk];
        for start in (0..1u64 << 32).step_by(chunk) {
            for (i, x) in inputs.iter_mut().enumerate() {
                *x = f32::from_bits((start + i as u64) as u32);
            }
            exp_f32(&inputs, &mut out);
            for (&x, &y) in inputs.iter().zip(&out) {
                assert!(same(y, x.exp()), "exp({x:e}): {y:e} against {:e}", x.exp());
            }
        }
    }
}
