//! SIMD kernel for `C = Aᵀ B` when `A`'s columns are contiguous and `B` has a handful of
//! columns: every entry is a dot product of a column of `A` with a column of `B`, so both are
//! read front to back. The minibatch product of meta-training (`X Wᵀ`, read through the stored
//! `Xᵀ`) streams a matrix that no longer sits in the caches; in this form the hardware
//! prefetcher sees one sequential stream per column, and a software prefetch one block ahead
//! keeps it fed. The column form of `kernels::skinny` reads such a matrix in 64-byte pieces
//! strided by a column: about a third slower from memory even with its prefetch, three to four
//! times slower without (measured at 128 x 784 x 10 in f32).

use super::columns::Columns;
use super::simd::{simd_type, Simd, SimdType};
use crate::tape::Scalar;

/// Widest `B` the dot kernel is used for; its columns are taken in groups of up to
/// [`MAX_GROUP`].
pub(crate) const DOT_MAX_COLUMNS: usize = 24;

/// Shortest inner dimension the dot kernel is used for: below it, the partial sums in
/// registers would outnumber the terms.
pub(crate) const DOT_MIN_INNER: usize = 16;

/// Most columns of `B` whose partial sums a kernel keeps in registers at a time.
const MAX_GROUP: usize = 10;

/// Generates `$name`: `C (m x n, column stride ldc) = Aᵀ B` for `A` k x m (column stride lda)
/// and `B` k x n (column stride ldb). Columns of `A` go in blocks of `$rows`, columns of `B` in
/// groups of `$group`; each of the `$rows x $group` entries keeps `$lanes` partial sums over
/// `kk ≡ l (mod lanes)`, added lane by lane in order at the end, then the `k % lanes` tail in
/// order: the summation order depends on the shapes only.
macro_rules! dot_kernel {
    ($name:ident, $block:ident, $t:ty, $feature:literal, $lanes:expr, $rows:expr, $group:expr,
     $zero:path,
     $load:path, $store:path, $fma:path) => {
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $block<const R: usize, const G: usize>(
            k: usize,
            a: *const $t,
            step: isize,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
            next_block: *const $t,
            next_step: isize,
        ) {
            // `next_block + r next_step` only feeds prefetches, which never fault.
            // SAFETY: the caller guarantees `$feature` on this CPU, k valid elements at each
            // column start `a + r step` (r < R) and in each of the G columns of `b`, and a
            // valid R x G block of `c` aliasing neither.
            unsafe {
                const L: usize = $lanes;
                let mut acc = [[$zero(); G]; R];
                let mut kk = 0;
                while kk + L <= k {
                    for r in 0..R {
                        // The next block's columns, at the same offset: one prefetch a vector.
                        let ahead = next_block.wrapping_offset(r as isize * next_step);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(kk) as *const i8);
                    }
                    let mut x = [$zero(); R];
                    for (r, xr) in x.iter_mut().enumerate() {
                        *xr = $load(a.offset(r as isize * step).add(kk));
                    }
                    for j in 0..G {
                        let y = $load(b.add(j * ldb + kk));
                        for r in 0..R {
                            acc[r][j] = $fma(x[r], y, acc[r][j]);
                        }
                    }
                    kk += L;
                }
                for r in 0..R {
                    for j in 0..G {
                        let mut lanes = [0.0 as $t; L];
                        $store(lanes.as_mut_ptr(), acc[r][j]);
                        let mut sum = lanes.iter().fold(0.0 as $t, |s, &v| s + v);
                        for t in kk..k {
                            let column = a.offset(r as isize * step);
                            sum = (*column.add(t)).mul_add(*b.add(j * ldb + t), sum);
                        }
                        *c.add(j * ldc + r) = sum;
                    }
                }
            }
        }

        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: Columns<'_, $t>,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
        ) {
            // SAFETY: the caller guarantees `$feature` on this CPU and the extents of `a`, `b`
            // and `c` ([`gemm_dot`]); every block below addresses a part of them (the prefetch
            // target included).
            unsafe {
                const R: usize = $rows;
                let mut i = 0;
                while i < m {
                    let rows = if m - i >= R { R } else { 1 };
                    // This block's first column and the step to each next one (the columns of
                    // a block of two picked by index lie anywhere); the same for the next
                    // block, whose prefetches past the last block re-read this one (harmless,
                    // in bounds).
                    let start = |first: usize| {
                        let column = a.at(first);
                        let step = if rows > 1 {
                            (a.at(first + 1) as isize - column as isize)
                                / std::mem::size_of::<$t>() as isize
                        } else {
                            0
                        };
                        (column, step)
                    };
                    let (ai, step) = start(i);
                    let (next, next_step) = if i + rows + rows <= m {
                        start(i + rows)
                    } else {
                        (ai, step)
                    };
                    let mut j = 0;
                    while j < n {
                        let width = $group.min(n - j);
                        let (bj, cij) = (b.add(j * ldb), c.add(j * ldc + i));
                        macro_rules! go {
                            ($r:expr) => {{
                                macro_rules! block {
                                    ($g:expr) => {
                                        $block::<$r, $g>(
                                            k, ai, step, bj, ldb, cij, ldc, next, next_step,
                                        )
                                    };
                                }
                                match width {
                                    1 => block!(1),
                                    2 => block!(2),
                                    3 => block!(3),
                                    4 => block!(4),
                                    5 => block!(5),
                                    6 => block!(6),
                                    7 => block!(7),
                                    8 => block!(8),
                                    9 => block!(9),
                                    _ => block!(MAX_GROUP),
                                }
                            }};
                        }
                        if rows == R {
                            go!(R)
                        } else {
                            go!(1)
                        }
                        j += width;
                    }
                    i += rows;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Columns, MAX_GROUP};
    use std::arch::x86_64::*;

    // AVX2 has 16 vector registers: 2 x 5 accumulators, 2 columns of A and one of B.
    // AVX-512 has 32: 2 x 10 accumulators, 2 columns of A and one of B, so that a ten-class
    // `X Wᵀ` reads `Xᵀ` once instead of once per five columns (4 x 5 read it twice).
    dot_kernel!(
        f32_avx512,
        f32_avx512_block,
        f32,
        "avx512f",
        16,
        2,
        10,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps
    );
    dot_kernel!(
        f64_avx512,
        f64_avx512_block,
        f64,
        "avx512f",
        8,
        2,
        10,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_fmadd_pd
    );
    dot_kernel!(
        f32_avx2,
        f32_avx2_block,
        f32,
        "avx2,fma",
        8,
        2,
        5,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps
    );
    dot_kernel!(
        f64_avx2,
        f64_avx2_block,
        f64,
        "avx2,fma",
        4,
        2,
        5,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_fmadd_pd
    );
}

macro_rules! entry {
    ($name:ident, $t:ty, $avx512:ident, $avx2:ident) => {
        /// `c = aᵀ b` by the dot kernel (see [`gemm_dot`]); false, writing nothing, when this
        /// CPU has neither AVX-512 nor AVX2 + FMA.
        ///
        /// # Safety
        /// As [`gemm_dot`], with `c` of column stride `ldc`.
        #[allow(clippy::too_many_arguments)]
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
        pub(super) unsafe fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: Columns<'_, $t>,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
        ) -> bool {
            by_isa!(
                // SAFETY: `by_isa!` runs this only when the CPU has AVX-512; the caller
                // guarantees the extents.
                unsafe { x86::$avx512(m, k, n, a, b, ldb, c, ldc) },
                // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; the caller
                // guarantees the extents.
                unsafe { x86::$avx2(m, k, n, a, b, ldb, c, ldc) }
            )
        }
    };
}

