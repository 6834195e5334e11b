//! The atrest root: one directory holding a project's KMS, its settings and its stores.
//!
//! Owns the layout of the root and the settings every command shares (the caller's
//! account, region and principal; the project's CMK; the emulator clock's offset), so
//! that the CLI and an embedding program open the same things the same way.
//!
//! ```text
//! ROOT/atrest.json   settings (format, account, region, principal, CMK)
//! ROOT/clock.json    emulator time: offset added to real time
//! ROOT/kms/          LocalKms state (the emulated HSM; owner-only)
//! ROOT/store/        the node's RocksDB
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{OffsetClock, SharedClock};
use crate::durable::write_atomic;
use crate::kms::{Caller, CreateKeyRequest, KmsError, LocalKms, LocalKmsClient};
use crate::store::{Store, StoreError, StoreOptions};

pub const DEFAULT_ACCOUNT: &str = "111122223333";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_CMK_ALIAS: &str = "alias/atrest-default";
const SETTINGS_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path} is not initialised: run `atrest --root {path} init` first")]
    NotInitialised { path: PathBuf },
    #[error(
        "{path} is already initialised (its store and CMK exist); use it, or choose another --root"
    )]
    AlreadyInitialised { path: PathBuf },
    #[error("{path} is unreadable: {reason}")]
    Settings { path: PathBuf, reason: String },
}

impl ControlError {
    /// The KMS error underneath, if any: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            ControlError::Kms(e) => Some(e),
            ControlError::Store(e) => e.kms_error(),
            _ => None,
        }
    }
}

/// Settings of a root, saved in `atrest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub format: u32,
    pub account: String,
    pub region: String,
    /// The IAM principal atrest calls the KMS as.
    pub principal: String,
    /// The project's CMK, as its ARN.
    pub cmk: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClockFile {
    offset_ms: u64,
}

/// An open root. Commands that only use the KMS work before `init`.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    clock: Arc<OffsetClock>,
    kms: Arc<LocalKms>,
}

impl Root {
    /// Opens the root at `dir`, creating the directory and an empty KMS if absent.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ControlError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| ControlError::Settings {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let clock_path = dir.join("clock.json");
        let offset = match read_json::<ClockFile>(&clock_path)? {
            Some(c) => Duration::from_millis(c.offset_ms),
            None => Duration::ZERO,
        };
        let clock = Arc::new(OffsetClock::new(offset));
        let kms = LocalKms::open(dir.join("kms"), clock.clone() as SharedClock)?;
        Ok(Root { dir, clock, kms })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// How far emulator time is ahead of real time.
    pub fn clock_offset(&self) -> Duration {
        self.clock.offset()
    }

    /// Moves emulator time forward by `by`, for this root and every later command.
    pub fn advance_clock(&mut self, by: Duration) -> Result<(), ControlError> {
        let offset = self.clock.offset().saturating_add(by);
        let file = ClockFile {
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
        };
        write_json(&self.dir.join("clock.json"), &file)?;
        self.clock = Arc::new(OffsetClock::new(offset));
        self.kms = LocalKms::open(self.dir.join("kms"), self.clock.clone() as SharedClock)?;
        Ok(())
    }

    pub fn local_kms(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    /// The settings, or `None` before `init`.
    pub fn settings(&self) -> Result<Option<Settings>, ControlError> {
        read_json(&self.settings_path())
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("atrest.json")
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn require_settings(&self) -> Result<Settings, ControlError> {
        self.settings()?
            .ok_or_else(|| ControlError::NotInitialised {
                path: self.dir.clone(),
            })
    }

    /// A KMS client as `principal` (an IAM ARN) or, by default, as the root's principal
    /// (the account root before `init`).
    pub fn kms_client(
        &self,
        principal: Option<&str>,
        region: Option<&str>,
    ) -> Result<LocalKmsClient, ControlError> {
        let settings = self.settings()?;
        let region = region
            .or(settings.as_ref().map(|s| s.region.as_str()))
            .unwrap_or(DEFAULT_REGION);
        let caller = match (principal, &settings) {
            (Some(p), _) => Caller::new(p, region)?,
            (None, Some(s)) => Caller::new(&s.principal, region)?,
            (None, None) => Caller::account_root(DEFAULT_ACCOUNT, region)?,
        };
        Ok(self.kms.client(caller))
    }

    /// Creates the project's CMK (alias `alias/atrest-default`) and the node's store.
    pub fn init(&self, account: &str, region: &str) -> Result<Settings, ControlError> {
        if self.settings()?.is_some() || self.store_path().join("CURRENT").exists() {
            return Err(ControlError::AlreadyInitialised {
                path: self.dir.clone(),
            });
        }
        let caller = Caller::account_root(account, region)?;
        let client = self.kms.client(caller.clone());
        let cmk = match client.describe_key(DEFAULT_CMK_ALIAS) {
            Ok(existing) => existing,
            Err(KmsError::NotFound(_)) => {
                let created = client.create_key(CreateKeyRequest {
                    description: "atrest customer master key".into(),
                    ..Default::default()
                })?;
                client.create_alias(DEFAULT_CMK_ALIAS, &created.key_id)?;
                created
            }
            Err(e) => return Err(e.into()),
        };
        let settings = Settings {
            format: SETTINGS_FORMAT,
            account: account.to_string(),
            region: region.to_string(),
            principal: caller.principal().to_string(),
            cmk: cmk.arn,
        };
        drop(Store::create(
            self.store_path(),
            Arc::new(client),
            &settings.cmk,
            self.store_options(),
        )?);
        write_json(&self.settings_path(), &settings)?;
        Ok(settings)
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            clock: self.clock(),
            ..StoreOptions::default()
        }
    }

    /// Opens the node's store under the project's CMK.
    pub fn open_store(&self) -> Result<Store, ControlError> {
        let settings = self.require_settings()?;
        let client = self.kms_client(None, None)?;
        Ok(Store::open(
            self.store_path(),
            Arc::new(client),
            &settings.cmk,
            self.store_options(),
        )?)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ControlError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ControlError::Settings {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ControlError::Settings {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ControlError> {
    let settings_error = |reason: String| ControlError::Settings {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| settings_error(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| settings_error(e.to_string()))
}
