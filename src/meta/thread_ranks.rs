//! Ranks that are threads of one process: a [`Communicator`] over channels, to run and test
//! distributed meta-training without MPI (each thread holds its own trainer and optimizer, as
//! an MPI rank would).

use super::workers::{CommError, Communicator};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

/// One rank of a group of threads made by [`ThreadRanks::group`]; give each to its own thread.
pub struct ThreadRanks {
    rank: usize,
    /// `to[r]` sends to rank `r`.
    to: Vec<Sender<Vec<u8>>>,
    /// `from[r]` receives what rank `r` sent here, in order.
    from: Vec<Mutex<Receiver<Vec<u8>>>>,
    sent: AtomicU64,
}

impl ThreadRanks {
    /// `size` connected ranks (`size` at least 1), rank `r` at index `r`.
    pub fn group(size: usize) -> Vec<ThreadRanks> {
        let size = size.max(1);
        // channels[a][b] carries messages from rank a to rank b.
        let mut senders: Vec<Vec<Sender<Vec<u8>>>> = Vec::with_capacity(size);
        let mut receivers: Vec<Vec<Option<Receiver<Vec<u8>>>>> = (0..size)
            .map(|_| (0..size).map(|_| None).collect())
            .collect();
        for a in 0..size {
            let mut row = Vec::with_capacity(size);
            for receiving in receivers.iter_mut() {
                let (tx, rx) = channel();
                row.push(tx);
                receiving[a] = Some(rx);
            }
            senders.push(row);
        }
        senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(rank, (to, from))| ThreadRanks {
                rank,
                to,
                from: from.into_iter().flatten().map(Mutex::new).collect(),
                sent: AtomicU64::new(0),
            })
            .collect()
    }

    /// Bytes this rank has sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn check(&self, rank: usize) -> Result<(), CommError> {
        if rank < self.to.len() {
            Ok(())
        } else {
            Err(CommError(format!(
                "rank {rank} does not exist (size {})",
                self.to.len()
            )))
        }
    }
}

impl Communicator for ThreadRanks {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.to.len()
    }
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        for r in (0..self.size()).filter(|&r| r != self.rank) {
            self.send(r, local)?;
        }
        (0..self.size())
            .map(|r| {
                if r == self.rank {
                    Ok(local.to_vec())
                } else {
                    self.receive(r)
                }
            })
            .collect()
    }
    fn send(&self, to: usize, data: &[u8]) -> Result<(), CommError> {
        self.check(to)?;
        self.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.to[to]
            .send(data.to_vec())
            .map_err(|_| CommError(format!("rank {to} has ended")))
    }
    fn receive(&self, from: usize) -> Result<Vec<u8>, CommError> {
        self.check(from)?;
        let rx = self.from[from]
            .lock()
            .map_err(|_| CommError(format!("the channel from rank {from} is poisoned")))?;
        rx.recv()
            .map_err(|_| CommError(format!("rank {from} has ended")))
    }
    fn broadcast(&self, root: usize, data: Vec<u8>) -> Result<Vec<u8>, CommError> {
        self.check(root)?;
        if self.rank == root {
            for r in (0..self.size()).filter(|&r| r != root) {
                self.send(r, &data)?;
            }
            Ok(data)
        } else {
            self.receive(root)
        }
    }
}