entry!(kernel_f32, f32, f32_avx512, f32_avx2);
entry!(kernel_f64, f64, f64_avx512, f64_avx2);

/// `C = Aᵀ B` for column-major `A` (k x m, its columns `a`) and `B` (k x n, column stride
/// `ldb`), `n <= DOT_MAX_COLUMNS`, writing the column-major m x n `C` (column stride `m`).
/// Returns false, having written nothing, when no SIMD kernel runs on this CPU or `T` is
/// neither `f32` nor `f64`; the caller then uses general gemm.
///
/// # Safety
/// Each of the `m` columns of `a` must hold `k` valid elements, `b` must address `ldb * (n - 1)
/// + k`, and `c` must hold `m * n` elements that alias neither.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_dot<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: Columns<'_, T>,
    b: *const T,
    ldb: usize,
    c: *mut T,
) -> bool {
    debug_assert!(n <= DOT_MAX_COLUMNS);
    match simd_type::<T>() {
        SimdType::F32 => {
            // SAFETY: `T` is `f32` (equal type ids), so the casts only rename the pointee type;
            // the caller guarantees the extents, which are the kernel's contract with ldc = m.
            unsafe { f32::dot_kernel(m, k, n, a.cast(), b.cast(), ldb, c.cast(), m) }
        }
        SimdType::F64 => {
            // SAFETY: `T` is `f64` (equal type ids), so the casts only rename the pointee type;
            // the caller guarantees the extents, which are the kernel's contract with ldc = m.
            unsafe { f64::dot_kernel(m, k, n, a.cast(), b.cast(), ldb, c.cast(), m) }
        }
        SimdType::Other => false,
    }
}
