//! SIMD kernels for the products that dominate meta-training: a tall column-major `A` (a
//! minibatch, or its transpose) times a matrix with a handful of columns (the classifier's
//! weights or a cotangent). General gemm packs `A` into panels before each product; at
//! `n = 10` columns that packing moves as many bytes as the product itself, so these kernels
//! stream `A`'s columns straight from memory and keep the whole `C` block in registers.

use super::simd::{simd_type, Simd, SimdType};
use crate::tape::Scalar;

/// Widest right-hand side a kernel keeps in registers; wider ones are done in column chunks.
pub(super) const MAX_COLUMNS: usize = 12;

/// Generates `$name::<N>`: `C (m x N) = A (m x k, column stride lda) * Bp`, with `Bp` the
/// right-hand side packed row-major (`Bp[kk * N + j] = B[kk, j]`) and `C` column-major with
/// column stride `ldc`. Rows go in blocks of two vectors (2N accumulators), then one vector,
/// then scalars; every entry sums over `kk` in increasing order.
macro_rules! skinny_kernel {
    ($name:ident, $t:ty, $feature:literal, $lanes:expr, $registers:expr, $zero:path, $load:path,
     $store:path, $set1:path, $fma:path) => {
        #[target_feature(enable = $feature)]
        #[allow(clippy::missing_safety_doc)]
        pub(super) unsafe fn $name<const N: usize>(
            m: usize,
            k: usize,
            a: *const $t,
            lda: usize,
            bp: *const $t,
            c: *mut $t,
            ldc: usize,
        ) {
            // SAFETY: the caller guarantees `$feature` on this CPU, `lda * (k - 1) + m` valid
            // elements at `a`, `k * N` at `bp`, `ldc * (N - 1) + m` at `c` aliasing neither; every
            // access below is inside those (rows < m, columns < N, kk < k); prefetches never fault.
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
                    for kk in 0..k {
                        let col = a.add(kk * lda + i);
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
                    for kk in 0..k {
                        let col = a.add(kk * lda + i);
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
                        let mut s: $t = 0.0;
                        for kk in 0..k {
                            s = (*a.add(kk * lda + r)).mul_add(*bp.add(kk * N + j), s);
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

macro_rules! entry {
    ($name:ident, $t:ty, $avx512:ident, $avx2:ident) => {
        /// The kernel for `n <= MAX_COLUMNS` on a packed `Bp`; false, writing nothing, when this
        /// CPU has neither AVX-512 nor AVX2 + FMA.
        ///
        /// # Safety
        /// As [`gemm_skinny`], with `bp` holding `k * n` elements and `c` of column stride `ldc`.
        #[allow(clippy::too_many_arguments)]
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
        pub(super) unsafe fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: *const $t,
            lda: usize,
            bp: *const $t,
            c: *mut $t,
            ldc: usize,
        ) -> bool {
            macro_rules! go {
                ($kernel:ident) => {
                    match n {
                        1 => x86::$kernel::<1>(m, k, a, lda, bp, c, ldc),
                        2 => x86::$kernel::<2>(m, k, a, lda, bp, c, ldc),
                        3 => x86::$kernel::<3>(m, k, a, lda, bp, c, ldc),
                        4 => x86::$kernel::<4>(m, k, a, lda, bp, c, ldc),
                        5 => x86::$kernel::<5>(m, k, a, lda, bp, c, ldc),
                        6 => x86::$kernel::<6>(m, k, a, lda, bp, c, ldc),
                        7 => x86::$kernel::<7>(m, k, a, lda, bp, c, ldc),
                        8 => x86::$kernel::<8>(m, k, a, lda, bp, c, ldc),
                        9 => x86::$kernel::<9>(m, k, a, lda, bp, c, ldc),
                        10 => x86::$kernel::<10>(m, k, a, lda, bp, c, ldc),
                        11 => x86::$kernel::<11>(m, k, a, lda, bp, c, ldc),
                        12 => x86::$kernel::<12>(m, k, a, lda, bp, c, ldc),
                        _ => unreachable!("skinny kernel called with {n} columns"),
                    }
                };
            }
            by_isa!(
                // SAFETY: `by_isa!` runs this only when the CPU has AVX-512; the caller
                // guarantees the extents.
                unsafe { go!($avx512) },
                // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; the caller
                // guarantees the extents.
                unsafe { go!($avx2) }
            )
        }
    };
}

entry!(kernel_f32, f32, f32_avx512, f32_avx2);
entry!(kernel_f64, f64, f64_avx512, f64_avx2);

/// `C = A B` for a column-major `A` (m x k, column stride `lda`) and any `B` (k x n, given by
/// `b_at(kk, j)`), writing the column-major m x n `C` (column stride `m`). Returns false, having
/// written nothing, when no SIMD kernel runs on this CPU or `T` is neither `f32` nor `f64`;
/// the caller then uses general gemm.
///
/// # Safety
/// `a` must address `lda * (k - 1) + m` valid elements and `c` must hold `m * n` elements that
/// alias neither `a` nor `B`.
pub(super) unsafe fn gemm_skinny<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    lda: usize,
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
                f32::skinny_kernel(m, k, width, a.cast(), lda, bp.cast(), cj.cast(), m)
            },
            // SAFETY: as for `f32`, with `T` equal to `f64`.
            SimdType::F64 => unsafe {
                f64::skinny_kernel(m, k, width, a.cast(), lda, bp.cast(), cj.cast(), m)
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

/// `C = A B` when the result or the inner dimension is tiny (matrix-vector and outer products
/// of the learned optimizers' MLP and LSTM, like `3 x 15701` times `15701 x 1` or `1 x 15701`
/// times `15701 x 8`), where general gemm spends its time packing.
/// `A(i, kk) = a[i * sia + kk * ska]`, `B(kk, j) = b[kk * skb + j * sjb]`; `C` is
/// column-major m x n and must hold zeros. Returns false, writing nothing, for other shapes.
///
/// # Safety
/// Every element addressed by the dimensions and strides must be valid, and `c` (m * n
/// elements) must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_small<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    (sia, ska): (usize, usize),
    b: *const T,
    (skb, sjb): (usize, usize),
    c: *mut T,
) -> bool {
    // SAFETY: every access below goes through the dimensions and strides the caller vouches
    // for (`A(i, kk)` with i < m, kk < k; `B(kk, j)` with kk < k, j < n), and writes go to the
    // m * n elements of `c`, which alias neither input; the helpers share this contract.
    unsafe {
        let bt = |kk: usize, j: usize| *b.add(kk * skb + j * sjb);
        if k <= 4 && m >= n {
            // Outer-product-like, tall: each column of C sums k scaled columns of A.
            if sia != 1 {
                // Strided columns (a transposed A, like the MLP's `Wᵀ g`): one pass over the rows
                // of A, which are then contiguous, instead of k strided passes.
                match k {
                    1 => tall_rows::<T, 1>(m, n, a, (sia, ska), b, (skb, sjb), c),
                    2 => tall_rows::<T, 2>(m, n, a, (sia, ska), b, (skb, sjb), c),
                    3 => tall_rows::<T, 3>(m, n, a, (sia, ska), b, (skb, sjb), c),
                    _ => tall_rows::<T, 4>(m, n, a, (sia, ska), b, (skb, sjb), c),
                }
                return true;
            }
            for j in 0..n {
                let cj = std::slice::from_raw_parts_mut(c.add(j * m), m);
                for kk in 0..k {
                    let s = bt(kk, j);
                    let ak = std::slice::from_raw_parts(a.add(kk * ska), m);
                    for (ci, &ai) in cj.iter_mut().zip(ak) {
                        *ci += ai * s;
                    }
                }
            }
            return true;
        }
        if k <= 4 || (m == 1 && k <= 8) {
            // Outer-product-like, wide: every entry is an independent sum of k terms. Constant
            // M and K with unit-stride columns of B (or rows of a column-major B) let the
            // compiler vectorize over the columns of C. A single row takes up to 8 terms (an LSTM
            // of hidden size 2 has 8 gates), and up to 8 rows a single term (its weight gradient).
            macro_rules! wide {
                ($f:ident) => {
                    match (m, k) {
                        (1, 1) => $f::<T, 1, 1>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 2) => $f::<T, 1, 2>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 3) => $f::<T, 1, 3>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 4) => $f::<T, 1, 4>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 5) => $f::<T, 1, 5>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 6) => $f::<T, 1, 6>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 7) => $f::<T, 1, 7>(n, a, (sia, ska), b, (skb, sjb), c),
                        (1, 8) => $f::<T, 1, 8>(n, a, (sia, ska), b, (skb, sjb), c),
                        (2, 1) => $f::<T, 2, 1>(n, a, (sia, ska), b, (skb, sjb), c),
                        (2, 2) => $f::<T, 2, 2>(n, a, (sia, ska), b, (skb, sjb), c),
                        (2, 3) => $f::<T, 2, 3>(n, a, (sia, ska), b, (skb, sjb), c),
                        (2, 4) => $f::<T, 2, 4>(n, a, (sia, ska), b, (skb, sjb), c),
                        (3, 1) => $f::<T, 3, 1>(n, a, (sia, ska), b, (skb, sjb), c),
                        (3, 2) => $f::<T, 3, 2>(n, a, (sia, ska), b, (skb, sjb), c),
                        (3, 3) => $f::<T, 3, 3>(n, a, (sia, ska), b, (skb, sjb), c),
                        (3, 4) => $f::<T, 3, 4>(n, a, (sia, ska), b, (skb, sjb), c),
                        (4, 1) => $f::<T, 4, 1>(n, a, (sia, ska), b, (skb, sjb), c),
                        (4, 2) => $f::<T, 4, 2>(n, a, (sia, ska), b, (skb, sjb), c),
                        (4, 3) => $f::<T, 4, 3>(n, a, (sia, ska), b, (skb, sjb), c),
                        (4, 4) => $f::<T, 4, 4>(n, a, (sia, ska), b, (skb, sjb), c),
                        (8, 1) => $f::<T, 8, 1>(n, a, (sia, ska), b, (skb, sjb), c),
                        _ => wide_outputs_any(m, k, n, a, (sia, ska), b, (skb, sjb), c),
                    }
                };
            }
            if sjb == 1 {
                wide!(wide_outputs_rows);
            } else if skb == 1 && sjb == k {
                wide!(wide_outputs_columns);
            } else {
                wide_outputs_any(m, k, n, a, (sia, ska), b, (skb, sjb), c);
            }
            return true;
        }
        // Few outputs, long inner dimension.
        macro_rules! dots {
            ($(($mm:literal, $nn:literal)),*) => {
                match (m, n) {
                    $(($mm, $nn) => {
                        dot_outputs::<T, $mm, $nn>(k, a, (sia, ska), b, (skb, sjb), c)
                    })*
                    _ => return false,
                }
            };
        }
        dots!(
            (1, 1),
            (1, 2),
            (1, 3),
            (1, 4),
            (1, 8),
            (2, 1),
            (3, 1),
            (4, 1),
            (8, 1),
            (2, 2)
        );
        true
    }
}

