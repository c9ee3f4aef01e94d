//! The hand-crafted optimizers as one enum, with their running state: what evaluation code
//! and learning-rate grid searches iterate over.

use super::{
    Adam, AdamState, HeavyBall, HeavyBallState, HyperError, RmsProp, RmsPropState, Sgd, SgdState,
    UpdateTensor,
};
use crate::tape::Scalar;
use nalgebra::DMatrix;
use std::fmt;

/// A hand-crafted update rule (its learning rate is given separately).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// SGD, with optional momentum, dampening, weight decay, Nesterov (NAG).
    Sgd(Sgd),
    /// Adam.
    Adam(Adam),
    /// RMSprop.
    RmsProp(RmsProp),
    /// Gradient descent with heavy-ball momentum (β = 0: plain gradient descent).
    HeavyBall(HeavyBall),
}

/// The running state of a [`Rule`] on one trajectory.
#[derive(Clone, Debug)]
pub enum RuleState<X> {
    /// State of [`Rule::Sgd`].
    Sgd(SgdState<X>),
    /// State of [`Rule::Adam`].
    Adam(AdamState<X>),
    /// State of [`Rule::RmsProp`].
    RmsProp(RmsPropState<X>),
    /// State of [`Rule::HeavyBall`].
    HeavyBall(HeavyBallState<X>),
}

impl Rule {
    /// The paper's baselines with PyTorch's defaults: SGD, NAG (momentum 0.9), Adam, RMSprop.
    pub fn paper_baselines() -> [Rule; 4] {
        [
            Rule::Sgd(Sgd::PLAIN),
            Rule::Sgd(Sgd::nesterov(0.9).expect("valid")),
            Rule::Adam(Adam::default()),
            Rule::RmsProp(RmsProp::default()),
        ]
    }

    /// `self` if its hyperparameters are admissible.
    pub fn validated(self) -> Result<Rule, HyperError> {
        Ok(match self {
            Rule::Sgd(r) => Rule::Sgd(r.validated()?),
            Rule::Adam(r) => Rule::Adam(r.validated()?),
            Rule::RmsProp(r) => Rule::RmsProp(r.validated()?),
            Rule::HeavyBall(r) => Rule::HeavyBall(HeavyBall::new(r.beta)?),
        })
    }

    /// A fresh state for a new trajectory.
    pub fn new_state<X>(&self) -> RuleState<X> {
        match self {
            Rule::Sgd(_) => RuleState::Sgd(SgdState::default()),
            Rule::Adam(_) => RuleState::Adam(AdamState::default()),
            Rule::RmsProp(_) => RuleState::RmsProp(RmsPropState::default()),
            Rule::HeavyBall(_) => RuleState::HeavyBall(HeavyBallState::default()),
        }
    }

    /// One step from `x` with gradient `g` and learning rate `lr`; returns the new point.
    ///
    /// Panics if `state` was made for another rule.
    pub fn step<X: UpdateTensor>(&self, state: &mut RuleState<X>, x: &X, g: &X, lr: &X::Rate) -> X {
        match (self, state) {
            (Rule::Sgd(r), RuleState::Sgd(s)) => r.step(s, x, g, lr),
            (Rule::Adam(r), RuleState::Adam(s)) => r.step(s, x, g, lr),
            (Rule::RmsProp(r), RuleState::RmsProp(s)) => r.step(s, x, g, lr),
            (Rule::HeavyBall(r), RuleState::HeavyBall(s)) => r.step(s, x, g, lr),
            (rule, _) => panic!("{rule}: state belongs to another optimizer"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Sgd(s) if s.nesterov => write!(f, "NAG"),
            Rule::Sgd(s) if s.momentum > 0.0 => write!(f, "SGD(momentum {})", s.momentum),
            Rule::Sgd(_) => write!(f, "SGD"),
            Rule::Adam(_) => write!(f, "Adam"),
            Rule::RmsProp(_) => write!(f, "RMSprop"),
            Rule::HeavyBall(h) if h.beta == 0.0 => write!(f, "GD"),
            Rule::HeavyBall(h) => write!(f, "heavy ball({})", h.beta),
        }
    }
}

/// A rule with its learning rate and state, stepping plain matrices (evaluation, tuning).
///
/// ```
/// use convergent_l2o::optim::{Rule, Stepper, Adam};
/// use nalgebra::dmatrix;
/// let mut adam = Stepper::<f64>::new(Rule::Adam(Adam::default()), 0.1).unwrap();
/// let mut x = dmatrix![1.0, -2.0];
/// for _ in 0..200 {
///     let g = &x * 2.0; // gradient of |x|^2
///     x = adam.step(&x, &g);
/// }
/// assert!(x.norm() < 1e-2);
/// ```
#[derive(Clone, Debug)]
pub struct Stepper<T: Scalar> {
    rule: Rule,
    lr: T,
    state: RuleState<DMatrix<T>>,
}

impl<T: Scalar> Stepper<T> {
    /// `rule` with learning rate `lr` (> 0), both checked.
    pub fn new(rule: Rule, lr: f64) -> Result<Self, HyperError> {
        let rule = rule.validated()?;
        super::hyper::check_range("learning rate", "lr", lr, 0.0, false, f64::INFINITY, false)?;
        Ok(Stepper {
            rule,
            lr: T::cast(lr),
            state: rule.new_state(),
        })
    }

    /// The new point after one step from `x` with gradient `g`.
    pub fn step(&mut self, x: &DMatrix<T>, g: &DMatrix<T>) -> DMatrix<T> {
        self.rule.step(&mut self.state, x, g, &self.lr)
    }

    /// The rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }
}
