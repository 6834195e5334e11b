//! The envelope: a node's master key and the keystore of its data keys.
//!
//! Owns the key hierarchy below the CMK. The master key (32 random bytes per node) exists
//! outside memory only as `KMS.Encrypt(CMK, mk)` under an encryption context naming the
//! cluster, node, store and master-key version. The stored keystore ends in an
//! authenticator under the master key, so no field of it can be edited undetected. Data keys (one active per database, any
//! number retired) are sealed by the master key with associated data (id, database,
//! master-key version). [`Keystore`] is immutable: every change returns a new keystore,
//! which the store layer persists in one synced write before it replaces the old one.
//!
//! | file | owns |
//! |---|---|
//! | `mod` | [`Keystore`], the master key, wrapping and unwrapping |
//! | `data_key` | [`DataKey`] and its lifecycle: [`DataKeyLimits`], [`Keystore::seal_step`] |
//! | `status` | [`KeystoreStatus`]: what `status` shows, no key bytes |
//! | `integrity` | the keystore's authenticator and the master key's context |

mod data_key;
mod integrity;
mod status;

pub use data_key::{ClaimedUses, DataKey, DataKeyLimits, SealError, SealStep, MAX_DATA_KEY_USES};
pub use status::{DatabaseKeys, KeystoreStatus};

use data_key::KeyMaterial;
use integrity::master_key_context;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::crash::{reach, CrashPoint};
use crate::crypto::{Aead, Backend, Nonce, SecretKey};
use crate::format::{
    DataKeyStatus, FormatError, KeystoreAuthenticator, KeystoreRecord, WrappedDataKey,
    WrappedMasterKey, WRAPPED_KEY_LEN,
};
use crate::kms::{Kms, KmsError};

#[derive(Debug, thiserror::Error)]
/// Errors of the key hierarchy below the CMK.
// Each variant is documented; its fields are named for what they hold.
#[allow(missing_docs)]
pub enum KeysError {
    #[error("cannot {operation} the master key of store {store} with CMK {cmk}: {source}")]
    /// A KMS call on the master key failed.
    Kms {
        operation: &'static str,
        store: StoreId,
        cmk: String,
        source: KmsError,
    },
    #[error(
        "the keystore of store {store} is corrupt: {reason}; restore the store from a snapshot"
    )]
    /// The keystore does not hold together.
    Corrupt { store: StoreId, reason: String },
    #[error("the keystore cannot be read: {0}; restore the store from a snapshot")]
    /// The keystore's bytes do not decode.
    Format(#[from] FormatError),
    #[error("store {0} has used every data key id; restore it into a new store")]
    /// Every data key id (2^32) has been used.
    DataKeyIdsExhausted(StoreId),
}

impl KeysError {
    /// The KMS error underneath, if a KMS call failed.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            KeysError::Kms { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A store's random 128-bit identity, bound into every record it seals.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreId(pub [u8; 16]);

impl StoreId {
    /// A fresh random store id.
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        crate::crypto::fill_random(&mut id);
        StoreId(id)
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreId({self})")
    }
}

impl Serialize for StoreId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a node sits: its cluster and its name in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The cluster the node belongs to.
    pub cluster: String,
    /// The node's name in its cluster.
    pub node: String,
}

/// The node's master key: the key in memory, the KMS blob on disk.
struct MasterKey {
    wrapped: WrappedMasterKey,
    key: SecretKey,
    aead: Aead,
}

/// A node's keys. Cheap to clone: key material is shared, never copied.
#[derive(Clone)]
pub struct Keystore {
    store_id: StoreId,
    identity: NodeIdentity,
    next_data_key_id: u32,
    master: Arc<MasterKey>,
    data_keys: BTreeMap<u32, Arc<DataKey>>,
    active: HashMap<String, u32>,
    backend: Backend,
    /// Read from a version-1 record, which carries no authenticator: to be upgraded.
    legacy: bool,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("store_id", &self.store_id)
            .field("master_key_version", &self.master.wrapped.version)
            .field("data_keys", &self.data_keys.len())
            .finish_non_exhaustive()
    }
}

impl Keystore {
    /// A new node: a fresh master key wrapped by `cmk`, and no data keys yet.
    pub fn create(
        kms: &dyn Kms,
        cmk: &str,
        identity: NodeIdentity,
        backend: Backend,
        now: Timestamp,
    ) -> Result<Self, KeysError> {
        let store_id = StoreId::random();
        let master = wrap_master_key(
            kms,
            cmk,
            store_id,
            &identity,
            SecretKey::generate(),
            1,
            backend,
            now,
        )?;
        Ok(Keystore {
            store_id,
            identity,
            next_data_key_id: 1,
            master: Arc::new(master),
            data_keys: BTreeMap::new(),
            active: HashMap::new(),
            backend,
            legacy: false,
        })
    }

