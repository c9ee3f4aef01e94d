//! Meta-training on several processes (ranks): which samples of a meta-step a process computes,
//! and how the per-sample results meet so that every rank gets the estimate of the
//! single-process run, bit for bit.
//!
//! A [`Communicator`] moves bytes between ranks (MPI with the feature `mpi`:
//! `MpiCommunicator`; threads of one process: [`ThreadRanks`](super::ThreadRanks)).
//! [`Workers`] (in every [`EstimateContext`](super::EstimateContext)) gives each rank a
//! contiguous share of the sample indices `0..n` (trajectories, particles, antithetic pairs).
//! The single-process estimate sums the per-sample gradients in index order, then scales once;
//! a distributed one does the same additions in the same order:
//!
//! - the scalars of every sample (meta-loss, final loss, squared gradient norm, the error of a
//!   failed sample) are gathered on every rank, so every rank folds them in index order and
//!   every rank sees the first failure, named by its rank and meta-step;
//! - backpropagated gradients (full and truncated BPTT) travel along a chain of the ranks in
//!   rank order: each adds its samples, in order, to the running sum it receives and passes it
//!   on, in chunks so that the ranks work as a pipeline; the last rank broadcasts the total;
//! - ES and PES gradients are `coefficient × perturbation`, and the perturbations come from the
//!   seed: only the coefficients travel (with the scalars), and every rank rebuilds the
//!   perturbations of the other ranks' pairs and sums everything in order itself.

use super::estimator::{Estimate, EstimateContext, Sample};
use super::MetaError;
use crate::models::{bincode_options, Params};
use crate::tape::Scalar;
use bincode::Options;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// A failed exchange between ranks (a rank that is gone, a message that does not parse).
#[derive(Clone, Debug, PartialEq)]
pub struct CommError(pub String);

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "communication between ranks failed: {}", self.0)
    }
}

impl std::error::Error for CommError {}

/// The processes of a distributed run and the few exchanges meta-training needs. Every rank
/// must make the same calls in the same order (as MPI's collectives).
pub trait Communicator: Send + Sync {
    /// This process's rank, in `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Every rank's `local`, in rank order, on every rank.
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>, CommError>;
    /// Sends `data` to rank `to` (received there by [`Communicator::receive`], in order).
    fn send(&self, to: usize, data: &[u8]) -> Result<(), CommError>;
    /// The next message from rank `from`.
    fn receive(&self, from: usize) -> Result<Vec<u8>, CommError>;
    /// `root`'s `data` on every rank (the other ranks' `data` is ignored).
    fn broadcast(&self, root: usize, data: Vec<u8>) -> Result<Vec<u8>, CommError>;
    /// Told by the trainer when meta-step `meta_step` starts (for failure messages).
    fn begin_meta_step(&self, _meta_step: usize) {}
}

/// Which samples of a meta-step this process computes, and the ranks it shares them with; the
/// single-process default computes all of them.
#[derive(Clone, Copy, Default)]
pub struct Workers<'a> {
    comm: Option<&'a dyn Communicator>,
}

impl fmt::Debug for Workers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Workers {{ rank: {}, size: {} }}",
            self.rank(),
            self.size()
        )
    }
}

impl<'a> Workers<'a> {
    /// One process computing every sample.
    pub fn single() -> Self {
        Workers { comm: None }
    }

    /// The ranks of `comm`.
    pub fn new(comm: &'a dyn Communicator) -> Self {
        Workers { comm: Some(comm) }
    }

    /// The communicator, if the run is distributed.
    pub fn communicator(&self) -> Option<&'a dyn Communicator> {
        self.comm
    }

    /// This process's rank (0 for a single process).
    pub fn rank(&self) -> usize {
        self.comm.map_or(0, |c| c.rank())
    }

    /// The number of ranks (1 for a single process).
    pub fn size(&self) -> usize {
        self.comm.map_or(1, |c| c.size().max(1))
    }

    /// The samples of `0..n` that this process computes: a contiguous block, in rank order.
    pub fn share(&self, n: usize) -> Range<usize> {
        share_of(self.rank(), self.size(), n)
    }
}

