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

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::{days, SharedClock, Timestamp};
use crate::crypto::{Aead, Backend, Nonce, SecretKey};
use crate::durable::write_atomic;

use super::blob::{context_aad, CiphertextBlob};
use super::keyref::{self, key_arn, KeyRef};
use super::{
    epoch_seconds, optional_epoch_seconds, Caller, Decrypted, Encrypted, EncryptionContext,
    GeneratedDataKey, KeyMetadata, KeyPolicy, KeySpec, KeyState, KeyUsage, Kms, KmsError,
};

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
}

enum Storage {
    Memory(Mutex<State>),
    Dir { dir: PathBuf, in_process: Mutex<()> },
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
                in_process: Mutex::new(()),
            },
            clock,
            backend: Backend::default(),
        };
        kms.read(|_, _| Ok(()))?;
        Ok(Arc::new(kms))
    }

    /// A KMS that lives and dies with the process: for tests and benchmarks.
    pub fn in_memory(clock: SharedClock) -> Arc<Self> {
        Arc::new(LocalKms {
            storage: Storage::Memory(Mutex::new(State::default())),
            clock,
            backend: Backend::default(),
        })
    }

    /// A handle that makes calls as `caller`, as an SDK client does with its credentials.
    pub fn client(self: &Arc<Self>, caller: Caller) -> LocalKmsClient {
        LocalKmsClient {
            kms: Arc::clone(self),
            caller,
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

    /// Runs `f` on the current state, after applying due events; persists when `f`
    /// succeeded and `mutates`, or when events were applied. `f` must check before it
    /// changes anything, so that a failed call changes nothing.
    fn transact<R>(
        &self,
        mutates: bool,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<(R, usize), KmsError> {
        let now = self.clock.now();
        match &self.storage {
            Storage::Memory(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let events = state.settle(now);
                Ok((f(&mut state, now)?, events))
            }
            Storage::Dir { dir, in_process } => {
                let _guard = in_process.lock().unwrap_or_else(|p| p.into_inner());
                let _lock = FileLock::acquire(&dir.join(LOCK_FILE))?;
                let path = dir.join(STATE_FILE);
                let mut state = State::load(&path)?;
                let events = state.settle(now);
                let result = f(&mut state, now);
                if (mutates && result.is_ok()) || events > 0 {
                    state.save(&path)?;
                }
                Ok((result?, events))
            }
        }
    }
}

struct FileLock(File);

impl FileLock {
    fn acquire(path: &Path) -> Result<Self, KmsError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                KmsError::Internal(format!("cannot open lock file {}: {e}", path.display()))
            })?;
        file.lock()
            .map_err(|e| KmsError::Internal(format!("cannot lock {}: {e}", path.display())))?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Everything the emulated HSM knows. Serialized whole to the state file.
#[derive(Serialize, Deserialize)]
struct State {
    format: u32,
    keys: BTreeMap<String, KeyRecord>,
    aliases: Vec<StoredAlias>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            keys: BTreeMap::new(),
            aliases: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    id: String,
    account: String,
    region: String,
    description: String,
    spec: KeySpec,
    usage: KeyUsage,
    state: KeyState,
    created: Timestamp,
    deletion_date: Option<Timestamp>,
    pending_window_days: Option<u32>,
    policy: String,
    materials: Vec<Material>,
    auto_rotation: Option<AutoRotation>,
    rotations: Vec<StoredRotation>,
    on_demand_rotations: u32,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct StoredRotation {
    date: Timestamp,
    kind: RotationKind,
}

#[derive(Serialize, Deserialize)]
struct Material {
    version: u32,
    created: Timestamp,
    #[serde(with = "secret_base64")]
    key: SecretKey,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct AutoRotation {
    period_days: u32,
    next: Timestamp,
}

/// One rotation of a key's material, as ListKeyRotations reports it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRecord {
    /// The ARN of the rotated key.
    pub key_id: String,
    #[serde(serialize_with = "epoch_seconds")]
    /// When the new material was made.
    pub rotation_date: Timestamp,
    /// Automatic or on demand.
    pub rotation_type: RotationKind,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
/// How a key's material came to rotate.
pub enum RotationKind {
    #[serde(rename = "AUTOMATIC")]
    /// On the key's rotation schedule.
    Automatic,
    #[serde(rename = "ON_DEMAND")]
    /// By RotateKeyOnDemand.
    OnDemand,
}

/// What GetKeyRotationStatus returns.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationStatus {
    /// The key's ARN.
    pub key_id: String,
    /// Whether automatic rotation is on.
    pub key_rotation_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The automatic rotation period.
    pub rotation_period_in_days: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_epoch_seconds"
    )]
    /// When automatic rotation next happens.
    pub next_rotation_date: Option<Timestamp>,
}