    /// Reads a persisted keystore: one KMS Decrypt for the master key, which then
    /// unwraps every data key locally.
    pub fn unwrap(bytes: &[u8], kms: &dyn Kms, backend: Backend) -> Result<Self, KeysError> {
        let (record, authenticator) = KeystoreRecord::decode(bytes)?;
        let legacy = authenticator == KeystoreAuthenticator::Legacy;
        let store_id = StoreId(record.store_id);
        let identity = NodeIdentity {
            cluster: record.cluster,
            node: record.node,
        };
        let wrapped = record.master_key;
        let context = master_key_context(store_id, &identity, wrapped.version, !legacy);
        let plain = reach(CrashPoint::KmsDecrypt)
            .map_err(KmsError::from)
            .and_then(|()| kms.decrypt(&wrapped.cmk_arn, &wrapped.kms_blob, &context))
            .map_err(|source| KeysError::Kms {
                operation: "decrypt",
                store: store_id,
                cmk: wrapped.cmk_arn.clone(),
                source,
            })?;
        let corrupt = |reason: String| KeysError::Corrupt {
            store: store_id,
            reason,
        };
        let key = SecretKey::from_slice(&plain.plaintext)
            .map_err(|e| corrupt(format!("the master key from the KMS is unusable: {e}")))?;
        let aead = Aead::new(&key, backend).map_err(|e| corrupt(e.to_string()))?;
        if let KeystoreAuthenticator::Tagged {
            covered,
            nonce,
            tag,
        } = authenticator
        {
            if !integrity::authenticates(&aead, covered, &nonce, &tag) {
                return Err(corrupt(
                    "its metadata (use counts, states, times) does not authenticate under the master key: it was altered on disk".into(),
                ));
            }
        }
        let master = MasterKey { wrapped, key, aead };
        let mut data_keys = BTreeMap::new();
        let mut active = HashMap::new();
        for wrapped in record.data_keys {
            if wrapped.id >= record.next_data_key_id {
                return Err(corrupt(format!(
                    "data key {} is beyond the next id {}",
                    wrapped.id, record.next_data_key_id
                )));
            }
            let key = unwrap_data_key(&master, &wrapped).map_err(&corrupt)?;
            if wrapped.status == DataKeyStatus::Active
                && active
                    .insert(wrapped.database.clone(), wrapped.id)
                    .is_some()
            {
                return Err(corrupt(format!(
                    "database {:?} has two active data keys",
                    wrapped.database
                )));
            }
            let aead = Aead::new(&key, backend).map_err(|e| corrupt(e.to_string()))?;
            // Uses since the last reservation are unknown: assume all were spent.
            let uses = AtomicU64::new(wrapped.uses_reserved);
            let material = Arc::new(KeyMaterial { key, aead, uses });
            if data_keys
                .insert(wrapped.id, Arc::new(DataKey { wrapped, material }))
                .is_some()
            {
                return Err(corrupt("a data key id appears twice".into()));
            }
        }
        Ok(Keystore {
            store_id,
            identity,
            next_data_key_id: record.next_data_key_id,
            master: Arc::new(master),
            data_keys,
            active,
            backend,
            legacy,
        })
    }