/// Rank `rank`'s block of `0..n` among `size` ranks (the first `n mod size` blocks are no
/// smaller than the others).
fn share_of(rank: usize, size: usize, n: usize) -> Range<usize> {
    let bound = |r: usize| ((r as u128 * n as u128) / size.max(1) as u128) as usize;
    bound(rank)..bound(rank + 1)
}

/// The rank that computes sample `index` of `n`.
fn owner(index: usize, size: usize, n: usize) -> usize {
    (0..size)
        .find(|&r| share_of(r, size, n).contains(&index))
        .unwrap_or(0)
}

/// What travels about one sample: its scalars, or its error.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Summary {
    /// A sample that succeeded.
    Ok(Scalars),
    /// A sample that failed: the error's message.
    Failed(String),
}

/// The scalars of one sample.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Scalars {
    /// Its meta-loss.
    pub meta_loss: f64,
    /// `f` at its last evaluated point.
    pub final_loss: f64,
    /// The squared norm of its gradient.
    pub sq: f64,
    /// ES/PES: the gradient is `coefficient × perturbation`.
    pub coefficient: f64,
    /// PES: the pair's accumulated perturbation started over at this meta-step.
    pub restarted: bool,
}

/// The squared norm of a gradient, tensor by tensor, summed in order.
fn norm_sq<T: Scalar>(gradient: &[DMatrix<T>]) -> f64 {
    gradient
        .iter()
        .map(|g| crate::kernels::norm_squared_f64(g.as_slice()))
        .sum()
}

/// Adds `g` to the running sum (the first gradient becomes the sum).
fn accumulate<T: Scalar>(total: &mut Vec<DMatrix<T>>, g: Vec<DMatrix<T>>) {
    if total.is_empty() {
        *total = g;
    } else {
        for (acc, g) in total.iter_mut().zip(&g) {
            *acc += g;
        }
    }
}

/// The estimate from the scalars of every sample (folded in order) and the sum of their
/// gradients: one scaling, the spread.
fn finish<T: Scalar>(
    names: &Params<T>,
    scalars: &[Scalars],
    total: Vec<DMatrix<T>>,
) -> Estimate<T> {
    let n = scalars.len();
    let (mut meta_loss, mut final_loss, mut sum_sq) = (0.0, 0.0, 0.0);
    for s in scalars {
        meta_loss += s.meta_loss / n as f64;
        final_loss += s.final_loss / n as f64;
        sum_sq += s.sq;
    }
    let scale = T::one() / T::from_count(n);
    let mut gradient = Params::new();
    let mut mean_sq = 0.0;
    for ((name, _), mut g) in names.iter().zip(total) {
        g *= scale;
        mean_sq += crate::kernels::norm_squared_f64(g.as_slice());
        gradient.insert(name, g);
    }
    let spread = (sum_sq / n as f64 - mean_sq).max(0.0).sqrt();
    Estimate {
        meta_loss,
        final_loss,
        gradient,
        samples: n,
        spread,
    }
}

/// Averages samples in order (the sum in sample order, then one scaling: the same bits on any
/// number of threads) into an estimate with `names`; the first failed sample is the error.
pub(crate) fn average_samples<T: Scalar>(
    names: &Params<T>,
    samples: Vec<Result<Sample<T>, MetaError>>,
) -> Result<Estimate<T>, MetaError> {
    let mut scalars = Vec::with_capacity(samples.len());
    let mut total = Vec::new();
    for s in samples {
        let s = s?;
        scalars.push(Scalars {
            meta_loss: s.meta_loss,
            final_loss: s.final_loss,
            sq: norm_sq(&s.gradient),
            coefficient: 0.0,
            restarted: false,
        });
        accumulate(&mut total, s.gradient);
    }
    Ok(finish(names, &scalars, total))
}

