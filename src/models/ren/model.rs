//! A REN's explicit model on the tape, computed once per parameter update, and its time step.

use super::blocks::{cat_cols, cat_rows, split_cols};
use super::config::{BiasPlacement, RenDims, RenOptions};
use crate::models::Activation;
use crate::ops::RowIndex;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;

/// The implicit matrices of a REN (the note's §2.1), read from `H`, as tape variables.
#[derive(Clone, Copy, Debug)]
pub struct ImplicitMatrices<'t, T: Scalar> {
    /// `H` ((2n+l) x (2n+l), symmetrised), ordered `(x, w, x+)`.
    pub h: Var<'t, T>,
    /// `E` (n x n, invertible).
    pub e: Var<'t, T>,
    /// `F` (n x n).
    pub f: Var<'t, T>,
    /// `B1` (n x l).
    pub b1: Var<'t, T>,
    /// The diagonal of `Λ` (l x 1, positive).
    pub lambda: Var<'t, T>,
    /// `C1` (l x n).
    pub c1: Var<'t, T>,
    /// `D11` (l x l, strictly lower triangular).
    pub d11: Var<'t, T>,
    /// `P` (n x n, positive definite; `H33`).
    pub p: Var<'t, T>,
}

/// The input/output matrices of one group of tied blocks (implicit `B2`, `D12`).
pub(crate) struct TiedGroup<'t, T: Scalar> {
    /// How many times the block repeats along the input/output.
    pub count: usize,
    /// Block size.
    pub size: usize,
    pub b2: Var<'t, T>,
    pub d12: Var<'t, T>,
    pub c2: Var<'t, T>,
    pub d21: Var<'t, T>,
    /// The block of `D22` (size x size).
    pub d22: Var<'t, T>,
}

/// How the input enters and the output leaves (implicit `B2`, `D12`).
pub(crate) enum IoSpec<'t, T: Scalar> {
    Dense {
        b2: Var<'t, T>,
        d12: Var<'t, T>,
        c2: Var<'t, T>,
        d21: Var<'t, T>,
        d22: Var<'t, T>,
    },
    Tied(Vec<TiedGroup<'t, T>>),
}

/// Biases `bx` (n x 1), `bv` (l x 1), `bu` (p x 1) as stored in the parameters.
pub(crate) struct Biases<'t, T: Scalar> {
    pub bx: Var<'t, T>,
    pub bv: Var<'t, T>,
    pub bu: Var<'t, T>,
}

enum Io<'t, T: Scalar> {
    /// `in_map = [Λ⁻¹D12; E⁻¹B2; D22]`.
    Dense { in_map: Var<'t, T> },
    /// `in_map = [Λ⁻¹d12_g ...; E⁻¹b2_g ...]` acting on the block sums of the input;
    /// `output_rows[i]` is the row of `out_map · [x; w]` that output `i` repeats.
    Tied {
        in_map: Var<'t, T>,
        groups: Vec<(usize, usize, Var<'t, T>)>,
        output_rows: RowIndex,
    },
}

/// A REN's explicit model on a tape: built once per parameter update by
/// [`DenseRen::build`](super::DenseRen::build) or [`TiedRen::build`](super::TiedRen::build),
/// then stepped through a whole rollout.
pub struct RenModel<'t, T: Scalar> {
    tape: &'t Tape<T>,
    dims: RenDims,
    activation: Activation,
    alpha_bar: f64,
    bias_decay: f64,
    implicit: ImplicitMatrices<'t, T>,
    x0: Option<Var<'t, T>>,
    c1h: Var<'t, T>,
    /// Row `i` of `Λ⁻¹D11` restricted to its first `i` entries (index 0 unused).
    d11_rows: Vec<Option<Var<'t, T>>>,
    /// `[E⁻¹F, E⁻¹B1; C2, D21]` (rows of the output part in the tied layout for tied RENs).
    out_map: Var<'t, T>,
    bxh: Option<Var<'t, T>>,
    bvh: Option<Var<'t, T>>,
    bu: Option<Var<'t, T>>,
    io: Io<'t, T>,
}