/// An alias, as ListAliases reports it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AliasEntry {
    /// `alias/NAME`.
    pub alias_name: String,
    /// The alias's ARN.
    pub alias_arn: String,
    /// The id of the key it points to.
    pub target_key_id: String,
}

/// An alias as the state file keeps it: its name is unique per account and region.
#[derive(Serialize, Deserialize)]
struct StoredAlias {
    name: String,
    account: String,
    region: String,
    target_key_id: String,
}

impl StoredAlias {
    fn entry(&self) -> AliasEntry {
        AliasEntry {
            alias_name: self.name.clone(),
            alias_arn: format!("arn:aws:kms:{}:{}:{}", self.region, self.account, self.name),
            target_key_id: self.target_key_id.clone(),
        }
    }
}

/// One row of ListKeys.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyListEntry {
    #[serde(rename = "KeyId")]
    /// The key's id.
    pub key_id: String,
    #[serde(rename = "KeyArn")]
    /// The key's ARN.
    pub key_arn: String,
}

/// CreateKey's parameters. `Default` is a symmetric encryption key with AWS's default policy.
#[derive(Clone, Debug)]
pub struct CreateKeyRequest {
    /// Free text shown by DescribeKey.
    pub description: String,
    /// The kind of key material.
    pub key_spec: KeySpec,
    /// What the key may do; `None` gives the spec's default.
    pub key_usage: Option<KeyUsage>,
    /// A key policy document (AWS JSON); `None` gives AWS's default policy.
    pub policy: Option<String>,
}

impl Default for CreateKeyRequest {
    fn default() -> Self {
        CreateKeyRequest {
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: None,
            policy: None,
        }
    }
}

mod secret_base64 {
    use base64::Engine;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    use crate::crypto::SecretKey;

    pub fn serialize<S: Serializer>(key: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose()));
        s.serialize_str(&encoded)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
        let encoded: &str = Deserialize::deserialize(d)?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(D::Error::custom)?,
        );
        SecretKey::from_slice(&bytes).map_err(D::Error::custom)
    }
}

impl State {
    fn load(path: &Path) -> Result<Self, KmsError> {
        let corrupt = |why: String| {
            KmsError::Internal(format!(
                "the LocalKms state file {} is unreadable ({why}); atrest will not reset it: restore it from a backup, or move it away to start an empty KMS (every key in it would be lost)",
                path.display()
            ))
        };
        let bytes = match fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        State::decode(&bytes).map_err(corrupt)
    }

