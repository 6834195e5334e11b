//! A cluster: N nodes, each its own store, written alike.
//!
//! Owns the fan-out (every write goes to every node; reads come from the first node that
//! is serving), the rolling operations that go node by node (master-key rotation, CMK
//! re-wrap, the rewrite that turns encryption on or off), and the shutdown gate: while the
//! project's key is invalid an encrypted cluster's nodes are closed (their master keys
//! dropped from memory) and every call fails saying why; once the key is valid again the
//! next call unwraps each master key anew.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, TryLockError};

use super::ControlError;
use crate::keys::KeystoreStatus;
use crate::kms::Kms;
use crate::store::{
    is_plain_store, KeyRange, KeyValue, PlainStore, Store, StoreError, StoreOptions, StoreTick,
    WriteBatch,
};

/// Records copied per write while a node is rewritten.
const REWRITE_BATCH: usize = 1000;

/// Why the project's encrypted clusters are shut down, shared by a root and the clusters
/// it opened, so a failed check closes clusters already open.
#[derive(Debug, Default)]
pub struct Gate {
    reason: RwLock<Option<ShutDown>>,
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
    pub(crate) fn set(&self, state: Option<ShutDown>) {
        *self.reason.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// The current shutdown, if any.
    pub fn shut_down(&self) -> Option<ShutDown> {
        self.reason
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One node's store.
#[derive(Debug)]
pub enum Node {
    /// Encryption at rest: every value sealed, the master key under the CMK.
    Encrypted(Store),
    /// No encryption at rest.
    Plain(PlainStore),
}

impl Node {
    fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.put(database, key, value),
            Node::Plain(s) => s.put(database, key, value),
        }
    }

    fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.delete(database, key),
            Node::Plain(s) => s.delete(database, key),
        }
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.write(batch),
            Node::Plain(s) => s.write(batch),
        }
    }

    fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Node::Encrypted(s) => s.get(database, key),
            Node::Plain(s) => s.get(database, key),
        }
    }

    fn scan(&self, database: &str, range: KeyRange) -> Result<Vec<KeyValue>, StoreError> {
        match self {
            Node::Encrypted(s) => s.scan(database, range)?.collect(),
            Node::Plain(s) => s.scan(database, range),
        }
    }

    /// Every record of `database`, streamed to `f`.
    fn for_each(
        &self,
        database: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => {
                for record in s.scan(database, KeyRange::All)? {
                    let (key, value) = record?;
                    f(&key, &value)?;
                }
                Ok(())
            }
            Node::Plain(s) => s.for_each(database, f),
        }
    }

    fn databases(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Node::Encrypted(s) => Ok(s.databases()),
            Node::Plain(s) => s.databases(),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.flush(),
            Node::Plain(s) => s.flush(),
        }
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

/// An open cluster. Share it between threads with `Arc`.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    encrypted: bool,
    paths: Vec<PathBuf>,
    nodes: Vec<RwLock<Option<Node>>>,
    opener: NodeOpener,
    gate: Arc<Gate>,
}

type NodeGuard<'a> = RwLockReadGuard<'a, Option<Node>>;

