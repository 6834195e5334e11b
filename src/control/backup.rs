//! Cloud Backups: snapshots of encrypted clusters under the CMK current when they were
//! taken, retention, which snapshots and stores depend on a CMK, and restore.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::events::EVENT_SNAPSHOT_SUCCESSFUL;
use super::init::InitOptions;
use super::project::{DEFAULT_CLUSTER, DEFAULT_NODES};
use super::state::Retention;
use super::state::{read_json, write_json};
use super::{ControlError, Root};
use crate::clock::{days, Clock, Timestamp};
use crate::durable::{self, DirReplacement};
use crate::kms::{Kms, LocalKmsClient};
use crate::store::{
    check_snapshot_key, list_snapshots, snapshot_info, stage_restore, verify_snapshot,
    RestoreTarget, SnapshotError, SnapshotInfo, SnapshotListing, SnapshotStorage, StoreOptions,
};

/// Who depends on a CMK, and so whether it can be deleted without losing data.
#[derive(Clone, Debug, Serialize)]
pub struct KeyUsage {
    /// The key's ARN.
    pub key_arn: String,
    /// Snapshots encrypted under the key: deleting it makes them unrestorable.
    pub snapshots: Vec<SnapshotInfo>,
    /// Snapshot files whose header cannot be read: which key they name is unknown, and
    /// they cannot be restored under any.
    pub damaged_snapshots: Vec<String>,
    /// Node stores whose master key the key wraps.
    pub stores: Vec<String>,
    /// A CMK rotation that still needs the key.
    pub rotation_in_progress: bool,
    /// True when nothing depends on the key.
    pub safe_to_delete: bool,
}

impl Root {
    /// Takes a snapshot of `cluster` (the default when `None`), encrypted under the CMK
    /// current now. Snapshots are Cloud Backups of encrypted clusters.
    pub fn create_snapshot(
        &self,
        cluster: Option<&str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        let cluster = self.cluster(cluster)?;
        // Held from reading where snapshots live to committing this one there: a change of
        // storage waits for it (see `set_snapshot_storage`).
        let _creating = self.lock_snapshot_creates(false)?;
        let storage = self.snapshot_storage()?;
        // One node's checkpoint is the cluster's: every node holds the same records.
        let taken =
            match cluster.first_store(|store| store.create_snapshot(storage.as_ref(), progress))? {
                Some(taken) => taken?,
                None => {
                    return Err(ControlError::NotEncrypted {
                        cluster: cluster.name().to_string(),
                    })
                }
            };
        self.transact(|s| {
            s.project.record(
                EVENT_SNAPSHOT_SUCCESSFUL,
                taken.created,
                Some(cluster.name()),
                None,
            );
            Ok(())
        })?;
        Ok(taken)
    }

    /// Every snapshot, oldest first, and every damaged snapshot file. What interrupted
    /// creates left behind is removed first.
    pub fn snapshots(&self) -> Result<SnapshotListing, ControlError> {
        let storage = self.snapshot_storage()?;
        storage
            .remove_abandoned()
            .map_err(|source| SnapshotError::Io {
                what: "cannot remove what interrupted snapshot creates left".into(),
                source,
            })?;
        Ok(list_snapshots(storage.as_ref())?)
    }

