//! Products where the result or the inner dimension is tiny: the matrix-vector and outer
//! products of the learned optimizers' MLP and LSTM (`1 x 15701` times `15701 x 3`, `15701 x 1`
//! times `1 x 3`), where general gemm would spend its time packing. Plain loops, compiled once
//! per instruction set so the compiler can use the widest registers this CPU has.

use crate::tape::Scalar;

/// `C = A B` when the result or the inner dimension is tiny (matrix-vector and outer products
/// of the learned optimizers' MLP and LSTM, like `3 x 15701` times `15701 x 1` or `1 x 15701`
/// times `15701 x 8`), where general gemm spends its time packing.
/// `A(i, kk) = a[i * sia + kk * ska]`, `B(kk, j) = b[kk * skb + j * sjb]`; `C` is
/// column-major m x n, written entry by entry and never read (it may be uninitialized).
/// Returns false, writing nothing, for other shapes.
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
    sa: (usize, usize),
    b: *const T,
    sb: (usize, usize),
    c: *mut T,
) -> bool {
    macro_rules! with_features {
        ($feature:literal, $name:ident) => {{
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name<T: Scalar>(
                m: usize,
                k: usize,
                n: usize,
                a: *const T,
                sa: (usize, usize),
                b: *const T,
                sb: (usize, usize),
                c: *mut T,
            ) -> bool {
                // SAFETY: the caller's contract is `small_products`'s.
                unsafe { small_products(m, k, n, a, sa, b, sb, c) }
            }
            $name
        }};
    }
    let mut done = false;
    let ran = by_isa!(
        // SAFETY: `by_isa!` runs this only when the CPU has AVX-512; the caller's contract is
        // `small_products`'s.
        done = unsafe { with_features!("avx512f", avx512)(m, k, n, a, sa, b, sb, c) },
        // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; the caller's
        // contract is `small_products`'s.
        done = unsafe { with_features!("avx2,fma", avx2)(m, k, n, a, sa, b, sb, c) }
    );
    if ran {
        return done;
    }
    // SAFETY: the caller's contract is `small_products`'s.
    unsafe { small_products(m, k, n, a, sa, b, sb, c) }
}

/// The loops of [`gemm_small`], inlined into a copy per instruction set. Rust never fuses a
/// multiply and an add nor reorders a sum, so every copy gives the same bits; the wider
/// registers only let the compiler compute independent entries side by side (on the paper's
/// meta-step these loops went from 327 to 291 million instructions; most of the rest left
/// with the wide weights' stored transpose).
///
/// # Safety
/// As [`gemm_small`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn small_products<T: Scalar>(
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
                let cj = c.add(j * m);
                // The first term is written (as `0 + a s`, the sum's first step), so `c` is
                // never read before it is written; the others are added in increasing `kk`.
                let s0 = bt(0, j);
                let a0 = std::slice::from_raw_parts(a, m);
                for (i, &ai) in a0.iter().enumerate() {
                    cj.add(i).write(T::zero() + ai * s0);
                }
                let cj = std::slice::from_raw_parts_mut(cj, m);
                for kk in 1..k {
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
#[inline(always)]
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
        if ska == 1 && skb == 1 {
            // Rows of A and columns of B contiguous (an LSTM's input row times its stored
            // `W_ihᵀ`): the same sums, lane by lane, over slices, which the compiler turns into
            // vector instructions; through the strides below it keeps them scalar (8% of the
            // LSTM's meta-training).
            while kk < full {
                // The slices below are sound: with unit strides along k, entries kk..kk + LANES
                // of row i of A (and of column j of B) are consecutive elements, all within k
                // (kk + LANES <= full <= k), so inside what the caller vouches for; nothing
                // writes to A or B while they are borrowed.
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = std::slice::from_raw_parts(a.add(i * sia + kk), LANES);
                    for (j, lanes) in row.iter_mut().enumerate() {
                        let y = std::slice::from_raw_parts(b.add(kk + j * sjb), LANES);
                        for l in 0..LANES {
                            lanes[l] += x[l] * y[l];
                        }
                    }
                }
                kk += LANES;
            }
        }
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
#[inline(always)]
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
            for i in 0..m {
                let row = a.add(i * sia);
                let mut sum = T::zero();
                for (kk, &bk) in bj.iter().enumerate() {
                    sum += *row.add(kk * ska) * bk;
                }
                c.add(j * m + i).write(sum);
            }
        }
    }
}

/// The wide outer-product form for any strides.
///
/// # Safety
/// As [`gemm_small`].
#[inline(always)]
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
#[inline(always)]
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
#[inline(always)]
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
        // `j` indexes all K rows of B at once.
        #[allow(clippy::needless_range_loop)]
        for j in 0..n {
            for (i, fi) in f.iter().enumerate() {
                let mut sum = T::zero();
                for kk in 0..K {
                    sum += fi[kk] * rows[kk][j];
                }
                // A raw write: `c` may be uninitialized, so no reference to it is formed.
                c.add(j * M + i).write(sum);
            }
        }
    }
}