    /// The versioned encoding, with every key wrapped, ending in an authenticator under
    /// the master key.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = KeystoreRecord {
            store_id: self.store_id.0,
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            next_data_key_id: self.next_data_key_id,
            master_key: self.master.wrapped.clone(),
            data_keys: self.data_keys.values().map(|k| k.wrapped.clone()).collect(),
        }
        .encode();
        integrity::append_authenticator(&self.master.aead, &mut bytes);
        bytes
    }

    /// Whether this keystore was read from a record without an authenticator, written by
    /// an older atrest: [`Keystore::upgraded`] makes the one to write back.
    pub fn needs_upgrade(&self) -> bool {
        self.legacy
    }

    /// The same keys, the master key wrapped again for an authenticated keystore (one KMS
    /// Encrypt): what replaces a legacy keystore.
    pub fn upgraded(&self, kms: &dyn Kms) -> Result<Keystore, KeysError> {
        self.with_cmk(kms, self.cmk_arn())
    }

    /// The store's identity.
    pub fn store_id(&self) -> StoreId {
        self.store_id
    }

    /// The node's cluster and name.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The ARN of the CMK that wraps the master key.
    pub fn cmk_arn(&self) -> &str {
        &self.master.wrapped.cmk_arn
    }

    /// The master key's version, counting rotations from 1.
    pub fn master_key_version(&self) -> u32 {
        self.master.wrapped.version
    }

    /// When the master key was made.
    pub fn master_key_created(&self) -> Timestamp {
        Timestamp::from_millis(self.master.wrapped.created_ms)
    }

    /// The data key with id `id`, active or retired.
    pub fn data_key(&self, id: u32) -> Option<&Arc<DataKey>> {
        self.data_keys.get(&id)
    }

    /// The key that seals new writes to `database`.
    pub fn active_data_key(&self, database: &str) -> Option<&Arc<DataKey>> {
        self.active
            .get(database)
            .and_then(|id| self.data_keys.get(id))
    }

    /// Every data key, active and retired, in id order.
    pub fn data_keys(&self) -> impl Iterator<Item = &Arc<DataKey>> {
        self.data_keys.values()
    }

    /// Every database that has a data key, in name order.
    pub fn databases(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.active.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A keystore where `database` has a new active data key with `reserved_uses` seals
    /// reserved; its previous one, if any, is retired and keeps decrypting what it wrote.
    pub fn with_new_data_key(
        &self,
        database: &str,
        reserved_uses: u64,
        now: Timestamp,
    ) -> Result<Keystore, KeysError> {
        let mut next = self.clone();
        let id = next.next_data_key_id;
        next.next_data_key_id = id
            .checked_add(1)
            .ok_or(KeysError::DataKeyIdsExhausted(self.store_id))?;
        if let Some(old) = next.active.get(database).copied() {
            next.update_data_key(old, |w| w.status = DataKeyStatus::Retired);
        }
        let key = SecretKey::generate();
        let mut wrapped =
            wrap_data_key(&self.master, &key, id, database, now, DataKeyStatus::Active);
        wrapped.uses_reserved = reserved_uses;
        let aead = Aead::new(&key, self.backend).map_err(|e| KeysError::Corrupt {
            store: self.store_id,
            reason: e.to_string(),
        })?;
        let material = Arc::new(KeyMaterial {
            key,
            aead,
            uses: AtomicU64::new(0),
        });
        next.data_keys
            .insert(id, Arc::new(DataKey { wrapped, material }));
        next.active.insert(database.to_string(), id);
        Ok(next)
    }

    /// A keystore where data key `id` may be used up to `reserved_uses` times.
    pub fn with_reserved_uses(&self, id: u32, reserved_uses: u64) -> Keystore {
        let mut next = self.clone();
        next.update_data_key(id, |w| w.uses_reserved = w.uses_reserved.max(reserved_uses));
        next
    }

    fn update_data_key(&mut self, id: u32, change: impl FnOnce(&mut WrappedDataKey)) {
        if let Some(key) = self.data_keys.get(&id) {
            let mut wrapped = key.wrapped.clone();
            change(&mut wrapped);
            let material = Arc::clone(&key.material);
            self.data_keys
                .insert(id, Arc::new(DataKey { wrapped, material }));
        }
    }

    /// Master-key rotation: a new master key (next version) wrapped by the same CMK, and
    /// every data key re-wrapped under it. The data keys themselves, and so every record,
    /// are unchanged.
    pub fn with_new_master_key(
        &self,
        kms: &dyn Kms,
        now: Timestamp,
    ) -> Result<Keystore, KeysError> {
        self.rekeyed(kms, self.cmk_arn(), self.identity.clone(), now)
    }

    /// A new master key (next version) wrapped by `cmk` for the node `identity`, with
    /// every data key re-wrapped under it: what a restored node does to become its target.
    pub fn rekeyed(
        &self,
        kms: &dyn Kms,
        cmk: &str,
        identity: NodeIdentity,
        now: Timestamp,
    ) -> Result<Keystore, KeysError> {
        let version =
            self.master_key_version()
                .checked_add(1)
                .ok_or_else(|| KeysError::Corrupt {
                    store: self.store_id,
                    reason: "master key versions are exhausted".into(),
                })?;
        let master = wrap_master_key(
            kms,
            cmk,
            self.store_id,
            &identity,
            SecretKey::generate(),
            version,
            self.backend,
            now,
        )?;
        let mut next = self.rewrapped_under(master);
        next.identity = identity;
        Ok(next)
    }

    /// CMK rotation: the same master key, wrapped by `cmk` instead.
    pub fn with_cmk(&self, kms: &dyn Kms, cmk: &str) -> Result<Keystore, KeysError> {
        let master = wrap_master_key(
            kms,
            cmk,
            self.store_id,
            &self.identity,
            self.master.key.clone(),
            self.master_key_version(),
            self.backend,
            self.master_key_created(),
        )?;
        Ok(self.rewrapped_under(master))
    }

    fn rewrapped_under(&self, master: MasterKey) -> Keystore {
        let mut next = self.clone();
        next.data_keys = self
            .data_keys
            .values()
            .map(|dk| {
                let mut wrapped = wrap_data_key(
                    &master,
                    &dk.material.key,
                    dk.id(),
                    dk.database(),
                    dk.created(),
                    dk.wrapped.status,
                );
                wrapped.uses_reserved = dk.wrapped.uses_reserved;
                (
                    dk.id(),
                    Arc::new(DataKey {
                        wrapped,
                        material: Arc::clone(&dk.material),
                    }),
                )
            })
            .collect();
        next.master = Arc::new(master);
        // The master key was just wrapped for an authenticated keystore.
        next.legacy = false;
        next
    }
}

