//! Crash points: every place atrest makes a durable change (a record or keystore write, a
//! file replaced or removed, a directory created, renamed or removed, a snapshot file
//! written) or calls a KMS is a numbered step, counted as the thread reaches it. A test or
//! a fuzz input arms "crash at step N" on its thread; from step N on the thread behaves as
//! a process SIGKILLed there would: that step and every durable step after it fail with
//! [`Crashed`] and change nothing, so what reaches the disk is exactly what a kill at that
//! moment leaves. The caller then drops everything it holds (memory does not survive a
//! kill) and opens the root or store again, as the next process would.
//!
//! Counting is per thread, so tests running in parallel never see each other's steps.
//! Disarmed (always, outside tests), a crash point costs a thread-local flag read.

use std::cell::{Cell, RefCell};
use std::fmt;

/// What a crash point is about to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// Write records (a put, a delete, a batch) or create a database's column family.
    RecordWrite,
    /// Write the keystore (one synced RocksDB write).
    KeystoreWrite,
    /// Create a store's RocksDB.
    StoreCreate,
    /// Write the temporary file that will replace a file.
    FileWrite,
    /// Rename that temporary file over the file it replaces.
    FileRename,
    /// Remove a file (a journal, a snapshot).
    FileRemove,
    /// Create a directory (where a replacement store is built).
    DirCreate,
    /// Rename a directory (a replacement store moving in, an old one moving aside).
    DirRename,
    /// Remove a directory and what it holds.
    DirRemove,
    /// Call the KMS's Encrypt.
    KmsEncrypt,
    /// Call the KMS's Decrypt.
    KmsDecrypt,
}

/// The error of every crash point from the armed step on: the simulated process is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crashed {
    /// The step the crash was armed at (1 is the first step after arming).
    pub step: u64,
    /// What that step was about to do.
    pub point: CrashPoint,
}

impl fmt::Display for Crashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped at crash point {} ({:?}): a simulated crash, nothing after it ran",
            self.step, self.point
        )
    }
}

impl std::error::Error for Crashed {}

impl From<Crashed> for std::io::Error {
    fn from(crashed: Crashed) -> Self {
        std::io::Error::other(crashed)
    }
}

#[derive(Default)]
struct Plan {
    /// Every step reached since arming, in order.
    reached: Vec<CrashPoint>,
    crash_at: Option<u64>,
    crashed: Option<Crashed>,
}

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static PLAN: RefCell<Plan> = RefCell::new(Plan::default());
}

/// Reached before a durable step or a KMS call: `Err` when this thread has crashed (at this
/// step or an earlier one), and the step must not happen.
pub(crate) fn reach(point: CrashPoint) -> Result<(), Crashed> {
    if !ARMED.with(Cell::get) {
        return Ok(());
    }
    PLAN.with_borrow_mut(|plan| {
        if let Some(crashed) = plan.crashed {
            return Err(crashed);
        }
        plan.reached.push(point);
        let step = plan.reached.len() as u64;
        if plan.crash_at == Some(step) {
            let crashed = Crashed { step, point };
            plan.crashed = Some(crashed);
            return Err(crashed);
        }
        Ok(())
    })
}

/// Whether this thread has crashed: cleanup that a killed process would not have done
/// is skipped.
pub(crate) fn has_crashed() -> bool {
    ARMED.with(Cell::get) && PLAN.with_borrow(|plan| plan.crashed.is_some())
}

/// Crash points counted on this thread until the guard is dropped; with `crash_at`,
/// the thread crashes at that step (1-based). Arming again replaces the plan.
pub fn arm(crash_at: Option<u64>) -> Armed {
    PLAN.with_borrow_mut(|plan| {
        *plan = Plan {
            crash_at,
            ..Plan::default()
        }
    });
    ARMED.with(|armed| armed.set(true));
    Armed {
        _not_send: std::marker::PhantomData,
    }
}

/// This thread's armed crash points; dropping it disarms them.
#[derive(Debug)]
pub struct Armed {
    // The plan is this thread's: the guard must not move to another.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Armed {
    /// The steps reached so far, in order (the crashing one included).
    pub fn reached(&self) -> Vec<CrashPoint> {
        PLAN.with_borrow(|plan| plan.reached.clone())
    }

    /// Where the thread crashed, if it did.
    pub fn crashed(&self) -> Option<Crashed> {
        PLAN.with_borrow(|plan| plan.crashed)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.with(|armed| armed.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_and_stays_dead_after_the_crash() {
        assert_eq!(reach(CrashPoint::FileWrite), Ok(()), "disarmed");
        let armed = arm(Some(2));
        assert_eq!(reach(CrashPoint::FileWrite), Ok(()));
        let crashed = Crashed {
            step: 2,
            point: CrashPoint::FileRename,
        };
        assert_eq!(reach(CrashPoint::FileRename), Err(crashed));
        assert_eq!(reach(CrashPoint::KmsEncrypt), Err(crashed));
        assert_eq!(
            armed.reached(),
            [CrashPoint::FileWrite, CrashPoint::FileRename]
        );
        assert_eq!(armed.crashed(), Some(crashed));
        drop(armed);
        assert_eq!(reach(CrashPoint::FileWrite), Ok(()), "disarmed again");
    }

    #[test]
    fn other_threads_are_not_counted() {
        let armed = arm(Some(1));
        std::thread::spawn(|| assert_eq!(reach(CrashPoint::DirRemove), Ok(())))
            .join()
            .unwrap();
        assert!(armed.reached().is_empty());
    }
}
