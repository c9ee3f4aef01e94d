//! Sums of outer products `u_t v_tᵀ` added into a running sum in place: the rank-one weight
//! gradients a backward sweep collects from a weight's products with vectors, one per use.
//!
//! Formed one at a time by [`gemm_append`](super::gemm_append) and added, every entry of a sum
//! goes `c + (0 + u_1i v_1j)`, then `+ (0 + u_2i v_2j)`, ...: the small-shape loops round a
//! one-term sum as `0 + u_i v_j`. [`add_outer_products`] gives those bits without forming any
//! product, and reads and writes the sum once for all the terms instead of once per term.

use super::skinny::MAX_COLUMNS;
use crate::tape::Scalar;

/// Columns of the sum that stay in L1 while every term is added into them.
const BLOCK_COLUMNS: usize = 64;

/// Whether [`add_outer_products`] keeps the bits of forming a `rows x cols` outer product with
/// [`gemm_append`](super::gemm_append) and adding it, and pays: false for the shapes that
/// product may take to the column kernel (16 rows or more, at most 24 columns), whose fused
/// multiply-add rounds `0 + u_i v_j` as one operation, and for columns shorter than 8, which
/// the loop would not vectorize (formed across columns and then added, they do). An LSTM's
/// `8 x 15701` input-weight gradient passes; Omega's `3 x 15701` does not.
pub(crate) fn outer_products_keep_bits(rows: usize, cols: usize) -> bool {
    rows >= 8 && !(rows >= 16 && cols <= 2 * MAX_COLUMNS)
}

/// `c += u_1 v_1ᵀ`, then `c += u_2 v_2ᵀ`, ... in place (`c` column-major, `u_t.len()` x
/// `v_t.len()`), every entry as `c + (0 + u_i v_j)`, term after term: for the shapes
/// [`outer_products_keep_bits`] accepts, the bits of forming each product and adding it in
/// turn. A block of columns stays in cache while every term is added into it.
///
/// Panics unless every `u_t` has `rows` entries and every `v_t` `cols`, with `rows * cols` the
/// length of `c` and `rows` the length of the first `u`.
pub(crate) fn add_outer_products<T: Scalar>(terms: &[(&[T], &[T])], c: &mut [T]) {
    let Some(&(first, _)) = terms.first() else {
        return;
    };
    let rows = first.len();
    for (k, (u, v)) in terms.iter().enumerate() {
        assert!(
            u.len() == rows && rows * v.len() == c.len(),
            "add_outer_products: term {k} is {} x {}, the sum has {} entries in columns of {rows}",
            u.len(),
            v.len(),
            c.len()
        );
    }
    if rows == 0 {
        return;
    }
    macro_rules! with_features {
        ($feature:literal, $name:ident) => {{
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feature)]
            unsafe fn $name<T: Scalar>(terms: &[(&[T], &[T])], c: &mut [T], rows: usize) {
                add_in_blocks(terms, c, rows)
            }
            $name
        }};
    }
    let ran = by_isa!(
        // SAFETY: `by_isa!` runs this only when the CPU has AVX-512; the loop reads and writes
        // slices only.
        unsafe { with_features!("avx512f", avx512)(terms, c, rows) },
        // SAFETY: `by_isa!` runs this only when the CPU has AVX2 and FMA; the loop reads and
        // writes slices only.
        unsafe { with_features!("avx2,fma", avx2)(terms, c, rows) }
    );
    if !ran {
        add_in_blocks(terms, c, rows);
    }
}

/// The loop of [`add_outer_products`], inlined into a copy per instruction set (Rust never
/// fuses the multiply and the adds, so every copy gives the same bits). Each entry sees its
/// terms in order; the blocks only change which entry is worked on when.
#[inline(always)]
fn add_in_blocks<T: Scalar>(terms: &[(&[T], &[T])], c: &mut [T], rows: usize) {
    let mut done = 0;
    if rows == 8 {
        // Columns of 8 (an LSTM's four gates of two cells): a block's sums stay in registers
        // while every term is added, instead of a load, a store and a loop per column and term.
        done = c.len() / (8 * REGISTER_COLUMNS) * REGISTER_COLUMNS;
        for (b, block) in c[..8 * done]
            .chunks_exact_mut(8 * REGISTER_COLUMNS)
            .enumerate()
        {
            add_to_registers::<T, 8>(terms, block, b * REGISTER_COLUMNS);
        }
    }
    let rest = &mut c[rows * done..];
    for (b, block) in rest.chunks_mut(rows * BLOCK_COLUMNS).enumerate() {
        let first = done + b * BLOCK_COLUMNS;
        let width = block.len() / rows;
        for (u, v) in terms {
            for (column, &vj) in block.chunks_exact_mut(rows).zip(&v[first..first + width]) {
                for (sum, &ui) in column.iter_mut().zip(*u) {
                    *sum += T::zero() + ui * vj;
                }
            }
        }
    }
}

/// How far ahead of its block a term's `v` is prefetched (four lines of `f32`).
const PREFETCH_COLUMNS: usize = 64;

