//! Reading an encrypted store's records in key order: the owning [`Scan`], which once a
//! scan outgrows its first batch decrypts batches on a second thread while the caller's
//! thread reads the next ones from RocksDB, and [`Store::visit`], which lends each record
//! from one reused buffer. Both keep key order and stop at the first error; a scan holds
//! at most a few batches, whatever the size of the range.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

use zeroize::Zeroize;

use super::engine::Cursor;
use super::{display_key, validate_database_name, KeyRange, KeyValue, Store, StoreError};
use crate::format::Record;
use crate::keys::{DataKey, Keystore};

/// Records read from RocksDB per batch, at most.
const BATCH_RECORDS: usize = 4096;
/// Stored bytes of a scan's first batch, at most (a batch always takes one record); each
/// batch after may hold twice its predecessor's, [`BATCH_DOUBLINGS`] times (to 1 MiB): a
/// short scan answers soon, and a long one wakes the second thread seldom (a wake costs
/// microseconds).
const FIRST_BATCH_BYTES: usize = 64 << 10;
const BATCH_DOUBLINGS: usize = 4;
/// Batches a scan holds ahead of its caller, decrypted or not.
const MAX_PENDING: usize = 4;
/// Batches queued at or being decrypted by the second thread.
const MAX_AT_WORKER: usize = 3;

/// Opens one stored value of `database`, checking that it belongs to this store, database
/// and key, into `plain`. `cached` is the data key the last record used: a scan meets the
/// same key record after record, so it is looked up (and its database checked) only when
/// it changes.
pub(super) fn open_record<'k>(
    keystore: &'k Keystore,
    cached: &mut Option<&'k DataKey>,
    database: &str,
    record_key: &[u8],
    stored: &[u8],
    aad: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        database: database.to_string(),
        key: display_key(record_key),
        reason,
    };
    let record = Record::decode(stored).map_err(|e| corrupt(e.to_string()))?;
    let key = match *cached {
        Some(key) if key.id() == record.data_key_id => key,
        _ => {
            let key = keystore.data_key(record.data_key_id).map(Arc::as_ref).ok_or_else(|| {
                corrupt(format!(
                    "it names data key {}, which this store does not hold (was it copied from another store?)",
                    record.data_key_id
                ))
            })?;
            if key.database() != database {
                return Err(corrupt(format!(
                    "it names data key {} of database {:?} (was it copied from another database?)",
                    key.id(),
                    key.database()
                )));
            }
            *cached = Some(key);
            key
        }
    };
    key.open_record_into(keystore.store_id(), database, record_key, &record, aad, plain)
        .map_err(|_| {
            corrupt("it does not authenticate: the stored bytes were altered, or moved from another key, database or store".into())
        })
}

/// A run of records as RocksDB stored them, copied out of its iterator into one buffer,
/// and once opened their values, decrypted into another. Batches go to the second thread
/// and back whole, so every record's owned copy is allocated (and later freed) on the
/// caller's thread, not across threads; spent batches are reused.
#[derive(Default)]
struct Batch {
    stored: Vec<u8>,
    /// Each record's key length and stored length, in order.
    lengths: Vec<(usize, usize)>,
    /// The RocksDB error that ended the batch, after its records.
    read_error: Option<StoreError>,
    /// The decrypted values of the first `values.len()` records, back to back.
    plain: Vec<u8>,
    values: Vec<usize>,
    /// The error that stopped the opening at record `values.len()`.
    open_error: Option<StoreError>,
    /// Records handed to the caller so far, and where the next one's key and value start.
    taken: usize,
    stored_at: usize,
    plain_at: usize,
}

impl Batch {
    fn is_full(&self, bytes: usize) -> bool {
        self.lengths.len() >= BATCH_RECORDS || self.stored.len() >= bytes
    }

    fn is_empty(&self) -> bool {
        self.lengths.is_empty() && self.read_error.is_none()
    }

    /// Made ready to be filled again, keeping its allocations.
    fn clear(&mut self) {
        self.plain.clear();
        self.stored.clear();
        self.lengths.clear();
        self.values.clear();
        (self.read_error, self.open_error) = (None, None);
        (self.taken, self.stored_at, self.plain_at) = (0, 0, 0);
    }

