//! LocalKms: an embedded, strict emulator of AWS KMS, and atrest's default KMS.
//!
//! Owns the emulated HSM: keys with their states, key material versions, policies and
//! aliases, persisted as one JSON state file under the atrest root (owner-only, written
//! atomically and under a file lock, so several processes can share one root). Time comes
//! from a [`Clock`]: deletion windows and automatic rotations fall due as it moves, and are
//! applied at the start of the next call (or by [`LocalKms::tick`]).
//!
//! It is strict where popular emulators are lax: a disabled key refuses to encrypt,
//! Decrypt checks the KeyId it is given, each call is checked against the key policy, and
//! a key in another account is reached only through its full ARN.
//!
//! | file | owns |
//! |---|---|
//! | `mod` | [`LocalKms`]: the service, its state file, the file lock |
//! | `state` | the state: keys and aliases, loading and saving, the clock's events, resolving references |
//! | `key_record` | one key: its record, materials and rotations, and the rules it applies to a call |
//! | `client` | [`LocalKmsClient`]: the key management operations, as one caller |
//! | `cryptography` | Encrypt, Decrypt, ReEncrypt, data keys and random bytes, as one caller |
//! | `asymmetric` | Sign, Verify, GetPublicKey, MACs, ECDH, ML-KEM and data key pairs, as one caller |
//! | `key_material` | the key pairs and HMAC keys of non-symmetric keys, and their cryptography (without the `aws-lc` feature, `key_material_unavailable`: none) |
//! | `import` | imported key material: GetParametersForImport, ImportKeyMaterial, expiry, DeleteImportedKeyMaterial |
//! | `multi_region` | multi-Region keys: replicas sharing material, ReplicateKey, UpdatePrimaryRegion, deletion of primaries |
//! | `aws_lc_raw` | what aws-lc-rs does not wrap, called in aws-lc directly (the only unsafe code): Ed25519ph, ML-DSA over an external μ, ML-KEM keys from PKCS #8 seeds |
//! | `secret_bytes` | secret bytes of any length, zeroized, base64 in the state file |
//! | `aliases` | the alias operations of [`LocalKmsClient`] |
//! | `tags` | the tag operations, and AWS's rules for tags |
//! | `grants` | the grant operations, and what a grant allows |
//! | `grant_terms` | a grant's operations, constraints, storage, tokens and checks |
//! | `types` | requests and answers: [`CreateKeyRequest`], rotation and alias entries |
//! | `access_keys` | the account's IAM users' access keys, and whom they call as |
//! | `entropy` | where random bytes come from: the OS, or a seed (deterministic mode) |
//! | `seed` | seed files: keys with fixed ids and material, and aliases, set up at once |
//! | `usage` | each key's last use (GetKeyLastUsage), written without a write per call |

mod access_keys;
mod aliases;
mod asymmetric;
#[cfg(feature = "aws-lc")]
mod aws_lc_raw;
mod client;
mod cryptography;
mod entropy;
mod grant_terms;
mod grants;
mod import;
#[cfg(feature = "aws-lc")]
mod key_material;
#[cfg(not(feature = "aws-lc"))]
#[path = "key_material_unavailable.rs"]
mod key_material;
mod key_record;
mod multi_region;
mod secret_bytes;
mod seed;
mod state;
mod tags;
mod types;
mod usage;

pub use access_keys::{AccessKeyIdentity, NewAccessKey};
pub use asymmetric::{
    parse_key_pair_spec, DataKeyPair, Encapsulated, PublicKeyInfo, SharedSecret, Signed,
};
pub use client::LocalKmsClient;
pub use entropy::Entropy;
use grant_terms::StoredGrant;
pub use grant_terms::{
    check_grant_tokens, CreateGrantRequest, GrantConstraints, GrantListEntry, GrantOperation,
    GrantRef, NewGrant,
};
use import::Imports;
pub use import::{ImportKeyMaterialRequest, ImportParameters, ImportType, Origin};
use key_material::{KeyMaterial, SecretBytes};
use key_record::*;
use multi_region::MultiRegion;
pub use multi_region::{MultiRegionConfiguration, MultiRegionKey, Replica, ReplicateKeyRequest};
pub use seed::Seeded;
use state::*;
pub use types::{
    AliasEntry, CreateKeyRequest, KeyListEntry, RotationKind, RotationRecord, RotationStatus, Tag,
};
pub use usage::{KeyLastUsage, KeyLastUsageReport};

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::{days, SharedClock, Timestamp};
use crate::crypto::{Aead, Backend, Nonce, SecretKey};
use crate::durable::{write_atomic, FileLock, FileStamp};

