//! Where a run keeps its files: a fresh directory per run, in memory (tmpfs) where the
//! machine has one, so that a sequence costs what RocksDB and atrest do, not the disk; and
//! the input-independent start every run shares ([`Template`]): built once per process,
//! kept as bytes, written out for each run instead of being built again.

use std::path::{Path, PathBuf};

pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    /// A fresh directory named for `what`, this process, the time and a count, so that
    /// parallel runs never share one (not a random id: runs draw the same seeded bytes).
    pub(super) fn new(what: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Scratch(base.join(format!(
            "atrest-{what}-{}-{started}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory tree held in memory: every file's relative path and bytes.
pub(super) struct Template {
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>)>,
}

/// A template as it is kept for the process: built once, or why it could not be.
pub(super) type Once = std::sync::OnceLock<Result<Template, String>>;

impl Template {
    /// The tree `build` leaves in a fresh directory, built the first time `cell` is asked
    /// for it and kept there for the rest of the process.
    pub(super) fn once(
        cell: &'static Once,
        what: &str,
        build: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<&'static Template, String> {
        cell.get_or_init(|| {
            let _seeded = crate::crypto::seed_thread(super::TEMPLATE_SEED);
            let scratch = Scratch::new(what);
            build(&scratch.0)?;
            Template::capture(&scratch.0).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// The tree under `dir`, read whole.
    fn capture(dir: &Path) -> std::io::Result<Self> {
        let mut template = Template {
            dirs: Vec::new(),
            files: Vec::new(),
        };
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            template.dirs.push(relative.clone());
            for entry in std::fs::read_dir(dir.join(&relative))? {
                let entry = entry?;
                let path = relative.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    pending.push(path);
                } else {
                    template
                        .files
                        .push((path.clone(), std::fs::read(dir.join(&path))?));
                }
            }
        }
        Ok(template)
    }

    /// Writes the tree out under `dir`, owner-only as atrest keeps its roots and stores.
    pub(super) fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        for relative in &self.dirs {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.join(relative))?;
        }
        for (relative, bytes) in &self.files {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(dir.join(relative))?;
            std::io::Write::write_all(&mut file, bytes)?;
        }
        Ok(())
    }
}
