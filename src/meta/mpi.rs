//! MPI ranks (feature `mpi`): a [`Communicator`] over `MPI_COMM_WORLD` through rsmpi, for
//! meta-training under `mpirun` (examples/meta_train_mpi.rs).
//!
//! Failures end the whole job, never leave ranks waiting: a panic that escapes
//! [`MpiCommunicator::abort_on_panic`] calls `MPI_Abort` after naming the rank and the
//! meta-step; a rank that exits or is killed makes the launcher stop the others, and each of
//! them says which meta-step it was in (a `SIGTERM` handler installed by
//! [`MpiCommunicator::init`]). Errors inside a meta-step (a NaN, a panic inside an operation)
//! reach every rank as the same `MetaError::Rank`, naming the rank and the meta-step.

use super::workers::{CommError, Communicator};
use mpi::collective::{CommunicatorCollectives, Root};
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::{Count, Threading};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// This process's rank (for the termination message).
static RANK: AtomicUsize = AtomicUsize::new(0);
/// The meta-step in progress (`usize::MAX` before the first).
static META_STEP: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The ranks of `MPI_COMM_WORLD`. MPI is initialized by [`MpiCommunicator::init`] (once per
/// process) and finalized when this is dropped.
pub struct MpiCommunicator {
    universe: Universe,
    /// MPI is initialized with `MPI_THREAD_SERIALIZED`: calls never overlap.
    lock: Mutex<()>,
    rank: usize,
    size: usize,
    sent: AtomicU64,
}

/// Writes `n` in decimal into `out` from `at`; returns the new end (no allocation: usable in a
/// signal handler).
fn put_number(out: &mut [u8], mut at: usize, mut n: usize) -> usize {
    let mut digits = [0u8; 20];
    let mut k = 0;
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while k > 0 && at < out.len() {
        k -= 1;
        out[at] = digits[k];
        at += 1;
    }
    at
}

/// Copies `text` into `out` from `at`; returns the new end.
fn put_text(out: &mut [u8], mut at: usize, text: &[u8]) -> usize {
    for &b in text {
        if at < out.len() {
            out[at] = b;
            at += 1;
        }
    }
    at
}

/// `SIGTERM` (what the launcher sends the other ranks when one fails): says which rank and
/// meta-step were stopped, then exits at once.
extern "C" fn on_terminate(_signal: libc::c_int) {
    let mut buf = [0u8; 320];
    let mut at = put_text(&mut buf, 0, b"rank ");
    at = put_number(&mut buf, at, RANK.load(Ordering::Relaxed));
    at = put_text(&mut buf, at, b": stopped by the launcher ");
    match META_STEP.load(Ordering::Relaxed) {
        usize::MAX => at = put_text(&mut buf, at, b"before the first meta-step"),
        k => {
            at = put_text(&mut buf, at, b"during meta-step ");
            at = put_number(&mut buf, at, k);
            at = put_text(&mut buf, at, b" (counting from 0)");
        }
    }
    at = put_text(
        &mut buf,
        at,
        b": another rank failed, exited or was killed (the launcher names it), or the job was \
          interrupted; checkpoints written before this meta-step are intact\n",
    );
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `buf` is a live local array and
    // `at <= buf.len()` bytes of it are initialized. Nothing else is touched (atomics only).
    unsafe {
        libc::write(2, buf.as_ptr().cast(), at);
        libc::_exit(143);
    }
}

impl MpiCommunicator {
    /// Initializes MPI (`MPI_THREAD_SERIALIZED`: rayon threads compute, one thread at a time
    /// talks) and installs the `SIGTERM` message; an error if MPI is already initialized or
    /// cannot give that threading level.
    pub fn init() -> Result<Self, String> {
        let (universe, provided) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or("MPI is already initialized in this process")?;
        if !matches!(provided, Threading::Serialized | Threading::Multiple) {
            return Err(format!(
                "the MPI library gives threading level {provided:?}; Serialized is needed"
            ));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        RANK.store(rank, Ordering::Relaxed);
        // SAFETY: `on_terminate` is an `extern "C" fn(c_int)` that only reads atomics and calls
        // async-signal-safe functions; replacing the default SIGTERM disposition (terminate)
        // with it changes nothing else in the process.
        unsafe {
            libc::signal(
                libc::SIGTERM,
                on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        Ok(MpiCommunicator {
            universe,
            lock: Mutex::new(()),
            rank,
            size,
            sent: AtomicU64::new(0),
        })
    }

    fn world(&self) -> (std::sync::MutexGuard<'_, ()>, SimpleCommunicator) {
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        (guard, self.universe.world())
    }

    /// The number of ranks on this rank's machine (to share its cores among them).
    pub fn local_size(&self) -> usize {
        let (_guard, world) = self.world();
        world.split_shared(self.rank as i32).size().max(1) as usize
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        let (_guard, world) = self.world();
        world.barrier();
    }

    /// Payload bytes this rank has sent so far (each message counted once per receiver, as
    /// point-to-point messages would carry it).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The meta-step in progress on this rank (`None` before the first).
    pub fn meta_step(&self) -> Option<usize> {
        match META_STEP.load(Ordering::Relaxed) {
            usize::MAX => None,
            k => Some(k),
        }
    }

    /// Ends the whole job (`MPI_Abort`) after printing `message` with this rank and the
    /// meta-step in progress.
    pub fn abort(&self, message: &str) -> ! {
        let at = self
            .meta_step()
            .map_or("before the first meta-step".into(), |k| {
                format!("at meta-step {k} (counting from 0)")
            });
        eprintln!("rank {} {at}: {message}; ending the job", self.rank);
        let (_guard, world) = self.world();
        world.abort(1)
    }

    /// Runs `f`; a panic that escapes it ends the whole job with a message naming this rank
    /// and the meta-step, instead of leaving the other ranks waiting for this one.
    pub fn abort_on_panic<R>(&self, f: impl FnOnce() -> R) -> R {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                self.abort(&format!("panicked: {message}"))
            }
        }
    }
}

/// A length as MPI's count type, or an error for messages over 2 GiB.
fn count(n: usize) -> Result<Count, CommError> {
    Count::try_from(n).map_err(|_| CommError(format!("a message of {n} bytes is too long")))
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        let mine = count(local.len())?;
        let (_guard, world) = self.world();
        let mut counts: Vec<Count> = vec![0; self.size];
        world.all_gather_into(&mine, &mut counts[..]);
        let mut displs = Vec::with_capacity(self.size);
        let mut total: usize = 0;
        for &c in &counts {
            displs.push(count(total)?);
            total += usize::try_from(c).map_err(|_| CommError("a negative count".into()))?;
        }
        count(total)?;
        let mut buf = vec![0u8; total];
        if total > 0 {
            let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(local, &mut partition);
        }
        let sent = local.len() as u64 * (self.size as u64 - 1);
        self.sent.fetch_add(sent, Ordering::Relaxed);
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
            .collect())
    }
    fn send(&self, to: usize, data: &[u8]) -> Result<(), CommError> {
        if to >= self.size {
            return Err(CommError(format!("rank {to} does not exist")));
        }
        count(data.len())?;
        let (_guard, world) = self.world();
        world.process_at_rank(to as i32).send(data);
        self.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn receive(&self, from: usize) -> Result<Vec<u8>, CommError> {
        if from >= self.size {
            return Err(CommError(format!("rank {from} does not exist")));
        }
        let (_guard, world) = self.world();
        Ok(world.process_at_rank(from as i32).receive_vec::<u8>().0)
    }
    fn broadcast(&self, root: usize, mut data: Vec<u8>) -> Result<Vec<u8>, CommError> {
        if root >= self.size {
            return Err(CommError(format!("rank {root} does not exist")));
        }
        count(data.len())?;
        let (_guard, world) = self.world();
        let process = world.process_at_rank(root as i32);
        let mut len = data.len() as u64;
        process.broadcast_into(&mut len);
        let len = usize::try_from(len).map_err(|_| CommError("a message too long".into()))?;
        count(len)?;
        data.resize(len, 0);
        // Every rank knows the length now: an empty message is not sent (MPI refuses the
        // dangling pointer of an empty buffer).
        if len > 0 {
            process.broadcast_into(&mut data[..]);
        }
        if self.rank == root {
            self.sent
                .fetch_add(len as u64 * (self.size as u64 - 1), Ordering::Relaxed);
        }
        Ok(data)
    }
    fn begin_meta_step(&self, meta_step: usize) {
        META_STEP.store(meta_step, Ordering::Relaxed);
    }
}
