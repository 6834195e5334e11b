//! A node's store of either kind behind one interface: what a cluster writes to, reads
//! from and rewrites, whether the node has encryption at rest or not.

use std::path::Path;

use super::{KeyRange, KeyValue, PlainScan, PlainStore, Scan, Store, StoreError, WriteBatch};

/// One node's store.
// A node is opened once and held where it is: the size of the encrypted variant (its
// keystore lock, sealing thread, options) costs nothing a box would save.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Node {
    /// Encryption at rest: every value sealed, the master key under the CMK.
    Encrypted(Store),
    /// No encryption at rest.
    Plain(PlainStore),
}

/// A scan of either kind of node: records in key order, stopping at the first error.
pub enum NodeScan<'a> {
    /// Of an encrypted node, each value decrypted as it is read.
    Encrypted(Scan<'a>),
    /// Of a plain node.
    Plain(PlainScan<'a>),
}

impl Iterator for NodeScan<'_> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            NodeScan::Encrypted(s) => s.next(),
            NodeScan::Plain(s) => s.next(),
        }
    }
}

impl Node {
    /// The encrypted store, if the node has encryption at rest.
    pub fn encrypted(&self) -> Option<&Store> {
        match self {
            Node::Encrypted(s) => Some(s),
            Node::Plain(_) => None,
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        match self {
            Node::Encrypted(s) => s.path(),
            Node::Plain(s) => s.path(),
        }
    }

    /// Stores `value` under `key` in `database`.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.put(database, key, value),
            Node::Plain(s) => s.put(database, key, value),
        }
    }

    /// Removes `key` from `database`.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.delete(database, key),
            Node::Plain(s) => s.delete(database, key),
        }
    }

    /// Applies `batch` atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.write(batch),
            Node::Plain(s) => s.write(batch),
        }
    }

    /// Applies `batch` as cluster write `sequence`, recorded atomically with it.
    pub fn write_at(&self, batch: &WriteBatch, sequence: u64) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.write_at(batch, sequence),
            Node::Plain(s) => s.write_at(batch, sequence),
        }
    }

    /// The last cluster write the node applied (0: none).
    pub fn applied(&self) -> Result<u64, StoreError> {
        match self {
            Node::Encrypted(s) => s.applied(),
            Node::Plain(s) => s.applied(),
        }
    }

    /// The value under `key`, if any.
    pub fn get(&self, database: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Node::Encrypted(s) => s.get(database, key),
            Node::Plain(s) => s.get(database, key),
        }
    }

    /// The records of `database` in `range`, in key order, read as they are visited.
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<NodeScan<'_>, StoreError> {
        Ok(match self {
            Node::Encrypted(s) => NodeScan::Encrypted(s.scan(database, range)?),
            Node::Plain(s) => NodeScan::Plain(s.scan(database, range)?),
        })
    }

    /// The databases that hold (or held) records.
    pub fn databases(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Node::Encrypted(s) => Ok(s.databases()),
            Node::Plain(s) => s.databases(),
        }
    }

    /// Flushes memtables and the WAL.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self {
            Node::Encrypted(s) => s.flush(),
            Node::Plain(s) => s.flush(),
        }
    }
}
