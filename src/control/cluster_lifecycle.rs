//! A project's clusters coming and going: a new cluster's nodes created and then recorded
//! (what a create that died first left behind never blocks the name), and a cluster
//! deleted: forgotten by the project, then its nodes removed.

use std::fs;
use std::path::Path;

use super::cluster::NodeLocks;
use super::events::EVENT_CLUSTER_DELETED;
use super::project::{ClusterConfig, ClusterSpec};
use super::state::Settings;
use super::{ControlError, Root};
use crate::clock::Clock;
use crate::durable;

impl Root {
    /// Takes the locks beside the nodes of a cluster about to be created (its directory
    /// made first, to hold them).
    pub(super) fn lock_new_cluster(&self, spec: &ClusterSpec) -> Result<NodeLocks, ControlError> {
        let dir = self.clusters_dir().join(&spec.name);
        fs::create_dir_all(&dir).map_err(|source| ControlError::Io { path: dir, source })?;
        let paths = self.node_paths(&spec.name, spec.nodes);
        NodeLocks::take(&paths, self.waits_for_clusters())
    }

    /// Creates the node stores of a new cluster; the caller holds their locks.
    pub(super) fn create_nodes(
        &self,
        settings: &Settings,
        spec: &ClusterSpec,
    ) -> Result<(), ControlError> {
        let opener = self.opener(settings)?;
        for (index, path) in self.node_paths(&spec.name, spec.nodes).iter().enumerate() {
            drop(opener.create(&spec.name, index, path, spec.encrypt)?);
        }
        Ok(())
    }

    /// Creates a new cluster's nodes, then records the cluster in the project, holding the
    /// nodes' locks throughout. What a create that died before recording its cluster left
    /// behind is removed first: it never blocks the name.
    pub(super) fn build_cluster(&self, spec: ClusterSpec) -> Result<(), ControlError> {
        let taken = |s: &Settings| {
            if s.project.clusters.contains_key(&spec.name) {
                return Err(ControlError::ClusterExists {
                    name: spec.name.clone(),
                });
            }
            Ok(())
        };
        taken(&self.require_settings()?)?;
        let _locks = self.lock_new_cluster(&spec)?;
        // Under the locks, the name is free or being created by no one: what is there is
        // a leftover of an interrupted create.
        let settings = self.require_settings()?;
        taken(&settings)?;
        self.remove_leftovers(&spec.name)?;
        self.create_nodes(&settings, &spec)?;
        self.transact(|s| {
            taken(s)?;
            s.project.clusters.insert(
                spec.name.clone(),
                ClusterConfig {
                    spec: spec.clone(),
                    rewrite_to_encrypted: None,
                },
            );
            Ok(())
        })
    }

    /// Removes the node directories (and their staging siblings) of unrecorded cluster
    /// `name`, keeping the lock files its creator holds.
    pub(super) fn remove_leftovers(&self, name: &str) -> Result<(), ControlError> {
        let dir = self.clusters_dir().join(name);
        let io = |path: &Path, source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        for entry in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let path = entry.map_err(|e| io(&dir, e))?.path();
            if path.is_dir() {
                durable::remove_dir_if_present(&path).map_err(|e| io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Deletes cluster `name`: the project forgets it (and any change queued for it), then
    /// its nodes are removed, and its snapshots unless `retain_snapshots` (kept, they
    /// restore into other clusters). Only a Project Owner may; a node another process
    /// holds is waited for or refused, as an open is.
    pub fn delete_cluster(
        &self,
        acting: &str,
        name: &str,
        retain_snapshots: bool,
    ) -> Result<(), ControlError> {
        let settings = self.require_settings()?;
        settings
            .project
            .require_owner(acting, "deleting a cluster")?;
        let nodes = settings.project.cluster(name)?.spec.nodes;
        let _locks = NodeLocks::take(&self.node_paths(name, nodes), self.waits_for_clusters())?;
        let now = self.clock.now();
        self.transact(|s| {
            s.project.cluster(name)?;
            s.project.clusters.remove(name);
            s.project
                .queue
                .retain(|change| change.cluster() != Some(name));
            s.project
                .record(EVENT_CLUSTER_DELETED, now, Some(name), Some(acting));
            Ok(())
        })?;
        // Recorded as gone: what is left on disk is what an interrupted create leaves, and
        // the next create of the name removes it if this does not finish.
        self.remove_leftovers(name)?;
        if !retain_snapshots {
            for snapshot in self.snapshots()?.snapshots {
                if snapshot.cluster == name {
                    self.delete_snapshot(&snapshot.id)?;
                }
            }
        }
        Ok(())
    }
}