    /// Deletes snapshot `id`, damaged or not.
    pub fn delete_snapshot(&self, id: &str) -> Result<(), ControlError> {
        let storage = self.snapshot_storage()?;
        storage.delete(id).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput => {
                SnapshotError::NotFound { id: id.to_string() }.into()
            }
            _ => SnapshotError::Io {
                what: format!("cannot delete snapshot {id}"),
                source,
            }
            .into(),
        })
    }

    /// Decrypts and checks every byte of a snapshot without restoring it.
    pub fn verify_snapshot(&self, id: &str) -> Result<SnapshotInfo, ControlError> {
        self.verify_snapshot_with_progress(id, &mut |_| {})
    }

    /// [`Root::verify_snapshot`], telling `progress` the bytes read.
    pub fn verify_snapshot_with_progress(
        &self,
        id: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        Ok(verify_snapshot(
            self.snapshot_storage()?.as_ref(),
            id,
            &*self.kms()?,
            progress,
        )?)
    }

    /// Saves `retention` as the root's policy and applies it now. A policy that keeps no
    /// snapshot at all (it would delete every one at every tick) is refused unless
    /// `allow_keeping_none`.
    pub fn set_retention(
        &self,
        retention: Retention,
        allow_keeping_none: bool,
    ) -> Result<Vec<String>, ControlError> {
        if retention.keeps_nothing() && !allow_keeping_none {
            return Err(ControlError::RetentionKeepsNothing);
        }
        self.transact(|s| {
            s.snapshot_retention = retention;
            Ok(())
        })?;
        self.apply_retention(retention)
    }

    /// Deletes the snapshots `retention` does not keep; returns their ids.
    pub fn apply_retention(&self, retention: Retention) -> Result<Vec<String>, ControlError> {
        let now = self.clock.now();
        let all = self.snapshots()?.snapshots;
        let newest_first: Vec<&SnapshotInfo> = all.iter().rev().collect();
        let mut deleted = Vec::new();
        for (rank, snapshot) in newest_first.into_iter().enumerate() {
            let too_many = retention.keep.is_some_and(|keep| rank >= keep);
            let too_old = retention
                .max_age_days
                .is_some_and(|d| now.since(snapshot.created) > days(d));
            if too_many || too_old {
                self.delete_snapshot(&snapshot.id)?;
                deleted.push(snapshot.id.clone());
            }
        }
        Ok(deleted)
    }

    /// Which snapshots and node stores depend on `key` (id, alias or ARN).
    pub fn key_usage(&self, key: &str) -> Result<KeyUsage, ControlError> {
        let arn = self.kms()?.describe_key(key)?.arn;
        let listing = self.snapshots()?;
        let snapshots: Vec<SnapshotInfo> = listing
            .snapshots
            .into_iter()
            .filter(|s| s.cmk_arn == arn)
            .collect();
        let damaged_snapshots = listing.damaged.into_iter().map(|d| d.id).collect();
        let settings = self.settings()?;
        let mut stores = Vec::new();
        if let Some(s) = settings.as_ref().filter(|s| s.cmk == arn) {
            for name in s.project.encrypted_clusters() {
                let config = s.project.cluster(&name)?;
                for path in self.node_paths(&name, config.spec.nodes) {
                    stores.push(path.display().to_string());
                }
            }
        }
        let rotation_in_progress = settings
            .and_then(|s| s.cmk_rotation)
            .is_some_and(|r| r.from == arn || r.to == arn);
        let safe_to_delete = snapshots.is_empty() && stores.is_empty() && !rotation_in_progress;
        Ok(KeyUsage {
            key_arn: arn,
            snapshots,
            damaged_snapshots,
            stores,
            rotation_in_progress,
            safe_to_delete,
        })
    }

    /// ScheduleKeyDeletion, refused while snapshots or stores depend on the key unless
    /// `force`: deleting it would make them unreadable for good.
    pub fn schedule_key_deletion(
        &self,
        client: &LocalKmsClient,
        key: &str,
        window_days: Option<u32>,
        force: bool,
    ) -> Result<Timestamp, ControlError> {
        if !force {
            let usage = self.key_usage(key)?;
            if !usage.safe_to_delete {
                return Err(ControlError::KeyInUse {
                    key: usage.key_arn,
                    snapshots: usage.snapshots.into_iter().map(|s| s.id).collect(),
                    stores: usage.stores,
                });
            }
        }
        Ok(client.schedule_key_deletion(key, window_days)?)
    }

    /// Restores snapshot `id` into every node of `cluster` (the default when `None`) of
    /// this root, or of the root at `target`: another project, which must be in the
    /// snapshot's region, or a new one (an uninitialised directory), initialised like this
    /// one. The snapshot's CMK must be enabled; each restored node gets a new master key
    /// under the target's CMK.
    pub fn restore_snapshot(
        &self,
        id: &str,
        target: Option<&Path>,
        cluster: Option<&str>,
    ) -> Result<SnapshotInfo, ControlError> {
        self.restore_snapshot_with_progress(id, target, cluster, &mut |_| {})
    }

    /// [`Root::restore_snapshot`], telling `progress` the bytes read: a snapshot in S3 is
    /// downloaded once, then read once per node from the root's directory.
    pub fn restore_snapshot_with_progress(
        &self,
        id: &str,
        target: Option<&Path>,
        cluster: Option<&str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        let snapshot = self.restorable(id)?;
        let other;
        let target_root = match target {
            Some(dir) if fs::canonicalize(dir).ok() != fs::canonicalize(&self.dir).ok() => {
                other = Root::open_with_clock(dir, self.clock.base().clone())?;
                if other.settings()?.is_none() {
                    // A new project, like this one: same account, region, KMS and policies.
                    let mine = self.require_settings()?;
                    let role = mine.project.kms_role().map(|r| {
                        (
                            r.iam_assumed_role_arn.clone(),
                            Some(r.atlas_assumed_role_external_id.clone()),
                        )
                    });
                    let shared_cmk = (!mine.kms.is_local()).then_some(mine.cmk.clone());
                    let nodes = mine
                        .project
                        .cluster(DEFAULT_CLUSTER)
                        .map_or(DEFAULT_NODES, |c| c.spec.nodes);
                    other.init(&InitOptions {
                        account: mine.account,
                        region: mine.region,
                        rotation: mine.rotation,
                        kms: mine.kms,
                        cmk: shared_cmk,
                        role,
                        nodes,
                        snapshots: mine.snapshots,
                    })?;
                }
                &other
            }
            _ => self,
        };
        self.restore_checked(id, snapshot, target_root, cluster, progress)
    }

    /// Restores snapshot `id` into every node of `cluster` of `target`, a project of this
    /// root's organization ([`Root::member_project`], or this root): as
    /// [`Root::restore_snapshot`] with a target already open.
    pub fn restore_snapshot_into(
        &self,
        id: &str,
        target: &Root,
        cluster: &str,
    ) -> Result<SnapshotInfo, ControlError> {
        let snapshot = self.restorable(id)?;
        self.restore_checked(id, snapshot, target, Some(cluster), &mut |_| {})
    }

    /// Snapshot `id`, once its key is known to open it.
    fn restorable(&self, id: &str) -> Result<Restorable, ControlError> {
        let storage = self.snapshot_storage()?;
        let info = snapshot_info(storage.as_ref(), id)?;
        let kms = self.kms()?;
        check_snapshot_key(storage.as_ref(), id, kms.as_ref())?;
        Ok(Restorable { storage, info, kms })
    }

    fn restore_checked(
        &self,
        id: &str,
        Restorable {
            storage,
            info,
            kms: snapshot_kms,
        }: Restorable,
        target_root: &Root,
        cluster: Option<&str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, ControlError> {
        let settings = target_root.require_settings()?;
        let config = settings
            .project
            .cluster(cluster.unwrap_or(DEFAULT_CLUSTER))?;
        if !config.spec.encrypt {
            return Err(ControlError::NotEncrypted {
                cluster: config.spec.name.clone(),
            });
        }
        if let Some(down) = &settings.project.validity.shut_down {
            return Err(ControlError::ShutDown {
                cluster: config.spec.name.clone(),
                key: settings.cmk.clone(),
                reason: down.clone(),
            });
        }
        // Every node is held open here for the whole restore: a node open in another
        // process refuses it now, and none can be opened elsewhere until it is done.
        let name = config.spec.name.clone();
        let cluster = target_root.cluster(Some(&name))?;
        let target_kms = target_root.kms_for(&settings, settings.project.kms_caller())?;
        let base = target_root.store_options(&settings);
        if info.cmk_region != settings.region {
            return Err(SnapshotError::WrongRegion {
                id: id.to_string(),
                snapshot: info.cmk_region.clone(),
                target: settings.region.clone(),
            }
            .into());
        }
        // Only now that the target is known to take it: a download can be long.
        let mut read = 0;
        let (storage, _fetched) =
            self.fetch_for_restore(&self.require_settings()?, storage, id, &mut |n| {
                read = n;
                progress(n)
            })?;
        let storage = storage.as_ref();
        let journal = RestoreJournal::path(&target_root.clusters_dir().join(&name));
        let mut record = RestoreJournal {
            snapshot: id.to_string(),
            swapping: false,
        };
        write_json(&journal, &record)?;
        let mut staged = Vec::new();
        let mut read_before = read;
        for (node, path) in cluster.node_paths().iter().enumerate() {
            let target = RestoreTarget {
                path,
                kms: target_kms.clone(),
                cmk: &settings.cmk,
                region: &settings.region,
                options: StoreOptions {
                    cluster: name.clone(),
                    node: format!("node-{node}"),
                    ..base.clone()
                },
            };
            let mut read = 0;
            let staging = stage_restore(storage, id, snapshot_kms.clone(), &target, &mut |n| {
                read = n;
                progress(read_before + n)
            });
            read_before += read;
            match staging {
                Ok(replacement) => staged.push(replacement),
                Err(e) => {
                    // Nothing was swapped: every node stays as it was.
                    for replacement in &staged {
                        let _ = replacement.abandon();
                    }
                    let _ = durable::remove_file(&journal);
                    return Err(e.into());
                }
            }
        }
        // Every node is ready: from here on the restore is rolled forward, whatever
        // happens, so that the replicas never end up from different points in time.
        record.swapping = true;
        write_json(&journal, &record)?;
        cluster.replace_nodes(|index, _| match staged.get(index) {
            Some(replacement) => replacement.swap_in(),
            None => Ok(()),
        })?;
        remove_journal(&journal)?;
        // Every chunk decrypted: what the header said is now known.
        Ok(SnapshotInfo {
            authenticated: true,
            ..info
        })
    }
}