    /// Decrypts every record, stopping at the first that does not open.
    fn open(&mut self, opener: &Opener) {
        let mut cached = None;
        let mut aad = Vec::with_capacity(128);
        let mut rest = self.stored.as_slice();
        for &(key_len, stored_len) in &self.lengths {
            let (key, after) = rest.split_at(key_len.min(rest.len()));
            let (stored, after) = after.split_at(stored_len.min(after.len()));
            rest = after;
            let before = self.plain.len();
            if let Err(e) = open_record(
                &opener.keystore,
                &mut cached,
                &opener.database,
                key,
                stored,
                &mut aad,
                &mut self.plain,
            ) {
                self.open_error = Some(e);
                return;
            }
            self.values.push(self.plain.len() - before);
        }
    }

    /// The next opened record as an owned copy, then the error that ended the batch, if
    /// any; `None` when the batch is spent.
    fn take(&mut self) -> Option<Result<KeyValue, StoreError>> {
        if let (Some(&value_len), Some(&(key_len, stored_len))) =
            (self.values.get(self.taken), self.lengths.get(self.taken))
        {
            let key = self.stored.get(self.stored_at..self.stored_at + key_len)?;
            let value = self.plain.get(self.plain_at..self.plain_at + value_len)?;
            self.taken += 1;
            self.stored_at += key_len + stored_len;
            self.plain_at += value_len;
            return Some(Ok((key.to_vec(), value.to_vec())));
        }
        self.open_error
            .take()
            .or_else(|| self.read_error.take())
            .map(Err)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.plain.zeroize();
    }
}

/// What decrypts a database's records: `Send`, so a second thread can hold it.
struct Opener {
    keystore: Arc<Keystore>,
    database: String,
}

/// The second thread: opens the batches it is sent, in order, until the scan drops.
struct Helper {
    to: SyncSender<Box<Batch>>,
    from: Receiver<Box<Batch>>,
    /// Batches sent and not yet received back.
    busy: usize,
}

