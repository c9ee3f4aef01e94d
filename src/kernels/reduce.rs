//! Reductions over slices in eight running sums, added in order at the end: one running sum
//! would wait on every addition. The summation order depends on the length only.

use crate::tape::Scalar;

/// Running sums a reduction keeps.
const LANES: usize = 8;

/// `Σ a_i b_i` over two equally long slices, in eight running sums (`i ≡ l mod 8`) added in
/// order, then the tail of `len % 8` terms in order.
///
/// Panics if the lengths differ.
///
/// ```
/// use convergent_l2o::kernels::dot;
/// assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
/// ```
pub fn dot<T: Scalar>(a: &[T], b: &[T]) -> T {
    assert_eq!(a.len(), b.len(), "dot: slices of different lengths");
    let mut lanes = [T::zero(); LANES];
    let (head, tail) = a.split_at(a.len() - a.len() % LANES);
    for (ca, cb) in head.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane += x * y;
        }
    }
    let rest = tail
        .iter()
        .zip(&b[head.len()..])
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    lanes.iter().fold(T::zero(), |s, &l| s + l) + rest
}

/// `Σ a_i²` in `f64` whatever the element type, in eight running sums (`i ≡ l mod 8`) added in
/// order, plus the tail of `len % 8` terms.
///
/// ```
/// use convergent_l2o::kernels::norm_squared_f64;
/// assert_eq!(norm_squared_f64(&[3.0f32, 4.0]), 25.0);
/// ```
pub fn norm_squared_f64<T: Scalar>(a: &[T]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|v| v.as_f64().powi(2)).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v.as_f64().powi(2);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_plain_sums_on_every_tail_length() {
        for len in 0..40 {
            let a: Vec<f64> = (0..len).map(|i| (i as f64 * 0.71).sin()).collect();
            let b: Vec<f64> = (0..len).map(|i| (i as f64 * 0.29).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-12);
            let squares: f64 = a.iter().map(|x| x * x).sum();
            assert!((norm_squared_f64(&a) - squares).abs() < 1e-12);
        }
    }

    #[test]
    #[should_panic(expected = "dot: slices of different lengths")]
    fn dot_refuses_different_lengths() {
        let _ = dot(&[1.0], &[1.0, 2.0]);
    }
}
