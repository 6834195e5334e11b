//! Files and directories that survive a crash mid-change.
//!
//! Owns three primitives: replace a small file atomically (temporary file, fsync, rename,
//! fsync of the directory), owner-only; the directory fsync that makes a rename last; and
//! [`DirReplacement`], which replaces a whole directory (a node's store) so that a crash at
//! any point leaves the old directory or the new one, put back in order by [`recover_dir`].
//! A crash leaves the old contents or the new ones, never a mix.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::crash::{reach, CrashPoint};

/// A lock on a file (created owner-only if absent), held until dropped: how processes
/// sharing a root take turns at a read-change-write of its state.
#[derive(Debug)]
pub struct FileLock(File);

impl FileLock {
    /// Waits for the lock on `path`.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let file = Self::open(path)?;
        file.lock()?;
        Ok(FileLock(file))
    }

    /// Waits for a shared hold on `path`: any number of shared holders at once, none
    /// while someone holds it exclusively.
    pub fn acquire_shared(path: &Path) -> io::Result<Self> {
        let file = Self::open(path)?;
        file.lock_shared()?;
        Ok(FileLock(file))
    }

    /// The lock on `path` if no one holds it, else `None`.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// What changes whenever a file is replaced (as [`write_atomic`] replaces it, renaming a
/// new file in): its inode, size, and modification and change times. Comparing stamps
/// tells a process, for the price of one `stat`, whether another one changed the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl FileStamp {
    /// The stamp of the file at `path`; `None` when there is none.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
        })
    }
}

