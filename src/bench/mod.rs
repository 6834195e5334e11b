//! `atrest bench`: db_bench-style workloads on an encrypted store and, in the same run,
//! on plain RocksDB opened with the same options, so the cost of encryption is a ratio
//! measured under the same machine noise.
//!
//! Owns what a run is asked ([`BenchOptions`]) and what it reports ([`BenchReport`]): for
//! each value size, each workload's throughput and process CPU time on both sides, their
//! ratios, latency percentiles of the point operations, key rotation and snapshot
//! figures; and the run's peak memory. The workloads are in `workloads`, the HTML report
//! a person opens in `html`.

mod html;
mod workloads;

use std::path::PathBuf;

use serde::Serialize;

use crate::kms::KmsError;
use crate::store::{SnapshotError, StoreError};

pub use html::write_report;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The encrypted store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plaintext RocksDB baseline failed.
    #[error("the plaintext RocksDB baseline failed: {0}")]
    Baseline(#[from] rocksdb::Error),
    /// The embedded KMS failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// A snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The scratch or report directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Reads did not return what was written: a bug, not a measurement.
    #[error("{0}")]
    Mismatch(String),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Records per workload.
    pub count: u64,
    /// Bytes per value: every workload runs once per size, on fresh stores.
    pub value_sizes: Vec<usize>,
    /// Scratch directory; everything in it is removed afterwards.
    pub dir: PathBuf,
}

/// Operations and bytes per second of one side of a workload, and the CPU it took.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rate {
    /// Operations (records) per second.
    pub ops_per_sec: f64,
    /// Value bytes per second, in MB (10^6).
    pub mb_per_sec: f64,
    /// CPU seconds the whole process spent (every thread, RocksDB's too).
    pub cpu_sec: f64,
}

/// Latency of single operations, in microseconds, from every 16th operation timed.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// One workload on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// db_bench's name for it (`-2threads`, `-uncached`: this tool's variants).
    pub name: &'static str,
    /// Plain RocksDB.
    pub plaintext: Rate,
    /// The encrypted store.
    pub encrypted: Rate,
    /// encrypted ÷ plaintext throughput.
    pub ratio: f64,
    /// encrypted ÷ plaintext process CPU seconds: what the work costs, where `ratio` is
    /// what it takes in time (a second thread can hide CPU from the clock).
    pub cpu_ratio: f64,
    /// Per-operation latency of point workloads, plain and encrypted.
    pub latency: Option<[Latency; 2]>,
    /// Cycles of plain, encrypted, encrypted, plain turns run (more where a turn is short).
    pub cycles: u32,
}

/// Everything measured at one value size.
#[derive(Clone, Debug, Serialize)]
pub struct SizeReport {
    /// Bytes per value.
    pub value_size: usize,
    /// The workloads, in the order run.
    pub workloads: Vec<Workload>,
    /// Milliseconds for one master-key rotation with `count` records stored (median of 5).
    pub master_key_rotation_ms: f64,
    /// Snapshot file size in MB.
    pub snapshot_mb: f64,
    /// Snapshot creation, MB of snapshot file per second.
    pub snapshot_create_mb_per_sec: f64,
    /// Restore, MB of snapshot file per second.
    pub snapshot_restore_mb_per_sec: f64,
}

/// Everything `atrest bench` reports.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Records per workload.
    pub count: u64,
    /// The AES-GCM backend of the encrypted side.
    pub backend: String,
    /// Each value size, in the order run.
    pub sizes: Vec<SizeReport>,
    /// The process's peak resident memory (VmHWM), in MB.
    pub peak_rss_mb: f64,
}

/// The peak resident set of this process, from /proc (0 where there is none).
pub fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:").map_or(0.0, |kb| kb / 1024.0)
}

fn proc_status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs every workload at every value size; `progress` hears each step as it starts.
pub fn run(
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let io = |source| BenchError::Io {
        path: options.dir.clone(),
        source,
    };
    std::fs::create_dir_all(&options.dir).map_err(io)?;
    let mut sizes = Vec::new();
    let mut result = Ok(());
    for &value_size in &options.value_sizes {
        let dir = options.dir.join(format!("{value_size}"));
        let mut step = |name: &str| progress(&format!("{name} ({value_size} B)"));
        match workloads::run_size(options.count, value_size, &dir, &mut step) {
            Ok(size) => sizes.push(size),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&options.dir);
    result?;
    Ok(BenchReport {
        count: options.count,
        backend: crate::crypto::Backend::default().to_string(),
        sizes,
        peak_rss_mb: peak_rss_mb(),
    })
}
