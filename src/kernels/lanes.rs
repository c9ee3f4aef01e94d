//! Each vector's lanes added in lane order from zero, `((0 + v[0]) + v[1]) + ...`, for many
//! vectors at once: the dot kernel ends every entry with such a sum of its partial sums. For
//! AVX-512 and AVX2 `f32` and AVX-512 `f64`, a block of vectors is transposed, so that lane `l`
//! of all of them is one vector, and one vector addition per lane replaces a chain of scalar
//! ones (a ten-class `X Wᵀ` spent about a tenth of its time in those chains); AVX2 `f64` keeps
//! the chain. Every form gives the chain's bits.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// `sums[e]` = the lanes of `v[e]` added in lane order from zero (`((0 + v_e[0]) +
/// v_e[1]) + ...`), one vector at a time: a store and a chain of scalar additions.
macro_rules! scalar_lane_sums {
    ($name:ident, $vector:ty, $t:ty, $lanes:expr, $feature:literal, $store:path) => {
        #[inline]
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn $name(v: &[$vector], sums: &mut [$t]) {
            for (vector, sum) in v.iter().zip(sums) {
                let mut lanes = [0.0 as $t; $lanes];
                // SAFETY: `lanes` holds one vector; `$feature` is this function's.
                unsafe { $store(lanes.as_mut_ptr(), *vector) };
                *sum = lanes.iter().fold(0.0 as $t, |s, &x| s + x);
            }
        }
    };
}
scalar_lane_sums!(
    lane_sums_f64_avx2,
    __m256d,
    f64,
    4,
    "avx2",
    _mm256_storeu_pd
);

/// `$name`: `sums[e]` = the lanes of `v[e]` added in lane order from zero, as
/// `scalar_lane_sums!` adds them, `$lanes` vectors at a time: transposed by `$transpose`, lane
/// `l` of all of them is one vector, so `$lanes` vector additions replace `$lanes x $lanes`
/// dependent scalar ones.
macro_rules! transposed_lane_sums {
    ($name:ident, $vector:ty, $t:ty, $lanes:expr, $feature:literal, $zero:path, $add:path,
     $store:path, $transpose:ident) => {
        #[inline]
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn $name(v: &[$vector], sums: &mut [$t]) {
            for (chunk, out) in v.chunks($lanes).zip(sums.chunks_mut($lanes)) {
                let mut rows = [$zero(); $lanes];
                rows[..chunk.len()].copy_from_slice(chunk);
                let mut total = $zero();
                for lane in $transpose(rows) {
                    total = $add(total, lane);
                }
                let mut all = [0.0 as $t; $lanes];
                // SAFETY: `all` holds one vector; `$feature` is this function's.
                unsafe { $store(all.as_mut_ptr(), total) };
                out.copy_from_slice(&all[..out.len()]);
            }
        }
    };
}
transposed_lane_sums!(
    lane_sums_f32_avx512,
    __m512,
    f32,
    16,
    "avx512f",
    _mm512_setzero_ps,
    _mm512_add_ps,
    _mm512_storeu_ps,
    transpose_16x16
);
transposed_lane_sums!(
    lane_sums_f64_avx512,
    __m512d,
    f64,
    8,
    "avx512f",
    _mm512_setzero_pd,
    _mm512_add_pd,
    _mm512_storeu_pd,
    transpose_8x8
);
transposed_lane_sums!(
    lane_sums_f32_avx2,
    __m256,
    f32,
    8,
    "avx2",
    _mm256_setzero_ps,
    _mm256_add_ps,
    _mm256_storeu_ps,
    transpose_8x8_f32
);