/// A local sample as it travels: its scalars (with `coefficient` and `restarted` for ES/PES),
/// or its error; a non-finite meta-loss or gradient counts as an error of this sample.
fn summarize<T: Scalar>(
    meta_step: usize,
    index: usize,
    sample: Result<&Sample<T>, &MetaError>,
    coefficient: f64,
    restarted: bool,
) -> Summary {
    match sample {
        Err(e) => Summary::Failed(e.to_string()),
        Ok(s) if !s.meta_loss.is_finite() => Summary::Failed(
            MetaError::NonFinite {
                meta_step,
                location: format!("the meta-loss of sample {index}"),
            }
            .to_string(),
        ),
        Ok(s) if !s.gradient.iter().all(crate::problems::all_finite) => Summary::Failed(
            MetaError::NonFinite {
                meta_step,
                location: format!("the meta-gradient of sample {index}"),
            }
            .to_string(),
        ),
        Ok(s) => Summary::Ok(Scalars {
            meta_loss: s.meta_loss,
            final_loss: s.final_loss,
            sq: norm_sq(&s.gradient),
            coefficient,
            restarted,
        }),
    }
}

/// What every rank sends in the exchange of summaries: a fingerprint of its meta-parameters
/// and settings (ranks that disagree are named) and the summaries of its share.
#[derive(Serialize, Deserialize)]
struct Report {
    meta_step: u64,
    fingerprint: u64,
    summaries: Vec<Summary>,
}

/// FNV-1a over the meta-parameters' bits, names and shapes, the seed, the meta-step and `n`.
fn fingerprint<T: Scalar>(ctx: &EstimateContext<'_, T>, n: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&ctx.seed.to_le_bytes());
    eat(&(ctx.meta_step as u64).to_le_bytes());
    eat(&(n as u64).to_le_bytes());
    for (name, m) in ctx.optimizer.params().iter() {
        eat(name.as_bytes());
        eat(&(m.nrows() as u64).to_le_bytes());
        eat(&(m.ncols() as u64).to_le_bytes());
        for v in m.iter() {
            eat(&v.as_f64().to_bits().to_le_bytes());
        }
    }
    h
}

fn comm_error(meta_step: usize) -> impl Fn(CommError) -> MetaError {
    move |e| MetaError::Communication {
        meta_step,
        detail: e.0,
    }
}

/// Gathers every rank's summaries on every rank: the scalars of all `n` samples in index
/// order, or the first failure (in index order) named by its rank.
fn exchange<T: Scalar>(
    comm: &dyn Communicator,
    ctx: &EstimateContext<'_, T>,
    n: usize,
    local: Vec<Summary>,
) -> Result<Vec<Scalars>, MetaError> {
    let (size, meta_step) = (comm.size().max(1), ctx.meta_step);
    let me = Report {
        meta_step: meta_step as u64,
        fingerprint: fingerprint(ctx, n),
        summaries: local,
    };
    let bytes = bincode_options()
        .serialize(&me)
        .map_err(|e| comm_error(meta_step)(CommError(e.to_string())))?;
    let all = comm.all_gather(&bytes).map_err(comm_error(meta_step))?;
    if all.len() != size {
        return Err(comm_error(meta_step)(CommError(format!(
            "{} reports from {size} ranks",
            all.len()
        ))));
    }
    let mut scalars = Vec::with_capacity(n);
    let mut reports = Vec::with_capacity(size);
    for (r, bytes) in all.iter().enumerate() {
        let report: Report = bincode_options()
            .with_limit(bytes.len() as u64 + 64)
            .deserialize(bytes)
            .map_err(|e| comm_error(meta_step)(CommError(format!("rank {r}: {e}"))))?;
        if report.summaries.len() != share_of(r, size, n).len() {
            return Err(comm_error(meta_step)(CommError(format!(
                "rank {r} sent {} samples for a share of {}",
                report.summaries.len(),
                share_of(r, size, n).len()
            ))));
        }
        reports.push(report);
    }
    // Every rank compares with rank 0, so every rank names the same one.
    let reference = (reports[0].meta_step, reports[0].fingerprint);
    for (r, report) in reports.iter().enumerate() {
        if (report.meta_step, report.fingerprint) != reference {
            return Err(MetaError::Rank {
                rank: r,
                meta_step,
                message: format!(
                    "its meta-parameters, seed or settings differ from rank 0's (it is at \
                     meta-step {}, rank 0 at {})",
                    report.meta_step, reference.0
                ),
            });
        }
    }
    for (i, summary) in reports.into_iter().flat_map(|r| r.summaries).enumerate() {
        match summary {
            Summary::Ok(s) => scalars.push(s),
            Summary::Failed(message) => {
                return Err(MetaError::Rank {
                    rank: owner(i, size, n),
                    meta_step,
                    message,
                })
            }
        }
    }
    Ok(scalars)
}

