//! The envelope: a node's master key and the keystore of its data keys.
//!
//! Owns the key hierarchy below the CMK. The master key (32 random bytes per node) exists
//! outside memory only as `KMS.Encrypt(CMK, mk)` under an encryption context naming the
//! cluster, node, store and master-key version. Data keys (one active per database, any
//! number retired) are sealed by the master key with associated data (id, database,
//! master-key version). [`Keystore`] is immutable: every change returns a new keystore,
//! which the store layer persists in one synced write before it replaces the old one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use rand::RngCore;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::crypto::{Aead, Backend, Nonce, SecretKey};
use crate::format::{
    DataKeyStatus, FormatError, KeystoreRecord, WrappedDataKey, WrappedMasterKey, WRAPPED_KEY_LEN,
};
use crate::kms::{EncryptionContext, Kms, KmsError};

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot {operation} the master key of store {store} with CMK {cmk}: {source}")]
    Kms {
        operation: &'static str,
        store: StoreId,
        cmk: String,
        source: KmsError,
    },
    #[error(
        "the keystore of store {store} is corrupt: {reason}; restore the store from a snapshot"
    )]
    Corrupt { store: StoreId, reason: String },
    #[error("the keystore cannot be read: {0}; restore the store from a snapshot")]
    Format(#[from] FormatError),
    #[error("store {0} has used every data key id; restore it into a new store")]
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
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
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
    pub cluster: String,
    pub node: String,
}

/// The node's master key: the key schedule in memory, the KMS blob on disk.
struct MasterKey {
    wrapped: WrappedMasterKey,
    aead: Aead,
}

/// One database's data key, unwrapped and ready to seal and open records.
pub struct DataKey {
    wrapped: WrappedDataKey,
    /// Shared with the same key's other states (active, then retired).
    aead: Arc<Aead>,
}

impl DataKey {
    pub fn id(&self) -> u32 {
        self.wrapped.id
    }

    pub fn database(&self) -> &str {
        &self.wrapped.database
    }

    pub fn created(&self) -> Timestamp {
        Timestamp::from_millis(self.wrapped.created_ms)
    }

    pub fn is_active(&self) -> bool {
        self.wrapped.status == DataKeyStatus::Active
    }

    pub fn aead(&self) -> &Aead {
        &self.aead
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id())
            .field("database", &self.database())
            .field("status", &self.wrapped.status)
            .finish_non_exhaustive()
    }
}

