//! The tied-block ℓ2-gain REN of the paper's code (the note's §4-5): input/output size
//! `m = p = K b + c` without ever forming an m x m matrix.

use super::config::{validate_gamma, RenDims, RenError, RenOptions};
use super::dense::DenseRen;
use super::model::{Biases, IoSpec, RenModel, TiedGroup};
use super::param_map::{cayley, h_x, implicit_from_h, lipschitz_terms};
use super::shapes::{fetch, random, template, Shapes};
use crate::models::{Bound, Params, ParamsError};
use crate::tape::{Scalar, Tape, Var};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The input/output layout: `count` chunks of `size` entries sharing one block, then a
/// `corner` of its own (the paper: 280 x 28 + 10 = 7850).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLayout {
    /// Number of repeated chunks `K`.
    pub count: usize,
    /// Size `b` of a repeated chunk.
    pub size: usize,
    /// Size `c` of the corner (0 for none).
    pub corner: usize,
}

impl BlockLayout {
    /// The paper's layout: a 784 -> 10 classifier's weights by image row, then its biases.
    pub const PAPER: BlockLayout = BlockLayout {
        count: 280,
        size: 28,
        corner: 10,
    };

    /// `K b + c`, the input and output dimension.
    pub fn dim(&self) -> usize {
        self.count * self.size + self.corner
    }
}

/// Parameter names of one group of tied blocks, as in the authors' checkpoint.
struct GroupNames {
    x3: &'static str,
    y3: &'static str,
    b2: &'static str,
    d12: &'static str,
    c2: &'static str,
    d21: &'static str,
}

const REPEATED: GroupNames = GroupNames {
    x3: "x3",
    y3: "y3",
    b2: "b2",
    d12: "d12",
    c2: "c2",
    d21: "d21",
};

const CORNER: GroupNames = GroupNames {
    x3: "x3corner",
    y3: "y3corner",
    b2: "b2last",
    d12: "d12last",
    c2: "c2last",
    d21: "d21last",
};

/// An ℓ2-gain-`γ` REN with `X3`, `Y3` block-diagonal with shared blocks and `B2`, `D12`,
/// `C2`, `D21` made of repeated blocks: one b x b and one c x c solve per parameter map,
/// `O(m)` work per step with zero input.
///
/// Parameters (the authors' tensor names): `x0` (1 x n), `X`, `Y`, `x3`, `y3` (b x b),
/// `x3corner`, `y3corner` (c x c), `b2` (n x b), `d12` (l x b), `b2last` (n x c), `d12last`
/// (l x c), `c2` (b x n), `d21` (b x l), `c2last` (c x n), `d21last` (c x l), `bx`, `bv`,
/// `bu` (columns), `polar` (with `polar`).
///
/// ```
/// use convergent_l2o::models::ren::TiedRen;
/// use convergent_l2o::tape::Tape;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let ren = TiedRen::paper(); // m = p = 7850, n = l = 3, gamma = 0.3
/// let params = ren.init_params::<f32>(&mut StdRng::seed_from_u64(0), 0.01);
/// assert_eq!(params.num_scalars(), 10_173);
/// let tape = Tape::new();
/// let model = ren.build(&params.bind(&tape));
/// let (z1, x2) = model.step(model.initial_state(), None, 1); // zero input: O(m)
/// assert_eq!(z1.shape(), (7850, 1));
/// ```
#[derive(Clone, Debug)]
pub struct TiedRen {
    n: usize,
    l: usize,
    layout: BlockLayout,
    gamma: f64,
    options: RenOptions,
}