use super::blob::{context_aad, CiphertextBlob};
use super::keyref::{self, key_arn, KeyRef};
use super::validation::{self, Shown};
use super::{
    epoch_seconds, optional_epoch_seconds, Algorithms, Caller, Decrypted, Encrypted,
    EncryptionAlgorithm, EncryptionContext, GeneratedDataKey, KeyMetadata, KeyPolicy, KeySpec,
    KeyState, KeyUsage, Kms, KmsError, MacAlgorithm, MessageType, ReEncrypted, RequestFacts,
    SigningAlgorithm, WrappedDataKey, WrappingAlgorithm,
};
use client::check_description;

/// The automatic rotation period AWS uses when none is given.
pub const DEFAULT_ROTATION_PERIOD_DAYS: u32 = 365;
const ROTATION_PERIOD_DAYS: std::ops::RangeInclusive<u32> = 90..=2560;
const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 7..=30;
const DEFAULT_PENDING_WINDOW_DAYS: u32 = 30;
const MAX_ON_DEMAND_ROTATIONS: u32 = 10;
const MAX_PLAINTEXT: usize = 4096;
const MAX_DESCRIPTION: usize = 8192;
const STATE_FORMAT: u32 = 1;
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";

/// Which kinds of key reference an operation accepts, as AWS documents per operation.
#[derive(Clone, Copy)]
struct Accepts {
    aliases: bool,
    other_accounts: bool,
}

/// Encrypt, Decrypt, DescribeKey, GenerateDataKey: any form, any account.
const USE: Accepts = Accepts {
    aliases: true,
    other_accounts: true,
};
/// Grants: key id or key ARN, any account.
const GRANTS: Accepts = Accepts {
    aliases: false,
    other_accounts: true,
};
/// Key management: key id or key ARN, own account only.
const MANAGE: Accepts = Accepts {
    aliases: false,
    other_accounts: false,
};

/// The emulated service. Share it with `Arc`; call it through [`LocalKms::client`].
pub struct LocalKms {
    storage: Storage,
    clock: SharedClock,
    backend: Backend,
    entropy: entropy::Source,
    /// Key uses not yet written to the state.
    uses: usage::PendingUses,
}

enum Storage {
    Memory(Mutex<State>),
    /// The state file, and the state as this process last read or wrote it: reused while
    /// the file is the one it came from, re-read when another process replaced it.
    Dir {
        dir: PathBuf,
        cache: Mutex<Option<Cached>>,
    },
}

/// The state, and the identity of the file it was read from or written to.
struct Cached {
    stamp: FileStamp,
    state: State,
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.storage {
            Storage::Memory(_) => f.write_str("LocalKms(in memory)"),
            Storage::Dir { dir, .. } => write!(f, "LocalKms({})", dir.display()),
        }
    }
}

impl LocalKms {
    /// Opens (or creates) the KMS state kept in `dir`. A corrupt state file is an error,
    /// never silently replaced.
    pub fn open(dir: impl AsRef<Path>, clock: SharedClock) -> Result<Arc<Self>, KmsError> {
        Self::open_with(dir, clock, Entropy::System)
    }

