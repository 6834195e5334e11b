//! One database's data key and its lifecycle: how many seals it may make, when the
//! keystore must record a new reservation of uses before it seals more, and when a new key
//! takes over. Sealing counts its own use, so no caller can seal past what the persisted
//! keystore allows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{KeysError, Keystore, StoreId};
use crate::clock::Timestamp;
use crate::crypto::{Aead, CryptoError, Nonce, SecretKey};
use crate::format::{
    record_aad, DataKeyStatus, Record, WrappedDataKey, RECORD_HEADER_LEN, RECORD_OVERHEAD,
};

/// A data key's secret and its running use count, shared by every keystore version in
/// which the key appears (active, then retired; wrapped by one master key, then another).
pub(super) struct KeyMaterial {
    pub(super) key: SecretKey,
    pub(super) aead: Aead,
    /// Seals made with this key, counted from the last persisted reservation.
    pub(super) uses: AtomicU64,
}

/// One database's data key, unwrapped and ready to seal and open records.
pub struct DataKey {
    pub(super) wrapped: WrappedDataKey,
    pub(super) material: Arc<KeyMaterial>,
}

/// Why a data key did not seal.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The seals the persisted keystore allows this key are spent: the keystore must record
    /// more (or a new key) first. See [`Keystore::seal_step`].
    #[error("data key {key} has spent the uses its keystore reserved")]
    ReservationSpent {
        /// The key's id.
        key: u32,
    },
    /// The cipher failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Uses of one data key, counted against its reservation when claimed
/// ([`DataKey::claim`]): a run of seals (half a batch, on either of two threads) spends
/// them without contending on the key's shared count at every record.
pub struct ClaimedUses {
    key: Arc<DataKey>,
    left: u64,
}

impl ClaimedUses {
    /// [`DataKey::seal_record_into`], spending one claimed use; refuses once they are spent.
    pub fn seal_record_into(
        &mut self,
        store: StoreId,
        database: &str,
        key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let Some(left) = self.left.checked_sub(1) else {
            return Err(SealError::ReservationSpent { key: self.key.id() });
        };
        self.left = left;
        self.key
            .seal_counted_into(store, database, key, value, aad, out)
    }
}

impl fmt::Debug for ClaimedUses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedUses")
            .field("key", &self.key.id())
            .field("left", &self.left)
            .finish()
    }
}

impl DataKey {
    /// The key's id, unique in its store.
    pub fn id(&self) -> u32 {
        self.wrapped.id
    }

    /// The database the key belongs to.
    pub fn database(&self) -> &str {
        &self.wrapped.database
    }

    /// When the key was made.
    pub fn created(&self) -> Timestamp {
        Timestamp::from_millis(self.wrapped.created_ms)
    }

    /// Whether the key seals new writes.
    pub fn is_active(&self) -> bool {
        self.wrapped.status == DataKeyStatus::Active
    }

    /// The key schedule, built once. Crate-private: a seal outside
    /// [`DataKey::seal_record`] would not be counted.
    pub(crate) fn aead(&self) -> &Aead {
        &self.material.aead
    }