/// Replaces the file at `path` with `bytes`, atomically and durably, owner-only. The
/// temporary file's name is unique to the call, so concurrent writers never share one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    let nonce: u64 = rand::random();
    tmp_name.push(format!(".{}.{nonce:016x}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    reach(CrashPoint::FileWrite)?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let renamed = written
        .and_then(|()| Ok(reach(CrashPoint::FileRename)?))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = renamed {
        // A crashed process leaves its temporary file behind; a live one cleans up.
        if !crate::crash::has_crashed() {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    sync_dir(parent_of(path))
}

/// Removes the file at `path` durably; nothing to do when it is not there.
pub fn remove_file(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    reach(CrashPoint::FileRemove)?;
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    sync_dir(parent_of(path))
}

/// Renames the directory `from` to `to`, durably.
pub fn rename_dir(from: &Path, to: &Path) -> io::Result<()> {
    reach(CrashPoint::DirRename)?;
    fs::rename(from, to)?;
    sync_dir(parent_of(to))
}

/// Creates the directory at `path` (and its missing parents), durably.
pub fn create_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    reach(CrashPoint::DirCreate)?;
    fs::create_dir_all(path)?;
    sync_dir(parent_of(path))
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A directory replaced crash-safely: the new contents are built in a staging directory
/// beside the target; once complete, the staging directory is renamed *ready*; then the
/// target moves *aside*, the ready one takes its place, and the old one is removed. Every
/// rename is made durable by an fsync of the parent. A crash before *ready* leaves the old
/// directory (the staging one is removed at recovery); from *ready* on, recovery rolls the
/// replacement forward.
///
/// ```text
/// PARENT/.NAME.staging-TAG   being built; removed by recovery
/// PARENT/.NAME.ready-TAG     complete; recovery moves it to PARENT/NAME
/// PARENT/.NAME.aside-TAG     the replaced directory; removed once NAME is the new one
/// ```
#[derive(Debug)]
pub struct DirReplacement {
    target: PathBuf,
    staging: PathBuf,
    ready: PathBuf,
    aside: PathBuf,
}

const STAGING: &str = "staging";
const READY: &str = "ready";
const ASIDE: &str = "aside";

impl DirReplacement {
    /// A replacement of `target`, its siblings named with `tag` (letters, digits, `-`).
    pub fn new(target: &Path, tag: &str) -> Self {
        let sibling = |state: &str| {
            let mut name = OsString::from(".");
            name.push(target.file_name().unwrap_or_default());
            name.push(format!(".{state}-{tag}"));
            target.with_file_name(name)
        };
        DirReplacement {
            target: target.to_path_buf(),
            staging: sibling(STAGING),
            ready: sibling(READY),
            aside: sibling(ASIDE),
        }
    }

    /// Where the new contents are built.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Starts over: an earlier attempt's staging directory is removed.
    pub fn begin(&self) -> io::Result<()> {
        remove_dir_if_present(&self.staging)?;
        reach(CrashPoint::DirCreate)?;
        fs::create_dir_all(&self.staging)
    }

    /// Gives up: the staging and ready directories are removed, the target is untouched.
    pub fn abandon(&self) -> io::Result<()> {
        remove_dir_if_present(&self.staging)?;
        remove_dir_if_present(&self.ready)
    }

    /// The staging directory, complete, takes the target's place.
    pub fn commit(&self) -> io::Result<()> {
        self.mark_ready()?;
        self.swap_in()
    }

    /// Marks the staging directory complete (*ready*), leaving the target as it is: for a
    /// caller that replaces several directories as one, and swaps only once all are ready.
    pub fn mark_ready(&self) -> io::Result<()> {
        sync_dir(&self.staging)?;
        remove_dir_if_present(&self.ready)?;
        rename_dir(&self.staging, &self.ready)
    }

    /// Moves the ready directory into the target's place; nothing to do when it is not
    /// there (already swapped in).
    pub fn swap_in(&self) -> io::Result<()> {
        if !self.ready.exists() {
            return Ok(());
        }
        move_in(&self.target, &self.ready, &self.aside)
    }
}

/// The ready directory moves in; the one it replaces goes aside first and is removed last.
fn move_in(target: &Path, ready: &Path, aside: &Path) -> io::Result<()> {
    remove_dir_if_present(aside)?;
    if target.exists() {
        rename_dir(target, aside)?;
    }
    rename_dir(ready, target)?;
    remove_dir_if_present(aside)
}

/// Puts `target` in order after a crash during any [`DirReplacement`] of it: a ready
/// replacement moves in, unfinished staging directories and replaced ones are removed.
/// Returns whether a replacement was rolled forward.
pub fn recover_dir(target: &Path) -> io::Result<bool> {
    let Some(name) = target.file_name() else {
        return Ok(false);
    };
    let parent = parent_of(target);
    let prefix = format!(".{}.", name.to_string_lossy());
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let (mut ready, mut leftovers) = (None, Vec::new());
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(state) = file.strip_prefix(&prefix) else {
            continue;
        };
        if state.starts_with(READY) {
            ready = Some(entry.path());
        } else if state.starts_with(STAGING) || state.starts_with(ASIDE) {
            leftovers.push(entry.path());
        }
    }
    let rolled = match &ready {
        Some(ready) => {
            let aside = target.with_file_name(format!("{prefix}{ASIDE}-recovered"));
            move_in(target, ready, &aside)?;
            true
        }
        None => false,
    };
    for leftover in leftovers {
        remove_dir_if_present(&leftover)?;
    }
    Ok(rolled)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Removes the directory at `path` and what it holds; nothing to do when it is not there.
pub fn remove_dir_if_present(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    reach(CrashPoint::DirRemove)?;
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_contents_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    fn dir_with(dir: &Path, marker: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("CURRENT"), marker).unwrap();
    }

    fn marker(dir: &Path) -> String {
        fs::read_to_string(dir.join("CURRENT")).unwrap()
    }

    #[test]
    fn a_replacement_swaps_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("node-0");
        dir_with(&target, "old");
        let replacement = DirReplacement::new(&target, "t1");
        replacement.begin().unwrap();
        fs::write(replacement.staging().join("CURRENT"), "new").unwrap();
        replacement.commit().unwrap();
        assert_eq!(marker(&target), "new");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no sibling left"
        );
    }

    #[test]
    fn a_replacement_that_died_is_rolled_forward_or_back() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("node-0");
        let r = DirReplacement::new(&target, "t2");
        // Died after moving the old directory aside, before moving the new one in: roll
        // forward.
        dir_with(&r.aside, "old");
        dir_with(&r.ready, "new");
        assert!(recover_dir(&target).unwrap());
        assert_eq!(marker(&target), "new");
        assert!(!r.aside.exists() && !r.ready.exists());
        // Died while the new one was still being built: roll back (the old one stays).
        dir_with(&r.staging, "incomplete");
        assert!(!recover_dir(&target).unwrap());
        assert_eq!(marker(&target), "new");
        assert!(!r.staging.exists());
        // Died once the new one was complete, before the old one moved aside: forward.
        dir_with(&r.ready, "newer");
        assert!(recover_dir(&target).unwrap());
        assert_eq!(marker(&target), "newer");
        // Died after both renames, before removing the old one: just remove it.
        dir_with(&r.aside, "old");
        assert!(!recover_dir(&target).unwrap());
        assert_eq!(marker(&target), "newer");
        assert!(!r.aside.exists());
    }
}
