//! Reverse-mode gradients: `grad`, its recorded ("create graph") form, and Hessian-vector products.

use super::{AddOuterTerms, Factor, Op, Scalar, Tape, Var};
use nalgebra::DMatrix;
use smallvec::SmallVec;

impl<T: Scalar> Tape<T> {
    /// Gradients of the sum of `outputs` with respect to each of `wrt`.
    ///
    /// Every output is seeded with ones (for a 1 x 1 loss: d loss / d wrt). The gradients are
    /// returned as new variables, never stored on the parameters. With `create_graph` the
    /// backward pass is recorded, so the returned gradients can be differentiated again (to any
    /// order); without it, the backward pass runs unrecorded, accumulates in place, frees its
    /// temporaries as it goes, and returns constants. An unrecorded pass sends no cotangent of
    /// zeros back through a VJP (a VJP is linear in it): its gradients differ from the
    /// recorded pass's only in the sign of zero entries, and where the recorded pass would form
    /// `0 · ∞` or `0 / 0` behind such a cotangent (NaN), they are finite. A `wrt` variable that
    /// the outputs do not depend on gets a zero gradient; a `wrt` that is a constant (made by `Tape::constant`,
    /// `stop_gradient` or under `Tape::no_grad`) is refused with a panic, since its true
    /// gradient could not be computed.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    ///
    /// // f(x) = x^3, f'(x) = 3x^2, f''(x) = 6x
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(dmatrix![2.0]);
    /// let y = x.powi(3).sum();
    /// let dy = tape.grad(&[y], &[x], true)[0];
    /// assert_eq!(dy.scalar(), 12.0);
    /// let d2y = tape.grad(&[dy], &[x], false)[0];
    /// assert_eq!(d2y.scalar(), 12.0);
    /// ```
    pub fn grad<'t>(
        &'t self,
        outputs: &[Var<'t, T>],
        wrt: &[Var<'t, T>],
        create_graph: bool,
    ) -> Vec<Var<'t, T>> {
        let seeds: Vec<Var<'t, T>> = outputs
            .iter()
            .map(|y| {
                let (r, c) = y.shape();
                self.constant(DMatrix::from_element(r, c, T::one()))
            })
            .collect();
        self.grad_with_seeds(outputs, &seeds, wrt, create_graph)
    }

    /// Like [`Tape::grad`] with explicit output cotangents: returns `sum_i seeds_i^T d outputs_i / d wrt`.
    ///
    /// Seeds may themselves be recorded variables (their dependence is then differentiable when
    /// `create_graph` is on).
    pub fn grad_with_seeds<'t>(
        &'t self,
        outputs: &[Var<'t, T>],
        seeds: &[Var<'t, T>],
        wrt: &[Var<'t, T>],
        create_graph: bool,
    ) -> Vec<Var<'t, T>> {
        assert_eq!(
            outputs.len(),
            seeds.len(),
            "Tape::grad_with_seeds: {} outputs but {} seeds",
            outputs.len(),
            seeds.len()
        );
        for (k, x) in wrt.iter().enumerate() {
            assert!(
                x.requires_grad(),
                "Tape::grad: wrt[{k}] ({x:?}) is a constant, so no gradient can reach it; \
                 create it with Tape::param (or outside Tape::no_grad)"
            );
        }
        for (y, s) in outputs.iter().zip(seeds) {
            assert!(
                y.shape() == s.shape(),
                "Tape::grad: output {:?} and its seed {:?} differ in shape",
                y.shape(),
                s.shape()
            );
        }
        let result = if create_graph {
            Backward::new(self, outputs, wrt, true).run(seeds)
        } else {
            let previous = self.set_recording(false);
            let r = Backward::new(self, outputs, wrt, false).run(seeds);
            self.set_recording(previous);
            r
        };
        result
            .into_iter()
            .zip(wrt)
            .map(|(g, x)| match g {
                Gradient::Var(v) => v,
                Gradient::Value(m) => self.constant(m),
                Gradient::Zero => x.zeros_like(),
                Gradient::Outer(_) => unreachable!("pending terms are added before they leave"),
            })
            .collect()
    }

    /// Hessian-vector product `(d^2 f / dx^2) v` of a 1 x 1 `f`, by reverse over reverse.
    ///
    /// With `create_graph` the result stays differentiable (third order and beyond).
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    ///
    /// // f(x) = x1^2 x2, H = [[2 x2, 2 x1], [2 x1, 0]]
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(dmatrix![1.0; 3.0]);
    /// let f = x.slice(0, 0, 1, 1).powi(2).mul_elem(x.slice(1, 0, 1, 1)).sum();
    /// let v = tape.constant(dmatrix![1.0; 1.0]);
    /// let hv = tape.hvp(f, x, v, false);
    /// assert_eq!(hv.value(), dmatrix![8.0; 2.0]);
    /// ```
    pub fn hvp<'t>(
        &'t self,
        f: Var<'t, T>,
        x: Var<'t, T>,
        v: Var<'t, T>,
        create_graph: bool,
    ) -> Var<'t, T> {
        let g = self.grad(&[f], &[x], true)[0];
        let directional = g.mul_elem(v).sum();
        self.grad(&[directional], &[x], create_graph)[0]
    }
}

