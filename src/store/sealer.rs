//! Sealing a large batch on two threads. A store's second thread, started with its first
//! batch large enough to pay for it and kept while the store is open, seals the second
//! half of a batch's puts while the writing thread seals the first. The half travels as
//! one owned buffer (copied once, the buffers reused batch after batch), so no record's
//! allocation crosses threads. Each thread seals with uses of the data key claimed for its
//! half at once, so the two never contend on the key's count record by record. Nothing
//! durable happens on the second thread: a put it could not seal (its claim fell short of
//! its half, the key's reserved uses taken by a concurrent writer) is left to the writing
//! thread, which persists more first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use crate::keys::{ClaimedUses, StoreId};

/// Puts in a batch below which the hand-over costs more than the second thread saves.
pub(super) const PARALLEL_MIN_PUTS: u64 = 128;

/// Puts to seal and, once sealed, their records: what crosses between the threads.
#[derive(Default)]
pub(super) struct SealJob {
    store: Option<StoreId>,
    databases: Vec<String>,
    /// Each database's uses claimed for this job (`None`: seals none of its puts).
    keys: Vec<Option<ClaimedUses>>,
    /// Each put's key and value, back to back.
    input: Vec<u8>,
    /// Each put's database index, key length and value length.
    puts: Vec<(usize, usize, usize)>,
    /// The sealed records, back to back.
    output: Vec<u8>,
    /// Each put's sealed length; `None` where it did not seal.
    sealed: Vec<Option<usize>>,
    /// Sealed records taken so far, and where the next starts.
    taken: usize,
    at: usize,
}

impl SealJob {
    /// Starts a job for `store` with each database's name and the uses claimed for it.
    pub(super) fn prepare(
        &mut self,
        store: StoreId,
        databases: &[String],
        keys: Vec<Option<ClaimedUses>>,
    ) {
        self.store = Some(store);
        self.databases.clear();
        self.databases.extend_from_slice(databases);
        self.keys = keys;
        self.input.clear();
        self.puts.clear();
        self.output.clear();
        self.sealed.clear();
        (self.taken, self.at) = (0, 0);
    }

    /// Adds a put to seal.
    pub(super) fn push(&mut self, database: usize, key: &[u8], value: &[u8]) {
        self.input.extend_from_slice(key);
        self.input.extend_from_slice(value);
        self.puts.push((database, key.len(), value.len()));
    }

    fn run(&mut self) {
        let Some(store) = self.store else {
            return;
        };
        let mut aad = Vec::with_capacity(128);
        self.output
            .reserve(self.input.len() + self.puts.len() * crate::format::RECORD_OVERHEAD);
        let mut rest = self.input.as_slice();
        for &(database, key_len, value_len) in &self.puts {
            let (key, after) = rest.split_at(key_len.min(rest.len()));
            let (value, after) = after.split_at(value_len.min(after.len()));
            rest = after;
            let before = self.output.len();
            let sealed = self
                .keys
                .get_mut(database)
                .and_then(Option::as_mut)
                .zip(self.databases.get(database))
                .is_some_and(|(claimed, name)| {
                    claimed
                        .seal_record_into(store, name, key, value, &mut aad, &mut self.output)
                        .is_ok()
                });
            self.sealed.push(sealed.then(|| self.output.len() - before));
        }
    }

    /// The next put's sealed record, in the order pushed; `None` where it did not seal.
    pub(super) fn take(&mut self) -> Option<&[u8]> {
        let length = *self.sealed.get(self.taken)?;
        self.taken += 1;
        let length = length?;
        let sealed = self.output.get(self.at..self.at + length)?;
        self.at += length;
        Some(sealed)
    }
}

/// The second thread and a job's buffers, idle between batches.
pub(super) struct Sealer {
    to: SyncSender<SealJob>,
    from: Receiver<SealJob>,
    job: SealJob,
}

impl Sealer {
    /// `None` where no thread can be started: the batch is then sealed on one thread.
    fn start() -> Option<Sealer> {
        let (to, jobs) = mpsc::sync_channel::<SealJob>(1);
        let (done, from) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("atrest-seal".into())
            .spawn(move || {
                for mut job in jobs {
                    job.run();
                    if done.send(job).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Sealer {
            to,
            from,
            job: SealJob::default(),
        })
    }
}

/// A store's second sealing thread, used by one batch at a time (a batch written while
/// another has it seals on its own thread).
#[derive(Default)]
pub(super) struct SealerSlot {
    idle: Mutex<Option<Box<Sealer>>>,
    started: AtomicBool,
}

impl SealerSlot {
    /// The idle sealer and its job's buffers, starting the thread the first time.
    pub(super) fn borrow(&self) -> Option<Box<Sealer>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.is_none() && !self.started.swap(true, Ordering::Relaxed) {
            *idle = Sealer::start().map(Box::new);
        }
        idle.take()
    }

    /// Returns a sealer borrowed and not used.
    pub(super) fn give_back(&self, sealer: Box<Sealer>) {
        *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(sealer);
    }
}

/// A job handed to the second thread, and the sealer to give back when done.
pub(super) struct InFlight<'a> {
    slot: &'a SealerSlot,
    sealer: Option<Box<Sealer>>,
    /// The sealed job, once received.
    done: Option<SealJob>,
}

impl<'a> InFlight<'a> {
    /// Hands `sealer`'s prepared job to the second thread; `None` (and the job sealed by
    /// nobody) if the thread is gone.
    pub(super) fn send(slot: &'a SealerSlot, mut sealer: Box<Sealer>) -> Option<InFlight<'a>> {
        let job = std::mem::take(&mut sealer.job);
        sealer.to.send(job).ok()?;
        Some(InFlight {
            slot,
            sealer: Some(sealer),
            done: None,
        })
    }

    /// The sealed job, waiting for the second thread if it is still at work; `None` if the
    /// thread died.
    pub(super) fn job(&mut self) -> Option<&mut SealJob> {
        if self.done.is_none() {
            self.done = self.sealer.as_ref()?.from.recv().ok();
            if self.done.is_none() {
                self.sealer = None;
            }
        }
        self.done.as_mut()
    }
}

impl Drop for InFlight<'_> {
    /// Waits for the job (whatever became of the batch) and gives the sealer back.
    fn drop(&mut self) {
        if self.job().is_none() {
            return;
        }
        if let (Some(mut sealer), Some(mut job)) = (self.sealer.take(), self.done.take()) {
            // Idle buffers keep no data key alive past the batch.
            job.keys.clear();
            sealer.job = job;
            self.slot.give_back(sealer);
        }
    }
}

impl Sealer {
    /// The job to fill before [`InFlight::send`].
    pub(super) fn job(&mut self) -> &mut SealJob {
        &mut self.job
    }
}
