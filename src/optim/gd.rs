//! Plain gradient descent `x <- x - lr g` and Polyak's heavy ball
//! `x_{t+1} = x_t - lr g_t + β (x_t - x_{t-1})`.

use super::hyper::{check_range, HyperError};
use super::UpdateTensor;

/// Heavy-ball momentum β (β = 0 is plain gradient descent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeavyBall {
    /// Weight β of the previous displacement.
    pub beta: f64,
}

/// Per-trajectory state of the heavy ball: the previous point.
#[derive(Clone, Debug)]
pub struct HeavyBallState<X> {
    previous: Option<X>,
}

impl<X> Default for HeavyBallState<X> {
    fn default() -> Self {
        HeavyBallState { previous: None }
    }
}

impl HeavyBall {
    /// Plain gradient descent.
    pub const GD: HeavyBall = HeavyBall { beta: 0.0 };

    /// Heavy ball with momentum β in [0, 1), checked.
    pub fn new(beta: f64) -> Result<HeavyBall, HyperError> {
        check_range("heavy ball", "beta", beta, 0.0, true, 1.0, false)?;
        Ok(HeavyBall { beta })
    }

    /// One step from `x` with gradient `g`: returns the new point and updates the state.
    pub fn step<X: UpdateTensor>(
        &self,
        state: &mut HeavyBallState<X>,
        x: &X,
        g: &X,
        lr: &X::Rate,
    ) -> X {
        let mut next = x.minus(&g.times_rate(lr));
        if self.beta != 0.0 {
            if let Some(prev) = &state.previous {
                next = next.plus(&x.lin(self.beta, prev, -self.beta));
            }
            state.previous = Some(x.clone());
        }
        next
    }
}
