//! Where snapshot files live: the [`SnapshotStorage`] trait and its local directory.
//!
//! A snapshot becomes visible only once written whole; what an interrupted create left
//! behind is removed later, never while a create is still running in any process.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::durable::{sync_dir, FileLock};

use super::CHUNK_SIZE;

const SUFFIX: &str = ".atrsnap";
const PARTIAL_SUFFIX: &str = ".partial";
/// Held shared by every create in progress, exclusively by the cleanup of their leftovers.
const CREATES_LOCK: &str = ".creates.lock";

/// Where snapshot files live. A local directory now; an object store later, without
/// touching the file format.
pub trait SnapshotStorage: Send + Sync + fmt::Debug {
    /// Starts a new snapshot file; it becomes visible only when committed.
    fn create(&self, id: &str) -> io::Result<Box<dyn PendingSnapshot>>;
    /// Opens a committed snapshot for reading.
    fn open(&self, id: &str) -> io::Result<Box<dyn Read + Send>>;
    /// The ids of every committed snapshot.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The size of a committed snapshot in bytes.
    fn size(&self, id: &str) -> io::Result<u64>;
    /// Deletes a committed snapshot (`NotFound` when there is none).
    fn delete(&self, id: &str) -> io::Result<()>;
    /// Removes what interrupted creates left behind, unless a create is running now;
    /// returns how many leftovers it removed.
    fn remove_abandoned(&self) -> io::Result<usize>;
}

/// A snapshot file being written.
pub trait PendingSnapshot: Write + Send {
    /// Makes the file durable and visible under its id.
    fn commit(self: Box<Self>) -> io::Result<()>;
}

/// Whether `id` is a snapshot id: what [`SnapshotStorage`] accepts.
pub fn valid_snapshot_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Snapshot files in one local directory, written atomically (temporary name, fsync,
/// rename), owner-only.
#[derive(Debug, Clone)]
pub struct LocalDirStorage {
    dir: PathBuf,
}

impl LocalDirStorage {
    /// Storage in `dir`, created if absent.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(LocalDirStorage { dir })
    }

    fn path(&self, id: &str) -> io::Result<PathBuf> {
        if !valid_snapshot_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a snapshot id"),
            ));
        }
        Ok(self.dir.join(format!("{id}{SUFFIX}")))
    }
}

struct LocalPending {
    file: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    /// Keeps the cleanup of leftovers away from this file until it is committed or
    /// dropped.
    _creating: FileLock,
}

impl Write for LocalPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl PendingSnapshot for LocalPending {
    fn commit(self: Box<Self>) -> io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }
}

impl SnapshotStorage for LocalDirStorage {
    fn create(&self, id: &str) -> io::Result<Box<dyn PendingSnapshot>> {
        let path = self.path(id)?;
        let creating = FileLock::acquire_shared(&self.dir.join(CREATES_LOCK))?;
        let tmp = self.dir.join(format!(".{id}{SUFFIX}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(Box::new(LocalPending {
            file: BufWriter::with_capacity(CHUNK_SIZE, file),
            tmp,
            path,
            _creating: creating,
        }))
    }

    fn open(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.path(id)?)?))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(SUFFIX).filter(|id| valid_snapshot_id(id)) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn size(&self, id: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(id)?)?.len())
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        fs::remove_file(self.path(id)?)?;
        sync_dir(&self.dir)
    }

    fn remove_abandoned(&self) -> io::Result<usize> {
        let Some(_no_create_running) = FileLock::try_acquire(&self.dir.join(CREATES_LOCK))? else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_removed_only_when_no_create_runs() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDirStorage::new(dir.path()).unwrap();
        let mut running = storage.create("running").unwrap();
        running.write_all(b"half").unwrap();
        fs::write(dir.path().join(".dead.atrsnap.partial"), b"left by a kill").unwrap();

        assert_eq!(storage.remove_abandoned().unwrap(), 0);
        assert!(dir.path().join(".dead.atrsnap.partial").exists());

        running.commit().unwrap();
        assert_eq!(storage.remove_abandoned().unwrap(), 1);
        assert!(!dir.path().join(".dead.atrsnap.partial").exists());
        assert_eq!(storage.list().unwrap(), vec!["running".to_string()]);
    }

    #[test]
    fn ids_outside_the_alphabet_are_neither_listed_nor_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDirStorage::new(dir.path()).unwrap();
        fs::write(dir.path().join("a b.atrsnap"), b"").unwrap();
        assert!(storage.list().unwrap().is_empty());
        assert!(storage.delete("../x").is_err());
    }
}
