//! Keeping a cluster's nodes alike: the rolling rewrite into encrypted or plain stores,
//! replacing every node's directory (a restore), rebuilding a node that is damaged or
//! behind from the most advanced one, and comparing every node.

use std::path::Path;

use super::locks::io_error;
use super::Cluster;
use crate::control::ControlError;
use crate::durable::DirReplacement;
use crate::store::{KeyRange, Node, StoreError, WriteBatch};

/// Records copied per write while a node is rewritten.
const REWRITE_BATCH: usize = 1000;

/// A node found damaged or behind the others at open, and rebuilt from a healthy replica.
#[derive(Clone, Debug)]
pub struct RebuiltNode {
    /// `node-K`.
    pub node: String,
    /// What was wrong with it.
    pub reason: String,
}

impl Cluster {
    /// Replaces every node's directory with `replace(index, path)`, node by node: each is
    /// closed first and opened again after, while the cluster keeps its nodes' locks.
    pub(crate) fn replace_nodes(
        &self,
        mut replace: impl FnMut(usize, &Path) -> std::io::Result<()>,
    ) -> Result<(), ControlError> {
        for (index, (slot, path)) in self.nodes.iter().zip(&self.paths).enumerate() {
            let mut node = slot.write().unwrap_or_else(|p| p.into_inner());
            *node = None;
            replace(index, path).map_err(|e| io_error(path, e))?;
            *node = Some(self.opener().open(&self.name, index, path)?);
        }
        Ok(())
    }

    /// Rolling rewrite into encrypted (`true`) or plain stores: node by node, every
    /// record copied into a new store beside the old one, which then takes its place
    /// crash-safely (see [`DirReplacement`]). Reads are served by the other nodes
    /// meanwhile; writes wait for the node. Nodes already in the target form are skipped,
    /// so an interrupted rewrite resumes. `progress(node, records copied)`.
    pub fn rewrite(
        &self,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        self.serving()?;
        for (index, (slot, path)) in self.nodes.iter().zip(&self.paths).enumerate() {
            let mut guard = slot.write().unwrap_or_else(|p| p.into_inner());
            let Some(old) = guard.as_ref() else { continue };
            if old.encrypted().is_some() == encrypt {
                continue;
            }
            let replacement = DirReplacement::new(path, "rewrite");
            replacement.begin().map_err(|e| io_error(path, e))?;
            let copied = self.copy_node(old, index, replacement.staging(), encrypt, progress);
            if let Err(e) = copied {
                let _ = replacement.abandon();
                return Err(e);
            }
            *guard = None;
            replacement.commit().map_err(|e| io_error(path, e))?;
            *guard = Some(self.opener().open(&self.name, index, path)?);
        }
        Ok(())
    }

    /// Copies every record of `old` into a new store of the other kind at `staging`.
    pub(super) fn copy_node(
        &self,
        old: &Node,
        index: usize,
        staging: &Path,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        let fresh = self.opener().create(&self.name, index, staging, encrypt)?;
        let mut copied = 0u64;
        for database in old.databases()? {
            let mut batch = WriteBatch::new();
            for record in old.scan(&database, KeyRange::All)? {
                let (key, value) = record?;
                batch.put(&database, key, value);
                if batch.len() >= REWRITE_BATCH {
                    fresh.write(&batch)?;
                    copied += batch.len() as u64;
                    progress(index, copied);
                    batch = WriteBatch::new();
                }
            }
            fresh.write(&batch)?;
            copied += batch.len() as u64;
            progress(index, copied);
        }
        // The copy has applied what its source has.
        fresh.write_at(&WriteBatch::new(), old.applied()?)?;
        fresh.flush()?;
        Ok(())
    }

    /// Brings every open node to the most advanced one: a node whose last applied write
    /// is older is rebuilt from it, and so is a damaged one. Then the cluster's next write
    /// follows the most advanced.
    pub(super) fn reconcile(&self, damaged: Vec<(usize, StoreError)>) -> Result<(), ControlError> {
        let mut applied = Vec::new();
        for (index, slot) in self.nodes.iter().enumerate() {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            if let Some(node) = guard.as_ref() {
                applied.push((index, node.applied()?));
            }
        }
        let Some(&(source, latest)) = applied.iter().max_by_key(|(_, a)| *a) else {
            return match damaged.into_iter().next() {
                Some((_, e)) => Err(e.into()),
                None => Ok(()),
            };
        };
        for (index, damage) in damaged {
            self.rebuild(index, source, damage.to_string())?;
        }
        for (index, behind) in applied {
            if behind < latest {
                let reason = format!(
                    "behind: its last applied cluster write is {behind}, node-{source}'s is {latest}"
                );
                self.rebuild(index, source, reason)?;
            }
        }
        let mut last = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
        *last = (*last).max(latest);
        Ok(())
    }