impl<'t, T: Scalar> RenModel<'t, T> {
    /// Turns implicit matrices into the explicit model (one solve with `E`, one division by
    /// `Λ`), recorded on the tape.
    pub(crate) fn assemble(
        dims: RenDims,
        options: &RenOptions,
        implicit: ImplicitMatrices<'t, T>,
        biases: Option<Biases<'t, T>>,
        x0: Option<Var<'t, T>>,
        io: IoSpec<'t, T>,
    ) -> Self {
        let RenDims { n, l, .. } = dims;
        let implicit_biases = options.bias_placement == BiasPlacement::Implicit;
        // Everything divided by Λ (resp. solved with E) in one op: [C1, D11, D12.., bv].
        let (d12s, b2s): (Vec<Var<'t, T>>, Vec<Var<'t, T>>) = match &io {
            IoSpec::Dense { d12, b2, .. } => (vec![*d12], vec![*b2]),
            IoSpec::Tied(groups) => groups.iter().map(|g| (g.d12, g.b2)).unzip(),
        };
        let mut lam_parts = vec![implicit.c1, implicit.d11];
        lam_parts.extend(&d12s);
        let mut e_parts = vec![implicit.f, implicit.b1];
        e_parts.extend(&b2s);
        if let (Some(b), true) = (&biases, implicit_biases) {
            lam_parts.push(b.bv);
            e_parts.push(b.bx);
        }
        let widths = |parts: &[Var<'t, T>]| parts.iter().map(|v| v.ncols()).collect::<Vec<_>>();
        let lam_widths = widths(&lam_parts);
        let e_widths = widths(&e_parts);
        let lam_all = cat_cols(&lam_parts);
        let divided = lam_all.div_elem(implicit.lambda.broadcast(l, lam_all.ncols()));
        let lam_out = split_cols(divided, &lam_widths);
        // [E⁻¹F, E⁻¹B1] stays one block: it multiplies [x; w] in every step.
        let mut e_split = vec![n + l];
        e_split.extend(&e_widths[2..]);
        let solved = split_cols(implicit.e.solve(cat_cols(&e_parts)), &e_split);
        let k = d12s.len();
        let (c1h, d11h) = (lam_out[0], lam_out[1]);
        let d12h = &lam_out[2..2 + k];
        let ab1 = solved[0];
        let b2h = &solved[1..1 + k];
        let (bxh, bvh, bu) = match biases {
            None => (None, None, None),
            Some(b) if implicit_biases => (Some(solved[1 + k]), Some(lam_out[2 + k]), Some(b.bu)),
            Some(b) => (Some(b.bx), Some(b.bv), Some(b.bu)),
        };
        let d11_rows = (0..l)
            .map(|i| (i > 0).then(|| d11h.slice(i, 0, 1, i)))
            .collect();
        let (out_rows, io) = match io {
            IoSpec::Dense { c2, d21, d22, .. } => {
                let in_map = Var::concat_rows(&[d12h[0], b2h[0], d22]);
                (vec![Var::concat_cols(&[c2, d21])], Io::Dense { in_map })
            }
            IoSpec::Tied(groups) => {
                let in_map = Var::concat_rows(&[cat_cols(d12h), cat_cols(b2h)]);
                let rows = groups
                    .iter()
                    .map(|g| Var::concat_cols(&[g.c2, g.d21]))
                    .collect();
                let blocks = groups.iter().map(|g| (g.count, g.size, g.d22)).collect();
                let output_rows = tied_output_rows(n, groups.iter().map(|g| (g.count, g.size)));
                (
                    rows,
                    Io::Tied {
                        in_map,
                        groups: blocks,
                        output_rows,
                    },
                )
            }
        };
        let mut out_parts = vec![ab1];
        out_parts.extend(out_rows);
        RenModel {
            tape: implicit.h.tape(),
            dims,
            activation: options.activation,
            alpha_bar: options.alpha_bar,
            bias_decay: options.bias_decay,
            implicit,
            x0: x0.map(|x| x.t()),
            c1h,
            d11_rows,
            out_map: Var::concat_rows(&out_parts),
            bxh,
            bvh,
            bu,
            io,
        }
    }

    /// Sizes `n`, `l`, `m`, `p`.
    pub fn dims(&self) -> RenDims {
        self.dims
    }

    /// The contraction-rate bound `ᾱ` the model was built with.
    pub fn alpha_bar(&self) -> f64 {
        self.alpha_bar
    }

    /// `E, F, B1, Λ, C1, D11, P` and `H` (for certificates and inspection).
    pub fn implicit(&self) -> ImplicitMatrices<'t, T> {
        self.implicit
    }