/// The wide form when B is column-major and contiguous (`skb = 1`, `sjb = K`).
///
/// # Safety
/// As [`gemm_small`].
#[inline(always)]
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
        for (j, bj) in bs.chunks_exact(K).enumerate() {
            for (i, fi) in f.iter().enumerate() {
                let mut sum = T::zero();
                for kk in 0..K {
                    sum += fi[kk] * bj[kk];
                }
                // A raw write: `c` may be uninitialized, so no reference to it is formed.
                c.add(j * M + i).write(sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy compiled for this CPU's instruction set gives the bits of the plain loops, for
    /// every form (dots, tall, wide by rows and by columns, strided), in f32 and f64.
    #[test]
    fn every_instruction_set_gives_the_bits_of_the_plain_loops() {
        fn check<T: Scalar>(to: impl Fn(f64) -> T) {
            // (m, k, n, A strides, B strides), A and B stored in 600 entries each.
            type Case = (usize, usize, usize, (usize, usize), (usize, usize));
            let cases: [Case; 9] = [
                (10, 2, 3, (1, 10), (1, 2)),
                (3, 200, 1, (1, 3), (1, 200)),
                (3, 200, 1, (200, 1), (1, 200)),
                (1, 3, 200, (1, 1), (200, 1)),
                (200, 3, 1, (3, 1), (1, 3)),
                (200, 2, 2, (1, 200), (1, 2)),
                (3, 1, 200, (1, 3), (200, 1)),
                (3, 2, 100, (1, 3), (1, 2)),
                (2, 2, 2, (2, 1), (2, 1)),
            ];
            let a: Vec<T> = (0..600).map(|v| to((v as f64 * 0.37).sin())).collect();
            let b: Vec<T> = (0..600)
                .map(|v| to((v as f64 * 0.53).cos() * 1e3))
                .collect();
            for &(m, k, n, sa, sb) in &cases {
                let (mut fast, mut plain) = (vec![to(f64::NAN); m * n], vec![T::zero(); m * n]);
                // SAFETY: every (i, kk) and (kk, j) addressed by these strides is below 600, and
                // the outputs are separate m * n buffers.
                let (ran, ran_plain) = unsafe {
                    (
                        gemm_small(m, k, n, a.as_ptr(), sa, b.as_ptr(), sb, fast.as_mut_ptr()),
                        small_products(m, k, n, a.as_ptr(), sa, b.as_ptr(), sb, plain.as_mut_ptr()),
                    )
                };
                assert!(ran && ran_plain, "{m}x{k}x{n} took no small form");
                let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&plain), "{m}x{k}x{n} {sa:?} {sb:?}");
            }
        }
        check::<f64>(|v| v);
        check::<f32>(|v| v as f32);
    }

    /// The dot form over contiguous rows of A and columns of B gives the bits of the same
    /// products read through strides (each operand stored again with a stride of 2 or as rows).
    #[test]
    fn contiguous_dots_give_the_bits_of_the_strided_loop() {
        fn check<T: Scalar>(to: impl Fn(f64) -> T) {
            for (m, n) in [(1, 8), (1, 3), (2, 2), (4, 1)] {
                let k = 203; // 25 blocks of 8 and a tail of 3
                let a: Vec<T> = (0..m * k).map(|v| to((v as f64 * 0.37).sin())).collect();
                let b: Vec<T> = (0..k * n).map(|v| to((v as f64 * 0.53).cos())).collect();
                // A row-major (A(i, kk) at i k + kk), B column-major (B(kk, j) at j k + kk).
                let (sa, sb) = ((k, 1), (1, k));
                // The same entries at stride 2 along k.
                let spread = |v: &[T]| v.iter().flat_map(|&x| [x, T::zero()]).collect::<Vec<_>>();
                let (a2, b2) = (spread(&a), spread(&b));
                let (sa2, sb2) = ((2 * k, 2), (2, 2 * k));
                let (mut unit, mut strided) = (vec![T::zero(); m * n], vec![T::zero(); m * n]);
                // SAFETY: the strides address the m k and k n entries (twice spread for the
                // second call) exactly; the outputs are separate m * n buffers.
                unsafe {
                    assert!(gemm_small(
                        m,
                        k,
                        n,
                        a.as_ptr(),
                        sa,
                        b.as_ptr(),
                        sb,
                        unit.as_mut_ptr()
                    ));
                    assert!(gemm_small(
                        m,
                        k,
                        n,
                        a2.as_ptr(),
                        sa2,
                        b2.as_ptr(),
                        sb2,
                        strided.as_mut_ptr()
                    ));
                }
                let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&unit), bits(&strided), "{m} x {k} x {n}");
            }
        }
        check::<f64>(|v| v);
        check::<f32>(|v| v as f32);
    }
}
