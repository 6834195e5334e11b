//! Key rotation driven by the project: rolling master-key rotation of a cluster, data-key
//! rollover on demand, the rolling rewrite that turns a cluster's encryption on or off,
//! and CMK rotation.

use super::events::{EVENT_KEY_ROTATED, EVENT_KEY_ROTATION_STARTED};
use super::project::{QueuedChange, DEFAULT_CLUSTER};
use super::rules::verify_key;
use super::state::{CmkRotation, Settings};
use super::{Applied, ControlError, Root, ALERT_DATA_KEY_ROLLED, ALERT_MASTER_KEY_ROTATED};
use crate::clock::Clock;

impl Root {
    /// Rolling master-key rotation of `cluster`'s nodes (the default cluster when `None`).
    /// Queued while the project's clusters are shut down.
    pub fn rotate_master_key(
        &self,
        cluster: Option<&str>,
    ) -> Result<Applied<Vec<u32>>, ControlError> {
        let name = cluster.unwrap_or(DEFAULT_CLUSTER).to_string();
        self.require_settings()?.project.cluster(&name)?;
        self.submit(
            QueuedChange::RotateMasterKey { cluster: name },
            &mut |_, _| {},
        )
    }

    /// Rotates every node's master key now, with an alert per node; the new versions.
    pub(super) fn rotate_now(&self, cluster: &str) -> Result<Vec<u32>, ControlError> {
        let versions = self.cluster(Some(cluster))?.rotate_master_key()?;
        let now = self.clock.now();
        self.transact(|s| {
            for (node, version) in versions.iter().enumerate() {
                s.project.raise(
                    ALERT_MASTER_KEY_ROTATED,
                    now,
                    format!("cluster {cluster} node-{node}: master key rotated to version {version} (on demand); no record rewritten"),
                );
            }
            Ok(())
        })?;
        Ok(versions)
    }

    /// Gives `database` a new active data key on every node of `cluster` (the default
    /// cluster when `None`), with an alert; the old keys keep decrypting what they sealed.
    /// The new key's id on each node.
    pub fn roll_data_key(
        &self,
        cluster: Option<&str>,
        database: &str,
    ) -> Result<Vec<u32>, ControlError> {
        let name = cluster.unwrap_or(DEFAULT_CLUSTER);
        let ids = self
            .cluster(Some(name))?
            .each_store(|store| store.roll_data_key(database))?;
        let now = self.clock.now();
        self.transact(|s| {
            s.project.raise(
                ALERT_DATA_KEY_ROLLED,
                now,
                format!("cluster {name}: database {database:?} rolled over to new data keys {ids:?} (one per node, on demand); no record rewritten"),
            );
            Ok(())
        })?;
        Ok(ids)
    }

    /// The rolling rewrite of `cluster` into encrypted or plain stores. The settings say a
    /// rewrite is under way before the first node is touched and what the cluster is once
    /// the last one is done; nothing is written back in between.
    pub(super) fn rewrite(
        &self,
        cluster: &str,
        encrypt: bool,
        progress: &mut dyn FnMut(usize, u64),
    ) -> Result<(), ControlError> {
        self.transact(|s| {
            s.project.cluster_mut(cluster)?.rewrite_to_encrypted = Some(encrypt);
            Ok(())
        })?;
        self.cluster(Some(cluster))?.rewrite(encrypt, progress)?;
        self.transact(|s| {
            let config = s.project.cluster_mut(cluster)?;
            config.spec.encrypt = encrypt;
            config.rewrite_to_encrypted = None;
            Ok(())
        })
    }

    /// CMK rotation: points the project at `key` (id, alias or ARN), checked as
    /// `configure_encryption` checks a key, and re-wraps every encrypted node's master key
    /// under it, cluster by cluster, node by node. The old key must stay enabled until this
    /// returns; if it is interrupted, calling it again with the same key finishes it. The
    /// rotation reminder starts counting again. Refused while the clusters are shut down:
    /// re-wrapping needs the master keys, which only the current CMK unwraps.
    pub fn set_key(&self, key: &str) -> Result<Settings, ControlError> {
        let settings = self.require_settings()?;
        refuse_while_shut_down(&settings)?;
        let caller = settings.project.kms_caller();
        let kms = self.kms_for(&settings, caller)?;
        let principal = self.kms_principal(&settings, caller)?;
        let target = verify_key(kms.as_ref(), key, &principal, &settings.account)?;
        let now = self.clock.now();
        let started = self.transact(|s| {
            refuse_while_shut_down(s)?;
            match &s.cmk_rotation {
                Some(rotation) if rotation.to != target => Err(ControlError::RotationInProgress {
                    to: rotation.to.clone(),
                }),
                Some(_) => Ok(true),
                None if s.cmk == target => Ok(false),
                None => {
                    s.cmk_rotation = Some(CmkRotation {
                        from: s.cmk.clone(),
                        to: target.clone(),
                        started: now,
                    });
                    s.project
                        .record(EVENT_KEY_ROTATION_STARTED, now, None, None);
                    Ok(true)
                }
            }
        })?;
        if !started {
            return Ok(settings);
        }
        let clusters: Vec<String> = self
            .require_settings()?
            .project
            .clusters
            .keys()
            .cloned()
            .collect();
        for name in &clusters {
            self.cluster(Some(name))?.each_store(|store| {
                if store.keystore().cmk_arn() != target {
                    store.rewrap_master_key(&target)?;
                }
                Ok(())
            })?;
        }
        let now = self.clock.now();
        self.transact(|s| {
            s.cmk = target.clone();
            s.cmk_rotation = None;
            s.project.record(EVENT_KEY_ROTATED, now, None, None);
            s.project.encryption.cmk_set_at = now;
            s.project.encryption.rotation_reminded = false;
            Ok(s.clone())
        })
    }
}

fn refuse_while_shut_down(settings: &Settings) -> Result<(), ControlError> {
    match &settings.project.validity.shut_down {
        Some(reason) => Err(ControlError::ShutDown {
            cluster: settings.project.encrypted_clusters().join(", "),
            key: settings.cmk.clone(),
            reason: reason.clone(),
        }),
        None => Ok(()),
    }
}
