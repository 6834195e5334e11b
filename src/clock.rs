//! Time, as every time-dependent part of atrest sees it.
//!
//! Nothing in atrest reads the system time directly: key deletion windows, automatic
//! rotation and key ages all ask a [`Clock`]. Tests and the CLI's emulator time use a
//! [`ManualClock`] or an [`OffsetClock`] so that "90 days later" takes a microsecond.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, as AWS APIs report dates.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self` plus `d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }
}

impl Timestamp {
    /// The last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z. Emulator time stays
    /// at or before it.
    pub const LATEST: Timestamp = Timestamp(253_402_300_799_999);
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self > Timestamp::LATEST {
            return write!(f, "{} s after the epoch (past year 9999)", self.as_secs());
        }
        let secs = UNIX_EPOCH + Duration::from_secs(self.as_secs());
        write!(f, "{}", humantime::format_rfc3339_seconds(secs))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// The number of whole days in a duration, as AWS counts windows and periods.
/// Saturates rather than overflow: a count of days from input never panics.
pub const fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time by this clock.
    fn now(&self) -> Timestamp;
}

/// The clocks are shared by every layer of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The real time of this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(duration_millis(since))
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: AtomicU64::new(start.0),
        }
    }

    /// Starts at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(duration_millis(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to` (which may be earlier).
    pub fn set(&self, to: Timestamp) {
        self.now.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

/// Another clock plus a fixed offset: a root's emulator time, which moves with its base
/// clock (real time for the CLI, a manual clock in tests) and jumps forward when the user
/// advances it.
#[derive(Debug)]
pub struct OffsetClock {
    base: SharedClock,
    offset_ms: AtomicU64,
}

impl OffsetClock {
    /// Real time plus `offset`.
    pub fn new(offset: Duration) -> Self {
        Self::over(Arc::new(SystemClock), offset)
    }

    /// `base` plus `offset`.
    pub fn over(base: SharedClock, offset: Duration) -> Self {
        OffsetClock {
            base,
            offset_ms: AtomicU64::new(duration_millis(offset)),
        }
    }

    /// Runs `offset` ahead of the base clock from now on, for everything that reads this
    /// clock.
    pub fn set_offset(&self, offset: Duration) {
        self.offset_ms
            .store(duration_millis(offset), Ordering::SeqCst);
    }

    /// The clock this one runs ahead of.
    pub fn base(&self) -> &SharedClock {
        &self.base
    }

    /// How far ahead of real time this clock runs.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        self.base.now().saturating_add(self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        assert_eq!(clock.now(), Timestamp::from_millis(1_000));
        clock.advance(days(90));
        assert_eq!(clock.now().since(Timestamp::from_millis(1_000)), days(90));
    }

    #[test]
    fn offset_clock_is_ahead_of_system_time() {
        let clock = OffsetClock::new(days(91));
        assert!(clock.now().since(SystemClock.now()) >= days(91) - Duration::from_secs(60));
    }

    #[test]
    fn times_past_year_9999_print_without_panicking() {
        assert!(Timestamp(u64::MAX).to_string().contains("past year 9999"));
        assert_eq!(Timestamp::LATEST.to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(days(u64::MAX), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn timestamps_print_as_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(86_400_000).to_string(),
            "1970-01-02T00:00:00Z"
        );
    }
}
