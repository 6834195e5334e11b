//! A cluster's database, streamed from a serving node in batches.

use std::ops::Bound;

use super::Cluster;
use crate::control::ControlError;
use crate::store::{KeyRange, KeyValue};

/// Records read from a node per visit while a cluster scan streams.
pub(super) const SCAN_BATCH: usize = 1000;

/// A scan of a cluster's database, streamed in batches; see [`Cluster::scan`].
pub struct ClusterScan<'a> {
    cluster: &'a Cluster,
    database: String,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buffered: std::vec::IntoIter<KeyValue>,
    done: bool,
}

impl<'a> ClusterScan<'a> {
    /// A scan of `database` in `range` of `cluster`, reading nothing until it is iterated.
    pub(super) fn new(cluster: &'a Cluster, database: &str, range: KeyRange) -> Self {
        let (start, end) = range.bounds();
        ClusterScan {
            cluster,
            database: database.to_string(),
            start,
            end,
            buffered: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Reads the next batch from a serving node.
    fn fill(&mut self) -> Result<(), ControlError> {
        let guard = self.cluster.reader()?;
        let Some(node) = guard.as_ref() else {
            self.done = true;
            return Ok(());
        };
        let range = KeyRange::Range {
            start: self.start.clone(),
            end: self.end.clone(),
        };
        let batch = node
            .scan(&self.database, range)?
            .take(SCAN_BATCH)
            .collect::<Result<Vec<_>, _>>()?;
        self.done = batch.len() < SCAN_BATCH;
        if let Some((last, _)) = batch.last() {
            self.start = Bound::Excluded(last.clone());
        }
        self.buffered = batch.into_iter();
        Ok(())
    }
}

impl Iterator for ClusterScan<'_> {
    type Item = Result<KeyValue, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(record) = self.buffered.next() {
            return Some(Ok(record));
        }
        if self.done {
            return None;
        }
        match self.fill() {
            Ok(()) => self.buffered.next().map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
