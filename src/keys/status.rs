//! What `status` shows of a keystore: ids, versions, ages and counts, never key bytes.

use std::sync::Arc;

use serde::Serialize;

use super::{DataKey, Keystore, StoreId};
use crate::clock::Timestamp;

impl Keystore {
    /// A summary safe to print: no key bytes.
    pub fn status(&self, now: Timestamp) -> KeystoreStatus {
        KeystoreStatus {
            store_id: self.store_id,
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            cmk_arn: self.cmk_arn().to_string(),
            master_key_version: self.master_key_version(),
            master_key_created: self.master_key_created(),
            master_key_next_rotation: None,
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
                        active_age_days: now.since(active.created()).as_secs() / 86_400,
                        active_uses: active.uses(),
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
    /// The store's identity.
    pub store_id: StoreId,
    /// The node's cluster.
    pub cluster: String,
    /// The node's name.
    pub node: String,
    /// The CMK wrapping the master key.
    pub cmk_arn: String,
    /// The master key's version.
    pub master_key_version: u32,
    /// When the master key was made.
    pub master_key_created: Timestamp,
    /// When automatic rotation is next due; `None` where it is off.
    pub master_key_next_rotation: Option<Timestamp>,
    /// Per database, its data keys.
    pub databases: Vec<DatabaseKeys>,
}

#[derive(Clone, Debug, Serialize)]
/// What `status` shows of one database's keys.
pub struct DatabaseKeys {
    /// The database.
    pub database: String,
    /// The id of the key sealing new writes.
    pub active_data_key: u32,
    /// When that key was made.
    pub active_since: Timestamp,
    /// Its age in whole days.
    pub active_age_days: u64,
    /// Seals counted with the active key (over-counted after a restart, never under).
    pub active_uses: u64,
    /// Keys of this database, active and retired.
    pub data_keys: usize,
    /// The oldest key still protecting data of this database (retired keys are kept).
    pub oldest_data_key_created: Timestamp,
}