impl TiedRen {
    /// A tied-block REN with `n` states, `l` neurons and gain bound `gamma`; refuses invalid
    /// sizes or hyperparameters.
    pub fn new(
        n: usize,
        l: usize,
        layout: BlockLayout,
        gamma: f64,
        options: RenOptions,
    ) -> Result<Self, RenError> {
        if layout.count == 0 || layout.size == 0 {
            return Err(RenError::new(
                "block layout",
                format!(
                    "count and size must be at least 1, got count = {}, size = {}",
                    layout.count, layout.size
                ),
            ));
        }
        RenDims::new(n, l, layout.dim(), layout.dim()).validate()?;
        validate_gamma(gamma)?;
        options.validate()?;
        Ok(TiedRen {
            n,
            l,
            layout,
            gamma,
            options,
        })
    }

    /// The paper's REN: n = l = 3, 280 x 28 + 10 layout, `γ = 0.3`, [`RenOptions::paper`].
    pub fn paper() -> Self {
        Self::new(3, 3, BlockLayout::PAPER, 0.3, RenOptions::paper())
            .expect("the paper's hyperparameters are valid")
    }

    /// Sizes `n`, `l`, `m = p = K b + c`.
    pub fn dims(&self) -> RenDims {
        RenDims::new(self.n, self.l, self.layout.dim(), self.layout.dim())
    }

    /// The block layout.
    pub fn layout(&self) -> BlockLayout {
        self.layout
    }

    /// The gain bound `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The options.
    pub fn options(&self) -> &RenOptions {
        &self.options
    }

    /// (multiplicity, block size, names) of the repeated group and, if any, the corner.
    fn groups(&self) -> Vec<(usize, usize, &'static GroupNames)> {
        let BlockLayout {
            count,
            size,
            corner,
        } = self.layout;
        let mut g = vec![(count, size, &REPEATED)];
        if corner > 0 {
            g.push((1, corner, &CORNER));
        }
        g
    }

    fn shapes(&self) -> Shapes {
        let (n, l, m) = (self.n, self.l, self.layout.dim());
        let mut s: Shapes = Vec::new();
        if self.options.learn_x0 {
            s.push(("x0", (1, n)));
        }
        s.push(("X", (2 * n + l, 2 * n + l)));
        s.push(("Y", (n, n)));
        let groups = self.groups();
        for &(_, size, names) in &groups {
            s.extend([(names.x3, (size, size)), (names.y3, (size, size))]);
        }
        for &(_, size, names) in &groups {
            s.extend([(names.b2, (n, size)), (names.d12, (l, size))]);
        }
        for &(_, size, names) in &groups {
            s.extend([(names.c2, (size, n)), (names.d21, (size, l))]);
        }
        if self.options.biases {
            s.extend([("bx", (n, 1)), ("bv", (l, 1)), ("bu", (m, 1))]);
        }
        if self.options.polar {
            s.push(("polar", (1, 1)));
        }
        s
    }

    /// Zero parameters of the right names and shapes.
    pub fn template<T: Scalar>(&self) -> Params<T> {
        template(&self.shapes())
    }

    /// Random parameters, entries `N(0, std²)` (the paper: 0.01).
    pub fn init_params<T: Scalar>(&self, rng: &mut impl Rng, std: f64) -> Params<T> {
        random(&self.shapes(), rng, std)
    }