/// `C (M x N) = A B` as M N dot products of length k, each split into LANES independent partial
/// sums (one running sum would serialize on the add latency); M and N are constants so the
/// partial sums live in registers, and all outputs advance together so `A` and `B` are each
/// read once, in storage order when they are vectors.
///
/// # Safety
/// As [`gemm_small`].
unsafe fn dot_outputs<T: Scalar, const M: usize, const N: usize>(
    k: usize,
    a: *const T,
    (sia, ska): (usize, usize),
    b: *const T,
    (skb, sjb): (usize, usize),
    c: *mut T,
) {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every element
    // addressed lies within the dimensions and strides, and `c` aliases neither input.
    unsafe {
        const LANES: usize = 8;
        let mut acc = [[[T::zero(); LANES]; N]; M];
        let full = k - k % LANES;
        let mut kk = 0;
        while kk < full {
            for l in 0..LANES {
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = *a.add(i * sia + (kk + l) * ska);
                    for (j, lanes) in row.iter_mut().enumerate() {
                        lanes[l] += x * *b.add((kk + l) * skb + j * sjb);
                    }
                }
            }
            kk += LANES;
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, lanes) in row.iter().enumerate() {
                let mut sum = lanes.iter().fold(T::zero(), |s, &v| s + v);
                for kk in full..k {
                    sum += *a.add(i * sia + kk * ska) * *b.add(kk * skb + j * sjb);
                }
                *c.add(j * M + i) = sum;
            }
        }
    }
}