    /// Decodes the state file's contents; any input gives a state or a reason.
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "format {} is not one this atrest reads ({STATE_FORMAT})",
                state.format
            ));
        }
        state.check_consistent()?;
        Ok(state)
    }

    /// The invariants every other method relies on, checked once at load.
    fn check_consistent(&self) -> Result<(), String> {
        for (id, key) in &self.keys {
            if *id != key.id || !keyref::is_key_id(id) {
                return Err(format!("key entry {id:?} is malformed"));
            }
            if key.spec == KeySpec::SymmetricDefault && key.materials.is_empty() {
                return Err(format!("key {id} has no key material"));
            }
            KeyPolicy::parse(&key.policy).map_err(|e| format!("key {id} has a bad policy: {e}"))?;
        }
        for alias in &self.aliases {
            if !self.keys.contains_key(&alias.target_key_id) {
                return Err(format!("alias {} points to a missing key", alias.name));
            }
        }
        Ok(())
    }

    fn save(&self, path: &Path) -> Result<(), KmsError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(self).map_err(|e| KmsError::Internal(e.to_string()))?,
        );
        write_atomic(path, &bytes)
            .map_err(|e| KmsError::Internal(format!("cannot write {}: {e}", path.display())))
    }

    /// Applies deletions and automatic rotations that are due by `now`.
    fn settle(&mut self, now: Timestamp) -> usize {
        let mut events = 0;
        let due: Vec<String> = self
            .keys
            .values()
            .filter(|k| {
                k.state == KeyState::PendingDeletion && k.deletion_date.is_some_and(|d| d <= now)
            })
            .map(|k| k.id.clone())
            .collect();
        for id in &due {
            // Dropping the record zeroizes its material: the key is gone for good.
            self.keys.remove(id);
            self.aliases.retain(|a| &a.target_key_id != id);
            events += 1;
        }
        for key in self.keys.values_mut() {
            if key.state != KeyState::Enabled {
                continue;
            }
            while let Some(rotation) = key.auto_rotation.filter(|r| r.next <= now) {
                key.add_material(rotation.next, RotationKind::Automatic);
                key.auto_rotation = Some(AutoRotation {
                    next: rotation
                        .next
                        .saturating_add(days(rotation.period_days.into())),
                    ..rotation
                });
                events += 1;
            }
        }
        events
    }

    /// Finds the key a reference names, from `caller`'s point of view.
    fn resolve(
        &self,
        caller: &Caller,
        key_id: &str,
        accepts: Accepts,
    ) -> Result<&KeyRecord, KmsError> {
        let id = self.resolve_id(caller, key_id, accepts)?;
        self.keys
            .get(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_id}' does not exist")))
    }

    fn resolve_mut(
        &mut self,
        caller: &Caller,
        key_id: &str,
        accepts: Accepts,
    ) -> Result<&mut KeyRecord, KmsError> {
        let id = self.resolve_id(caller, key_id, accepts)?;
        self.keys
            .get_mut(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_id}' does not exist")))
    }

    fn resolve_id(
        &self,
        caller: &Caller,
        key_id: &str,
        accepts: Accepts,
    ) -> Result<String, KmsError> {
        let reference = KeyRef::parse(key_id)?;
        if reference.is_alias() && !accepts.aliases {
            return Err(KmsError::NotFound(format!(
                "{key_id} is an alias; this operation takes a key id or key ARN"
            )));
        }
        let (region, account) = match &reference {
            KeyRef::Id(_) | KeyRef::AliasName(_) => (caller.region(), caller.account()),
            KeyRef::KeyArn {
                region, account, ..
            }
            | KeyRef::AliasArn {
                region, account, ..
            } => (region.as_str(), account.as_str()),
        };
        if region != caller.region() {
            return Err(KmsError::NotFound(format!(
                "{key_id} is in region {region}, but this client calls region {}",
                caller.region()
            )));
        }
        if account != caller.account() && !accepts.other_accounts {
            return Err(KmsError::NotFound(format!(
                "{key_id} belongs to account {account}; this operation can only be called by that account"
            )));
        }
        let id = match &reference {
            KeyRef::Id(id) | KeyRef::KeyArn { id, .. } => id.clone(),
            KeyRef::AliasName(alias) | KeyRef::AliasArn { alias, .. } => self
                .aliases
                .iter()
                .find(|a| a.name == *alias && a.account == account && a.region == region)
                .map(|a| a.target_key_id.clone())
                .ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "Alias arn:aws:kms:{region}:{account}:{alias} is not found."
                    ))
                })?,
        };
        match self.keys.get(&id) {
            Some(k) if k.account == account && k.region == region => Ok(id),
            Some(k) if k.region == region && matches!(reference, KeyRef::Id(_)) => Err(KmsError::NotFound(format!(
                "Key '{}' does not exist in account {account}: a key in another account ({}) must be named by its full key ARN",
                key_arn(region, account, &id),
                k.account
            ))),
            _ => Err(KmsError::NotFound(format!("Key '{}' does not exist", key_arn(region, account, &id)))),
        }
    }
}