    /// Rebuilds node `index` from node `source`: every record copied into a new store that
    /// replaces the node's crash-safely; `reason` goes into the alert.
    pub(super) fn rebuild(
        &self,
        index: usize,
        source: usize,
        reason: String,
    ) -> Result<(), ControlError> {
        let (Some(slot), Some(path), Some(from)) = (
            self.nodes.get(index),
            self.paths.get(index),
            self.nodes.get(source),
        ) else {
            return Err(ControlError::BadNodeCount {
                nodes: u32::try_from(self.nodes.len()).unwrap_or(u32::MAX),
            });
        };
        let mut target = slot.write().unwrap_or_else(|p| p.into_inner());
        *target = None;
        let healthy = from.read().unwrap_or_else(|p| p.into_inner());
        let Some(healthy) = healthy.as_ref() else {
            return Ok(());
        };
        let replacement = DirReplacement::new(path, "rebuild");
        replacement.begin().map_err(|e| io_error(path, e))?;
        let encrypt = healthy.encrypted().is_some();
        let copied = self.copy_node(
            healthy,
            index,
            replacement.staging(),
            encrypt,
            &mut |_, _| {},
        );
        if let Err(e) = copied {
            let _ = replacement.abandon();
            return Err(e);
        }
        replacement.commit().map_err(|e| io_error(path, e))?;
        *target = Some(self.opener().open(&self.name, index, path)?);
        self.rebuilt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RebuiltNode {
                node: format!("node-{index}"),
                reason,
            });
        Ok(())
    }

    /// Reads every node whole and compares them: per database, the record count and a
    /// digest of every key and value. Every record is opened, so a damaged one is an error.
    pub fn verify(&self) -> Result<Verification, ControlError> {
        self.serving()?;
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (index, slot) in self.nodes.iter().enumerate() {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            let mut databases = std::collections::BTreeMap::new();
            if let Some(node) = guard.as_ref() {
                for database in node.databases()? {
                    let mut digest = DatabaseDigest {
                        records: 0,
                        digest: 0xcbf2_9ce4_8422_2325,
                    };
                    for record in node.scan(&database, KeyRange::All)? {
                        let (key, value) = record?;
                        digest.records += 1;
                        digest.digest = fnv(fnv(digest.digest, &key), &value);
                    }
                    // An empty database and an absent one hold the same: nothing. (A plain
                    // node lists RocksDB's own `default` column family, for one.)
                    if digest.records > 0 {
                        databases.insert(database, digest);
                    }
                }
            }
            nodes.push(NodeDigest {
                node: format!("node-{index}"),
                databases,
            });
        }
        let consistent = nodes
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.databases == b.databases));
        Ok(Verification {
            cluster: self.name.clone(),
            consistent,
            nodes,
        })
    }

    /// The nodes rebuilt from a replica since the last call, for the root's alerts.
    pub(crate) fn take_rebuilt(&self) -> Vec<RebuiltNode> {
        std::mem::take(&mut *self.rebuilt.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What [`Cluster::verify`] found: each node's databases, and whether the nodes agree.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verification {
    /// The cluster.
    pub cluster: String,
    /// Whether every node holds the same records.
    pub consistent: bool,
    /// Each node, node-0 first.
    pub nodes: Vec<NodeDigest>,
}

/// One node's databases, as [`Cluster::verify`] read them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeDigest {
    /// `node-K`.
    pub node: String,
    /// Per database: its record count and digest.
    pub databases: std::collections::BTreeMap<String, DatabaseDigest>,
}

/// A database's records on one node: how many, and a digest of every key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DatabaseDigest {
    /// Records.
    pub records: u64,
    /// FNV-1a over every length-prefixed key and value, in key order: equal on nodes that
    /// hold the same records (a comparison of replicas, not an integrity check).
    pub digest: u64,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.consistent {
            "every node holds the same records"
        } else {
            "NODES DIFFER"
        };
        write!(f, "cluster {}: {verdict}", self.cluster)?;
        for node in &self.nodes {
            for (db, d) in &node.databases {
                write!(
                    f,
                    "\n{:<8} {db:<16} {:>10} records  digest {:016x}",
                    node.node, d.records, d.digest
                )?;
            }
        }
        Ok(())
    }
}

/// Folds `bytes`, length first, into an FNV-1a hash.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in (bytes.len() as u64).to_be_bytes().iter().chain(bytes) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
