//! A cluster: N nodes, each its own store, written alike.
//!
//! Owns the fan-out (every write goes to every node; reads come from the first node that
//! is serving), the rolling operations that go node by node (master-key rotation, CMK
//! re-wrap, the rewrite that turns encryption on or off), and the shutdown gate: while the
//! project's key is invalid an encrypted cluster's nodes are closed (their master keys
//! dropped from memory) and every call fails saying why; once the key is valid again the
//! next call unwraps each master key anew.
//!
//! | file | owns |
//! |---|---|
//! | `mod` | [`Cluster`]: opening, serving, the ordered fan-out of writes, reads, status |
//! | `replicas` | keeping nodes alike: the rolling rewrite, replacing nodes, rebuilding one that is damaged or behind, [`Cluster::verify`] |
//! | `gate` | [`Gate`]: the shutdown, as every process of the root sees it |
//! | `scan` | [`ClusterScan`]: a database streamed in batches |
//! | `locks` | the locks beside each node; recovery of a node's directory |

mod gate;
mod locks;
mod replicas;
mod scan;

pub use gate::{Gate, ShutDown};
pub(crate) use locks::{recover_node, NodeLocks};
pub use replicas::{DatabaseDigest, NodeDigest, RebuiltNode, Verification};
pub use scan::ClusterScan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError};

use super::ControlError;
use crate::durable::FileLock;
use crate::keys::KeystoreStatus;
use crate::kms::Kms;
use crate::store::{
    is_plain_store, KeyRange, KeyValue, Node, PlainStore, Store, StoreError, StoreOptions,
    StoreTick, WriteBatch,
};

/// How the nodes of a cluster are opened: reused to reopen them after a shutdown.
#[derive(Clone, Debug)]
pub(crate) struct NodeOpener {
    pub kms: Arc<dyn Kms>,
    /// The project's CMK, and during a CMK rotation the key it replaces.
    pub cmks: Vec<String>,
    pub options: StoreOptions,
}

impl NodeOpener {
    fn options(&self, cluster: &str, node: usize) -> StoreOptions {
        StoreOptions {
            cluster: cluster.to_string(),
            node: format!("node-{node}"),
            ..self.options.clone()
        }
    }

    fn open(&self, cluster: &str, index: usize, path: &Path) -> Result<Node, ControlError> {
        if is_plain_store(path)? {
            return Ok(Node::Plain(PlainStore::open(path)?));
        }
        let options = self.options(cluster, index);
        let mut last = None;
        for cmk in &self.cmks {
            match Store::open(path, self.kms.clone(), cmk, options.clone()) {
                Ok(store) => return Ok(Node::Encrypted(store)),
                Err(e @ StoreError::WrongCmk { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(ControlError::from)
            .unwrap_or(ControlError::ProjectNotConfigured))
    }

    pub(crate) fn create(
        &self,
        cluster: &str,
        index: usize,
        path: &Path,
        encrypted: bool,
    ) -> Result<Node, ControlError> {
        if encrypted {
            let cmk = self
                .cmks
                .first()
                .ok_or(ControlError::ProjectNotConfigured)?;
            let options = self.options(cluster, index);
            Ok(Node::Encrypted(Store::create(
                path,
                self.kms.clone(),
                cmk,
                options,
            )?))
        } else {
            Ok(Node::Plain(PlainStore::create(path)?))
        }
    }
}

/// What one node looks like, for `cluster status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeStatus {
    /// `node-K`.
    pub node: String,
    /// Its store directory.
    pub path: PathBuf,
    /// Whether its store is encrypted.
    pub encrypted: bool,
    /// Its key hierarchy, when encrypted.
    pub keys: Option<KeystoreStatus>,
}

/// An open cluster. A root hands out one per cluster, shared (`Arc`) by every caller and
/// thread of the process, since a node's store is open in one place at a time.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    /// Whether the project's shutdown applies: the cluster is, or is becoming, encrypted.
    encrypted: AtomicBool,
    paths: Vec<PathBuf>,
    nodes: Vec<RwLock<Option<Node>>>,
    /// How nodes are (re)opened; brought up to date with the settings by [`Cluster::refresh`].
    opener: RwLock<NodeOpener>,
    gate: Arc<Gate>,
    /// Nodes rebuilt from a replica, not yet reported.
    rebuilt: Mutex<Vec<RebuiltNode>>,
    /// The last cluster write applied on every node; held while a write goes out, so
    /// every node applies writes in one order.
    sequence: Mutex<u64>,
    /// A lock beside each node, held while the cluster is open: the nodes are this
    /// cluster's alone, across processes, even while one is closed to be replaced.
    _node_locks: Vec<FileLock>,
}

type NodeGuard<'a> = RwLockReadGuard<'a, Option<Node>>;

impl Cluster {
    pub(crate) fn open(
        name: &str,
        encrypted: bool,
        paths: Vec<PathBuf>,
        opener: NodeOpener,
        gate: Arc<Gate>,
        node_locks: NodeLocks,
    ) -> Result<Self, ControlError> {
        let cluster = Cluster {
            name: name.to_string(),
            encrypted: AtomicBool::new(encrypted),
            nodes: paths.iter().map(|_| RwLock::new(None)).collect(),
            paths,
            opener: RwLock::new(opener),
            gate,
            rebuilt: Mutex::new(Vec::new()),
            sequence: Mutex::new(0),
            _node_locks: node_locks.0,
        };
        cluster.serving()?;
        Ok(cluster)
    }

