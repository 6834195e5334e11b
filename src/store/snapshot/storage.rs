//! Where snapshot files live: the [`SnapshotStorage`] trait and its local directory.
//!
//! A snapshot becomes visible only once written whole; what an interrupted create left
//! behind is removed later, never while a create is still running in any process.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::crash::{reach, CrashPoint};
use crate::durable::{sync_dir, FileLock};
use crate::format::SnapshotHeader;

use super::CHUNK_SIZE;

pub(super) const SUFFIX: &str = ".atrsnap";
const PARTIAL_SUFFIX: &str = ".partial";
/// Held shared by every create in progress, exclusively by the cleanup of their leftovers
/// (and by a change of storage); the S3 storage keeps it in its local work directory.
pub const CREATES_LOCK: &str = ".creates.lock";

/// Where snapshot files live: a local directory, or an S3 bucket; the file format is the
/// same in both.
pub trait SnapshotStorage: Send + Sync + fmt::Debug {
    /// Starts a new snapshot file whose header is `header`; it becomes visible only when
    /// committed.
    fn create(&self, id: &str, header: &SnapshotHeader) -> io::Result<Box<dyn PendingSnapshot>>;
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
    /// Where snapshot `id` is (or would be), for people: a path or a URL.
    fn location(&self, id: &str) -> String;
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

/// A bucket and a key prefix: `s3://BUCKET/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without slashes at either end; empty for the bucket's top.
    #[serde(default)]
    pub prefix: String,
}

impl S3Location {
    /// The object key of snapshot `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}{SUFFIX}", self.list_prefix())
    }

    /// What every snapshot's object key starts with: the prefix and a slash, or nothing.
    pub fn list_prefix(&self) -> String {
        match self.prefix.trim_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        match self.prefix.trim_matches('/') {
            "" => Ok(()),
            prefix => write!(f, "/{prefix}"),
        }
    }
}

/// Why an `s3://` location does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an S3 location: write s3://BUCKET or s3://BUCKET/PREFIX, the bucket 3 to 63 lowercase letters, digits, dots and hyphens")]
pub struct BadS3Location(pub String);

impl FromStr for S3Location {
    type Err = BadS3Location;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadS3Location(text.to_string());
        let rest = text.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok || prefix.starts_with('/') || prefix.contains("//") {
            return Err(bad());
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }
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
        reach(CrashPoint::FileRename)?;
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }
}

impl SnapshotStorage for LocalDirStorage {
    fn create(&self, id: &str, _: &SnapshotHeader) -> io::Result<Box<dyn PendingSnapshot>> {
        let path = self.path(id)?;
        let creating = FileLock::acquire_shared(&self.dir.join(CREATES_LOCK))?;
        let tmp = self.dir.join(format!(".{id}{SUFFIX}{PARTIAL_SUFFIX}"));
        reach(CrashPoint::FileWrite)?;
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
        let path = self.path(id)?;
        reach(CrashPoint::FileRemove)?;
        fs::remove_file(path)?;
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

    fn location(&self, id: &str) -> String {
        self.dir.join(format!("{id}{SUFFIX}")).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            snapshot_id: [1; 16],
            store_id: [2; 16],
            cluster: "Cluster0".into(),
            node: "node-0".into(),
            created_ms: 0,
            cmk_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            cmk_region: "us-east-1".into(),
            key_material: String::new(),
            wrapped_key: vec![3; 8],
            nonce_prefix: [4; 7],
            chunk_size: 1024,
        }
    }

    #[test]
    fn leftovers_are_removed_only_when_no_create_runs() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDirStorage::new(dir.path()).unwrap();
        let mut running = storage.create("running", &header()).unwrap();
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

    #[test]
    fn locations_parse_and_print_back() {
        let at: S3Location = "s3://backups-1/team/atrest/".parse().unwrap();
        assert_eq!(at.bucket, "backups-1");
        assert_eq!(at.prefix, "team/atrest");
        assert_eq!(at.to_string(), "s3://backups-1/team/atrest");
        assert_eq!(at.key("ab12"), "team/atrest/ab12.atrsnap");
        let top: S3Location = "s3://bkt".parse().unwrap();
        assert_eq!(top.key("ab12"), "ab12.atrsnap");
        assert_eq!(top.to_string(), "s3://bkt");
        for bad in [
            "bkt",
            "s3://",
            "s3://B",
            "s3://a",
            "s3://bkt//x",
            "file:///x",
        ] {
            assert!(bad.parse::<S3Location>().is_err(), "{bad}");
        }
    }
}