enum Gradient<'t, T: Scalar> {
    Zero,
    Var(Var<'t, T>),
    Value(DMatrix<T>),
    /// In a sweep that records nothing: a running sum (none yet: zero) with outer-product
    /// terms still to add ([`Op::outer_cotangent`]).
    Outer(OuterSum<'t, T>),
}

/// A running sum and the outer-product terms `u_t v_tᵀ` that arrived after it, in order.
struct OuterSum<'t, T: Scalar> {
    sum: Option<DMatrix<T>>,
    terms: Vec<[Held<'t, T>; 2]>,
    add_terms: AddOuterTerms<T>,
}

/// A factor of an outer-product term: a copy of a cotangent (the sweep frees those), or a
/// recorded value, which stays on the tape until the sweep ends.
enum Held<'t, T: Scalar> {
    Copied(DMatrix<T>),
    Recorded(Var<'t, T>),
}

impl<T: Scalar> OuterSum<'_, T> {
    /// The sum with every term added, in order.
    fn into_value(self) -> DMatrix<T> {
        let OuterSum {
            sum,
            terms,
            add_terms,
        } = self;
        let factors = || terms.iter().flatten();
        let borrowed: Vec<_> = factors()
            .map(|f| match f {
                Held::Recorded(v) => Some(v.value_ref()),
                Held::Copied(_) => None,
            })
            .collect();
        let slices: Vec<&[T]> = factors()
            .zip(&borrowed)
            .map(|(f, b)| match (f, b) {
                (Held::Copied(m), _) => m.as_slice(),
                (Held::Recorded(_), Some(value)) => value.as_slice(),
                (Held::Recorded(_), None) => unreachable!("a recorded factor is borrowed"),
            })
            .collect();
        let pairs: Vec<(&[T], &[T])> = slices.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let (rows, cols) = (pairs[0].0.len(), pairs[0].1.len());
        // No sum yet is a zero one: `0 + (0 + u_i v_j)` is the first product as formed.
        let mut sum = sum.unwrap_or_else(|| DMatrix::zeros(rows, cols));
        add_terms(&pairs, sum.as_mut_slice());
        sum
    }
}

/// One backward sweep over the nodes between the lowest `wrt` and the highest output.
struct Backward<'t, T: Scalar> {
    tape: &'t Tape<T>,
    recorded: bool,
    /// Nodes below this index are not visited (no `wrt` lies below it).
    low: usize,
    /// `reaches[i - low]`: node `i` has a `wrt` variable among its ancestors (or is one).
    reaches: Vec<bool>,
    is_wrt: Vec<bool>,
    grads: Vec<Gradient<'t, T>>,
    outputs: Vec<usize>,
    wrt: Vec<usize>,
}