impl Helper {
    /// `None` where no thread can be started: the scan then decrypts on its own thread.
    fn start(opener: &Arc<Opener>) -> Option<Helper> {
        let (to, batches) = mpsc::sync_channel::<Box<Batch>>(MAX_AT_WORKER);
        let (done, from) = mpsc::channel();
        let opener = Arc::clone(opener);
        std::thread::Builder::new()
            .name("atrest-scan".into())
            .spawn(move || {
                for mut batch in batches {
                    batch.open(&opener);
                    if done.send(batch).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Helper { to, from, busy: 0 })
    }
}

/// Where a batch read ahead is.
enum Pending {
    /// With the second thread, which answers in the order it was sent.
    Helper,
    /// Opened on the caller's thread, because the second was busy.
    Here(Box<Batch>),
}

/// An iterator over decrypted records, in key order. Stops at the first error, which it
/// yields.
pub struct Scan<'a> {
    cursor: Cursor<'a>,
    path: &'a Path,
    opener: Arc<Opener>,
    current: Box<Batch>,
    pending: VecDeque<Pending>,
    // Boxed as they travel, so parking one for reuse moves a pointer, not a batch.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Batch>>,
    helper: Option<Helper>,
    batches_read: usize,
    cursor_done: bool,
    stopped: bool,
}

impl Scan<'_> {
    /// Copies the next batch of stored records out of RocksDB.
    fn read_batch(&mut self) -> Box<Batch> {
        let mut batch = self.spare.pop().unwrap_or_default();
        let bytes = FIRST_BATCH_BYTES << self.batches_read.min(BATCH_DOUBLINGS);
        while !batch.is_full(bytes) {
            let copied = self.cursor.next_with(self.path, |key, stored| {
                batch.stored.extend_from_slice(key);
                batch.stored.extend_from_slice(stored);
                batch.lengths.push((key.len(), stored.len()));
                Ok(())
            });
            match copied {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    batch.read_error = Some(e);
                    self.cursor_done = true;
                    break;
                }
                None => {
                    self.cursor_done = true;
                    break;
                }
            }
        }
        batch
    }

    /// Hands `batch` to the second thread (started with the second batch, so a short scan
    /// never starts one) when it has room, else opens it here: the two threads share
    /// the work whichever is slower, RocksDB or the cipher.
    fn dispatch(&mut self, mut batch: Box<Batch>) {
        self.collect();
        self.batches_read += 1;
        if self.batches_read >= 2 && self.helper.is_none() {
            self.helper = Helper::start(&self.opener);
        }
        if let Some(helper) = self.helper.as_mut().filter(|h| h.busy < MAX_AT_WORKER) {
            match helper.to.send(batch) {
                Ok(()) => {
                    helper.busy += 1;
                    self.pending.push_back(Pending::Helper);
                    return;
                }
                Err(mpsc::SendError(returned)) => batch = returned,
            }
        }
        batch.open(&self.opener);
        self.pending.push_back(Pending::Here(batch));
    }

    /// Takes in the batches the second thread has finished, so that `busy` counts only
    /// what it still has to do.
    fn collect(&mut self) {
        let Some(helper) = self.helper.as_mut() else {
            return;
        };
        while helper.busy > 0 {
            let Ok(batch) = helper.from.try_recv() else {
                return;
            };
            helper.busy -= 1;
            if let Some(slot) = self
                .pending
                .iter_mut()
                .find(|p| matches!(p, Pending::Helper))
            {
                *slot = Pending::Here(batch);
            }
        }
    }

    /// The next opened batch in key order; `None` once the range is done.
    fn next_batch(&mut self) -> Option<Box<Batch>> {
        loop {
            match self.pending.front() {
                Some(Pending::Here(_)) => {
                    if let Some(Pending::Here(batch)) = self.pending.pop_front() {
                        return Some(batch);
                    }
                }
                Some(Pending::Helper) => {
                    let must_wait = self.cursor_done || self.pending.len() >= MAX_PENDING;
                    let helper = self.helper.as_mut()?;
                    let answer = if must_wait {
                        helper.from.recv().ok()
                    } else {
                        helper.from.try_recv().ok()
                    };
                    if let Some(batch) = answer {
                        helper.busy -= 1;
                        self.pending.pop_front();
                        return Some(batch);
                    }
                    if must_wait {
                        self.pending.clear();
                        let mut failed = Box::<Batch>::default();
                        failed.read_error = Some(StoreError::Io {
                            path: self.path.to_path_buf(),
                            source: std::io::Error::other("the scan's decrypting thread stopped"),
                        });
                        return Some(failed);
                    }
                }
                None if self.cursor_done => return None,
                None => {}
            }
            let batch = self.read_batch();
            if batch.is_empty() {
                self.spare.push(batch);
            } else {
                self.dispatch(batch);
            }
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.stopped {
                return None;
            }
            if let Some(item) = self.current.take() {
                if item.is_err() {
                    self.stopped = true;
                    self.pending.clear();
                    self.helper = None;
                }
                return Some(item);
            }
            match self.next_batch() {
                Some(batch) => {
                    let mut spent = std::mem::replace(&mut self.current, batch);
                    if self.spare.len() < MAX_PENDING {
                        spent.clear();
                        self.spare.push(spent);
                    }
                }
                None => self.stopped = true,
            }
        }
    }
}

impl Store {
    /// The records of `database` in `range`, in key order, each decrypted as it is read
    /// (on a second thread once the scan is long enough to pay for one).
    pub fn scan(&self, database: &str, range: KeyRange) -> Result<Scan<'_>, StoreError> {
        validate_database_name(database)?;
        let cursor = match self.db.cf_handle(database) {
            Some(cf) => Cursor::new(&self.db, &cf, range),
            None => Cursor::empty(),
        };
        Ok(Scan {
            cursor,
            path: &self.path,
            opener: Arc::new(Opener {
                keystore: self.keystore(),
                database: database.to_string(),
            }),
            current: Box::default(),
            pending: VecDeque::new(),
            spare: Vec::new(),
            helper: None,
            batches_read: 0,
            cursor_done: false,
            stopped: false,
        })
    }

    /// Lends each record of `database` in `range` to `visit`, in key order, decrypted into
    /// one buffer reused from record to record (no allocation per record), until `visit`
    /// breaks or the range ends. The first error stops the visit and is returned.
    pub fn visit(
        &self,
        database: &str,
        range: KeyRange,
        mut visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        validate_database_name(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        let mut cursor = Cursor::new(&self.db, &cf, range);
        let keystore = self.keystore();
        let (mut cached, mut aad, mut plain) = (None, Vec::with_capacity(128), Vec::new());
        let mut result = Ok(());
        while let Some(step) = cursor.next_with(&self.path, |key, stored| {
            plain.clear();
            open_record(
                &keystore,
                &mut cached,
                database,
                key,
                stored,
                &mut aad,
                &mut plain,
            )?;
            Ok(visit(key, &plain))
        }) {
            match step {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        plain.zeroize();
        result
    }
}
