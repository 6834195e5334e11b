//! A write batch: puts and deletes across databases, applied atomically by a node.

/// Puts and deletes across databases, applied atomically by
/// [`Store::write`](super::Store::write).
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Each database once; operations refer to it by index.
    databases: Vec<String>,
    ops: Vec<BatchOp>,
}

#[derive(Clone, Debug)]
pub(super) enum BatchOp {
    Put {
        database: usize,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        database: usize,
        key: Vec<u8>,
    },
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn database_index(&mut self, database: &str) -> usize {
        match self.databases.iter().position(|d| d == database) {
            Some(i) => i,
            None => {
                self.databases.push(database.to_string());
                self.databases.len() - 1
            }
        }
    }

    /// Adds a put of `value` under `key` in `database`.
    pub fn put(
        &mut self,
        database: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        let database = self.database_index(database);
        self.ops.push(BatchOp::Put {
            database,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a delete of `key` in `database`.
    pub fn delete(&mut self, database: &str, key: impl Into<Vec<u8>>) -> &mut Self {
        let database = self.database_index(database);
        self.ops.push(BatchOp::Delete {
            database,
            key: key.into(),
        });
        self
    }

    /// The databases the batch touches, each once; operations refer to them by index.
    pub(super) fn databases(&self) -> &[String] {
        &self.databases
    }

    /// The operations, in order.
    pub(super) fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
