//! `stop_gradient`: the identity in value, with a VJP that is identically zero.
//!
//! Recorded as a constant node: a node with a zero VJP and no op are the same to every
//! backward pass (first or higher order), and the constant costs nothing downstream. Used for
//! the first-order meta-gradient approximation (no gradient through `grad f`).

use crate::tape::{Scalar, Var};

impl<'t, T: Scalar> Var<'t, T> {
    /// The same value, cut off from every gradient.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(dmatrix![3.0]);
    /// let y = x.mul_elem(x.stop_gradient()); // d/dx (x * c) with c = x held fixed
    /// assert_eq!(tape.grad(&[y], &[x], false)[0].scalar(), 3.0);
    /// ```
    pub fn stop_gradient(self) -> Self {
        let value = self.value();
        self.tape.constant(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::tape::Tape;
    use nalgebra::dmatrix;

    #[test]
    fn stop_gradient_zeroes_first_and_second_order() {
        let tape = Tape::<f64>::new();
        let x = tape.param(dmatrix![2.0]);
        // f = x^2 * sg(x)^2: df/dx = 2x sg(x)^2 = 16 at x = 2, d2f/dx2 = 2 sg(x)^2 = 8.
        let f = x.square().mul_elem(x.stop_gradient().square()).sum();
        let g = tape.grad(&[f], &[x], true)[0];
        assert_eq!(g.scalar(), 16.0);
        assert_eq!(tape.grad(&[g], &[x], false)[0].scalar(), 8.0);
    }
}