/// Elements of a chunk of the running sum passed along the chain (32 KiB of f32: small
/// chunks keep the pipeline of ranks short; see README, "Meta-training on MPI").
const CHUNK: usize = 1 << 13;

/// Bytes per value on the wire: f32 travels as 4 bytes, every other scalar as an f64.
fn width<T: Scalar>() -> usize {
    if T::NAME == "f32" {
        4
    } else {
        8
    }
}

/// The values' bits, little-endian (exact: an f32 widened to f64 and back is itself).
fn encode<T: Scalar>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * width::<T>());
    if width::<T>() == 4 {
        for v in values {
            out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
        }
    } else {
        for v in values {
            out.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
    out
}

/// The `expected` values of [`encode`]'s bytes.
fn decode<T: Scalar>(bytes: &[u8], expected: usize) -> Result<Vec<T>, CommError> {
    let w = width::<T>();
    if bytes.len() != expected * w {
        return Err(CommError(format!(
            "{} bytes for {expected} values",
            bytes.len()
        )));
    }
    Ok(if w == 4 {
        bytes
            .chunks_exact(4)
            .map(|b| T::cast(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64))
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|b| {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                T::cast(f64::from_le_bytes(word))
            })
            .collect()
    })
}

/// The sum of every sample's gradient in index order: each rank with samples adds its own, in
/// order, to the running sum received from the previous such rank and passes it to the next,
/// chunk by chunk; the last one broadcasts the total.
fn chain_sum<T: Scalar>(
    comm: &dyn Communicator,
    names: &Params<T>,
    n: usize,
    local: Vec<Vec<DMatrix<T>>>,
) -> Result<Vec<DMatrix<T>>, CommError> {
    let (me, size) = (comm.rank(), comm.size().max(1));
    let busy: Vec<usize> = (0..size)
        .filter(|&r| !share_of(r, size, n).is_empty())
        .collect();
    let last = *busy.last().ok_or_else(|| CommError("no samples".into()))?;
    let mut flat: Vec<T> = Vec::new();
    if let Some(pos) = busy.iter().position(|&r| r == me) {
        let prev = pos.checked_sub(1).map(|p| busy[p]);
        let next = busy.get(pos + 1).copied();
        for (t, (_, shape)) in names.iter().enumerate() {
            for start in (0..shape.len()).step_by(CHUNK) {
                let range = start..(start + CHUNK).min(shape.len());
                let mut rest = local.iter();
                let mut acc: Vec<T> = match prev {
                    Some(p) => decode(&comm.receive(p)?, range.len())?,
                    None => {
                        let first = rest.next().ok_or_else(|| CommError("no samples".into()))?;
                        first[t].as_slice()[range.clone()].to_vec()
                    }
                };
                for g in rest {
                    for (a, b) in acc.iter_mut().zip(&g[t].as_slice()[range.clone()]) {
                        *a += *b;
                    }
                }
                match next {
                    Some(q) => comm.send(q, &encode(&acc))?,
                    None => flat.extend(acc),
                }
            }
        }
    }
    let total: usize = names.iter().map(|(_, m)| m.len()).sum();
    let bytes = if me == last {
        encode(&flat)
    } else {
        Vec::new()
    };
    let flat: Vec<T> = decode(&comm.broadcast(last, bytes)?, total)?;
    let mut offset = 0;
    Ok(names
        .iter()
        .map(|(_, m)| {
            let g =
                DMatrix::from_column_slice(m.nrows(), m.ncols(), &flat[offset..offset + m.len()]);
            offset += m.len();
            g
        })
        .collect())
}

