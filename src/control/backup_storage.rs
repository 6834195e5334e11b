//! Where a root's snapshots live (its own directory, or an S3 bucket that any machine can
//! reach), and moving them when that changes.

use std::path::PathBuf;
use std::sync::Arc;

use super::state::{S3Settings, Settings, SnapshotSettings};
use super::{ControlError, Root};
use crate::durable::FileLock;
use crate::store::{snapshot_header, LocalDirStorage, SnapshotStorage, CREATES_LOCK};

impl Root {
    /// Where this root's snapshot files live, as its settings say (before `init`, its
    /// own directory).
    pub fn snapshot_storage(&self) -> Result<Arc<dyn SnapshotStorage>, ControlError> {
        match self.settings()? {
            Some(settings) => self.storage_for(&settings.snapshots, &settings.region),
            None => self.storage_for(&SnapshotSettings::Local, ""),
        }
    }

    /// The storage `snapshots` names, in `region`; an S3 client is made once per process
    /// and location.
    pub(super) fn storage_for(
        &self,
        snapshots: &SnapshotSettings,
        region: &str,
    ) -> Result<Arc<dyn SnapshotStorage>, ControlError> {
        let local_dir = self.dir.join("snapshots");
        let local = || -> Result<Arc<dyn SnapshotStorage>, ControlError> {
            let storage = LocalDirStorage::new(&local_dir).map_err(|source| ControlError::Io {
                path: local_dir.clone(),
                source,
            })?;
            Ok(Arc::new(storage))
        };
        match snapshots {
            SnapshotSettings::Local => local(),
            SnapshotSettings::S3(s3) => {
                let mut cached = self.s3.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((settings, storage)) = cached.as_ref() {
                    if settings == snapshots {
                        return Ok(storage.clone());
                    }
                }
                let storage = connect_s3(s3, region, &local_dir)?;
                *cached = Some((snapshots.clone(), storage.clone()));
                Ok(storage)
            }
        }
    }

