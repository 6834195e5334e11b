//! A cluster: N nodes, each its own store, written alike.
//!
//! Owns the fan-out (every write goes to every node; reads come from the first node that
//! is serving), the rolling operations that go node by node (master-key rotation, CMK
//! re-wrap, the rewrite that turns encryption on or off), and the shutdown gate: while the
//! project's key is invalid an encrypted cluster's nodes are closed (their master keys
//! dropped from memory) and every call fails saying why; once the key is valid again the
//! next call unwraps each master key anew.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError};

use super::state::{read_settings, Settings};
use super::ControlError;
use crate::durable::{recover_dir, DirReplacement, FileLock, FileStamp};
use crate::keys::KeystoreStatus;
use crate::kms::Kms;
use crate::store::{
    is_plain_store, KeyRange, KeyValue, Node, PlainStore, Store, StoreError, StoreOptions,
    StoreTick, WriteBatch,
};

/// Records copied per write while a node is rewritten.
const REWRITE_BATCH: usize = 1000;
/// Records read from a node per visit while a cluster scan streams.
const SCAN_BATCH: usize = 1000;

/// Why the project's encrypted clusters are shut down, shared by a root and the clusters
/// it opened, so a failed check closes clusters already open. It watches the root's
/// settings file, so a shutdown (or recovery) recorded by another process is seen before
/// the next operation, for the price of one `stat`.
#[derive(Debug, Default)]
pub struct Gate {
    reason: RwLock<Option<ShutDown>>,
    /// The settings file and its stamp when the gate last followed it.
    watched: Option<(PathBuf, Mutex<Option<FileStamp>>)>,
}

/// The key and the reason of a shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutDown {
    /// The project's CMK.
    pub key: String,
    /// What the validity check found.
    pub reason: String,
}

impl Gate {
    /// A gate that follows the shutdown recorded in the settings file at `settings`.
    pub(crate) fn watching(settings: PathBuf) -> Self {
        Gate {
            reason: RwLock::new(None),
            watched: Some((settings, Mutex::new(None))),
        }
    }

    pub(crate) fn set(&self, state: Option<ShutDown>) {
        *self.reason.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Follows `settings`, as this process just read or wrote them.
    pub(crate) fn sync(&self, settings: &Settings) {
        self.set(
            settings
                .project
                .validity
                .shut_down
                .as_ref()
                .map(|reason| ShutDown {
                    key: settings.cmk.clone(),
                    reason: reason.clone(),
                }),
        );
        if let Some((path, seen)) = &self.watched {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = FileStamp::of(path);
        }
    }

    /// The current shutdown, if any, as the settings file says now: read again only when
    /// another process has replaced it. An unreadable file leaves the last known state.
    pub fn shut_down(&self) -> Option<ShutDown> {
        if let Some((path, seen)) = &self.watched {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = FileStamp::of(path);
            if now != *seen {
                if let Ok(Some(settings)) = read_settings(path) {
                    drop(seen);
                    self.sync(&settings);
                } else {
                    *seen = now;
                }
            }
        }
        self.reason
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

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

/// A node found damaged or behind the others at open, and rebuilt from a healthy replica.
#[derive(Clone, Debug)]
pub struct RebuiltNode {
    /// `node-K`.
    pub node: String,
    /// What was wrong with it.
    pub reason: String,
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

    /// Rebuilds node `index` from node `source`: every record copied into a new store that
    /// replaces the node's crash-safely; `reason` goes into the alert.
    fn rebuild(&self, index: usize, source: usize, reason: String) -> Result<(), ControlError> {
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

    /// Brings every open node to the most advanced one: a node whose last applied write
    /// is older is rebuilt from it, and so is a damaged one. Then the cluster's next write
    /// follows the most advanced.
    fn reconcile(&self, damaged: Vec<(usize, StoreError)>) -> Result<(), ControlError> {
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
        let (start, end) = range.bounds();
        Ok(ClusterScan {
            cluster: self,
            database: database.to_string(),
            start,
            end,
            buffered: Vec::new().into_iter(),
            done: false,
        })
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
    fn copy_node(
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

/// A scan of a cluster's database, streamed in batches; see [`Cluster::scan`].
pub struct ClusterScan<'a> {
    cluster: &'a Cluster,
    database: String,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buffered: std::vec::IntoIter<KeyValue>,
    done: bool,
}

impl ClusterScan<'_> {
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

/// The locks beside a cluster's nodes: whoever holds them has the nodes to itself, to
/// recover, open, replace and close.
#[derive(Debug)]
pub(crate) struct NodeLocks(Vec<FileLock>);

impl NodeLocks {
    /// Takes the lock beside each node of `paths`: waiting for whoever holds one when
    /// `wait`, else saying who holds it.
    pub(crate) fn take(paths: &[PathBuf], wait: bool) -> Result<NodeLocks, ControlError> {
        paths
            .iter()
            .map(|p| lock_node(p, wait))
            .collect::<Result<_, _>>()
            .map(NodeLocks)
    }
}

/// Takes the lock beside node `path` (waiting for it when `wait`), or says who holds it.
fn lock_node(path: &Path, wait: bool) -> Result<FileLock, ControlError> {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let taken = if wait {
        FileLock::acquire(&lock_path).map(Some)
    } else {
        FileLock::try_acquire(&lock_path)
    };
    match taken {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(StoreError::InUse {
            path: path.to_path_buf(),
            holder: std::fs::read_to_string(path.join(crate::store::HOLDER_FILE))
                .unwrap_or_else(|_| "another process".into()),
        }
        .into()),
        Err(e) => Err(io_error(&lock_path, e)),
    }
}

/// Puts a node in order after a crash during its rewrite or restore.
pub(crate) fn recover_node(path: &Path) -> Result<(), ControlError> {
    recover_dir(path).map(|_| ()).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> ControlError {
    ControlError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