/// The estimate from this rank's samples (`local`, for `workers.share(n)`, in order) of
/// backpropagated gradients: on one process, [`average_samples`]; on several, the same bits
/// (scalars exchanged, gradients summed along the chain of ranks).
pub(crate) fn reduce_samples<T: Scalar>(
    ctx: &EstimateContext<'_, T>,
    n: usize,
    local: Vec<Result<Sample<T>, MetaError>>,
) -> Result<Estimate<T>, MetaError> {
    let (workers, meta_step, names) = (ctx.workers, ctx.meta_step, ctx.optimizer.params());
    let Some(comm) = workers.communicator() else {
        return average_samples(names, local);
    };
    let start = workers.share(n).start;
    let summaries = local
        .iter()
        .enumerate()
        .map(|(i, s)| summarize(meta_step, start + i, s.as_ref(), 0.0, false))
        .collect();
    let scalars = exchange(comm, ctx, n, summaries)?;
    let gradients = local
        .into_iter()
        .map(|s| s.map(|s| s.gradient))
        .collect::<Result<Vec<_>, _>>()?;
    let total = chain_sum(comm, names, n, gradients).map_err(comm_error(meta_step))?;
    Ok(finish(names, &scalars, total))
}

/// [`reduce_samples`] for estimators with persistent trajectories (this rank's share, in
/// order): the estimate and, when every sample succeeded, the trajectories' new states.
pub(crate) fn reduce_persistent<T: Scalar, S>(
    ctx: &EstimateContext<'_, T>,
    n: usize,
    results: Vec<Result<(Sample<T>, S), MetaError>>,
) -> Result<(Estimate<T>, Vec<S>), MetaError> {
    let mut samples = Vec::with_capacity(results.len());
    let mut states = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok((s, p)) => {
                samples.push(Ok(s));
                states.push(p);
            }
            Err(e) => samples.push(Err(e)),
        }
    }
    Ok((reduce_samples(ctx, n, samples)?, states))
}

/// A local ES/PES sample: the sample, its coefficient and whether its pair's accumulated
/// perturbation started over.
pub(crate) type ScaledSample<T> = Result<(Sample<T>, f64, bool), MetaError>;

/// The estimate from this rank's ES/PES samples, whose gradients are `coefficient ×
/// perturbation`: on one process, [`average_samples`]; on several, only the scalars travel and
/// `rebuild(j, coefficient, restarted)` gives the gradient of every other rank's sample `j`
/// (from the seed), summed in index order with this rank's own.
pub(crate) fn reduce_scaled<T: Scalar>(
    ctx: &EstimateContext<'_, T>,
    n: usize,
    local: Vec<ScaledSample<T>>,
    mut rebuild: impl FnMut(usize, f64, bool) -> Vec<DMatrix<T>>,
) -> Result<Estimate<T>, MetaError> {
    let (workers, meta_step, names) = (ctx.workers, ctx.meta_step, ctx.optimizer.params());
    let Some(comm) = workers.communicator() else {
        return average_samples(names, local.into_iter().map(|s| s.map(|s| s.0)).collect());
    };
    let share = workers.share(n);
    let summaries = local
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Ok((sample, c, restarted)) => {
                summarize(meta_step, share.start + i, Ok(sample), *c, *restarted)
            }
            Err(e) => summarize::<T>(meta_step, share.start + i, Err(e), 0.0, false),
        })
        .collect();
    let scalars = exchange(comm, ctx, n, summaries)?;
    let mut own = local.into_iter();
    let mut total = Vec::new();
    for (j, s) in scalars.iter().enumerate() {
        let g = if share.contains(&j) {
            own.next()
                .ok_or_else(|| comm_error(meta_step)(CommError("a missing sample".into())))??
                .0
                .gradient
        } else {
            rebuild(j, s.coefficient, s.restarted)
        };
        accumulate(&mut total, g);
    }
    Ok(finish(names, &scalars, total))
}