#[allow(clippy::too_many_arguments)]
fn wrap_master_key(
    kms: &dyn Kms,
    cmk: &str,
    store_id: StoreId,
    identity: &NodeIdentity,
    key: SecretKey,
    version: u32,
    backend: Backend,
    created: Timestamp,
) -> Result<MasterKey, KeysError> {
    let context = master_key_context(store_id, identity, version, true);
    let encrypted = reach(CrashPoint::KmsEncrypt)
        .map_err(KmsError::from)
        .and_then(|()| kms.encrypt(cmk, key.expose(), &context))
        .map_err(|source| KeysError::Kms {
            operation: "encrypt",
            store: store_id,
            cmk: cmk.to_string(),
            source,
        })?;
    // A master key that its CMK cannot unwrap would lock the node out at the next open:
    // prove the round trip (this caller may Decrypt, the key is usable) before using it.
    let kms_error = |operation, source| KeysError::Kms {
        operation,
        store: store_id,
        cmk: encrypted.key_arn.clone(),
        source,
    };
    let check = reach(CrashPoint::KmsDecrypt)
        .map_err(KmsError::from)
        .and_then(|()| kms.decrypt(&encrypted.key_arn, &encrypted.ciphertext_blob, &context))
        .map_err(|source| kms_error("decrypt (round-trip check of) the new wrapping of", source))?;
    if check.plaintext.as_slice() != key.expose() {
        return Err(kms_error(
            "round-trip",
            KmsError::InvalidCiphertext(
                "the KMS returned different bytes than it encrypted".into(),
            ),
        ));
    }
    let aead = Aead::new(&key, backend).map_err(|e| KeysError::Corrupt {
        store: store_id,
        reason: e.to_string(),
    })?;
    let wrapped = WrappedMasterKey {
        version,
        created_ms: created.as_millis(),
        cmk_arn: encrypted.key_arn,
        kms_blob: encrypted.ciphertext_blob,
    };
    Ok(MasterKey { wrapped, key, aead })
}

fn wrap_data_key(
    master: &MasterKey,
    key: &SecretKey,
    id: u32,
    database: &str,
    created: Timestamp,
    status: DataKeyStatus,
) -> WrappedDataKey {
    let nonce = Nonce::random();
    let aad = WrappedDataKey::aad(id, database, master.wrapped.version);
    let mut sealed = [0u8; WRAPPED_KEY_LEN];
    sealed[..32].copy_from_slice(key.expose());
    // Sealing a 48-byte buffer with a valid key cannot fail; were it to, the zeroed
    // entry would fail to unwrap loudly at the next open rather than silently.
    if master
        .aead
        .seal_in_place(&nonce, &aad, &mut sealed)
        .is_err()
    {
        sealed = [0u8; WRAPPED_KEY_LEN];
    }
    WrappedDataKey {
        id,
        database: database.to_string(),
        master_key_version: master.wrapped.version,
        created_ms: created.as_millis(),
        status,
        uses_reserved: 0,
        nonce,
        sealed,
    }
}

fn unwrap_data_key(master: &MasterKey, wrapped: &WrappedDataKey) -> Result<SecretKey, String> {
    if wrapped.master_key_version != master.wrapped.version {
        return Err(format!(
            "data key {} is wrapped by master key version {}, but the master key is version {}",
            wrapped.id, wrapped.master_key_version, master.wrapped.version
        ));
    }
    let aad = WrappedDataKey::aad(wrapped.id, &wrapped.database, wrapped.master_key_version);
    let plain = master
        .aead
        .open(&wrapped.nonce, &aad, &wrapped.sealed)
        .map_err(|_| {
            format!(
                "data key {} of database {:?} does not authenticate under the master key",
                wrapped.id, wrapped.database
            )
        })?;
    SecretKey::from_slice(&plain).map_err(|e| e.to_string())
}