    /// Takes the settings as they are now (after a CMK rotation, a rewrite), for the
    /// nodes it opens from here on, and checks that the cluster is serving.
    pub(crate) fn refresh(&self, encrypted: bool, opener: NodeOpener) -> Result<(), ControlError> {
        self.encrypted.store(encrypted, Ordering::SeqCst);
        *self.opener.write().unwrap_or_else(|p| p.into_inner()) = opener;
        self.serving()
    }

    /// The node opener as the settings last said.
    fn opener(&self) -> NodeOpener {
        self.opener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many nodes the cluster has.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Node store directories, node-0 first.
    pub fn node_paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Refuses while shut down (closing the nodes); otherwise opens any closed node,
    /// unwrapping its master key again.
    fn serving(&self) -> Result<(), ControlError> {
        if self.encrypted.load(Ordering::SeqCst) {
            if let Some(down) = self.gate.shut_down() {
                for slot in &self.nodes {
                    *slot.write().unwrap_or_else(|p| p.into_inner()) = None;
                }
                return Err(ControlError::ShutDown {
                    cluster: self.name.clone(),
                    key: down.key,
                    reason: down.reason,
                });
            }
        }
        let mut damaged = Vec::new();
        let mut opened = false;
        for (index, (slot, path)) in self.nodes.iter().zip(&self.paths).enumerate() {
            let open = match slot.try_read() {
                Ok(node) => node.is_some(),
                // A rolling operation holds this node; it reopens it itself.
                Err(TryLockError::WouldBlock) => true,
                Err(TryLockError::Poisoned(node)) => node.into_inner().is_some(),
            };
            if !open {
                let mut node = slot.write().unwrap_or_else(|p| p.into_inner());
                if node.is_none() {
                    match self.opener().open(&self.name, index, path) {
                        Ok(fresh) => {
                            *node = Some(fresh);
                            opened = true;
                        }
                        Err(ControlError::Store(e @ StoreError::Damaged { .. })) => {
                            damaged.push((index, e))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if opened || !damaged.is_empty() {
            self.reconcile(damaged)?;
        }
        Ok(())
    }

    fn each_node(
        &self,
        mut f: impl FnMut(&Node) -> Result<(), StoreError>,
    ) -> Result<(), ControlError> {
        self.serving()?;
        for slot in &self.nodes {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            if let Some(node) = guard.as_ref() {
                f(node)?;
            }
        }
        Ok(())
    }

    /// The first node not busy with a rolling operation.
    fn reader(&self) -> Result<NodeGuard<'_>, ControlError> {
        self.serving()?;
        let free = self
            .nodes
            .iter()
            .find_map(|slot| slot.try_read().ok().filter(|n| n.is_some()));
        match (free, self.nodes.first()) {
            (Some(guard), _) => Ok(guard),
            (None, Some(first)) => Ok(first.read().unwrap_or_else(|p| p.into_inner())),
            (None, None) => Err(ControlError::BadNodeCount { nodes: 0 }),
        }
    }

    /// Stores `value` under `key` in `database` on every node.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), ControlError> {
        let mut batch = WriteBatch::new();
        batch.put(database, key, value);
        self.write(&batch)
    }

    /// Removes `key` from `database` on every node.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), ControlError> {
        let mut batch = WriteBatch::new();
        batch.delete(database, key);
        self.write(&batch)
    }

    /// Applies `batch` on every node, atomically on each, as the cluster's next write:
    /// acknowledged once every node has it. Each node records the write's sequence with
    /// it, as a replica set's oplog does, so a node that missed one (a crash between
    /// nodes) is found behind when the cluster next opens it, and rebuilt. A node that
    /// fails the write is closed, and brought up to date before it serves again.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), ControlError> {
        self.serving()?;
        let mut last = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = last.saturating_add(1);
        let mut failed = None;
        for slot in &self.nodes {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            let Some(node) = guard.as_ref() else { continue };
            if let Err(e) = node.write_at(batch, sequence) {
                drop(guard);
                *slot.write().unwrap_or_else(|p| p.into_inner()) = None;
                failed.get_or_insert(e);
            }
        }
        *last = sequence;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The value under `key`, read from one node.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ControlError> {
        let node = self.reader()?;
        Ok(node
            .as_ref()
            .map(|n| n.get(database, key))
            .transpose()?
            .flatten())
    }

    /// The records of `database` in `range`, in key order, streamed from the first node
    /// that serves: a thousand records at a time, the node's lock held only while they are
    /// read, so a slow reader never holds up a rolling operation. Records written during
    /// the scan may or may not be seen; a shutdown stops it with an error.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<ClusterScan<'_>, ControlError> {
        crate::store::validate_database_name(database)?;
        Ok(ClusterScan::new(self, database, range))
    }

    /// Every record of `database` in `range`, in key order, collected.
    pub fn records(&self, database: &str, range: KeyRange) -> Result<Vec<KeyValue>, ControlError> {
        self.scan(database, range)?.collect()
    }

    /// Flushes every node.
    pub fn flush(&self) -> Result<(), ControlError> {
        self.each_node(Node::flush)
    }

    /// Runs `f` on each encrypted node's store in turn.
    pub fn each_store<T>(
        &self,
        mut f: impl FnMut(&Store) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, ControlError> {
        self.serving()?;
        let mut results = Vec::new();
        for slot in &self.nodes {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            if let Some(Node::Encrypted(store)) = guard.as_ref() {
                results.push(f(store)?);
            }
        }
        Ok(results)
    }

    /// Runs `f` on the first encrypted node's store; `None` when no node is encrypted.
    pub fn first_store<T>(&self, f: impl FnOnce(&Store) -> T) -> Result<Option<T>, ControlError> {
        self.serving()?;
        for slot in &self.nodes {
            let guard = slot.read().unwrap_or_else(|p| p.into_inner());
            if let Some(Node::Encrypted(store)) = guard.as_ref() {
                return Ok(Some(f(store)));
            }
        }
        Ok(None)
    }

    /// Rolling master-key rotation: node by node, each a new master key under the CMK and
    /// its data keys re-wrapped; no record rewritten. The new version of each node.
    pub fn rotate_master_key(&self) -> Result<Vec<u32>, ControlError> {
        self.each_store(Store::rotate_master_key)
    }

    /// What is due on each node: master-key rotation by age, data-key rollover.
    pub fn tick(&self) -> Result<Vec<StoreTick>, ControlError> {
        self.each_store(Store::tick)
    }

    /// Each node's store and key hierarchy.
    pub fn status(&self) -> Result<Vec<NodeStatus>, ControlError> {
        self.serving()?;
        Ok(self
            .nodes
            .iter()
            .zip(&self.paths)
            .enumerate()
            .map(|(index, (slot, path))| {
                let guard = slot.read().unwrap_or_else(|p| p.into_inner());
                let keys = match guard.as_ref() {
                    Some(Node::Encrypted(store)) => Some(store.status()),
                    _ => None,
                };
                NodeStatus {
                    node: format!("node-{index}"),
                    path: path.clone(),
                    encrypted: keys.is_some(),
                    keys,
                }
            })
            .collect())
    }
}