impl KeyRecord {
    fn arn(&self) -> String {
        key_arn(&self.region, &self.account, &self.id)
    }

    fn authorize(&self, caller: &Caller, action: &str) -> Result<(), KmsError> {
        let policy = KeyPolicy::parse(&self.policy)?;
        if policy.allows(caller, action) {
            Ok(())
        } else {
            Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: {} because no resource-based policy allows the {action} action",
                caller.principal(),
                self.arn()
            )))
        }
    }

    /// The checks Encrypt, Decrypt and GenerateDataKey make after authorization.
    fn check_usable_for_encryption(&self) -> Result<(), KmsError> {
        self.check_not_pending_deletion()?;
        if self.state == KeyState::Disabled {
            return Err(KmsError::Disabled(format!("{} is disabled.", self.arn())));
        }
        if self.spec != KeySpec::SymmetricDefault || self.usage != KeyUsage::EncryptDecrypt {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} has KeySpec {} and KeyUsage {:?}; atrest encrypts only with SYMMETRIC_DEFAULT keys for ENCRYPT_DECRYPT",
                self.arn(),
                self.spec,
                self.usage
            )));
        }
        Ok(())
    }

    fn check_not_pending_deletion(&self) -> Result<(), KmsError> {
        match (self.state, self.deletion_date) {
            (KeyState::PendingDeletion, Some(date)) => Err(KmsError::InvalidState(format!(
                "{} is pending deletion (on {date}).",
                self.arn()
            ))),
            (KeyState::PendingDeletion, None) => Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn()
            ))),
            _ => Ok(()),
        }
    }

    fn check_symmetric(&self, operation: &str) -> Result<(), KmsError> {
        if self.spec == KeySpec::SymmetricDefault {
            Ok(())
        } else {
            Err(KmsError::UnsupportedOperation(format!(
                "{operation} is not supported for {} keys ({}).",
                self.spec,
                self.arn()
            )))
        }
    }

    fn current_material(&self) -> Result<&Material, KmsError> {
        self.materials
            .last()
            .ok_or_else(|| KmsError::Internal(format!("{} has no key material", self.arn())))
    }

    fn add_material(&mut self, at: Timestamp, kind: RotationKind) {
        let version = self.materials.last().map_or(1, |m| m.version + 1);
        self.materials.push(Material {
            version,
            created: at,
            key: SecretKey::generate(),
        });
        self.rotations.push(StoredRotation { date: at, kind });
    }

    fn metadata(&self) -> KeyMetadata {
        KeyMetadata {
            account: self.account.clone(),
            key_id: self.id.clone(),
            arn: self.arn(),
            region: self.region.clone(),
            creation_date: self.created,
            enabled: self.state == KeyState::Enabled,
            description: self.description.clone(),
            key_usage: self.usage,
            key_state: self.state,
            deletion_date: self.deletion_date,
            key_spec: self.spec,
            origin: "AWS_KMS",
            key_manager: "CUSTOMER",
            multi_region: false,
            pending_deletion_window_in_days: self.pending_window_days,
            current_key_material_id: self.materials.last().map(|m| m.version.to_string()),
        }
    }

    fn seal(
        &self,
        backend: Backend,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let material = self.current_material()?;
        let header = CiphertextBlob::header(&self.id, material.version)
            .ok_or_else(|| KmsError::Internal(format!("key id {} is not a UUID", self.id)))?;
        let nonce = Nonce::random();
        let aead =
            Aead::new(&material.key, backend).map_err(|e| KmsError::Internal(e.to_string()))?;
        let sealed = aead
            .seal(&nonce, &context_aad(&header, context), plaintext)
            .map_err(|e| KmsError::Internal(e.to_string()))?;
        let mut blob = header;
        blob.extend_from_slice(&nonce.0);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }
}

