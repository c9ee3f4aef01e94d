//! SIMD kernels for the products that dominate meta-training: a tall column-major `A` (a
//! minibatch, or its transpose) times a matrix with a handful of columns (the classifier's
//! weights or a cotangent). General gemm packs `A` into panels before each product; at
//! `n = 10` columns that packing moves as many bytes as the product itself, so these kernels
//! stream `A`'s columns straight from memory and keep the whole `C` block in registers.

use super::columns::Columns;
use super::simd::{simd_type, Simd, SimdType};
use crate::tape::Scalar;

/// Widest right-hand side a kernel keeps in registers; wider ones are done in column chunks.
pub(super) const MAX_COLUMNS: usize = 12;

/// Generates `$name::<N, ADD>`: `C (m x N) = A (m x k, its columns `a`) * Bp`, or with `ADD`
/// `C += A Bp`, the sums starting from `C`'s entries, with `Bp` the right-hand side packed
/// row-major (`Bp[kk * N + j] = B[kk, j]`) and `C` column-major with column stride `ldc`. Rows
/// go in blocks of two vectors (2N accumulators), then one vector, then scalars; every entry
/// sums over `kk` in increasing order.
macro_rules! skinny_kernel {
    ($name:ident, $t:ty, $feature:literal, $lanes:expr, $registers:expr, $zero:path, $load:path,
     $store:path, $set1:path, $fma:path) => {
        #[target_feature(enable = $feature)]
        #[allow(clippy::missing_safety_doc)]
        pub(super) unsafe fn $name<const N: usize, const ADD: bool>(
            m: usize,
            a: &[*const $t],
            bp: *const $t,
            c: *mut $t,
            ldc: usize,
        ) {
            // Every access below is inside what the caller guarantees (rows < m, columns < N,
            // kk < k = a.len(); `c` initialized with `ADD`); prefetches never fault.
            // SAFETY: the caller guarantees `$feature` on this CPU, `m` valid elements from each
            // column start in `a`, `k * N` at `bp`, `ldc * (N - 1) + m` at `c` aliasing neither.
            unsafe {
                const L: usize = $lanes;
                // A block reads one piece of every column of A; the next blocks read the pieces
                // below, which the hardware does not fetch ahead across a column stride: fetch the
                // piece two 64-byte lines down while this one is used.
                const AHEAD: usize = 128 / std::mem::size_of::<$t>();
                // Two vectors of rows need 2N accumulators, two loads and a broadcast in
                // registers; beyond the register file they would spill, so wide blocks go one
                // vector at a time.
                let two_vectors = 2 * N + 3 <= $registers;
                let mut i = 0;
                while two_vectors && i + 2 * L <= m {
                    let mut acc0 = [$zero(); N];
                    let mut acc1 = [$zero(); N];
                    if ADD {
                        for j in 0..N {
                            acc0[j] = $load(c.add(j * ldc + i));
                            acc1[j] = $load(c.add(j * ldc + i + L));
                        }
                    }
                    for (kk, column) in a.iter().enumerate() {
                        let col = column.add(i);
                        prefetch(col.wrapping_add(AHEAD));
                        let x0 = $load(col);
                        let x1 = $load(col.add(L));
                        let row = bp.add(kk * N);
                        for j in 0..N {
                            let b = $set1(*row.add(j));
                            acc0[j] = $fma(x0, b, acc0[j]);
                            acc1[j] = $fma(x1, b, acc1[j]);
                        }
                    }
                    for j in 0..N {
                        $store(c.add(j * ldc + i), acc0[j]);
                        $store(c.add(j * ldc + i + L), acc1[j]);
                    }
                    i += 2 * L;
                }
                while i + L <= m {
                    let mut acc = [$zero(); N];
                    if ADD {
                        for j in 0..N {
                            acc[j] = $load(c.add(j * ldc + i));
                        }
                    }
                    for (kk, column) in a.iter().enumerate() {
                        let col = column.add(i);
                        prefetch(col.wrapping_add(AHEAD));
                        let x = $load(col);
                        let row = bp.add(kk * N);
                        for j in 0..N {
                            acc[j] = $fma(x, $set1(*row.add(j)), acc[j]);
                        }
                    }
                    for j in 0..N {
                        $store(c.add(j * ldc + i), acc[j]);
                    }
                    i += L;
                }
                for r in i..m {
                    for j in 0..N {
                        let mut s: $t = if ADD { *c.add(j * ldc + r) } else { 0.0 };
                        for (kk, column) in a.iter().enumerate() {
                            s = (*column.add(r)).mul_add(*bp.add(kk * N + j), s);
                        }
                        *c.add(j * ldc + r) = s;
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// A hint to bring the line holding `p` into the cache; never faults, whatever `p`.
    #[inline(always)]
    unsafe fn prefetch<T>(p: *const T) {
        // SAFETY: a prefetch is a hint; it reads nothing and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) };
    }

    skinny_kernel!(
        f32_avx512,
        f32,
        "avx512f",
        16,
        32,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
    skinny_kernel!(
        f64_avx512,
        f64,
        "avx512f",
        8,
        32,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd
    );
    skinny_kernel!(
        f32_avx2,
        f32,
        "avx2,fma",
        8,
        16,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    );
    skinny_kernel!(
        f64_avx2,
        f64,
        "avx2,fma",
        4,
        16,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd
    );
}

/// Columns of `A` per pass of the column kernel. A block of rows reads one piece of every
/// column of a pass, so a pass over all of a minibatch's columns would touch a page per column,
/// which the hardware does not fetch ahead; 32 columns are 32 sequential streams, which it
/// does (a 784 x 128 `Xᵀ` times 10 columns, from memory, in a loop: two to three times faster).
const PASS: usize = 32;

macro_rules! entry {
    ($name:ident, $t:ty, $avx512:ident, $avx2:ident) => {
        /// The kernel for `n <= MAX_COLUMNS` on a packed `Bp`, in passes of [`PASS`] columns of
        /// `A`, each after the first adding to the sums the last stored: every entry still sums
        /// over `kk` in increasing order, so the bits do not depend on the passes. False,
        /// writing nothing, when this CPU has neither AVX-512 nor AVX2 + FMA.
        ///
        /// # Safety
        /// As [`gemm_skinny`], with `bp` holding `k * n` elements and `c` of column stride `ldc`.
        #[allow(clippy::too_many_arguments)]
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
        pub(super) unsafe fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: Columns<'_, $t>,
            bp: *const $t,
            c: *mut $t,
            ldc: usize,
        ) -> bool {
            macro_rules! go {
                ($kernel:ident, $add:expr, $a:expr, $bp:expr) => {
                    match n {
                        1 => x86::$kernel::<1, $add>(m, $a, $bp, c, ldc),
                        2 => x86::$kernel::<2, $add>(m, $a, $bp, c, ldc),
                        3 => x86::$kernel::<3, $add>(m, $a, $bp, c, ldc),
                        4 => x86::$kernel::<4, $add>(m, $a, $bp, c, ldc),
                        5 => x86::$kernel::<5, $add>(m, $a, $bp, c, ldc),
                        6 => x86::$kernel::<6, $add>(m, $a, $bp, c, ldc),
                        7 => x86::$kernel::<7, $add>(m, $a, $bp, c, ldc),
                        8 => x86::$kernel::<8, $add>(m, $a, $bp, c, ldc),
                        9 => x86::$kernel::<9, $add>(m, $a, $bp, c, ldc),
                        10 => x86::$kernel::<10, $add>(m, $a, $bp, c, ldc),
                        11 => x86::$kernel::<11, $add>(m, $a, $bp, c, ldc),
                        12 => x86::$kernel::<12, $add>(m, $a, $bp, c, ldc),
                        _ => unreachable!("skinny kernel called with {n} columns"),
                    }
                };
            }
            // The first pass writes `c`, the others add to it; `k = 0` makes one pass, which
            // writes the zeros.
            macro_rules! passes {
                ($kernel:ident) => {{
                    let mut first = 0;
                    let mut starts = [std::ptr::null::<$t>(); PASS];
                    loop {
                        let count = PASS.min(k - first);
                        for (kk, start) in starts[..count].iter_mut().enumerate() {
                            *start = a.at(first + kk);
                        }
                        let (ap, bpp) = (&starts[..count], bp.add(first * n));
                        if first == 0 {
                            go!($kernel, false, ap, bpp)
                        } else {
                            go!($kernel, true, ap, bpp)
                        }
                        first += count;
                        if first >= k {
                            break;
                        }
                    }
                }};
            }
            // Each pass reads columns `first..first + count` of `a` and the rows of `bp` for
            // them, adding to entries of `c` the first pass wrote.
            by_isa!(
                // SAFETY: `by_isa!` runs this only when the CPU has AVX-512; the caller
                // guarantees the extents.
                unsafe { passes!($avx512) },
                // SAFETY: as for AVX-512, on a CPU with AVX2 and FMA.
                unsafe { passes!($avx2) }
            )
        }
    };
}

entry!(kernel_f32, f32, f32_avx512, f32_avx2);
entry!(kernel_f64, f64, f64_avx512, f64_avx2);

/// `C = A B` for a column-major `A` (m x k, its columns `a`) and any `B` (k x n, given by
/// `b_at(kk, j)`), writing the column-major m x n `C` (column stride `m`). Returns false, having
/// written nothing, when no SIMD kernel runs on this CPU or `T` is neither `f32` nor `f64`;
/// the caller then uses general gemm.
///
/// # Safety
/// Each of the k columns of `a` must hold `m` valid elements and `c` must hold `m * n` elements that
/// alias neither `a` nor `B`.
pub(super) unsafe fn gemm_skinny<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: Columns<'_, T>,
    b_at: impl Fn(usize, usize) -> T,
    c: *mut T,
) -> bool {
    let simd = simd_type::<T>();
    if simd == SimdType::Other {
        return false;
    }
    let mut packed = Vec::with_capacity(k * MAX_COLUMNS.min(n));
    let mut j0 = 0;
    while j0 < n {
        let width = MAX_COLUMNS.min(n - j0);
        packed.clear();
        for kk in 0..k {
            packed.extend((j0..j0 + width).map(|j| b_at(kk, j)));
        }
        let (bp, cj) = (packed.as_ptr(), c.wrapping_add(j0 * m));
        let ran = match simd {
            // SAFETY: `T` is `f32` (equal type ids), so the casts only rename the pointee type;
            // `a` is valid as the caller guarantees, `bp` holds k x width packed entries, and
            // columns j0..j0 + width of `c` lie inside its m * n elements.
            SimdType::F32 => unsafe {
                f32::skinny_kernel(m, k, width, a.cast(), bp.cast(), cj.cast(), m)
            },
            // SAFETY: as for `f32`, with `T` equal to `f64`.
            SimdType::F64 => unsafe {
                f64::skinny_kernel(m, k, width, a.cast(), bp.cast(), cj.cast(), m)
            },
            SimdType::Other => false,
        };
        if !ran {
            return false;
        }
        j0 += width;
    }
    true
}
