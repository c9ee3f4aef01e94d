//! The state of one trajectory of any optimizer: the iterate, named tensors (momenta, a
//! recurrent network's state, ...), named numbers (counters, a FISTA sequence) and the step
//! count. One generic container, so every optimizer's state can be detached, read as values,
//! saved and restored the same way (learned_optimization's state pytrees).

use crate::models::Params;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// A trajectory's state on a tape.
///
/// ```
/// use convergent_l2o::optim::OptState;
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
///
/// let tape = Tape::<f64>::new();
/// let mut state = OptState::new(tape.param(DMatrix::from_element(2, 1, 1.0)));
/// state.set("momentum", tape.constant(DMatrix::zeros(2, 1)));
/// state.set_number("t", 1.0);
/// let values = state.values();
/// let fresh = Tape::<f64>::new();
/// let restored = OptState::restore(&fresh, &values, false);
/// assert_eq!(restored.x().value(), state.x().value());
/// assert_eq!(restored.number("t"), Some(1.0));
/// ```
#[derive(Clone)]
pub struct OptState<'t, T: Scalar> {
    x: Var<'t, T>,
    step: usize,
    tensors: Vec<(String, Var<'t, T>)>,
    numbers: Vec<(String, f64)>,
}

/// Name of the iterate among [`StateValues::tensors`].
const ITERATE: &str = "x";

impl<'t, T: Scalar> OptState<'t, T> {
    /// The state at iterate `x0`, step 0, with nothing else.
    pub fn new(x0: Var<'t, T>) -> Self {
        OptState {
            x: x0,
            step: 0,
            tensors: Vec::new(),
            numbers: Vec::new(),
        }
    }

    /// The iterate `x_t`.
    pub fn x(&self) -> Var<'t, T> {
        self.x
    }

    /// Replaces the iterate (an optimizer's update does, to `x_{t+1}`).
    pub fn set_x(&mut self, x: Var<'t, T>) {
        self.x = x;
    }

    /// Updates taken so far (the inner step `t` of the next update).
    pub fn step(&self) -> usize {
        self.step
    }

    /// Counts one more update (the run loop does, after each update).
    pub fn advance(&mut self) {
        self.step += 1;
    }

    /// Sets the step count (a trajectory that starts at a later inner step: PES's staggered
    /// starts).
    pub fn set_step(&mut self, step: usize) {
        self.step = step;
    }

    /// The tensor `name`, if the state holds one.
    pub fn tensor(&self, name: &str) -> Option<Var<'t, T>> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The tensor `name`; panics naming it if absent (an optimizer reading its own state).
    pub fn expect(&self, name: &str) -> Var<'t, T> {
        self.tensor(name)
            .unwrap_or_else(|| panic!("optimizer state has no tensor '{name}'"))
    }

    /// Sets (or adds) the tensor `name`.
    pub fn set(&mut self, name: &str, value: Var<'t, T>) {
        match self.tensors.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.tensors.push((name.to_string(), value)),
        }
    }

    /// Removes the tensor `name`, if present.
    pub fn remove(&mut self, name: &str) {
        self.tensors.retain(|(n, _)| n != name);
    }

    /// The number `name`, if the state holds one.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.numbers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Sets (or adds) the number `name`.
    pub fn set_number(&mut self, name: &str, value: f64) {
        match self.numbers.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.numbers.push((name.to_string(), value)),
        }
    }

    /// The tensors (the iterate aside), in the order they were first set.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, Var<'t, T>)> {
        self.tensors.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Cuts every gradient path through the state (truncated backpropagation): the iterate
    /// becomes a fresh leaf (gradients of `f` can still be taken at it), every tensor a
    /// `stop_gradient` of itself; the values stay.
    pub fn detach(&mut self) {
        let tape = self.x.tape();
        self.x = tape.param(self.x.value());
        for (_, v) in &mut self.tensors {
            *v = v.stop_gradient();
        }
    }

    /// The state off the tape (to carry it over a truncation of the tape, or to save it).
    pub fn values(&self) -> StateValues<T> {
        let mut tensors = Params::new();
        tensors.insert(ITERATE, self.x.value());
        for (n, v) in &self.tensors {
            tensors.insert(n, v.value());
        }
        StateValues {
            step: self.step as u64,
            tensors,
            numbers: self.numbers.clone(),
        }
    }

    /// The state of `values` on `tape`: the iterate and tensors as leaves that gradients can
    /// be taken at (`trainable`, for a recorded window) or as constants (unrecorded runs).
    ///
    /// Panics if `values` holds no iterate (a `StateValues` not made by [`OptState::values`]).
    pub fn restore(tape: &'t Tape<T>, values: &StateValues<T>, trainable: bool) -> Self {
        Self::restore_owned(tape, values.clone(), trainable)
    }

    /// [`OptState::restore`] that moves the tensors of `values` onto the tape instead of
    /// copying them (a run loop that carries the state from step to step).
    ///
    /// Panics if `values` holds no iterate.
    ///
    /// ```
    /// use convergent_l2o::optim::OptState;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    ///
    /// let tape = Tape::<f64>::new();
    /// let state = OptState::new(tape.constant(dmatrix![1.0; 2.0]));
    /// let values = state.values();
    /// let moved = OptState::restore_owned(&tape, values.clone(), false);
    /// assert_eq!(moved.values(), values);
    /// ```
    pub fn restore_owned(tape: &'t Tape<T>, mut values: StateValues<T>, trainable: bool) -> Self {
        assert!(
            values.tensors.try_get(ITERATE).is_some(),
            "StateValues without an iterate"
        );
        // The leaves in the order `restore` makes them: the iterate, then the rest.
        let leaf = |m: &mut DMatrix<T>| {
            let m = std::mem::replace(m, DMatrix::zeros(0, 0));
            if trainable {
                tape.param(m)
            } else {
                tape.constant(m)
            }
        };
        let x = leaf(values.tensors.get_mut(ITERATE));
        let tensors = values
            .tensors
            .iter_mut()
            .filter(|(n, _)| *n != ITERATE)
            .map(|(n, m)| (n.to_string(), leaf(m)))
            .collect();
        OptState {
            x,
            step: values.step as usize,
            tensors,
            numbers: values.numbers,
        }
    }
}