/// A node's keys. Cheap to clone: keys are shared, never copied.
#[derive(Clone)]
pub struct Keystore {
    store_id: StoreId,
    identity: NodeIdentity,
    next_data_key_id: u32,
    master: Arc<MasterKey>,
    data_keys: BTreeMap<u32, Arc<DataKey>>,
    active: HashMap<String, u32>,
    backend: Backend,
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

fn master_key_context(store: StoreId, identity: &NodeIdentity, version: u32) -> EncryptionContext {
    [
        ("atrest:cluster", identity.cluster.clone()),
        ("atrest:node", identity.node.clone()),
        ("atrest:store", store.to_string()),
        ("atrest:master-key-version", version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
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
        let master = wrap_new_master_key(kms, cmk, store_id, &identity, 1, backend, now)?;
        Ok(Keystore {
            store_id,
            identity,
            next_data_key_id: 1,
            master: Arc::new(master),
            data_keys: BTreeMap::new(),
            active: HashMap::new(),
            backend,
        })
    }

    /// Reads a persisted keystore: one KMS Decrypt for the master key, which then
    /// unwraps every data key locally.
    pub fn unwrap(bytes: &[u8], kms: &dyn Kms, backend: Backend) -> Result<Self, KeysError> {
        let record = KeystoreRecord::decode(bytes)?;
        let store_id = StoreId(record.store_id);
        let identity = NodeIdentity {
            cluster: record.cluster,
            node: record.node,
        };
        let wrapped = record.master_key;
        let context = master_key_context(store_id, &identity, wrapped.version);
        let kms_error = |source| KeysError::Kms {
            operation: "decrypt",
            store: store_id,
            cmk: wrapped.cmk_arn.clone(),
            source,
        };
        let plain = kms
            .decrypt(&wrapped.cmk_arn, &wrapped.kms_blob, &context)
            .map_err(kms_error)?;
        let corrupt = |reason: String| KeysError::Corrupt {
            store: store_id,
            reason,
        };
        let key = SecretKey::from_slice(&plain.plaintext)
            .map_err(|e| corrupt(format!("the master key from the KMS is unusable: {e}")))?;
        let aead = Aead::new(&key, backend).map_err(|e| corrupt(e.to_string()))?;
        let master = MasterKey { wrapped, aead };
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
            if data_keys
                .insert(
                    wrapped.id,
                    Arc::new(DataKey {
                        wrapped,
                        aead: Arc::new(aead),
                    }),
                )
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
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        KeystoreRecord {
            store_id: self.store_id.0,
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            next_data_key_id: self.next_data_key_id,
            master_key: self.master.wrapped.clone(),
            data_keys: self.data_keys.values().map(|k| k.wrapped.clone()).collect(),
        }
        .encode()
    }

    pub fn store_id(&self) -> StoreId {
        self.store_id
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The ARN of the CMK that wraps the master key.
    pub fn cmk_arn(&self) -> &str {
        &self.master.wrapped.cmk_arn
    }

    pub fn master_key_version(&self) -> u32 {
        self.master.wrapped.version
    }

    pub fn master_key_created(&self) -> Timestamp {
        Timestamp::from_millis(self.master.wrapped.created_ms)
    }

    pub fn data_key(&self, id: u32) -> Option<&Arc<DataKey>> {
        self.data_keys.get(&id)
    }

    pub fn active_data_key(&self, database: &str) -> Option<&Arc<DataKey>> {
        self.active
            .get(database)
            .and_then(|id| self.data_keys.get(id))
    }

    /// Every database that has a data key, in name order.
    pub fn databases(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.active.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A keystore where `database` has a new active data key; its previous one, if any,
    /// is retired and keeps decrypting what it wrote.
    pub fn with_new_data_key(&self, database: &str, now: Timestamp) -> Result<Keystore, KeysError> {
        let mut next = self.clone();
        let id = next.next_data_key_id;
        next.next_data_key_id = id
            .checked_add(1)
            .ok_or(KeysError::DataKeyIdsExhausted(self.store_id))?;
        if let Some(old) = next.active.get(database).copied() {
            next.replace_status(old, DataKeyStatus::Retired);
        }
        let key = SecretKey::generate();
        let wrapped = wrap_data_key(&self.master, &key, id, database, now, DataKeyStatus::Active);
        let aead = Aead::new(&key, self.backend).map_err(|e| KeysError::Corrupt {
            store: self.store_id,
            reason: e.to_string(),
        })?;
        next.data_keys.insert(
            id,
            Arc::new(DataKey {
                wrapped,
                aead: Arc::new(aead),
            }),
        );
        next.active.insert(database.to_string(), id);
        Ok(next)
    }

    fn replace_status(&mut self, id: u32, status: DataKeyStatus) {
        if let Some(key) = self.data_keys.get(&id) {
            let mut wrapped = key.wrapped.clone();
            wrapped.status = status;
            let aead = Arc::clone(&key.aead);
            self.data_keys
                .insert(id, Arc::new(DataKey { wrapped, aead }));
        }
    }

    /// A summary safe to print: no key bytes.
    pub fn status(&self) -> KeystoreStatus {
        KeystoreStatus {
            store_id: self.store_id,
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            cmk_arn: self.cmk_arn().to_string(),
            master_key_version: self.master_key_version(),
            master_key_created: self.master_key_created(),
            databases: self
                .databases()
                .into_iter()
                .filter_map(|db| {
                    let active = self.active_data_key(db)?;
                    let keys: Vec<&Arc<DataKey>> = self
                        .data_keys
                        .values()
                        .filter(|k| k.database() == db)
                        .collect();
                    Some(DatabaseKeys {
                        database: db.to_string(),
                        active_data_key: active.id(),
                        active_since: active.created(),
                        data_keys: keys.len(),
                        oldest_data_key_created: keys
                            .iter()
                            .map(|k| k.created())
                            .min()
                            .unwrap_or(active.created()),
                    })
                })
                .collect(),
        }
    }
}

/// What `status` shows of a keystore.
#[derive(Clone, Debug, Serialize)]
pub struct KeystoreStatus {
    pub store_id: StoreId,
    pub cluster: String,
    pub node: String,
    pub cmk_arn: String,
    pub master_key_version: u32,
    pub master_key_created: Timestamp,
    pub databases: Vec<DatabaseKeys>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatabaseKeys {
    pub database: String,
    pub active_data_key: u32,
    pub active_since: Timestamp,
    pub data_keys: usize,
    pub oldest_data_key_created: Timestamp,
}

fn wrap_new_master_key(
    kms: &dyn Kms,
    cmk: &str,
    store_id: StoreId,
    identity: &NodeIdentity,
    version: u32,
    backend: Backend,
    now: Timestamp,
) -> Result<MasterKey, KeysError> {
    let key = SecretKey::generate();
    let context = master_key_context(store_id, identity, version);
    let encrypted = kms
        .encrypt(cmk, key.expose(), &context)
        .map_err(|source| KeysError::Kms {
            operation: "encrypt",
            store: store_id,
            cmk: cmk.to_string(),
            source,
        })?;
    let aead = Aead::new(&key, backend).map_err(|e| KeysError::Corrupt {
        store: store_id,
        reason: e.to_string(),
    })?;
    let wrapped = WrappedMasterKey {
        version,
        created_ms: now.as_millis(),
        cmk_arn: encrypted.key_arn,
        kms_blob: encrypted.ciphertext_blob,
    };
    Ok(MasterKey { wrapped, aead })
}

fn wrap_data_key(
    master: &MasterKey,
    key: &SecretKey,
    id: u32,
    database: &str,
    now: Timestamp,
    status: DataKeyStatus,
) -> WrappedDataKey {
    let nonce = Nonce::random();
    let aad = WrappedDataKey::aad(id, database, master.wrapped.version);
    let mut sealed = [0u8; WRAPPED_KEY_LEN];
    sealed[..32].copy_from_slice(key.expose());
    // Sealing a 32-byte buffer with a valid key cannot fail; the zeroed fallback would
    // fail to unwrap loudly rather than silently.
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
        created_ms: now.as_millis(),
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