    /// Checks that `params` has exactly this model's names and shapes.
    pub fn check_params<T: Scalar>(&self, params: &Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&self.template())
    }

    /// The explicit model for bound parameters, recorded on their tape (once per update).
    ///
    /// Panics if a parameter is missing or has the wrong shape.
    pub fn build<'t, T: Scalar>(&self, bound: &Bound<'t, T>) -> RenModel<'t, T> {
        self.build_from(&|name| bound.get(name))
    }

    /// Like [`TiedRen::build`], with parameters looked up by name through `get`.
    pub fn build_from<'t, T: Scalar>(&self, get: &dyn Fn(&str) -> Var<'t, T>) -> RenModel<'t, T> {
        let shapes = self.shapes();
        let v = |name: &str| fetch(get, &shapes, name, "TiedRen");
        let o = &self.options;
        let mut h = h_x(v("X"), o.polar.then(|| v("polar")), o.eps);
        let mut groups = Vec::new();
        for (count, size, names) in self.groups() {
            let (b2, d12, c2, d21) = (v(names.b2), v(names.d12), v(names.c2), v(names.d21));
            let nmat = cayley(v(names.x3), v(names.y3), None, o.eps, size, size);
            let terms = lipschitz_terms(nmat, c2, d21, b2, d12, self.gamma);
            // The block's terms appear once per copy: a scalar factor, not K copies.
            h = h + if count == 1 {
                terms
            } else {
                terms.scale(T::from_count(count))
            };
            groups.push(TiedGroup {
                count,
                size,
                b2,
                d12,
                c2,
                d21,
                d22: nmat.scale(T::cast(self.gamma)),
            });
        }
        let implicit = implicit_from_h(h, v("Y"), self.n, self.l, o.alpha_bar);
        let biases = o.biases.then(|| Biases {
            bx: v("bx"),
            bv: v("bv"),
            bu: v("bu"),
        });
        let x0 = o.learn_x0.then(|| v("x0"));
        RenModel::assemble(self.dims(), o, implicit, biases, x0, IoSpec::Tied(groups))
    }

    /// The same model as a [`DenseRen`]: its configuration, and the parameters of `get`
    /// expanded on the tape (block-diagonal `X3`, `Y3`, repeated `B2`, `D12`, `C2`, `D21`),
    /// so gradients flow back to the tied parameters. Forms m x m matrices: small sizes only.
    pub fn expand_on_tape<'t, T: Scalar>(
        &self,
        get: &dyn Fn(&str) -> Var<'t, T>,
    ) -> (DenseRen, Vec<(&'static str, Var<'t, T>)>) {
        let shapes = self.shapes();
        let v = |name: &str| fetch(get, &shapes, name, "TiedRen");
        let dense = DenseRen::lipschitz(self.dims(), self.gamma, self.options.clone())
            .expect("a valid tied-block REN expands to a valid dense one");
        let m = self.layout.dim();
        let groups = self.groups();
        let repeat = |pick: fn(&GroupNames) -> &'static str| -> Vec<Var<'t, T>> {
            groups
                .iter()
                .flat_map(|&(count, _, names)| std::iter::repeat_n(v(pick(names)), count))
                .collect()
        };
        let block_diag = |pick: fn(&GroupNames) -> &'static str| {
            let mut offset = 0;
            let pads: Vec<Var<'t, T>> = repeat(pick)
                .into_iter()
                .map(|b| {
                    let padded = b.pad(m, m, offset, offset);
                    offset += b.nrows();
                    padded
                })
                .collect();
            pads[1..].iter().fold(pads[0], |acc, p| acc + *p)
        };
        let expanded = dense
            .shapes()
            .into_iter()
            .map(|(name, _)| {
                let value = match name {
                    "X3" => block_diag(|g| g.x3),
                    "Y3" => block_diag(|g| g.y3),
                    "B2" => Var::concat_cols(&repeat(|g| g.b2)),
                    "D12" => Var::concat_cols(&repeat(|g| g.d12)),
                    "C2" => Var::concat_rows(&repeat(|g| g.c2)),
                    "D21" => Var::concat_rows(&repeat(|g| g.d21)),
                    other => v(other),
                };
                (name, value)
            })
            .collect();
        (dense, expanded)
    }

    /// The same model as a [`DenseRen`] with expanded parameters (off the tape; small sizes).
    pub fn to_dense<T: Scalar>(&self, params: &Params<T>) -> (DenseRen, Params<T>) {
        let tape = Tape::new();
        let bound = params.bind_constants(&tape);
        let (dense, vars) = self.expand_on_tape(&|name| bound.get(name));
        let mut out = Params::new();
        for (name, var) in vars {
            out.insert(name, var.value());
        }
        (dense, out)
    }
}