    /// The Lyapunov matrix `𝐏 = Eᵀ P⁻¹ E` of the certificates: `V(Δx) = Δxᵀ 𝐏 Δx`.
    pub fn lyapunov(&self) -> Var<'t, T> {
        let ImplicitMatrices { e, p, .. } = self.implicit;
        e.tr_matmul(p.solve(e))
    }

    /// The initial state (n x 1): the learnable `x0` transposed, or zeros.
    pub fn initial_state(&self) -> Var<'t, T> {
        self.x0
            .unwrap_or_else(|| self.tape.constant(DMatrix::zeros(self.dims.n, 1)))
    }

    /// One time step from state `x` (n x 1) with input `u` (m x 1, `None` for zero) at time
    /// `t` (biases scaled by `ρ^t`): returns `(y_t, x_{t+1})`.
    ///
    /// Panics if `x` or `u` has the wrong shape. A zero input costs `O(m)` for tied RENs.
    pub fn step(&self, x: Var<'t, T>, u: Option<Var<'t, T>>, t: usize) -> (Var<'t, T>, Var<'t, T>) {
        let RenDims { n, l, m, .. } = self.dims;
        assert!(
            x.shape() == (n, 1),
            "RenModel::step: state is {} x {}, expected {n} x 1",
            x.nrows(),
            x.ncols()
        );
        if let Some(u) = u {
            assert!(
                u.shape() == (m, 1),
                "RenModel::step: input is {} x {}, expected {m} x 1",
                u.nrows(),
                u.ncols()
            );
        }
        // `a + ρ^t b` in one node; the same bits as `a + b.scale(ρ^t)`.
        let decay = T::cast(self.bias_decay.powf(t as f64));
        let plus_decayed =
            |a: Var<'t, T>, b: Var<'t, T>| Var::weighted_sum(&[(T::one(), a), (decay, b)]);
        let injected = u.map(|u| self.inject(u));
        let mut c = self.c1h.matmul(x);
        if let Some((v_in, _, _)) = injected {
            c = c + v_in;
        }
        if let Some(bv) = self.bvh {
            c = plus_decayed(c, bv);
        }
        let w = self.neurons(c);
        let z = self.out_map.matmul(Var::concat_rows(&[x, w]));
        let mut x_next = z.rows_range(0, n);
        let mut y = self.output(z);
        if let Some((_, x_in, y_in)) = injected {
            x_next = x_next + x_in;
            y = y + y_in;
        }
        if let Some(bx) = self.bxh {
            x_next = plus_decayed(x_next, bx);
        }
        if let Some(bu) = self.bu {
            y = plus_decayed(y, bu);
        }
        debug_assert_eq!(w.nrows(), l);
        (y, x_next)
    }

    /// Runs `inputs.len()` steps from `x0` (`t = 0, 1, ...`): the outputs and the final state.
    pub fn simulate(
        &self,
        x0: Var<'t, T>,
        inputs: &[Option<Var<'t, T>>],
    ) -> (Vec<Var<'t, T>>, Var<'t, T>) {
        let mut x = x0;
        let mut ys = Vec::with_capacity(inputs.len());
        for (t, u) in inputs.iter().enumerate() {
            let (y, next) = self.step(x, *u, t);
            ys.push(y);
            x = next;
        }
        (ys, x)
    }

    /// The acyclic equilibrium layer as `l` scalar recurrences, each recorded on the tape.
    fn neurons(&self, c: Var<'t, T>) -> Var<'t, T> {
        let l = self.dims.l;
        let mut ws: Vec<Var<'t, T>> = Vec::with_capacity(l);
        for i in 0..l {
            let mut v = c.slice(i, 0, 1, 1);
            if let Some(row) = self.d11_rows[i] {
                v = v + row.matmul(cat_rows(&ws));
            }
            ws.push(self.activation.apply(v));
        }
        cat_rows(&ws)
    }

    /// The input's contributions to `v` (l), `x+` (n) and `y` (p).
    fn inject(&self, u: Var<'t, T>) -> (Var<'t, T>, Var<'t, T>, Var<'t, T>) {
        let RenDims { n, l, p, .. } = self.dims;
        match &self.io {
            Io::Dense { in_map } => {
                let all = in_map.matmul(u);
                (
                    all.rows_range(0, l),
                    all.rows_range(l, n),
                    all.rows_range(l + n, p),
                )
            }
            Io::Tied { in_map, groups, .. } => {
                let mut offset = 0;
                let mut sums = Vec::with_capacity(groups.len());
                let mut d22u = Vec::with_capacity(groups.len());
                for &(count, size, d22) in groups {
                    // Column k of `blocks` is chunk k of the input (column-major reshape).
                    let blocks = u.rows_range(offset, count * size).reshape(size, count);
                    offset += count * size;
                    sums.push(if count == 1 {
                        blocks
                    } else {
                        blocks.row_sums()
                    });
                    d22u.push(d22.matmul(blocks).reshape(count * size, 1));
                }
                let all = in_map.matmul(cat_rows(&sums));
                (all.rows_range(0, l), all.rows_range(l, n), cat_rows(&d22u))
            }
        }
    }

    /// `C2 x + D21 w` from the output rows of `out_map · [x; w]`, repeating tied blocks.
    fn output(&self, z: Var<'t, T>) -> Var<'t, T> {
        let n = self.dims.n;
        match &self.io {
            Io::Dense { .. } => z.rows_range(n, self.dims.p),
            Io::Tied { output_rows, .. } => z.gather_rows(output_rows),
        }
    }
}

/// The rows of `out_map · [x; w]` (`n` state rows, then each group's block) that a tied REN's
/// outputs repeat: each group's block `count` times over, the groups in order.
fn tied_output_rows(n: usize, groups: impl Iterator<Item = (usize, usize)>) -> RowIndex {
    let mut rows = Vec::new();
    let mut offset = n;
    for (count, size) in groups {
        for _ in 0..count {
            rows.extend(offset..offset + size);
        }
        offset += size;
    }
    RowIndex::new(rows)
}