impl Cluster {
    pub(crate) fn open(
        name: &str,
        encrypted: bool,
        paths: Vec<PathBuf>,
        opener: NodeOpener,
        gate: Arc<Gate>,
    ) -> Result<Self, ControlError> {
        let cluster = Cluster {
            name: name.to_string(),
            encrypted,
            nodes: paths.iter().map(|_| RwLock::new(None)).collect(),
            paths,
            opener,
            gate,
        };
        cluster.serving()?;
        Ok(cluster)
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
        if self.encrypted {
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
        for (index, slot) in self.nodes.iter().enumerate() {
            let open = match slot.try_read() {
                Ok(node) => node.is_some(),
                // A rolling operation holds this node; it reopens it itself.
                Err(TryLockError::WouldBlock) => true,
                Err(TryLockError::Poisoned(node)) => node.into_inner().is_some(),
            };
            if !open {
                let mut node = slot.write().unwrap_or_else(|p| p.into_inner());
                if node.is_none() {
                    *node = Some(self.opener.open(&self.name, index, &self.paths[index])?);
                }
            }
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
        match free {
            Some(guard) => Ok(guard),
            None => Ok(self.nodes[0].read().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Stores `value` under `key` in `database` on every node.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), ControlError> {
        self.each_node(|n| n.put(database, key, value))
    }

    /// Removes `key` from `database` on every node.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), ControlError> {
        self.each_node(|n| n.delete(database, key))
    }

    /// Applies `batch` on every node, atomically on each.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), ControlError> {
        self.each_node(|n| n.write(batch))
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

    /// The records of `database` in `range`, in key order, read from one node.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<Vec<KeyValue>, ControlError> {
        let node = self.reader()?;
        Ok(node
            .as_ref()
            .map(|n| n.scan(database, range))
            .transpose()?
            .unwrap_or_default())
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
            .enumerate()
            .map(|(index, slot)| {
                let guard = slot.read().unwrap_or_else(|p| p.into_inner());
                let keys = match guard.as_ref() {
                    Some(Node::Encrypted(store)) => Some(store.status()),
                    _ => None,
                };
                NodeStatus {
                    node: format!("node-{index}"),
                    path: self.paths[index].clone(),
                    encrypted: keys.is_some(),
                    keys,
                }
            })
            .collect())
    }

    /// Rolling rewrite into encrypted (`true`) or plain stores: node by node, every
    /// record copied into a new store beside the old one, which then takes its place.
    /// Reads are served by the other nodes meanwhile; writes wait for the node. Nodes
    /// already in the target form are skipped, so an interrupted rewrite resumes.
    /// `progress(node, records copied)`.
    pub fn rewrite(
        &self,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        self.serving()?;
        for (index, slot) in self.nodes.iter().enumerate() {
            let mut guard = slot.write().unwrap_or_else(|p| p.into_inner());
            let Some(old) = guard.as_ref() else { continue };
            if matches!(old, Node::Encrypted(_)) == encrypt {
                continue;
            }
            let path = &self.paths[index];
            let fresh_path = sibling(path, "rewrite");
            remove_dir(&fresh_path)?;
            let fresh = self
                .opener
                .create(&self.name, index, &fresh_path, encrypt)?;
            let mut copied = 0u64;
            for database in old.databases()? {
                let mut batch = WriteBatch::new();
                old.for_each(&database, |key, value| {
                    batch.put(&database, key, value);
                    if batch.len() >= REWRITE_BATCH {
                        fresh.write(&batch)?;
                        copied += batch.len() as u64;
                        progress(index, copied);
                        batch = WriteBatch::new();
                    }
                    Ok(())
                })?;
                fresh.write(&batch)?;
                copied += batch.len() as u64;
                progress(index, copied);
            }
            fresh.flush()?;
            drop(fresh);
            *guard = None;
            let old_path = sibling(path, "old");
            remove_dir(&old_path)?;
            rename(path, &old_path)?;
            rename(&fresh_path, path)?;
            remove_dir(&old_path)?;
            *guard = Some(self.opener.open(&self.name, index, path)?);
        }
        Ok(())
    }
}

/// Puts back a node whose rewrite died between its two renames.
pub(crate) fn recover_node(path: &Path) -> Result<(), ControlError> {
    let (old, fresh) = (sibling(path, "old"), sibling(path, "rewrite"));
    if !path.exists() {
        if fresh.join("CURRENT").exists() && old.exists() {
            rename(&fresh, path)?;
        } else if old.exists() {
            rename(&old, path)?;
        }
    }
    if path.exists() {
        remove_dir(&old)?;
    }
    Ok(())
}

fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}"))
}

fn io_error(path: &Path, e: std::io::Error) -> ControlError {
    ControlError::Settings {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn remove_dir(path: &Path) -> Result<(), ControlError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), ControlError> {
    std::fs::rename(from, to).map_err(|e| io_error(from, e))?;
    if let Some(dir) = to.parent() {
        crate::durable::sync_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_with(dir: &Path, marker: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("CURRENT"), marker).unwrap();
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("CURRENT")).unwrap()
    }

    #[test]
    fn a_rewrite_that_died_between_its_renames_is_put_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node-0");
        // Died after moving the old node aside, before moving the new one in: roll forward.
        node_with(&sibling(&path, "old"), "old");
        node_with(&sibling(&path, "rewrite"), "new");
        recover_node(&path).unwrap();
        assert_eq!(marker(&path), "new");
        assert!(!sibling(&path, "old").exists());
        // Died while the new one was incomplete (no CURRENT): roll back.
        std::fs::remove_dir_all(&path).unwrap();
        node_with(&sibling(&path, "old"), "old");
        std::fs::create_dir_all(sibling(&path, "rewrite")).unwrap();
        recover_node(&path).unwrap();
        assert_eq!(marker(&path), "old");
        // Died after both renames, before removing the old one: just remove it.
        node_with(&sibling(&path, "old"), "old");
        recover_node(&path).unwrap();
        assert_eq!(marker(&path), "old");
        assert!(!sibling(&path, "old").exists());
    }
}