/// Calls LocalKms as one caller. Every AWS KMS operation LocalKms emulates is a method.
#[derive(Clone)]
pub struct LocalKmsClient {
    kms: Arc<LocalKms>,
    caller: Caller,
}

impl fmt::Debug for LocalKmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LocalKmsClient({} in {} as {})",
            self.kms.storage_name(),
            self.caller.region(),
            self.caller.principal()
        )
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

impl LocalKmsClient {
    /// Who this client calls as.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The emulated service behind this client.
    pub fn service(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    /// CreateKey: a new key in the caller's account and region, Enabled.
    pub fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        if request.description.len() > MAX_DESCRIPTION {
            return Err(KmsError::Validation(format!(
                "Description is longer than {MAX_DESCRIPTION} characters"
            )));
        }
        let usage = request
            .key_usage
            .unwrap_or(request.key_spec.default_usage());
        let valid_usage = match request.key_spec {
            KeySpec::SymmetricDefault => usage == KeyUsage::EncryptDecrypt,
            KeySpec::Rsa2048 | KeySpec::Rsa4096 => usage != KeyUsage::GenerateVerifyMac,
            KeySpec::EccNistP256 => usage == KeyUsage::SignVerify,
            KeySpec::Hmac256 => usage == KeyUsage::GenerateVerifyMac,
        };
        if !valid_usage {
            return Err(KmsError::Validation(format!(
                "KeyUsage {usage:?} is not valid for KeySpec {}",
                request.key_spec
            )));
        }
        let policy = match &request.policy {
            Some(doc) => {
                let policy = KeyPolicy::parse(doc)?;
                check_lockout(&policy, &self.caller)?;
                policy
            }
            None => KeyPolicy::default_for(self.caller.account()),
        };
        let caller = &self.caller;
        self.kms.write(|state, now| {
            let mut key = KeyRecord {
                id: keyref::new_key_id(),
                account: caller.account().to_string(),
                region: caller.region().to_string(),
                description: request.description,
                spec: request.key_spec,
                usage,
                state: KeyState::Enabled,
                created: now,
                deletion_date: None,
                pending_window_days: None,
                policy: policy.to_json(),
                materials: Vec::new(),
                auto_rotation: None,
                rotations: Vec::new(),
                on_demand_rotations: 0,
            };
            if key.spec == KeySpec::SymmetricDefault {
                key.materials.push(Material {
                    version: 1,
                    created: now,
                    key: SecretKey::generate(),
                });
            }
            let metadata = key.metadata();
            state.keys.insert(key.id.clone(), key);
            Ok(metadata)
        })
    }