/// A hint to bring the line holding `p` into the cache; `p` may point anywhere.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing and never faults, whatever the address;
    // SSE, which it needs, is part of x86_64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Columns of 8 whose sums one call of [`add_to_registers`] keeps in registers.
const REGISTER_COLUMNS: usize = 8;

/// Every term added into `REGISTER_COLUMNS` columns of `R` entries (`block`, the columns from
/// `first` on), the sums held in registers from the first term to the last.
#[inline(always)]
fn add_to_registers<T: Scalar, const R: usize>(
    terms: &[(&[T], &[T])],
    block: &mut [T],
    first: usize,
) {
    let mut sums = [[T::zero(); R]; REGISTER_COLUMNS];
    for (sum, column) in sums.iter_mut().zip(block.chunks_exact(R)) {
        sum.copy_from_slice(column);
    }
    for (u, v) in terms {
        // Every term's `v` is its own stream, too many for the hardware to fetch ahead.
        prefetch(v.as_ptr().wrapping_add(first + PREFETCH_COLUMNS));
        let u: &[T; R] = u[..R].try_into().expect("columns of R entries");
        let v: &[T; REGISTER_COLUMNS] = v[first..first + REGISTER_COLUMNS]
            .try_into()
            .expect("a block of columns");
        for (sum, &vj) in sums.iter_mut().zip(v) {
            for (s, &ui) in sum.iter_mut().zip(u) {
                *s += T::zero() + ui * vj;
            }
        }
    }
    for (sum, column) in sums.iter().zip(block.chunks_exact_mut(R)) {
        column.copy_from_slice(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::{gemm_append, DenseRef};
    use super::*;

    fn values(n: usize, phase: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + phase) * 0.731).sin() * 1e3)
            .collect()
    }

    /// Added in place, a sequence of outer products gives the bits of forming each one with
    /// `gemm_append` (either operand read transposed) and adding it in turn, from an existing
    /// sum or from none (the first product formed as it is); refused shapes are named.
    #[test]
    fn outer_products_added_in_place_keep_the_bits_of_the_formed_products() {
        for (rows, cols) in [
            (8, 1),
            (8, 15701),
            (8, 130),
            (8, 64),
            (8, 7),
            (12, 30),
            (20, 30),
            (16, 24),
            (3, 40),
            (30, 3),
        ] {
            assert_eq!(
                outer_products_keep_bits(rows, cols),
                rows >= 8 && !(rows >= 16 && cols <= 24),
                "{rows} x {cols}"
            );
            if !outer_products_keep_bits(rows, cols) {
                continue;
            }
            let factors: Vec<(Vec<f32>, Vec<f32>)> = (0..5)
                .map(|t| (values(rows, 0.5 + t as f32), values(cols, 1.5 - t as f32)))
                .collect();
            let terms: Vec<(&[f32], &[f32])> = factors
                .iter()
                .map(|(u, v)| (u.as_slice(), v.as_slice()))
                .collect();
            for (ta, tb) in [(false, false), (true, true), (false, true)] {
                let formed = |u: &[f32], v: &[f32]| {
                    let mut product = Vec::new();
                    let (a_rows, a_cols) = if ta { (1, rows) } else { (rows, 1) };
                    let (b_rows, b_cols) = if tb { (cols, 1) } else { (1, cols) };
                    gemm_append(
                        DenseRef::new(u, a_rows, a_cols),
                        ta,
                        DenseRef::new(v, b_rows, b_cols),
                        tb,
                        &mut product,
                    );
                    product
                };
                // From an existing sum, and from none: the first product as formed.
                for start in [Some(values(rows * cols, 2.5)), None] {
                    let mut expected = match &start {
                        Some(s) => s.clone(),
                        None => formed(terms[0].0, terms[0].1),
                    };
                    let skip = usize::from(start.is_none());
                    for (u, v) in &terms[skip..] {
                        for (s, p) in expected.iter_mut().zip(formed(u, v)) {
                            *s += p;
                        }
                    }
                    let mut in_place = start.unwrap_or_else(|| vec![0.0; rows * cols]);
                    add_outer_products(&terms, &mut in_place);
                    let bits = |m: &[f32]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&in_place),
                        bits(&expected),
                        "{rows} x {cols}, transposes {ta} {tb}"
                    );
                }
            }
        }
    }

    /// A signed zero as the first product stays what forming it gives (`0 + -0` is `+0`).
    #[test]
    fn a_negative_zero_product_sums_as_formed() {
        let (u, v) = ([-0.0f32; 8], [1.0f32; 3]);
        let mut sum = vec![0.0f32; 24];
        add_outer_products(&[(&u, &v)], &mut sum);
        assert!(sum.iter().all(|s| s.to_bits() == 0f32.to_bits()));
    }

    #[test]
    #[should_panic(expected = "term 1 is 8 x 2")]
    fn terms_of_another_shape_are_named() {
        let (u, v, w) = ([1.0f32; 8], [1.0f32; 3], [1.0f32; 2]);
        add_outer_products(&[(&u, &v), (&u, &w)], &mut [0.0; 24]);
    }
}
