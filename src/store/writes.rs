//! Writing to an encrypted store: a single put sealed on the caller's thread, and a batch
//! whose puts are split between the caller's thread and the store's sealing thread, each
//! sealing with the uses of the data key it needs claimed in one step. Every record is
//! sealed before RocksDB sees it; reservations and new keys are persisted first.

use std::sync::Arc;

use super::batch::BatchOp;
use super::encrypted::AAD_SCRATCH;
use super::engine::{stamp_applied, KEYSTORE_CF};
use super::sealer::{InFlight, SealJob, PARALLEL_MIN_PUTS};
use super::{display_key, validate_database_name, Store, StoreError, WriteBatch};
use crate::crash::CrashPoint;
use crate::keys::{ClaimedUses, DataKey, SealError, SealStep};

thread_local! {
    /// A put's sealed record, which RocksDB copies: one buffer per thread, reused.
    static SEALED_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer larger than this is not kept for the next put.
const KEPT_SCRATCH_BYTES: usize = 1 << 20;

/// Runs `f` with this thread's empty sealed-record buffer (a fresh one if it is in use).
fn with_sealed_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SEALED_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut sealed) => {
            sealed.clear();
            let result = f(&mut sealed);
            if sealed.capacity() > KEPT_SCRATCH_BYTES {
                *sealed = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Whether a seal of `record_key` in `database` was made (`false`: the uses reserved were
/// spent first), or the cipher's error.
fn sealed(
    result: Result<(), SealError>,
    database: &str,
    record_key: &[u8],
) -> Result<bool, StoreError> {
    match result {
        Ok(()) => Ok(true),
        Err(SealError::ReservationSpent { .. }) => Ok(false),
        Err(SealError::Crypto(e)) => Err(StoreError::Corrupt {
            database: database.to_string(),
            key: display_key(record_key),
            reason: format!("sealing failed: {e}"),
        }),
    }
}

/// A writer's uses claimed in one database, and the seals it still expects to make there
/// (what it claims next time).
#[derive(Default)]
struct Sealing {
    claimed: Option<ClaimedUses>,
    expected: u64,
}

/// How many puts of `batch` come before operation `split` and how many from it on, in each
/// of its databases.
fn puts_per_database(batch: &WriteBatch, split: usize) -> (Vec<u64>, Vec<u64>) {
    let databases = batch.databases().len();
    let (mut before, mut after) = (vec![0; databases], vec![0; databases]);
    for (index, op) in batch.ops().enumerate() {
        if let BatchOp::Put { database, .. } = op {
            let half = if index < split {
                &mut before
            } else {
                &mut after
            };
            if let Some(n) = half.get_mut(database) {
                *n += 1;
            }
        }
    }
    (before, after)
}

impl Store {
    /// The data key for one more seal in `database`, following the keystore's
    /// [`SealStep`]s: reservations and rollovers are persisted (one synced write each)
    /// before a key seals under them; a database gets its column family with its first key.
    fn key_for_seal(&self, database: &str) -> Result<Arc<DataKey>, StoreError> {
        let limits = self.options.data_key_limits;
        loop {
            if let SealStep::Seal(key) = self
                .keystore()
                .seal_step(database, &limits, || self.now())?
            {
                return Ok(key);
            }
            let _writer = self.lock_keystore_writer();
            // Another writer may have persisted what was needed meanwhile: decide again.
            if let SealStep::Persist(next) = self
                .keystore()
                .seal_step(database, &limits, || self.now())?
            {
                validate_database_name(database)?;
                self.ensure_column_family(database)?;
                self.install_keystore(next)?;
            }
        }
    }

    /// Uses of `database`'s data key for up to `wanted` seals (at least one).
    fn claim(&self, database: &str, wanted: u64) -> Result<ClaimedUses, StoreError> {
        loop {
            // Another writer may spend the uses between the two steps: decide again.
            if let Some(claimed) = self.key_for_seal(database)?.claim(wanted) {
                return Ok(claimed);
            }
        }
    }

    /// Seals `value` for `record_key` in `database` with the uses `sealing` claimed,
    /// claiming as many as it expects to need whenever they are spent; appends the sealed
    /// record to `out`.
    fn seal(
        &self,
        sealing: &mut Sealing,
        database: &str,
        record_key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        loop {
            if let Some(uses) = sealing.claimed.as_mut() {
                let result = uses.seal_record_into(self.id, database, record_key, value, aad, out);
                if sealed(result, database, record_key)? {
                    sealing.expected = sealing.expected.saturating_sub(1);
                    return Ok(());
                }
            }
            sealing.claimed = Some(self.claim(database, sealing.expected)?);
        }
    }

    /// Seals `value` for a single put: with the active data key's use counted in place,
    /// the keystore borrowed (no `Arc` counted) while it seals. Where the key's
    /// reservation is spent, or the database has no key yet, as [`Store::seal`] does,
    /// persisting what is needed first.
    fn seal_one(
        &self,
        database: &str,
        record_key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        {
            let keystore = self.borrow_keystore();
            if let Some(active) = keystore.active_data_key(database) {
                let result =
                    active.seal_record_into(self.id, database, record_key, value, aad, out);
                if sealed(result, database, record_key)? {
                    return Ok(());
                }
            }
        }
        self.seal(
            &mut Sealing::default(),
            database,
            record_key,
            value,
            aad,
            out,
        )
    }

    /// Seals `value` under `database`'s active data key and stores it under `key`.
    pub fn put(&self, database: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        with_sealed_scratch(|sealed| {
            AAD_SCRATCH.with_borrow_mut(|aad| self.seal_one(database, key, value, aad, sealed))?;
            let cf = self.column_family(database)?;
            self.db.crash_point(CrashPoint::RecordWrite)?;
            self.db
                .put_cf_opt(&cf, key, &*sealed, &self.write_options)
                .map_err(|e| self.rocks_error(e))
        })
    }

    /// Deletes `key` from `database`; deleting what is absent is not an error.
    pub fn delete(&self, database: &str, key: &[u8]) -> Result<(), StoreError> {
        validate_database_name(database)?;
        let Some(cf) = self.db.cf_handle(database) else {
            return Ok(());
        };
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db
            .delete_cf_opt(&cf, key, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// Applies every put and delete of `batch`, in any number of databases, atomically.
    pub fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.write_batch(batch, None)
    }

    /// Applies `batch` as cluster write `sequence`: the sequence lands atomically with
    /// the data, so a node that missed a write is seen to be behind.
    pub fn write_at(&self, batch: &WriteBatch, sequence: u64) -> Result<(), StoreError> {
        self.write_batch(batch, Some(sequence))
    }

    fn write_batch(&self, batch: &WriteBatch, sequence: Option<u64>) -> Result<(), StoreError> {
        let databases = batch.databases();
        for database in databases {
            validate_database_name(database)?;
        }
        // Each database's column family resolved once per batch, and its data key's uses
        // claimed once for all the puts this thread seals in it.
        let mut families: Vec<_> = databases.iter().map(|d| self.db.cf_handle(d)).collect();
        let split = batch.len() / 2;
        let (mine, theirs) = puts_per_database(batch, split);
        // A seeded thread keeps its nonces to itself, so that a replay seals the same bytes.
        let parallel = mine.iter().chain(&theirs).sum::<u64>() >= PARALLEL_MIN_PUTS
            && !crate::crypto::is_thread_seeded();
        let mut ahead = if parallel {
            self.seal_ahead(batch, split, &theirs)?
        } else {
            None
        };
        let mut sealings: Vec<Sealing> = mine
            .iter()
            .zip(&theirs)
            .map(|(&mine, &theirs)| Sealing {
                claimed: None,
                expected: if ahead.is_some() { mine } else { mine + theirs },
            })
            .collect();
        let mut sealed = Vec::new();
        let mut rocks_batch = rocksdb::WriteBatch::default();
        AAD_SCRATCH.with_borrow_mut(|aad| {
            for (index, op) in batch.ops().enumerate() {
                let (database, key, value) = match op {
                    BatchOp::Put {
                        database,
                        key,
                        value,
                    } => (database, key, value),
                    // A delete in a database that never existed deletes nothing.
                    BatchOp::Delete { database, key } => {
                        if let Some(Some(cf)) = families.get(database) {
                            rocks_batch.delete_cf(cf, key);
                        }
                        continue;
                    }
                };
                let (Some(name), Some(sealing), Some(family)) = (
                    databases.get(database),
                    sealings.get_mut(database),
                    families.get_mut(database),
                ) else {
                    continue;
                };
                let from_helper = match ahead.as_mut() {
                    Some(in_flight) if index >= split => in_flight.job().and_then(SealJob::take),
                    _ => None,
                };
                let record = match from_helper {
                    Some(record) => record,
                    None => {
                        sealed.clear();
                        self.seal(sealing, name, key, value, aad, &mut sealed)?;
                        &sealed
                    }
                };
                if family.is_none() {
                    *family = Some(self.column_family(name)?);
                }
                let cf = family.as_ref().ok_or_else(|| self.missing_family(name))?;
                rocks_batch.put_cf(cf, key, record);
            }
            Ok::<(), StoreError>(())
        })?;
        if let Some(sequence) = sequence {
            stamp_applied(
                &mut rocks_batch,
                &self.db,
                KEYSTORE_CF,
                sequence,
                &self.path,
            )?;
        }
        self.db.crash_point(CrashPoint::RecordWrite)?;
        self.db
            .write_opt(rocks_batch, &self.write_options)
            .map_err(|e| self.rocks_error(e))
    }

    /// Hands the puts of `batch` from operation `split` on (`puts` of them in each
    /// database) to the store's second thread, with uses claimed for them, to seal while
    /// this one seals the rest; `None` where the thread is busy with another batch or gone.
    fn seal_ahead(
        &self,
        batch: &WriteBatch,
        split: usize,
        puts: &[u64],
    ) -> Result<Option<InFlight<'_>>, StoreError> {
        let Some(mut sealer) = self.sealer.borrow() else {
            return Ok(None);
        };
        let claims = batch
            .databases()
            .iter()
            .zip(puts)
            .map(|(name, &wanted)| match wanted {
                0 => Ok(None),
                _ => self.claim(name, wanted).map(Some),
            })
            .collect::<Result<Vec<_>, _>>();
        let claims = match claims {
            Ok(claims) => claims,
            Err(e) => {
                self.sealer.give_back(sealer);
                return Err(e);
            }
        };
        let job = sealer.job();
        job.prepare(self.id, batch.databases(), claims);
        for op in batch.ops().skip(split) {
            if let BatchOp::Put {
                database,
                key,
                value,
            } = op
            {
                job.push(database, key, value);
            }
        }
        Ok(InFlight::send(&self.sealer, sealer))
    }
}
