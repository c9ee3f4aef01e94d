//! Proximal-gradient baselines (ISTA, FISTA) on plain matrices, and the L2O-PA update rule on
//! the tape.

use crate::meta::CompositeProblem;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// ISTA or FISTA with the original code's step `s = 0.9999 / L`, started at `x_0 = y_0 = 0`:
///
/// ```text
/// x_{k+1} = prox_{s ρ |.|_1}(y_k - s ∇f(y_k))
/// y_{k+1} = x_{k+1} + β_k (x_{k+1} - x_k)      β_k = 0 (ISTA) or (t_k - 1) / t_{k+1} (FISTA)
/// ```
#[derive(Clone, Debug)]
pub struct ProxGradient<T: Scalar> {
    x: DMatrix<T>,
    y: DMatrix<T>,
    step: T,
    accelerated: bool,
    t: f64,
    k: usize,
}

impl<T: Scalar> ProxGradient<T> {
    /// ISTA on `problem` (no momentum).
    pub fn ista<P: CompositeProblem<T> + ?Sized>(problem: &P) -> Self {
        Self::new(problem, false)
    }

    /// FISTA on `problem` (Beck and Teboulle's momentum).
    pub fn fista<P: CompositeProblem<T> + ?Sized>(problem: &P) -> Self {
        Self::new(problem, true)
    }

    fn new<P: CompositeProblem<T> + ?Sized>(problem: &P, accelerated: bool) -> Self {
        let zero = DMatrix::zeros(problem.dim(), 1);
        ProxGradient {
            x: zero.clone(),
            y: zero,
            step: T::cast(problem.step_size()),
            accelerated,
            t: 1.0,
            k: 0,
        }
    }

    /// One iteration.
    pub fn step<P: CompositeProblem<T> + ?Sized>(&mut self, problem: &P) {
        let g = problem.smooth_grad(&self.y);
        let x_next = problem.prox(&(&self.y - g * self.step), self.step);
        let beta = if self.accelerated {
            let t_next = (1.0 + (1.0 + 4.0 * self.t * self.t).sqrt()) / 2.0;
            let beta = (self.t - 1.0) / t_next;
            self.t = t_next;
            beta
        } else {
            0.0
        };
        self.y = &x_next + (&x_next - &self.x) * T::cast(beta);
        self.x = x_next;
        self.k += 1;
    }

    /// The current prox output `x_k`.
    pub fn x(&self) -> &DMatrix<T> {
        &self.x
    }

    /// The current extrapolated point `y_k`.
    pub fn y(&self) -> &DMatrix<T> {
        &self.y
    }

    /// Iterations taken.
    pub fn iterations(&self) -> usize {
        self.k
    }

    /// `F(x_k)` for `k = 0..=iterations`.
    pub fn objectives<P: CompositeProblem<T> + ?Sized>(
        mut self,
        problem: &P,
        iterations: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(iterations + 1);
        out.push(problem.objective(&self.x).as_f64());
        for _ in 0..iterations {
            self.step(problem);
            out.push(problem.objective(&self.x).as_f64());
        }
        out
    }
}

/// FISTA's momenta `β_0, ..., β_{n-1}` with `β_k = (t_k - 1) / t_{k+1}`, `t_0 = 1`,
/// `t_{k+1} = (1 + sqrt(1 + 4 t_k²)) / 2` (so `β_0 = 0`).
pub fn fista_momenta(n: usize) -> Vec<f64> {
    let mut t = 1.0f64;
    (0..n)
        .map(|_| {
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let beta = (t - 1.0) / t_next;
            t = t_next;
            beta
        })
        .collect()
}

/// One L2O-PA update (Liu et al., eq. 6 with `b = 0`) on the tape, elementwise preconditioner
/// `p` and accelerator `a` (`n x 1`), gradient `g = ∇f(y_k)`, step `s`:
///
/// ```text
/// x_{k+1} = prox_{ρ s p |.|_1}(y_k - s p ⊙ g) = soft_threshold(y_k - s p ⊙ g, ρ s p)
/// y_{k+1} = x_{k+1} + a ⊙ (x_{k+1} - x_k)
/// ```
///
/// Returns `(x_{k+1}, y_{k+1})`. With `p = 1` and `a = β_k` it is FISTA.
pub fn pa_update<'t, T: Scalar>(
    x: Var<'t, T>,
    y: Var<'t, T>,
    g: Var<'t, T>,
    p: Var<'t, T>,
    a: Var<'t, T>,
    step: f64,
    rho: f64,
) -> (Var<'t, T>, Var<'t, T>) {
    let sp = p.scale(T::cast(step));
    let x_next = (y - sp.mul_elem(g)).soft_threshold(sp.scale(T::cast(rho)));
    let y_next = x_next + a.mul_elem(x_next - x);
    (x_next, y_next)
}
