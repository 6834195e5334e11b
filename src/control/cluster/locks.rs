//! The locks beside a cluster's nodes, and putting a node's directory in order after a
//! crash.

use std::path::{Path, PathBuf};

use crate::control::ControlError;
use crate::durable::{recover_dir, FileLock};
use crate::store::StoreError;

/// The locks beside a cluster's nodes: whoever holds them has the nodes to itself, to
/// recover, open, replace and close.
#[derive(Debug)]
pub(crate) struct NodeLocks(pub(super) Vec<FileLock>);

impl NodeLocks {
    /// Takes the lock beside each node of `paths`: waiting for whoever holds one when
    /// `wait`, else saying who holds it.
    pub(crate) fn take(paths: &[PathBuf], wait: bool) -> Result<NodeLocks, ControlError> {
        paths
            .iter()
            .map(|p| lock_node(p, wait))
            .collect::<Result<_, _>>()
            .map(NodeLocks)
    }
}

/// Takes the lock beside node `path` (waiting for it when `wait`), or says who holds it.
fn lock_node(path: &Path, wait: bool) -> Result<FileLock, ControlError> {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let taken = if wait {
        FileLock::acquire(&lock_path).map(Some)
    } else {
        FileLock::try_acquire(&lock_path)
    };
    match taken {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(StoreError::InUse {
            path: path.to_path_buf(),
            holder: std::fs::read_to_string(path.join(crate::store::HOLDER_FILE))
                .unwrap_or_else(|_| "another process".into()),
        }
        .into()),
        Err(e) => Err(io_error(&lock_path, e)),
    }
}

/// Puts a node in order after a crash during its rewrite or restore.
pub(crate) fn recover_node(path: &Path) -> Result<(), ControlError> {
    recover_dir(path).map(|_| ()).map_err(|e| io_error(path, e))
}

pub(super) fn io_error(path: &Path, e: std::io::Error) -> ControlError {
    ControlError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