/// A snapshot whose key opens it, where it is stored, and the KMS that opens it.
struct Restorable {
    storage: Arc<dyn SnapshotStorage>,
    info: SnapshotInfo,
    kms: Arc<dyn Kms>,
}

/// A restore under way across a cluster's nodes, written before the first node is
/// staged: `swapping` once every node's restored store is ready.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RestoreJournal {
    snapshot: String,
    swapping: bool,
}

impl RestoreJournal {
    fn path(cluster_dir: &Path) -> PathBuf {
        cluster_dir.join("restore.json")
    }
}

/// Finishes or undoes a restore of the cluster at `cluster_dir` that a crash interrupted:
/// rolled forward (every ready node swapped in) once all nodes were ready, else rolled
/// back (every staged node removed). Leftovers never block a later restore.
pub(super) fn recover_restore(cluster_dir: &Path, nodes: &[PathBuf]) -> Result<(), ControlError> {
    let journal = RestoreJournal::path(cluster_dir);
    let Some(record) = read_json::<RestoreJournal>(&journal)? else {
        return Ok(());
    };
    for path in nodes {
        let replacement = DirReplacement::new(path, &record.snapshot);
        let done = if record.swapping {
            replacement.swap_in()
        } else {
            replacement.abandon()
        };
        done.map_err(|source| ControlError::Io {
            path: path.clone(),
            source,
        })?;
    }
    remove_journal(&journal)
}

fn remove_journal(journal: &Path) -> Result<(), ControlError> {
    let io = |source| ControlError::Io {
        path: journal.to_path_buf(),
        source,
    };
    durable::remove_file(journal).map_err(io)
}
