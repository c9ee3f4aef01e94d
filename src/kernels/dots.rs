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
/// `kk ≡ l (mod lanes)`, added lane by lane in order at the end (by `$lane_sums`), then the
/// `k % lanes` tail in order: the summation order depends on the shapes only.
macro_rules! dot_kernel {
    ($name:ident, $block:ident, $t:ty, $feature:literal, $lanes:expr, $rows:expr, $group:expr,
     $zero:path,
     $load:path, $fma:path, $lane_sums:path) => {
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
                let mut sums = [[0.0 as $t; G]; R];
                $lane_sums(acc.as_flattened(), sums.as_flattened_mut());
                for r in 0..R {
                    for j in 0..G {
                        let mut sum = sums[r][j];
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
    use super::super::lanes::{
        lane_sums_f32_avx2, lane_sums_f32_avx512, lane_sums_f64_avx2, lane_sums_f64_avx512,
    };
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
        _mm512_fmadd_ps,
        lane_sums_f32_avx512
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
        _mm512_fmadd_pd,
        lane_sums_f64_avx512
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
        _mm256_fmadd_ps,
        lane_sums_f32_avx2
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
        _mm256_fmadd_pd,
        lane_sums_f64_avx2
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
    let line = CACHE_LINE / std::mem::size_of::<T>();
    let kernel_runs =
        super::isa::isa() != super::isa::Isa::None && !matches!(simd_type::<T>(), SimdType::Other);
    let fits = k * n * std::mem::size_of::<T>() <= ALIGN_MAX_BYTES;
    if kernel_runs
        && fits
        && m >= ALIGN_MIN_ROWS
        && (!(b as usize).is_multiple_of(CACHE_LINE) || !ldb.is_multiple_of(line))
    {
        return ALIGNED_B.with(|lines| {
            let mut lines = lines.borrow_mut();
            let aligned_ldb = k.div_ceil(line) * line;
            let needed = (aligned_ldb * n).div_ceil(line);
            if lines.len() < needed {
                lines.resize(needed, Line([0; CACHE_LINE]));
            }
            let copy = lines.as_mut_ptr().cast::<T>();
            for j in 0..n {
                // SAFETY: column j of `b` holds k elements (the caller's contract), and the
                // buffer holds `aligned_ldb * n >= aligned_ldb * j + k` elements; a thread's
                // buffer is not otherwise borrowed while the kernel runs.
                unsafe {
                    std::ptr::copy_nonoverlapping(b.add(j * ldb), copy.add(j * aligned_ldb), k)
                };
            }
            // SAFETY: the same product with `b` copied to column stride `aligned_ldb`, in this
            // thread's buffer, which aliases neither `a` nor `c`.
            unsafe { dispatch(m, k, n, a, copy, aligned_ldb, c) }
        });
    }
    // SAFETY: the caller's contract.
    unsafe { dispatch(m, k, n, a, b, ldb, c) }
}

/// Bytes of a cache line, to which the copy of `B` aligns its columns.
const CACHE_LINE: usize = 64;

/// Fewest columns of `A` for which `B` is copied to aligned columns first: the copy costs
/// about what one column of `A` times `B` does.
const ALIGN_MIN_ROWS: usize = 16;

/// Largest `B` copied to aligned columns: a thread keeps its copy's buffer, and the loads it
/// speeds up hit the first levels of cache, which a larger `B` does not fit.
const ALIGN_MAX_BYTES: usize = 256 * 1024;

/// One cache line, so that a `Vec` of them starts on a line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; CACHE_LINE]);

thread_local! {
    /// Each thread's copy of `B` with its columns on cache-line boundaries. A 16-byte-aligned
    /// `B` (what `malloc` gives) makes every vector load of it straddle two lines, and the
    /// kernel loads `B` five times for each load of `A`: aligned, a ten-class `X Wᵀ` takes a
    /// quarter to a third less time (measured in a loop). Kept between calls (31 KB for the
    /// classifier).
    static ALIGNED_B: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`gemm_dot`] on the operands as given.
///
/// # Safety
/// As [`gemm_dot`].
#[allow(clippy::too_many_arguments)]
unsafe fn dispatch<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: Columns<'_, T>,
    b: *const T,
    ldb: usize,
    c: *mut T,
) -> bool {
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

#[cfg(test)]
mod tests {
    use super::super::isa::{isa, Isa};
    use super::*;

    /// The documented order of one entry, for `lanes` partial sums: lane `l` sums `a[kk] b[kk]`
    /// over `kk ≡ l (mod lanes)` below the last whole vector with fused multiply-adds in
    /// increasing `kk`; the lanes are added in order from zero, then the tail fused in order.
    macro_rules! reference_dot {
        ($name:ident, $t:ty) => {
            fn $name(a: &[$t], b: &[$t], lanes: usize) -> $t {
                let whole = a.len() / lanes * lanes;
                let mut partial = vec![0.0 as $t; lanes];
                for kk in 0..whole {
                    partial[kk % lanes] = a[kk].mul_add(b[kk], partial[kk % lanes]);
                }
                let mut sum = partial.iter().fold(0.0 as $t, |s, &x| s + x);
                for kk in whole..a.len() {
                    sum = a[kk].mul_add(b[kk], sum);
                }
                sum
            }
        };
    }
    reference_dot!(reference_f32, f32);
    reference_dot!(reference_f64, f64);

    /// Every entry of the dot kernel's product has the bits of the documented order, whatever
    /// the alignment and stride of `B` (copied to aligned columns when `A` has 16 columns or
    /// more and `B` is at most 256 KB), for blocks of two columns of `A` and one, whole and
    /// partial groups of `B`, and inner dimensions with and without a tail, in f32 and f64.
    #[test]
    fn every_entry_sums_in_the_documented_order() {
        macro_rules! check {
            ($t:ty, $reference:ident, $lanes_avx512:expr, $lanes_avx2:expr) => {{
                let lanes = match isa() {
                    Isa::Avx512 => $lanes_avx512,
                    Isa::Avx2 => $lanes_avx2,
                    Isa::None => return,
                };
                let shapes = [
                    (128, 784, 10),
                    (5, 37, 3),
                    (33, 50, 24),
                    (17, 16, 1),
                    (16, 100, 13),
                    // B too large to copy: read where it is.
                    (16, 7000, 10),
                ];
                for &(m, k, n) in &shapes {
                    for (offset, pad) in [(0, 0), (1, 0), (3, 5), (0, 1)] {
                        let ldb = k + pad;
                        let value = |v: usize| {
                            let x = ((v as f64 * 0.7548776662).fract() - 0.5) * 8.0;
                            // Some exact zeros of either sign among mixed magnitudes.
                            if v % 29 == 0 { if v % 2 == 0 { 0.0 } else { -0.0 } } else { x * x * x }
                        };
                        let a: Vec<$t> = (0..k * m).map(|v| value(v) as $t).collect();
                        let b_store: Vec<$t> =
                            (0..offset + ldb * n).map(|v| value(v + 7919) as $t).collect();
                        let b = &b_store[offset..];
                        let mut c = vec![<$t>::NAN; m * n];
                        // SAFETY: `a` has m columns of k entries, `b` holds ldb * (n - 1) + k
                        // entries and `c` m * n, none aliasing.
                        let ran = unsafe {
                            gemm_dot(m, k, n, Columns::strided(&a, k), b.as_ptr(), ldb, c.as_mut_ptr())
                        };
                        assert!(ran);
                        for i in 0..m {
                            for j in 0..n {
                                let expected =
                                    $reference(&a[i * k..(i + 1) * k], &b[j * ldb..j * ldb + k], lanes);
                                assert_eq!(
                                    c[j * m + i].to_bits(),
                                    expected.to_bits(),
                                    "{} entry ({i}, {j}) of {m} x {k} x {n}, B offset {offset}, stride {ldb}",
                                    stringify!($t)
                                );
                            }
                        }
                    }
                }
            }};
        }
        check!(f32, reference_f32, 16, 8);
        check!(f64, reference_f64, 8, 4);
    }
}