    /// Seals one record value for `key` in `database` of `store`: header, ciphertext and
    /// tag in one allocation. `aad` is scratch space, reused across calls. Counts the use,
    /// and refuses, counting nothing, once the uses the persisted keystore reserved are
    /// spent: no key ever seals past what a reopen would count.
    pub fn seal_record(
        &self,
        store: StoreId,
        database: &str,
        key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
    ) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(RECORD_OVERHEAD + value.len());
        self.seal_record_into(store, database, key, value, aad, &mut out)?;
        Ok(out)
    }

    /// [`DataKey::seal_record`], appending the sealed record to `out` (whose allocation a
    /// caller may reuse); nothing is appended unless it seals.
    pub fn seal_record_into(
        &self,
        store: StoreId,
        database: &str,
        key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        if self.take_uses(1) == 0 {
            return Err(SealError::ReservationSpent { key: self.id() });
        }
        self.seal_counted_into(store, database, key, value, aad, out)
    }

    /// Takes up to `wanted` (at least one) of the uses the persisted keystore still allows
    /// this key, in one step on the shared count, for a run of seals that then touch it no
    /// more; `None` when none is left.
    pub fn claim(self: Arc<Self>, wanted: u64) -> Option<ClaimedUses> {
        match self.take_uses(wanted) {
            0 => None,
            left => Some(ClaimedUses { key: self, left }),
        }
    }

    /// Counts up to `wanted` (at least one) more uses, never past the reservation, in one
    /// step; how many it counted (0: the reservation is spent, the count unchanged).
    fn take_uses(&self, wanted: u64) -> u64 {
        let reserved = self.reserved_uses();
        let wanted = wanted.max(1);
        self.material
            .uses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let left = reserved.saturating_sub(used);
                (left > 0).then(|| used.saturating_add(left.min(wanted)))
            })
            .map_or(0, |before| reserved.saturating_sub(before).min(wanted))
    }

    /// Seals a use already counted.
    fn seal_counted_into(
        &self,
        store: StoreId,
        database: &str,
        key: &[u8],
        value: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let nonce = Nonce::random();
        let mut header = [0u8; RECORD_HEADER_LEN];
        Record::write_header(&mut header, self.id(), &nonce);
        let start = out.len();
        out.reserve(RECORD_OVERHEAD + value.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(value);
        out.resize(start + RECORD_OVERHEAD + value.len(), 0);
        record_aad(aad, &store.0, self.id(), database, key);
        let sealed = out.get_mut(start + RECORD_HEADER_LEN..).unwrap_or_default();
        if let Err(e) = self.aead().seal_in_place(&nonce, aad, sealed) {
            out.truncate(start);
            return Err(e.into());
        }
        Ok(())
    }

    /// Opens a decoded record of `key` in `database` of `store`, sealed by this data key.
    pub fn open_record(
        &self,
        store: StoreId,
        database: &str,
        key: &[u8],
        record: &Record<'_>,
        aad: &mut Vec<u8>,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut plain = Vec::new();
        self.open_record_into(store, database, key, record, aad, &mut plain)?;
        Ok(plain)
    }

    /// [`DataKey::open_record`], appending the value to `plain`.
    pub fn open_record_into(
        &self,
        store: StoreId,
        database: &str,
        key: &[u8],
        record: &Record<'_>,
        aad: &mut Vec<u8>,
        plain: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        record_aad(aad, &store.0, record.data_key_id, database, key);
        self.aead()
            .open_into(&record.nonce, aad, record.sealed, plain)
    }

    /// Seals counted so far (an over-count after a restart, never an under-count).
    pub fn uses(&self) -> u64 {
        self.material.uses.load(Ordering::Relaxed)
    }

    /// The count the persisted keystore allows before another reservation.
    pub fn reserved_uses(&self) -> u64 {
        self.wrapped.uses_reserved
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id())
            .field("database", &self.database())
            .field("status", &self.wrapped.status)
            .field("uses", &self.uses())
            .finish_non_exhaustive()
    }
}

/// Random 96-bit nonces are safe for about 2^32 seals under one key.
pub const MAX_DATA_KEY_USES: u64 = 1 << 32;

/// When a database's active data key is replaced by a new one for new writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataKeyLimits {
    /// Seals per key, at most [`MAX_DATA_KEY_USES`]. The default, 2^30, stays well clear.
    pub max_uses: u64,
    /// Seals reserved per synced keystore write. A crash forgets at most one reservation,
    /// so counts only ever over-count.
    pub reservation: u64,
    /// Replace a key this old (checked at each reservation, and by a store's tick).
    pub max_age: Option<Duration>,
}

impl Default for DataKeyLimits {
    fn default() -> Self {
        DataKeyLimits {
            max_uses: 1 << 30,
            reservation: 1 << 20,
            max_age: None,
        }
    }
}

impl DataKeyLimits {
    /// Seals a key may make: `max_uses`, within 1 and [`MAX_DATA_KEY_USES`].
    fn use_limit(&self) -> u64 {
        self.max_uses.clamp(1, MAX_DATA_KEY_USES)
    }

    /// The reservation a new key starts with.
    pub fn first_reservation(&self) -> u64 {
        self.reservation.clamp(1, self.use_limit())
    }
}