/// A trajectory's state off the tape: serializable, so persistent trajectories (truncated
/// BPTT, PES particles) can be checkpointed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct StateValues<T: Scalar> {
    /// Updates taken.
    pub step: u64,
    /// The iterate (named `x`) and the other tensors, by name.
    pub tensors: Params<T>,
    /// The named numbers.
    pub numbers: Vec<(String, f64)>,
}

impl<T: Scalar> StateValues<T> {
    /// The iterate `x_t`; panics if absent (see [`OptState::restore`]).
    pub fn x(&self) -> &DMatrix<T> {
        self.tensors.get(ITERATE)
    }

    /// Whether every tensor and number is finite (what a checkpoint loader checks).
    pub fn is_finite(&self) -> bool {
        self.tensors
            .iter()
            .all(|(_, m)| crate::problems::all_finite(m))
            && self.numbers.iter().all(|(_, v)| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn detach_cuts_every_path_and_keeps_the_values() {
        let tape = Tape::<f64>::new();
        let theta = tape.scalar_param(2.0);
        let x0 = tape.param(DMatrix::from_element(2, 1, 1.0));
        let mut state = OptState::new(x0.mul_scalar(theta));
        state.set("m", x0.mul_scalar(theta).scale(3.0));
        let before = state.values();
        state.detach();
        assert_eq!(state.values(), before);
        let f = (state.x() + state.expect("m")).sum();
        assert!(
            state.x().requires_grad(),
            "the iterate stays differentiable"
        );
        // No path from θ survives: the gradient with respect to it is zero.
        assert_eq!(tape.grad(&[f], &[theta], false)[0].scalar(), 0.0);
        // Without the detach the iterate depends on θ: d/dθ Σ θ x0 = Σ x0 = 2.
        let kept = OptState::new(x0.mul_scalar(theta));
        let g = tape.grad(&[kept.x().sum()], &[theta], false)[0].scalar();
        assert_eq!(g, 2.0);
    }
}
