//! The shutdown gate: why the project's encrypted clusters are shut down, as the root's
//! settings file says now.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use super::super::state::{read_settings, Settings};
use crate::durable::FileStamp;

/// Why the project's encrypted clusters are shut down, shared by a root and the clusters
/// it opened, so a failed check closes clusters already open. It watches the root's
/// settings file, so a shutdown (or recovery) recorded by another process is seen before
/// the next operation, for the price of one `stat`.
#[derive(Debug, Default)]
pub struct Gate {
    reason: RwLock<Option<ShutDown>>,
    /// The settings file and its stamp when the gate last followed it.
    watched: Option<(PathBuf, Mutex<Option<FileStamp>>)>,
}

/// The key and the reason of a shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutDown {
    /// The project's CMK.
    pub key: String,
    /// What the validity check found.
    pub reason: String,
}

impl Gate {
    /// A gate that follows the shutdown recorded in the settings file at `settings`.
    pub(crate) fn watching(settings: PathBuf) -> Self {
        Gate {
            reason: RwLock::new(None),
            watched: Some((settings, Mutex::new(None))),
        }
    }

    pub(crate) fn set(&self, state: Option<ShutDown>) {
        *self.reason.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Follows `settings`, as this process just read or wrote them.
    pub(crate) fn sync(&self, settings: &Settings) {
        self.set(
            settings
                .project
                .validity
                .shut_down
                .as_ref()
                .map(|reason| ShutDown {
                    key: settings.cmk.clone(),
                    reason: reason.clone(),
                }),
        );
        if let Some((path, seen)) = &self.watched {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = FileStamp::of(path);
        }
    }

    /// The current shutdown, if any, as the settings file says now: read again only when
    /// another process has replaced it. An unreadable file leaves the last known state.
    pub fn shut_down(&self) -> Option<ShutDown> {
        if let Some((path, seen)) = &self.watched {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = FileStamp::of(path);
            if now != *seen {
                if let Ok(Some(settings)) = read_settings(path) {
                    drop(seen);
                    self.sync(&settings);
                } else {
                    *seen = now;
                }
            }
        }
        self.reason
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