/// What a writer does before one more seal in a database.
#[derive(Debug)]
pub enum SealStep {
    /// Seal with this key: the persisted keystore allows one more use of it.
    Seal(Arc<DataKey>),
    /// Persist this keystore first (a new reservation of uses, or a new active key), make
    /// it current, and ask again.
    Persist(Keystore),
}

impl Keystore {
    /// The one decision of a data key's lifecycle, for one more seal in `database`: seal
    /// with its active key while the persisted reservation covers the use; else reserve
    /// more uses, or, once the key has made `max_uses` seals or is `max_age` old, roll over
    /// to a new key (the old one keeps decrypting). A database without a key gets its
    /// first one. `now` is read only when the answer is not a plain seal: the hot path
    /// reads no clock.
    pub fn seal_step(
        &self,
        database: &str,
        limits: &DataKeyLimits,
        now: impl FnOnce() -> Timestamp,
    ) -> Result<SealStep, KeysError> {
        let Some(active) = self.active_data_key(database) else {
            return self
                .with_new_data_key(database, limits.first_reservation(), now())
                .map(SealStep::Persist);
        };
        let next_use = active.uses().saturating_add(1);
        if next_use <= active.reserved_uses() {
            return Ok(SealStep::Seal(Arc::clone(active)));
        }
        let now = now();
        let new_key = || {
            self.with_new_data_key(database, limits.first_reservation(), now)
                .map(SealStep::Persist)
        };
        let too_old = limits
            .max_age
            .is_some_and(|age| now.since(active.created()) >= age);
        if next_use > limits.use_limit() || too_old {
            return new_key();
        }
        let ceiling = active
            .reserved_uses()
            .saturating_add(limits.reservation.max(1))
            .max(next_use)
            .min(limits.use_limit());
        Ok(SealStep::Persist(
            self.with_reserved_uses(active.id(), ceiling),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{days, Clock, SystemClock};
    use crate::crypto::Backend;
    use crate::keys::NodeIdentity;
    use crate::kms::{Caller, CreateKeyRequest, LocalKms};

    fn keystore() -> Keystore {
        let kms = LocalKms::in_memory(Arc::new(SystemClock));
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        let identity = NodeIdentity {
            cluster: "c".into(),
            node: "node-0".into(),
        };
        Keystore::create(
            &client,
            &cmk,
            identity,
            Backend::default(),
            SystemClock.now(),
        )
        .unwrap()
    }

    fn limits(max_uses: u64, reservation: u64) -> DataKeyLimits {
        DataKeyLimits {
            max_uses,
            reservation,
            max_age: None,
        }
    }

    /// Follows every step to a key, as a store does; the keystore after, and the key.
    fn key_for_seal(
        mut ks: Keystore,
        l: &DataKeyLimits,
        now: Timestamp,
    ) -> (Keystore, Arc<DataKey>) {
        loop {
            match ks.seal_step("db", l, || now).unwrap() {
                SealStep::Seal(key) => return (ks, key),
                SealStep::Persist(next) => ks = next,
            }
        }
    }

    fn seal(key: &DataKey, ks: &Keystore) -> Result<Vec<u8>, SealError> {
        key.seal_record(ks.store_id(), "db", b"k", b"v", &mut Vec::new())
    }

    #[test]
    fn a_database_without_a_key_gets_its_first_one_persisted() {
        let ks = keystore();
        let l = limits(100, 10);
        match ks.seal_step("db", &l, || SystemClock.now()).unwrap() {
            SealStep::Persist(next) => {
                let key = next.active_data_key("db").unwrap();
                assert_eq!(key.reserved_uses(), 10);
                assert_eq!(key.uses(), 0);
            }
            SealStep::Seal(_) => panic!("sealed with no key"),
        }
    }

    #[test]
    fn sealing_counts_and_stops_at_the_reservation() {
        let l = limits(100, 3);
        let (ks, key) = key_for_seal(keystore(), &l, SystemClock.now());
        for _ in 0..3 {
            seal(&key, &ks).unwrap();
        }
        assert!(matches!(
            seal(&key, &ks),
            Err(SealError::ReservationSpent { .. })
        ));
        assert_eq!(key.uses(), 3, "a refused seal is not counted");
    }

    #[test]
    fn claims_take_no_more_than_the_reservation_left_and_seal_no_more_than_they_took() {
        let l = limits(100, 10);
        let (ks, key) = key_for_seal(keystore(), &l, SystemClock.now());
        seal(&key, &ks).unwrap();
        let mut first = Arc::clone(&key).claim(4).unwrap();
        assert_eq!(key.uses(), 5, "a claim counts all it takes at once");
        let mut second = Arc::clone(&key).claim(100).unwrap();
        assert_eq!(key.uses(), 10, "a claim takes what is left, not more");
        assert!(Arc::clone(&key).claim(1).is_none(), "nothing is left");
        let mut sealed = Vec::new();
        for (claim, took) in [(&mut first, 4), (&mut second, 5)] {
            for _ in 0..took {
                claim
                    .seal_record_into(
                        ks.store_id(),
                        "db",
                        b"k",
                        b"v",
                        &mut Vec::new(),
                        &mut sealed,
                    )
                    .unwrap();
            }
            let before = sealed.len();
            assert!(matches!(
                claim.seal_record_into(
                    ks.store_id(),
                    "db",
                    b"k",
                    b"v",
                    &mut Vec::new(),
                    &mut sealed
                ),
                Err(SealError::ReservationSpent { .. })
            ));
            assert_eq!(sealed.len(), before, "a refused seal appends nothing");
        }
        assert_eq!(key.uses(), 10, "claimed seals touch the count no more");
        let record = Record::decode(sealed.get(..RECORD_OVERHEAD + 1).unwrap()).unwrap();
        let opened = key
            .open_record(ks.store_id(), "db", b"k", &record, &mut Vec::new())
            .unwrap();
        assert_eq!(opened, b"v");
    }

    #[test]
    fn a_spent_reservation_is_extended_not_rolled() {
        let l = limits(100, 3);
        let now = SystemClock.now();
        let (ks, key) = key_for_seal(keystore(), &l, now);
        while seal(&key, &ks).is_ok() {}
        match ks.seal_step("db", &l, || now).unwrap() {
            SealStep::Persist(next) => {
                let same = next.active_data_key("db").unwrap();
                assert_eq!(same.id(), key.id());
                assert!(same.reserved_uses() > key.uses());
                assert!(same.reserved_uses() <= 100);
            }
            SealStep::Seal(_) => panic!("sealed past the reservation"),
        }
    }

    #[test]
    fn a_key_rolls_over_at_its_use_limit_and_the_old_one_retires() {
        let l = limits(5, 5);
        let now = SystemClock.now();
        let (ks, first) = key_for_seal(keystore(), &l, now);
        for _ in 0..5 {
            seal(&first, &ks).unwrap();
        }
        let (ks, second) = key_for_seal(ks, &l, now);
        assert_ne!(first.id(), second.id());
        assert!(ks.data_key(first.id()).is_some_and(|k| !k.is_active()));
        assert!(second.is_active());
    }

    #[test]
    fn a_key_rolls_over_at_its_age_when_it_next_reserves() {
        let l = DataKeyLimits {
            max_uses: 100,
            reservation: 2,
            max_age: Some(days(30)),
        };
        let start = SystemClock.now();
        let (ks, first) = key_for_seal(keystore(), &l, start);
        seal(&first, &ks).unwrap();
        // Within its reservation the key seals, however old.
        let later = start.saturating_add(days(31));
        let (ks, same) = key_for_seal(ks, &l, later);
        assert_eq!(same.id(), first.id());
        seal(&same, &ks).unwrap();
        let (_, next) = key_for_seal(ks, &l, later);
        assert_ne!(next.id(), first.id());
    }

    #[test]
    fn the_use_limit_never_passes_the_nonce_bound() {
        let l = limits(u64::MAX, u64::MAX);
        assert_eq!(l.first_reservation(), MAX_DATA_KEY_USES);
        let l = limits(0, 0);
        assert_eq!(l.first_reservation(), 1);
    }
}