/// The 8 x 8 transpose of `rows` (`f32`, AVX2): pairs of rows interleave within each
/// 128-bit half, pairs of pairs combine their 64-bit halves, then the halves swap.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_8x8_f32(rows: [__m256; 8]) -> [__m256; 8] {
    let mut t = [_mm256_setzero_ps(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
    }
    let mut u = [_mm256_setzero_ps(); 8];
    for i in 0..2 {
        let (a0, a1, a2, a3) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        u[4 * i] = _mm256_shuffle_ps::<0x44>(a0, a2);
        u[4 * i + 1] = _mm256_shuffle_ps::<0xEE>(a0, a2);
        u[4 * i + 2] = _mm256_shuffle_ps::<0x44>(a1, a3);
        u[4 * i + 3] = _mm256_shuffle_ps::<0xEE>(a1, a3);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for q in 0..4 {
        out[q] = _mm256_permute2f128_ps::<0x20>(u[q], u[4 + q]);
        out[4 + q] = _mm256_permute2f128_ps::<0x31>(u[q], u[4 + q]);
    }
    out
}

/// The 8 x 8 transpose of `rows` (`f64`): pairs of rows interleave within each 128-bit
/// quarter, then the quarters are regrouped twice.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_8x8(rows: [__m512d; 8]) -> [__m512d; 8] {
    let mut t = [_mm512_setzero_pd(); 8];
    for i in 0..4 {
        t[2 * i] = _mm512_unpacklo_pd(rows[2 * i], rows[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_pd(rows[2 * i], rows[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_pd(); 8];
    for i in 0..2 {
        for q in 0..2 {
            let (a, b) = (t[4 * i + q], t[4 * i + 2 + q]);
            u[4 * i + q] = _mm512_shuffle_f64x2::<0x88>(a, b);
            u[4 * i + 2 + q] = _mm512_shuffle_f64x2::<0xDD>(a, b);
        }
    }
    let mut out = [_mm512_setzero_pd(); 8];
    for q in 0..4 {
        out[q] = _mm512_shuffle_f64x2::<0x88>(u[q], u[4 + q]);
        out[4 + q] = _mm512_shuffle_f64x2::<0xDD>(u[q], u[4 + q]);
    }
    out
}

/// The 16 x 16 transpose of `rows`: lane `r` of the result's vector `l` is lane `l` of
/// `rows[r]`. Pairs of rows interleave by 32-bit then 64-bit elements (within each
/// 128-bit quarter), then the quarters are regrouped twice.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_16x16(rows: [__m512; 16]) -> [__m512; 16] {
    let (ps, pd) = (_mm512_castpd_ps, _mm512_castps_pd);
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (a0, a1, a2, a3) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        u[4 * i] = ps(_mm512_unpacklo_pd(pd(a0), pd(a2)));
        u[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(a0), pd(a2)));
        u[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(a1), pd(a3)));
        u[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(a1), pd(a3)));
    }
    let mut w = [_mm512_setzero_ps(); 16];
    for i in 0..2 {
        for q in 0..4 {
            let (a, b) = (u[8 * i + q], u[8 * i + 4 + q]);
            w[8 * i + q] = _mm512_shuffle_f32x4::<0x88>(a, b);
            w[8 * i + 4 + q] = _mm512_shuffle_f32x4::<0xDD>(a, b);
        }
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for q in 0..8 {
        out[q] = _mm512_shuffle_f32x4::<0x88>(w[q], w[8 + q]);
        out[8 + q] = _mm512_shuffle_f32x4::<0xDD>(w[q], w[8 + q]);
    }
    out
}

/// Each lane-sum function gives, for 1 to 33 vectors, the scalar chain's bits on every
/// instruction set this CPU has (the kernels' test covers only the one they run).
#[cfg(test)]
#[test]
fn lane_sums_add_each_vectors_lanes_in_order() {
    macro_rules! check {
        ($feature:tt, $sums:ident, $t:ty, $lanes:expr, $vector:ty, $load:path) => {
            if std::arch::is_x86_feature_detected!($feature) {
                for count in 1..=33usize {
                    let values: Vec<$t> = (0..count * $lanes)
                        .map(|v| {
                            let x = ((v as f64 * 0.6180339887).fract() - 0.5) * 1e3;
                            (if v % 17 == 0 { -0.0 } else { x * x * x }) as $t
                        })
                        .collect();
                    let vectors: Vec<$vector> = values
                        .chunks($lanes)
                        .map(|c| {
                            // SAFETY: `c` holds exactly one vector; the CPU has `$feature`
                            // (checked above).
                            unsafe { $load(c.as_ptr()) }
                        })
                        .collect();
                    let mut sums = vec![<$t>::NAN; count];
                    // SAFETY: the CPU has `$feature` (checked above); `sums` has one slot per
                    // vector.
                    unsafe { $sums(&vectors, &mut sums) };
                    for (e, lanes) in values.chunks($lanes).enumerate() {
                        let expected = lanes.iter().fold(0.0 as $t, |s, &x| s + x);
                        assert_eq!(
                            sums[e].to_bits(),
                            expected.to_bits(),
                            "{} vector {e} of {count}",
                            stringify!($sums)
                        );
                    }
                }
            }
        };
    }
    check!(
        "avx512f",
        lane_sums_f32_avx512,
        f32,
        16,
        __m512,
        _mm512_loadu_ps
    );
    check!(
        "avx512f",
        lane_sums_f64_avx512,
        f64,
        8,
        __m512d,
        _mm512_loadu_pd
    );
    check!("avx2", lane_sums_f32_avx2, f32, 8, __m256, _mm256_loadu_ps);
    check!("avx2", lane_sums_f64_avx2, f64, 4, __m256d, _mm256_loadu_pd);
}
