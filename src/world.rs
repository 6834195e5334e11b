//! One entry point for embedders: a whole atrest world wired together, for test databases,
//! outage drills and rotation tests.
//!
//! A [`World`] is a root in a fresh temporary directory (removed on drop) on a
//! [`ManualClock`] that the KMS, every store and every schedule read, with its project
//! initialised and KMS fault injection in front of every call the project makes. Nothing
//! has to be passed twice, so nothing can be forgotten: moving the clock moves key ages,
//! rotation schedules, validity checks and the KMS's own rotations together.
//!
//! ```
//! # #[cfg(feature = "store")] {
//! use atrest::World;
//! use atrest::clock::days;
//! use atrest::kms::Fault;
//!
//! let world = World::new()?;
//! world.cluster()?.put("users", b"alice", b"admin")?;
//!
//! // Ninety-one days later, tick rotates every node's master key; nothing is rewritten.
//! world.advance(days(91));
//! let tick = world.root().tick()?;
//! assert_eq!(tick.master_keys_rotated.len(), 3);
//!
//! // A KMS outage raises an alert and shuts nothing down.
//! world.faults().fail_next(1, Fault::Unavailable);
//! world.root().check()?;
//! let cluster = world.cluster()?;
//! assert_eq!(cluster.get("users", b"alice")?.as_deref(), Some(&b"admin"[..]));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ManualClock};
use crate::control::cluster::Cluster;
use crate::control::{ControlError, InitOptions, Root, Settings};
use crate::kms::{FaultyKms, LocalKmsClient};

/// A root in a temporary directory on a manual clock, with KMS faults on demand; see the
/// [module](self).
pub struct World {
    root: Root,
    clock: Arc<ManualClock>,
    faults: Arc<FaultyKms>,
    dir: PathBuf,
    keep: bool,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("dir", &self.dir)
            .field("now", &self.clock.now())
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world made the way `atrest init` makes a root: a CMK in the embedded KMS, the
    /// project configured for encryption at rest, `Cluster0` with three encrypted nodes.
    pub fn new() -> Result<World, ControlError> {
        Self::with(&InitOptions::default())
    }

    /// A world initialised with `options` (nodes, rotation periods, data-key limits).
    pub fn with(options: &InitOptions) -> Result<World, ControlError> {
        let nonce: u64 = rand::random();
        let dir =
            std::env::temp_dir().join(format!("atrest-world-{}-{nonce:016x}", std::process::id()));
        let clock = Arc::new(ManualClock::starting_now());
        let mut root = Root::open_with_clock(&dir, clock.clone())?;
        let admin = root.kms_client(None, None)?;
        let faults = Arc::new(FaultyKms::new(Arc::new(admin)));
        let schedule = faults.clone();
        root.wrap_kms(Arc::new(move |inner| {
            Arc::new(schedule.sharing_schedule(inner))
        }));
        let world = World {
            root,
            clock,
            faults,
            dir,
            keep: false,
        };
        world.root.init(options)?;
        Ok(world)
    }

    /// The root: the project, its checks and schedules, snapshots.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The project's settings.
    pub fn settings(&self) -> Result<Settings, ControlError> {
        self.root.transact(|s| Ok(s.clone()))
    }

    /// The default cluster, open.
    pub fn cluster(&self) -> Result<Arc<Cluster>, ControlError> {
        self.root.cluster(None)
    }

    /// The embedded KMS as the account root: to disable, enable, rotate or delete keys.
    pub fn kms(&self) -> Result<LocalKmsClient, ControlError> {
        self.root.kms_client(None, None)
    }

    /// The project's CMK, as its ARN.
    pub fn cmk(&self) -> Result<String, ControlError> {
        Ok(self.settings()?.cmk)
    }

    /// The faults every KMS call of the project meets: schedule an outage, throttling or
    /// revoked access; heal it.
    pub fn faults(&self) -> &FaultyKms {
        &self.faults
    }

    /// Moves the world's clock forward by `by`: key ages, rotation schedules, validity
    /// checks and the KMS's own rotations all see it at once.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The world's clock.
    pub fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }

    /// The world's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the directory after the world is dropped, to look at it.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