    /// Keeps this root's snapshots in `snapshots` from now on, after copying every
    /// snapshot the current storage holds into it (each checked to arrive whole in size,
    /// then deleted from the old storage). `progress` hears each snapshot id and the
    /// bytes copied of it. Returns the ids moved.
    pub fn set_snapshot_storage(
        &self,
        snapshots: SnapshotSettings,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<Vec<String>, ControlError> {
        let settings = self.require_settings()?;
        let from = self.storage_for(&settings.snapshots, &settings.region)?;
        let to = self.storage_for(&snapshots, &settings.region)?;
        check_reachable(to.as_ref())?;
        let mut moved = Vec::new();
        let unmoved = |moved: &[String]| -> Result<Vec<String>, ControlError> {
            if settings.snapshots == snapshots {
                return Ok(Vec::new());
            }
            let all = from.list().map_err(snapshot_io("cannot list snapshots"))?;
            Ok(all.into_iter().filter(|id| !moved.contains(id)).collect())
        };
        loop {
            for id in unmoved(&moved)? {
                copy_snapshot(from.as_ref(), to.as_ref(), &id, progress)?;
                moved.push(id);
            }
            // Every create holds this shared from reading the settings to committing: with
            // it held here, none is writing to the old storage, and the next ones read
            // the new settings.
            let _no_create_running = self.lock_snapshot_creates(true)?;
            if !unmoved(&moved)?.is_empty() {
                continue;
            }
            self.transact(|s: &mut Settings| {
                if s.snapshots != settings.snapshots {
                    return Err(ControlError::ConcurrentChange {
                        what: "where snapshots live".into(),
                    });
                }
                s.snapshots = snapshots.clone();
                Ok(())
            })?;
            break;
        }
        for id in &moved {
            from.delete(id).map_err(snapshot_io(format!(
                "cannot delete snapshot {id} after moving it"
            )))?;
        }
        Ok(moved)
    }

    /// The lock every snapshot create holds shared, exclusive when `exclusive`.
    pub(super) fn lock_snapshot_creates(&self, exclusive: bool) -> Result<FileLock, ControlError> {
        let dir = self.dir.join("snapshots");
        let path = dir.join(CREATES_LOCK);
        let io = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        if exclusive {
            FileLock::acquire(&path).map_err(io)
        } else {
            FileLock::acquire_shared(&path).map_err(io)
        }
    }
}

/// A snapshot fetched from a bucket into the root's directory for a restore, which
/// reads it once per node; removed when dropped.
pub(super) struct Fetched {
    dir: PathBuf,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Root {
    /// Where a restore reads snapshot `id` from: `storage` itself when it is the root's
    /// directory; else a copy fetched once (streamed to disk, `progress` hearing the
    /// bytes) so that a cluster of N nodes downloads it once, not N times.
    pub(super) fn fetch_for_restore(
        &self,
        settings: &Settings,
        storage: Arc<dyn SnapshotStorage>,
        id: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Arc<dyn SnapshotStorage>, Option<Fetched>), ControlError> {
        if settings.snapshots == SnapshotSettings::Local {
            return Ok((storage, None));
        }
        let dir = self.dir.join("snapshots").join(format!(".fetched-{id}"));
        let io = |source| ControlError::Io {
            path: dir.clone(),
            source,
        };
        // What a killed restore of the same snapshot left.
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let fetched = Fetched { dir: dir.clone() };
        let local = LocalDirStorage::new(&dir).map_err(io)?;
        copy_snapshot(storage.as_ref(), &local, id, &mut |_, n| progress(n))?;
        Ok((Arc::new(local), Some(fetched)))
    }
}

/// Checks that a storage answers (an S3 bucket exists and may be listed) before anything
/// is written to it.
pub(super) fn check_reachable(storage: &dyn SnapshotStorage) -> Result<(), ControlError> {
    storage
        .list()
        .map(drop)
        .map_err(snapshot_io("the snapshot storage cannot be reached"))
}

fn snapshot_io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlError {
    let what = what.into();
    move |source| crate::store::SnapshotError::Io { what, source }.into()
}

/// Copies snapshot `id` byte for byte, committing it only once it arrived whole.
fn copy_snapshot(
    from: &dyn SnapshotStorage,
    to: &dyn SnapshotStorage,
    id: &str,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<(), ControlError> {
    // The header's own claims are enough here: the bytes are copied, not opened.
    let header = snapshot_header(from, id)?;
    let size = from
        .size(id)
        .map_err(snapshot_io(format!("cannot stat snapshot {id}")))?;
    let mut input = from
        .open(id)
        .map_err(snapshot_io(format!("cannot open snapshot {id}")))?;
    let mut out = to.create(id, &header).map_err(snapshot_io(format!(
        "cannot create snapshot {id} in the new storage"
    )))?;
    let mut done = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut input, &mut buf)
            .map_err(snapshot_io(format!("cannot read snapshot {id}")))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut out, buf.get(..n).unwrap_or_default())
            .map_err(snapshot_io(format!("cannot write snapshot {id}")))?;
        done += n as u64;
        progress(id, done);
    }
    if done != size {
        return Err(crate::store::SnapshotError::Corrupt {
            id: id.to_string(),
            reason: format!("{done} bytes were read of its {size}"),
        }
        .into());
    }
    out.commit().map_err(snapshot_io(format!(
        "cannot commit snapshot {id} in the new storage"
    )))?;
    Ok(())
}

#[cfg(feature = "aws")]
fn connect_s3(
    s3: &S3Settings,
    region: &str,
    local_dir: &std::path::Path,
) -> Result<Arc<dyn SnapshotStorage>, ControlError> {
    use crate::aws::AwsConfig;
    use crate::store::S3Storage;
    let mut config = AwsConfig::new(region);
    config.endpoint = s3.endpoint.clone();
    // A part is 8 MiB or more: far more than a KMS call's 5 seconds on a slow link.
    config.attempt_timeout = std::time::Duration::from_secs(120);
    let storage = S3Storage::connect(s3.location.clone(), config, local_dir).map_err(|source| {
        ControlError::Io {
            path: local_dir.to_path_buf(),
            source,
        }
    })?;
    Ok(Arc::new(storage))
}

#[cfg(not(feature = "aws"))]
fn connect_s3(
    _: &S3Settings,
    _: &str,
    _: &std::path::Path,
) -> Result<Arc<dyn SnapshotStorage>, ControlError> {
    Err(ControlError::AwsNotBuilt)
}
