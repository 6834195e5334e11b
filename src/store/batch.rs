//! A write batch: puts and deletes across databases, applied atomically by a node. Keys
//! and values are kept back to back in one buffer, so adding one allocates nothing of its
//! own.

/// Puts and deletes across databases, applied atomically by
/// [`Store::write`](super::Store::write).
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Each database once; operations refer to it by index.
    databases: Vec<String>,
    entries: Vec<Entry>,
    /// Every operation's key, then its value if it is a put, in the order added.
    bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    database: usize,
    key_len: usize,
    /// `None`: a delete.
    value_len: Option<usize>,
}

/// One operation of a batch, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub(super) enum BatchOp<'a> {
    Put {
        database: usize,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        database: usize,
        key: &'a [u8],
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
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        let database = self.database_index(database);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            database,
            key_len: key.len(),
            value_len: Some(value.len()),
        });
        self
    }

    /// Adds a delete of `key` in `database`.
    pub fn delete(&mut self, database: &str, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        let database = self.database_index(database);
        self.bytes.extend_from_slice(key);
        self.entries.push(Entry {
            database,
            key_len: key.len(),
            value_len: None,
        });
        self
    }

    /// The databases the batch touches, each once; operations refer to them by index.
    pub(super) fn databases(&self) -> &[String] {
        &self.databases
    }

    /// The operations, in order.
    pub(super) fn ops(&self) -> Ops<'_> {
        Ops {
            entries: self.entries.iter(),
            rest: &self.bytes,
        }
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A batch's operations in order, each cut from the shared buffer.
pub(super) struct Ops<'a> {
    entries: std::slice::Iter<'a, Entry>,
    rest: &'a [u8],
}

impl<'a> Ops<'a> {
    fn cut(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        taken
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = BatchOp<'a>;

    fn next(&mut self) -> Option<BatchOp<'a>> {
        let entry = *self.entries.next()?;
        let key = self.cut(entry.key_len);
        Some(match entry.value_len {
            Some(len) => BatchOp::Put {
                database: entry.database,
                key,
                value: self.cut(len),
            },
            None => BatchOp::Delete {
                database: entry.database,
                key,
            },
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Ops<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_come_back_in_order_with_their_own_bytes() {
        let mut batch = WriteBatch::new();
        batch
            .put("a", b"k1", b"v1")
            .delete("b", b"k2")
            .put("a", b"", b"")
            .put("b", vec![7u8; 3], "long value")
            .delete("a", b"");
        let ops: Vec<String> = batch
            .ops()
            .map(|op| match op {
                BatchOp::Put {
                    database,
                    key,
                    value,
                } => format!("put {database} {key:?} {value:?}"),
                BatchOp::Delete { database, key } => format!("delete {database} {key:?}"),
            })
            .collect();
        assert_eq!(
            ops,
            [
                "put 0 [107, 49] [118, 49]",
                "delete 1 [107, 50]",
                "put 0 [] []",
                "put 1 [7, 7, 7] [108, 111, 110, 103, 32, 118, 97, 108, 117, 101]",
                "delete 0 []",
            ]
        );
        assert_eq!(batch.databases(), ["a", "b"]);
        assert_eq!((batch.len(), batch.ops().len()), (5, 5));
        assert_eq!(batch.ops().skip(3).count(), 2);
    }
}