impl<'t, T: Scalar> Backward<'t, T> {
    fn new(tape: &'t Tape<T>, outputs: &[Var<'t, T>], wrt: &[Var<'t, T>], recorded: bool) -> Self {
        // Validate handles before the sweep borrows the arena.
        for v in outputs.iter().chain(wrt) {
            let _ = v.shape();
        }
        let outputs: Vec<usize> = outputs.iter().map(|v| v.id()).collect();
        let wrt: Vec<usize> = wrt.iter().map(|v| v.id()).collect();
        let high = outputs.iter().copied().max().map_or(0, |h| h + 1);
        let low = wrt.iter().copied().min().unwrap_or(high).min(high);
        let span = high - low;
        let mut reaches = vec![false; span];
        let mut is_wrt = vec![false; span];
        for &w in &wrt {
            if w < high {
                reaches[w - low] = true;
                is_wrt[w - low] = true;
            }
        }
        {
            let nodes = tape.nodes.borrow();
            for i in low..high {
                if reaches[i - low] || nodes[i].op.is_none() {
                    continue;
                }
                reaches[i - low] = nodes[i]
                    .inputs
                    .iter()
                    .any(|&j| (j as usize) >= low && reaches[j as usize - low]);
            }
        }
        let grads = (0..span).map(|_| Gradient::Zero).collect();
        Backward {
            tape,
            recorded,
            low,
            reaches,
            is_wrt,
            grads,
            outputs,
            wrt,
        }
    }