/// The tall outer-product form a row of A at a time: `C(i, j) = Σ_kk A(i, kk) B(kk, j)`, summed
/// in increasing `kk` as the column form does.
///
/// # Safety
/// As [`gemm_small`].
#[allow(clippy::too_many_arguments)]
unsafe fn tall_rows<T: Scalar, const K: usize>(
    m: usize,
    n: usize,
    a: *const T,
    (sia, ska): (usize, usize),
    b: *const T,
    (skb, sjb): (usize, usize),
    c: *mut T,
) {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every element
    // addressed lies within the dimensions and strides, and `c` aliases neither input.
    unsafe {
        for j in 0..n {
            let bj: [T; K] = std::array::from_fn(|kk| *b.add(kk * skb + j * sjb));
            let cj = std::slice::from_raw_parts_mut(c.add(j * m), m);
            for (i, ci) in cj.iter_mut().enumerate() {
                let row = a.add(i * sia);
                let mut sum = *ci;
                for (kk, &bk) in bj.iter().enumerate() {
                    sum += *row.add(kk * ska) * bk;
                }
                *ci = sum;
            }
        }
    }
}

/// The wide outer-product form for any strides.
///
/// # Safety
/// As [`gemm_small`].
#[allow(clippy::too_many_arguments)]
unsafe fn wide_outputs_any<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    (sia, ska): (usize, usize),
    b: *const T,
    (skb, sjb): (usize, usize),
    c: *mut T,
) {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every element
    // addressed lies within the dimensions and strides, and `c` aliases neither input.
    unsafe {
        for j in 0..n {
            for i in 0..m {
                let mut sum = T::zero();
                for kk in 0..k {
                    sum += *a.add(i * sia + kk * ska) * *b.add(kk * skb + j * sjb);
                }
                *c.add(j * m + i) = sum;
            }
        }
    }
}