    /// DescribeKey: the key's metadata, in any state.
    pub fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, USE)?;
            key.authorize(&self.caller, "kms:DescribeKey")?;
            Ok(key.metadata())
        })
    }

    /// The keys of the caller's account in the caller's region.
    pub fn list_keys(&self) -> Result<Vec<KeyListEntry>, KmsError> {
        self.kms.read(|state, _| {
            Ok(state
                .keys
                .values()
                .filter(|k| k.account == self.caller.account() && k.region == self.caller.region())
                .map(|k| KeyListEntry {
                    key_id: k.id.clone(),
                    key_arn: k.arn(),
                })
                .collect())
        })
    }

    /// EnableKey. A key pending deletion must be cancelled first.
    pub fn enable_key(&self, key_id: &str) -> Result<(), KmsError> {
        self.kms.write(|state, now| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:EnableKey")?;
            key.check_not_pending_deletion()?;
            key.state = KeyState::Enabled;
            // A key that was disabled past its rotation date rotates at once, not back-dated.
            if let Some(r) = key.auto_rotation.as_mut() {
                r.next = r.next.max(now);
            }
            Ok(())
        })
    }

    /// DisableKey: the key refuses every cryptographic operation until enabled.
    pub fn disable_key(&self, key_id: &str) -> Result<(), KmsError> {
        self.kms.write(|state, _| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:DisableKey")?;
            key.check_not_pending_deletion()?;
            key.state = KeyState::Disabled;
            Ok(())
        })
    }

    /// Returns the deletion date. The key can no longer be used; after the window its
    /// material is destroyed and every ciphertext under it is lost.
    pub fn schedule_key_deletion(
        &self,
        key_id: &str,
        pending_window_days: Option<u32>,
    ) -> Result<Timestamp, KmsError> {
        let window = pending_window_days.unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
        if !PENDING_WINDOW_DAYS.contains(&window) {
            return Err(KmsError::Validation(format!(
                "PendingWindowInDays must be between {} and {} days, not {window}",
                PENDING_WINDOW_DAYS.start(),
                PENDING_WINDOW_DAYS.end()
            )));
        }
        self.kms.write(|state, now| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:ScheduleKeyDeletion")?;
            key.check_not_pending_deletion()?;
            let date = now.saturating_add(days(window.into()));
            key.state = KeyState::PendingDeletion;
            key.deletion_date = Some(date);
            key.pending_window_days = Some(window);
            Ok(date)
        })
    }

    /// Leaves the key Disabled, as AWS does: enable it to use it again.
    pub fn cancel_key_deletion(&self, key_id: &str) -> Result<(), KmsError> {
        self.kms.write(|state, _| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:CancelKeyDeletion")?;
            if key.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is {}, not pending deletion.",
                    key.arn(),
                    key.state
                )));
            }
            key.state = KeyState::Disabled;
            key.deletion_date = None;
            key.pending_window_days = None;
            Ok(())
        })
    }

    /// EnableKeyRotation: new key material every `rotation_period_in_days` (90 to 2560, default 365).
    pub fn enable_key_rotation(
        &self,
        key_id: &str,
        rotation_period_in_days: Option<u32>,
    ) -> Result<(), KmsError> {
        let period = rotation_period_in_days.unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
        if !ROTATION_PERIOD_DAYS.contains(&period) {
            return Err(KmsError::Validation(format!(
                "RotationPeriodInDays must be between {} and {}, not {period}",
                ROTATION_PERIOD_DAYS.start(),
                ROTATION_PERIOD_DAYS.end()
            )));
        }
        self.kms.write(|state, now| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:EnableKeyRotation")?;
            key.check_symmetric("EnableKeyRotation")?;
            key.check_usable_for_encryption()?;
            key.auto_rotation = Some(AutoRotation {
                period_days: period,
                next: now.saturating_add(days(period.into())),
            });
            Ok(())
        })
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(&self, key_id: &str) -> Result<(), KmsError> {
        self.kms.write(|state, _| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:DisableKeyRotation")?;
            key.check_symmetric("DisableKeyRotation")?;
            key.check_usable_for_encryption()?;
            key.auto_rotation = None;
            Ok(())
        })
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(&self, key_id: &str) -> Result<RotationStatus, KmsError> {
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:GetKeyRotationStatus")?;
            key.check_symmetric("GetKeyRotationStatus")?;
            key.check_not_pending_deletion()?;
            Ok(RotationStatus {
                key_id: key.arn(),
                key_rotation_enabled: key.auto_rotation.is_some(),
                rotation_period_in_days: key.auto_rotation.map(|r| r.period_days),
                next_rotation_date: key.auto_rotation.map(|r| r.next),
            })
        })
    }

    /// New key material now, under the same key id; old ciphertexts still decrypt.
    pub fn rotate_key_on_demand(&self, key_id: &str) -> Result<String, KmsError> {
        self.kms.write(|state, now| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:RotateKeyOnDemand")?;
            key.check_symmetric("RotateKeyOnDemand")?;
            key.check_usable_for_encryption()?;
            if key.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
                return Err(KmsError::LimitExceeded(format!(
                    "{} has had the maximum of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
                    key.arn()
                )));
            }
            key.on_demand_rotations += 1;
            key.add_material(now, RotationKind::OnDemand);
            Ok(key.id.clone())
        })
    }

    /// ListKeyRotations: every material rotation of the key, oldest first.
    pub fn list_key_rotations(&self, key_id: &str) -> Result<Vec<RotationRecord>, KmsError> {
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:ListKeyRotations")?;
            key.check_symmetric("ListKeyRotations")?;
            let arn = key.arn();
            Ok(key
                .rotations
                .iter()
                .map(|r| RotationRecord {
                    key_id: arn.clone(),
                    rotation_date: r.date,
                    rotation_type: r.kind,
                })
                .collect())
        })
    }

    /// CreateAlias: `alias_name` points to a key of the caller's account and region.
    pub fn create_alias(&self, alias_name: &str, target_key_id: &str) -> Result<(), KmsError> {
        keyref::validate_alias(alias_name)?;
        if alias_name.starts_with("alias/aws/") {
            return Err(KmsError::Validation(format!(
                "{alias_name}: the alias/aws/ prefix is reserved for AWS managed keys"
            )));
        }
        self.kms.write(|state, _| {
            let key = state.resolve(&self.caller, target_key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:CreateAlias")?;
            key.check_not_pending_deletion()?;
            let (account, region, target) = (key.account.clone(), key.region.clone(), key.id.clone());
            if state.aliases.iter().any(|a| a.name == alias_name && a.account == account && a.region == region) {
                return Err(KmsError::AlreadyExists(format!(
                    "An alias with the name arn:aws:kms:{region}:{account}:{alias_name} already exists"
                )));
            }
            state.aliases.push(StoredAlias { name: alias_name.to_string(), account, region, target_key_id: target });
            Ok(())
        })
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, alias_name: &str) -> Result<(), KmsError> {
        keyref::validate_alias(alias_name)?;
        self.kms.write(|state, _| {
            let caller = &self.caller;
            let position = state
                .aliases
                .iter()
                .position(|a| {
                    a.name == alias_name
                        && a.account == caller.account()
                        && a.region == caller.region()
                })
                .ok_or_else(|| KmsError::NotFound(format!("Alias {alias_name} is not found.")))?;
            state.keys[&state.aliases[position].target_key_id]
                .authorize(caller, "kms:DeleteAlias")?;
            state.aliases.remove(position);
            Ok(())
        })
    }

    /// The aliases of the caller's account and region.
    pub fn list_aliases(&self) -> Result<Vec<AliasEntry>, KmsError> {
        self.kms.read(|state, _| {
            Ok(state
                .aliases
                .iter()
                .filter(|a| a.account == self.caller.account() && a.region == self.caller.region())
                .map(StoredAlias::entry)
                .collect())
        })
    }

    /// Replaces the key policy. As AWS does, refuses a policy that would lock the caller
    /// out of changing it again.
    pub fn put_key_policy(&self, key_id: &str, policy: &str) -> Result<(), KmsError> {
        let policy = KeyPolicy::parse(policy)?;
        check_lockout(&policy, &self.caller)?;
        self.kms.write(|state, _| {
            let key = state.resolve_mut(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:PutKeyPolicy")?;
            key.policy = policy.to_json();
            Ok(())
        })
    }

    /// GetKeyPolicy: the policy document.
    pub fn get_key_policy(&self, key_id: &str) -> Result<String, KmsError> {
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, MANAGE)?;
            key.authorize(&self.caller, "kms:GetKeyPolicy")?;
            Ok(key.policy.clone())
        })
    }

    /// Encrypt: 1 to 4096 bytes under the key's current material, bound to `context`.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::Validation(format!(
                "Plaintext must be 1 to {MAX_PLAINTEXT} bytes, not {}",
                plaintext.len()
            )));
        }
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, USE)?;
            key.authorize(&self.caller, "kms:Encrypt")?;
            key.check_usable_for_encryption()?;
            Ok(Encrypted {
                ciphertext_blob: key.seal(self.kms.backend, plaintext, context)?,
                key_arn: key.arn(),
            })
        })
    }

    /// Decrypts a blob. With `key_id`, the blob must have been made by that key
    /// ([`KmsError::IncorrectKey`] otherwise); without, the blob names its key, as AWS
    /// allows for symmetric keys.
    pub fn decrypt(
        &self,
        key_id: Option<&str>,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        let blob = CiphertextBlob::decode(ciphertext_blob)?;
        self.kms.read(|state, _| {
            if let Some(named) = key_id {
                let named = state.resolve(&self.caller, named, USE)?;
                if named.id != blob.key_id {
                    return Err(KmsError::IncorrectKey(format!(
                        "The key ID in the request ({}) does not identify the KMS key that encrypted the ciphertext",
                        named.arn()
                    )));
                }
            }
            let key = state
                .keys
                .get(&blob.key_id)
                .filter(|k| k.region == self.caller.region())
                .ok_or_else(|| KmsError::InvalidCiphertext("no key in this region made this ciphertext".into()))?;
            key.authorize(&self.caller, "kms:Decrypt")?;
            key.check_usable_for_encryption()?;
            let material = key.materials.iter().find(|m| m.version == blob.material_version).ok_or_else(|| {
                KmsError::InvalidCiphertext(format!(
                    "{} has no key material version {}",
                    key.arn(),
                    blob.material_version
                ))
            })?;
            let aead = Aead::new(&material.key, self.kms.backend).map_err(|e| KmsError::Internal(e.to_string()))?;
            let plaintext = aead.open(&blob.nonce, &blob.aad(context), blob.sealed).map_err(|_| {
                KmsError::InvalidCiphertext(
                    "the ciphertext does not authenticate: it was altered, or the encryption context differs".into(),
                )
            })?;
            Ok(Decrypted { plaintext, key_arn: key.arn() })
        })
    }

    /// GenerateDataKey: `number_of_bytes` random bytes, in the clear and wrapped.
    pub fn generate_data_key(
        &self,
        key_id: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(KmsError::Validation(format!(
                "NumberOfBytes must be 1 to 1024, not {number_of_bytes}"
            )));
        }
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, USE)?;
            key.authorize(&self.caller, "kms:GenerateDataKey")?;
            key.check_usable_for_encryption()?;
            let mut plaintext = Zeroizing::new(vec![0u8; number_of_bytes]);
            rand::rng().fill_bytes(&mut plaintext);
            let ciphertext_blob = key.seal(self.kms.backend, &plaintext, context)?;
            Ok(GeneratedDataKey {
                plaintext,
                ciphertext_blob,
                key_arn: key.arn(),
            })
        })
    }
}

fn check_lockout(policy: &KeyPolicy, caller: &Caller) -> Result<(), KmsError> {
    if policy.allows(caller, "kms:PutKeyPolicy") {
        Ok(())
    } else {
        Err(KmsError::MalformedPolicyDocument(format!(
            "The new key policy will not allow {} to update the key policy in the future.",
            caller.principal()
        )))
    }
}

impl Kms for LocalKmsClient {
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        LocalKmsClient::describe_key(self, key_id)
    }

    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        LocalKmsClient::encrypt(self, key_id, plaintext, context)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        LocalKmsClient::decrypt(self, Some(key_id), blob, context)
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        LocalKmsClient::generate_data_key(self, key_id, 32, context)
    }
}
