//! The bulk loader: fills a database of a cluster with random records, in batches, for
//! benchmarks, demos and rotation tests at scale.

use std::time::Instant;

use rand::RngCore;
use serde::Serialize;

use super::cluster::Cluster;
use super::ControlError;
use crate::store::WriteBatch;

/// Records per batch write.
const LOAD_BATCH: u64 = 1000;
/// The largest value the loader writes: a batch holds a thousand of them in memory.
pub const MAX_LOAD_VALUE_SIZE: usize = 1 << 20;

/// What [`Cluster::load`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Records written.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Records per second.
    pub records_per_second: f64,
}

impl Cluster {
    /// Writes `count` records of `value_size` random bytes into `database`, keys
    /// `key000000000000` upwards, a thousand per batch on every node; `progress(records
    /// written so far)` after each batch.
    pub fn load(
        &self,
        database: &str,
        count: u64,
        value_size: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<LoadReport, ControlError> {
        if value_size > MAX_LOAD_VALUE_SIZE {
            return Err(ControlError::ValueTooLarge {
                size: value_size,
                max: MAX_LOAD_VALUE_SIZE,
            });
        }
        let started = Instant::now();
        let mut value = vec![0u8; value_size];
        let mut written = 0;
        while written < count {
            let n = (count - written).min(LOAD_BATCH);
            let mut batch = WriteBatch::new();
            for i in written..written + n {
                rand::rng().fill_bytes(&mut value);
                batch.put(database, format!("key{i:012}"), value.clone());
            }
            self.write(&batch)?;
            written += n;
            progress(written);
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(LoadReport {
            records: count,
            value_size,
            seconds,
            records_per_second: count as f64 / seconds.max(1e-9),
        })
    }
}