/// Copies the M x K left factor into a constant-size array (it is tiny and reused n times).
///
/// # Safety
/// As [`gemm_small`].
unsafe fn small_factor<T: Scalar, const M: usize, const K: usize>(
    a: *const T,
    (sia, ska): (usize, usize),
) -> [[T; K]; M] {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every `A(i, kk)` read
    // has i < M and kk < K, within the dimensions and strides the caller vouches for.
    unsafe {
        let mut f = [[T::zero(); K]; M];
        for (i, row) in f.iter_mut().enumerate() {
            for (kk, v) in row.iter_mut().enumerate() {
                *v = *a.add(i * sia + kk * ska);
            }
        }
        f
    }
}

/// The wide form when the rows of B are contiguous (`sjb = 1`).
///
/// # Safety
/// As [`gemm_small`].
unsafe fn wide_outputs_rows<T: Scalar, const M: usize, const K: usize>(
    n: usize,
    a: *const T,
    a_strides: (usize, usize),
    b: *const T,
    (skb, _): (usize, usize),
    c: *mut T,
) {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every element
    // addressed lies within the dimensions and strides, and `c` aliases neither input.
    unsafe {
        let f = small_factor::<T, M, K>(a, a_strides);
        let rows: [&[T]; K] =
            std::array::from_fn(|kk| std::slice::from_raw_parts(b.add(kk * skb), n));
        let out = std::slice::from_raw_parts_mut(c, M * n);
        for (j, col) in out.chunks_exact_mut(M).enumerate() {
            for (i, v) in col.iter_mut().enumerate() {
                let mut sum = T::zero();
                for kk in 0..K {
                    sum += f[i][kk] * rows[kk][j];
                }
                *v = sum;
            }
        }
    }
}

/// The wide form when B is column-major and contiguous (`skb = 1`, `sjb = K`).
///
/// # Safety
/// As [`gemm_small`].
unsafe fn wide_outputs_columns<T: Scalar, const M: usize, const K: usize>(
    n: usize,
    a: *const T,
    a_strides: (usize, usize),
    b: *const T,
    _: (usize, usize),
    c: *mut T,
) {
    // SAFETY: as in [`gemm_small`], whose contract the caller upholds: every element
    // addressed lies within the dimensions and strides, and `c` aliases neither input.
    unsafe {
        let f = small_factor::<T, M, K>(a, a_strides);
        let bs = std::slice::from_raw_parts(b, K * n);
        let out = std::slice::from_raw_parts_mut(c, M * n);
        for (col, bj) in out.chunks_exact_mut(M).zip(bs.chunks_exact(K)) {
            for (i, v) in col.iter_mut().enumerate() {
                let mut sum = T::zero();
                for kk in 0..K {
                    sum += f[i][kk] * bj[kk];
                }
                *v = sum;
            }
        }
    }
}