    fn run(mut self, seeds: &[Var<'t, T>]) -> Vec<Gradient<'t, T>> {
        let high = self.low + self.reaches.len();
        for (&y, &s) in self.outputs.clone().iter().zip(seeds) {
            if y >= self.low && self.reaches[y - self.low] {
                let g = if self.recorded {
                    Gradient::Var(s)
                } else {
                    Gradient::Value(s.value())
                };
                self.accumulate(y, g);
            }
        }
        let scratch = self.tape.mark();
        for i in (self.low..high).rev() {
            if matches!(self.grads[i - self.low], Gradient::Zero) {
                continue;
            }
            // A VJP is linear in the cotangent: of zeros it gives zeros, and adding zeros
            // changes no sum but the sign of a zero one. So a sweep that records nothing does
            // not pass zeros on (saturated gates have derivatives of exactly zero: the paper's
            // LSTM sends zeros back into the classifier's second-order terms at most steps).
            if !self.recorded && self.cotangent_is_zero(i - self.low) {
                continue;
            }
            let (inputs, has_op) = {
                let nodes = self.tape.nodes.borrow();
                let n = &nodes[i];
                let inputs: SmallVec<[Var<'t, T>; 4]> = n
                    .inputs
                    .iter()
                    .map(|&j| Var::new(self.tape, j, nodes[j as usize].epoch))
                    .collect();
                (inputs, n.op.is_some())
            };
            // A VJP whose cotangents all fall outside the sweep (the inputs of a `wrt`
            // variable that is also an op's output, such as the point of an inner gradient)
            // would only record dead nodes.
            let feeds_sweep = inputs
                .iter()
                .any(|x| x.id() >= self.low && self.reaches[x.id() - self.low]);
            if !has_op || !feeds_sweep {
                continue;
            }
            let output = {
                let nodes = self.tape.nodes.borrow();
                Var::new(self.tape, i as u32, nodes[i].epoch)
            };
            let g = self.cotangent_var(i);
            let mut wanted: SmallVec<[bool; 4]> = inputs
                .iter()
                .map(|x| x.id() >= self.low && self.reaches[x.id() - self.low])
                .collect();
            let input_grads = self.call_vjp(i, &inputs, output, g, &mut wanted);
            let op_name = self.check_arity(i, &inputs, &input_grads);
            let taken = self.collect(op_name, &inputs, input_grads, &wanted, scratch.0);
            for (j, gj) in taken {
                self.accumulate(j, gj);
            }
            if !self.recorded {
                self.tape.truncate(scratch);
            }
        }
        let low = self.low;
        let wrt = std::mem::take(&mut self.wrt);
        (0..wrt.len())
            .map(|k| {
                let w = wrt[k];
                if w < low || w >= high {
                    return Gradient::Zero;
                }
                // The sweep is over: a gradient moves out, copied only for a variable that
                // appears again later in `wrt`.
                let repeated = wrt[k + 1..].contains(&w);
                self.add_pending(w - low);
                match &mut self.grads[w - low] {
                    Gradient::Zero => Gradient::Zero,
                    Gradient::Var(v) => Gradient::Var(*v),
                    Gradient::Value(m) if repeated => Gradient::Value(m.clone()),
                    Gradient::Value(m) => {
                        Gradient::Value(std::mem::replace(m, DMatrix::zeros(0, 0)))
                    }
                    Gradient::Outer(_) => unreachable!("pending terms were added"),
                }
            })
            .collect()
    }

    fn call_vjp(
        &mut self,
        i: usize,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
        wanted: &mut [bool],
    ) -> Vec<Option<Var<'t, T>>> {
        // The op leaves its node while the VJP runs, since the VJP records new nodes into the
        // arena, which must not stay borrowed; `Lent` puts it back, even if the VJP panics.
        let lent = Lent {
            tape: self.tape,
            node: i,
            op: self.tape.nodes.borrow_mut()[i].op.take(),
        };
        let op = lent.op.as_ref().expect("node with an op");
        if !self.recorded {
            // Cotangents the op gives as outer products are not formed: their factors wait
            // in the input's slot, to be added with the other uses' terms at once. Not for an
            // input that appears twice: its sums must arrive in input order.
            let g_value = g.value_ref();
            for (k, x) in inputs.iter().enumerate() {
                if !wanted[k] {
                    continue;
                }
                let Some(outer) = op.outer_cotangent(k, inputs, &g_value) else {
                    continue;
                };
                if inputs.iter().filter(|y| y.id() == x.id()).count() > 1 {
                    continue;
                }
                let hold = |f: Factor| match f {
                    Factor::Cotangent => Held::Copied(g_value.clone()),
                    Factor::Input(i) => Held::Recorded(inputs[i]),
                };
                let term = [hold(outer.u), hold(outer.v)];
                let slot = &mut self.grads[x.id() - self.low];
                *slot = match std::mem::replace(slot, Gradient::Zero) {
                    Gradient::Outer(mut pending) => {
                        pending.terms.push(term);
                        Gradient::Outer(pending)
                    }
                    Gradient::Zero => Gradient::Outer(OuterSum {
                        sum: None,
                        terms: vec![term],
                        add_terms: outer.add_terms,
                    }),
                    Gradient::Value(sum) => Gradient::Outer(OuterSum {
                        sum: Some(sum),
                        terms: vec![term],
                        add_terms: outer.add_terms,
                    }),
                    Gradient::Var(_) => unreachable!("a recorded gradient in a plain sweep"),
                };
                wanted[k] = false;
            }
        }
        op.vjp_wanted(inputs, output, g, wanted)
    }

    fn check_arity(
        &self,
        i: usize,
        inputs: &[Var<'t, T>],
        grads: &[Option<Var<'t, T>>],
    ) -> &'static str {
        let name = {
            let nodes = self.tape.nodes.borrow();
            nodes[i].op.as_ref().map_or("leaf", |o| o.name())
        };
        if grads.len() != inputs.len() {
            panic!(
                "{name}: VJP returned {} cotangents for {} inputs",
                grads.len(),
                inputs.len()
            );
        }
        name
    }

    /// The accumulated cotangent of node `i` as a variable the VJP can use.
    fn cotangent_var(&mut self, i: usize) -> Var<'t, T> {
        let slot = i - self.low;
        self.add_pending(slot);
        match &mut self.grads[slot] {
            Gradient::Var(v) => *v,
            Gradient::Value(m) => {
                // The last use of an accumulated value, unless the caller asked for it.
                let value = if self.is_wrt[slot] {
                    m.clone()
                } else {
                    std::mem::replace(m, DMatrix::zeros(0, 0))
                };
                self.tape.constant(value)
            }
            Gradient::Zero => unreachable!("cotangent of a node with no gradient"),
            Gradient::Outer(_) => unreachable!("pending terms were added"),
        }
    }

    /// Whether the cotangent in `slot` (unrecorded) is all zeros, of either sign.
    fn cotangent_is_zero(&mut self, slot: usize) -> bool {
        self.add_pending(slot);
        match &self.grads[slot] {
            Gradient::Value(m) => m.iter().all(|v| *v == T::zero()),
            _ => false,
        }
    }

    /// Adds the outer-product terms waiting in `slot`, if any, into its sum.
    fn add_pending(&mut self, slot: usize) {
        let gradient = &mut self.grads[slot];
        if matches!(gradient, Gradient::Outer(_)) {
            if let Gradient::Outer(pending) = std::mem::replace(gradient, Gradient::Zero) {
                *gradient = Gradient::Value(pending.into_value());
            }
        }
    }

    /// Turns VJP results into gradients for the inputs that lead to a `wrt` variable.
    fn collect(
        &self,
        op_name: &str,
        inputs: &[Var<'t, T>],
        grads: Vec<Option<Var<'t, T>>>,
        wanted: &[bool],
        scratch: usize,
    ) -> SmallVec<[(usize, Gradient<'t, T>); 4]> {
        let mut out = SmallVec::new();
        for (k, (x, g)) in inputs.iter().zip(&grads).enumerate() {
            let (j, Some(g)) = (x.id(), g) else { continue };
            if !wanted[k] {
                continue;
            }
            assert!(
                g.shape() == x.shape(),
                "{op_name}: VJP produced a {:?} cotangent for a {:?} input",
                g.shape(),
                x.shape()
            );
            let gradient = if self.recorded {
                Gradient::Var(*g)
            } else {
                let reused_later = grads[k + 1..].iter().flatten().any(|h| h.id == g.id);
                if g.id() >= scratch && !reused_later {
                    let mut nodes = self.tape.nodes.borrow_mut();
                    Gradient::Value(nodes[g.id()].value.take())
                } else {
                    Gradient::Value(g.value())
                }
            };
            out.push((j, gradient));
        }
        out
    }

    fn accumulate(&mut self, j: usize, g: Gradient<'t, T>) {
        self.add_pending(j - self.low);
        let slot = &mut self.grads[j - self.low];
        *slot = match (std::mem::replace(slot, Gradient::Zero), g) {
            (Gradient::Zero, g) => g,
            (Gradient::Var(a), Gradient::Var(b)) => Gradient::Var(a + b),
            (Gradient::Value(mut a), Gradient::Value(b)) => {
                a += &b;
                Gradient::Value(a)
            }
            _ => unreachable!("recorded and unrecorded gradients mixed in one sweep"),
        };
    }
}

/// An op taken out of node `node` for its VJP, returned to it when dropped.
struct Lent<'a, T: Scalar> {
    tape: &'a Tape<T>,
    node: usize,
    op: Option<Box<dyn Op<T>>>,
}

impl<T: Scalar> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        // `try_`: a VJP that panicked while the arena was borrowed must not panic again here.
        if let Ok(mut nodes) = self.tape.nodes.try_borrow_mut() {
            nodes[self.node].op = self.op.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tape::Tape;
    use nalgebra::dmatrix;

    /// A cotangent of zeros passes nothing on in an unrecorded sweep: `sqrt`'s VJP at 0 would
    /// turn it into `0 / 0`, which the recorded sweep does.
    #[test]
    fn a_zero_cotangent_passes_nothing_on() {
        let tape = Tape::<f64>::new();
        let x = tape.param(dmatrix![0.0; 4.0]);
        let loss = x.sqrt().scale(0.0).sum() + x.sum();
        let plain = tape.grad(&[loss], &[x], false)[0].value();
        assert_eq!(plain, dmatrix![1.0; 1.0]);
        let recorded = tape.grad(&[loss], &[x], true)[0].value();
        assert!(recorded[0].is_nan() && recorded[1] == 1.0);
    }
}