    /// [`LocalKms::open`], drawing random bytes from `entropy`.
    pub fn open_with(
        dir: impl AsRef<Path>,
        clock: SharedClock,
        entropy: Entropy,
    ) -> Result<Arc<Self>, KmsError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |what: &str, e: std::io::Error| {
            KmsError::Internal(format!("cannot {what} {}: {e}", dir.display()))
        };
        fs::create_dir_all(&dir).map_err(|e| io("create", e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restrict", e))?;
        let kms = LocalKms {
            storage: Storage::Dir {
                dir,
                cache: Mutex::new(None),
            },
            clock,
            backend: Backend::default(),
            entropy: entropy::Source::new(entropy),
            uses: usage::PendingUses::default(),
        };
        kms.read(|_, _| Ok(()))?;
        Ok(Arc::new(kms))
    }

    /// A KMS that lives and dies with the process: for tests and benchmarks.
    pub fn in_memory(clock: SharedClock) -> Arc<Self> {
        Self::in_memory_with(clock, Entropy::System)
    }

    /// [`LocalKms::in_memory`], drawing random bytes from `entropy`: with
    /// [`Entropy::Seeded`], the same calls on the same clock give the same bytes.
    pub fn in_memory_with(clock: SharedClock, entropy: Entropy) -> Arc<Self> {
        Arc::new(LocalKms {
            storage: Storage::Memory(Mutex::new(State::default())),
            clock,
            backend: Backend::default(),
            entropy: entropy::Source::new(entropy),
            uses: usage::PendingUses::default(),
        })
    }

    /// A handle that makes calls as `caller`, as an SDK client does with its credentials.
    pub fn client(self: &Arc<Self>, caller: Caller) -> LocalKmsClient {
        LocalKmsClient {
            kms: Arc::clone(self),
            caller,
            dry_run: false,
        }
    }

    /// The clock that drives deletions and rotations.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Decodes the contents of a state file without opening it: the number of keys, or
    /// why the file is unusable. For the fuzz targets.
    #[doc(hidden)]
    pub fn decode_state_file(bytes: &[u8]) -> Result<usize, String> {
        State::decode(bytes).map(|s| s.keys.len())
    }

    /// Writes the key uses this process has not written yet (GetKeyLastUsage in other
    /// processes sees them then); done on drop too.
    pub fn flush(&self) -> Result<(), KmsError> {
        self.transact_with(false, true, |_, _| Ok(())).map(|_| ())
    }

    /// Applies whatever the clock has made due (key deletions, automatic rotations) and
    /// says how many events that was.
    pub fn tick(&self) -> Result<usize, KmsError> {
        self.transact(false, |_, _| Ok(()))
            .map(|((), events)| events)
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<R, KmsError> {
        self.transact(false, |s, now| f(s, now)).map(|(r, _)| r)
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<R, KmsError> {
        self.transact(true, f).map(|(r, _)| r)
    }

    /// Runs a write's checks and changes on a copy of the state, which is then dropped:
    /// AWS's DryRun, for the operations that change something.
    fn dry_write<R>(
        &self,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<R, KmsError> {
        self.read(|state, now| f(&mut state.copy()?, now))
    }

    /// Runs `f` on the current state, after applying due events; persists when `f`
    /// succeeded and `mutates`, or when events were applied. `f` must check before it
    /// changes anything, so that a failed call changes nothing.
    fn transact<R>(
        &self,
        mutates: bool,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<(R, usize), KmsError> {
        self.transact_with(mutates, false, f)
    }

    /// [`LocalKms::transact`], writing every pending key use when `flush_uses`.
    fn transact_with<R>(
        &self,
        mutates: bool,
        flush_uses: bool,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<(R, usize), KmsError> {
        let now = self.clock.now();
        match &self.storage {
            Storage::Memory(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let events = state.settle(now, &mut || self.new_secret_key());
                let result = f(&mut state, now);
                self.uses.drain_into(&mut state);
                if mutates {
                    state.changed();
                }
                Ok((result?, events))
            }
            Storage::Dir { dir, cache } => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                let lock = dir.join(LOCK_FILE);
                let _lock = FileLock::acquire(&lock).map_err(|e| {
                    KmsError::Internal(format!("cannot lock {}: {e}", lock.display()))
                })?;
                let path = dir.join(STATE_FILE);
                let stamp = FileStamp::of(&path);
                let mut state = match cache.take() {
                    Some(cached) if Some(cached.stamp) == stamp => cached.state,
                    _ => State::load(&path)?,
                };
                let events = state.settle(now, &mut || self.new_secret_key());
                let result = f(&mut state, now);
                if mutates {
                    state.changed();
                }
                let save_for_call = (mutates && result.is_ok()) || events > 0;
                // Uses ride along with a write, or are written once one has waited long
                // enough; never into a state a failed change may have touched.
                let write_uses = (result.is_ok() || !mutates)
                    && !self.uses.is_empty()
                    && (save_for_call || flush_uses || self.uses.due(now));
                if write_uses {
                    self.uses.drain_into(&mut state);
                }
                let stamp = if save_for_call || write_uses {
                    state.save(&path)?;
                    FileStamp::of(&path)
                } else {
                    stamp
                };
                // A failed call changes nothing, so its state may be kept; were one to
                // break that rule, the next call reads the file again rather than trust it.
                if let (Some(stamp), true) = (stamp, result.is_ok() || !mutates) {
                    *cache = Some(Cached { stamp, state });
                }
                Ok((result?, events))
            }
        }
    }
}

impl Drop for LocalKms {
    fn drop(&mut self) {
        if !self.uses.is_empty() {
            let _ = self.flush();
        }
    }
}

impl LocalKms {
    fn storage_name(&self) -> String {
        match &self.storage {
            Storage::Memory(_) => "memory".into(),
            Storage::Dir { dir, .. } => dir.display().to_string(),
        }
    }
}
