//! The emulated HSM's state: keys, their material versions, rotations and aliases, as the
//! state file holds them, and the rules each key applies to a call (state, usage, policy).

use super::*;

/// Everything the emulated HSM knows. Serialized whole to the state file.
#[derive(Serialize, Deserialize)]
pub(super) struct State {
    pub(super) format: u32,
    pub(super) keys: BTreeMap<String, KeyRecord>,
    pub(super) aliases: Vec<StoredAlias>,
    /// IAM users' access keys, by access key id.
    #[serde(default)]
    pub(super) access_keys: BTreeMap<String, super::access_keys::StoredAccessKey>,
    /// When [`State::settle`] next has something to do (`Some(None)`: never), so that a
    /// call does not visit every key; `None` until worked out, and after any change.
    #[serde(skip)]
    next_event: Option<Option<Timestamp>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            keys: BTreeMap::new(),
            aliases: Vec::new(),
            access_keys: BTreeMap::new(),
            next_event: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct KeyRecord {
    pub(super) id: String,
    pub(super) account: String,
    pub(super) region: String,
    pub(super) description: String,
    pub(super) spec: KeySpec,
    pub(super) usage: KeyUsage,
    pub(super) state: KeyState,
    pub(super) created: Timestamp,
    pub(super) deletion_date: Option<Timestamp>,
    pub(super) pending_window_days: Option<u32>,
    pub(super) policy: String,
    pub(super) materials: Vec<Material>,
    pub(super) auto_rotation: Option<AutoRotation>,
    pub(super) rotations: Vec<StoredRotation>,
    pub(super) on_demand_rotations: u32,
    /// The key's tags, in the order they were first set.
    #[serde(default)]
    pub(super) tags: Vec<Tag>,
    /// The key's grants, oldest first.
    #[serde(default)]
    pub(super) grants: Vec<StoredGrant>,
    /// The last successful cryptographic operation written out (see `usage`).
    #[serde(default)]
    pub(super) last_usage: Option<super::usage::StoredUsage>,
    /// The key pair or HMAC key of a key that is not SYMMETRIC_DEFAULT (whose material
    /// versions are `materials`). Absent in keys made by an atrest that kept none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) secret: Option<SecretBytes>,
    /// AWS_KMS (material made here) or EXTERNAL (imported).
    #[serde(default, skip_serializing_if = "Origin::is_aws_kms")]
    pub(super) origin: Origin,
    /// An EXTERNAL key's import parameters and imported materials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) imports: Option<Imports>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(super) struct StoredRotation {
    pub(super) date: Timestamp,
    pub(super) kind: RotationKind,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Material {
    pub(super) version: u32,
    pub(super) created: Timestamp,
    #[serde(with = "secret_base64")]
    pub(super) key: SecretKey,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(super) struct AutoRotation {
    pub(super) period_days: u32,
    pub(super) next: Timestamp,
}

/// An alias as the state file keeps it: its name is unique per account and region.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredAlias {
    pub(super) name: String,
    pub(super) account: String,
    pub(super) region: String,
    pub(super) target_key_id: String,
    /// When the alias was made (absent in state files older than alias dates).
    #[serde(default)]
    pub(super) created: Option<Timestamp>,
    /// When the alias was last pointed at a key.
    #[serde(default)]
    pub(super) updated: Option<Timestamp>,
}

impl StoredAlias {
    pub(super) fn entry(&self) -> AliasEntry {
        AliasEntry {
            alias_name: self.name.clone(),
            alias_arn: format!("arn:aws:kms:{}:{}:{}", self.region, self.account, self.name),
            target_key_id: self.target_key_id.clone(),
            creation_date: self.created,
            last_updated_date: self.updated,
        }
    }
}

pub(super) mod secret_base64 {
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
    pub(super) fn load(path: &Path) -> Result<Self, KmsError> {
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
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
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
    pub(super) fn check_consistent(&self) -> Result<(), String> {
        for (id, key) in &self.keys {
            if *id != key.id || !keyref::is_key_id(id) {
                return Err(format!("key entry {id:?} is malformed"));
            }
            if key.spec == KeySpec::SymmetricDefault
                && key.materials.is_empty()
                && !key.is_external()
            {
                return Err(format!("key {id} has no key material"));
            }
            if let Some(material) = key.key_material_if_any() {
                material
                    .check()
                    .map_err(|e| format!("key {id}: {}", e.message()))?;
            }
            KeyPolicy::parse(&key.policy).map_err(|e| format!("key {id} has a bad policy: {e}"))?;
            if let Some(rotation) = &key.auto_rotation {
                if !ROTATION_PERIOD_DAYS.contains(&rotation.period_days) {
                    return Err(format!(
                        "key {id} rotates every {} days, outside AWS's {}..={}",
                        rotation.period_days,
                        ROTATION_PERIOD_DAYS.start(),
                        ROTATION_PERIOD_DAYS.end()
                    ));
                }
            }
        }
        for alias in &self.aliases {
            if !self.keys.contains_key(&alias.target_key_id) {
                return Err(format!("alias {} points to a missing key", alias.name));
            }
        }
        Ok(())
    }

    /// A copy of the state, through its serialized form (key material is not `Clone`);
    /// the serialized bytes are zeroized.
    pub(super) fn copy(&self) -> Result<State, KmsError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(self).map_err(|e| KmsError::Internal(e.to_string()))?,
        );
        serde_json::from_slice(&bytes).map_err(|e| KmsError::Internal(e.to_string()))
    }

    pub(super) fn save(&self, path: &Path) -> Result<(), KmsError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(self).map_err(|e| KmsError::Internal(e.to_string()))?,
        );
        write_atomic(path, &bytes)
            .map_err(|e| KmsError::Internal(format!("cannot write {}: {e}", path.display())))
    }

    /// Applies deletions and automatic rotations that are due by `now`.
    pub(super) fn settle(
        &mut self,
        now: Timestamp,
        new_key: &mut dyn FnMut() -> SecretKey,
    ) -> usize {
        if let Some(next) = self.next_event {
            if next.is_none_or(|t| now < t) {
                return 0;
            }
        }
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
            if key.expire_imported(now) {
                events += 1;
            }
            if key.state != KeyState::Enabled {
                continue;
            }
            while let Some(rotation) = key.auto_rotation.filter(|r| r.next <= now) {
                key.add_material(rotation.next, RotationKind::Automatic, new_key());
                key.auto_rotation = Some(AutoRotation {
                    next: rotation
                        .next
                        .saturating_add(days(rotation.period_days.into())),
                    ..rotation
                });
                events += 1;
            }
        }
        self.next_event = Some(self.earliest_event());
        events
    }

    /// The earliest deletion or automatic rotation that will fall due.
    fn earliest_event(&self) -> Option<Timestamp> {
        self.keys
            .values()
            .filter_map(|k| match k.state {
                KeyState::PendingDeletion => k.deletion_date,
                KeyState::Enabled => match (k.auto_rotation.map(|r| r.next), k.next_expiry()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                KeyState::Disabled | KeyState::PendingImport => k.next_expiry(),
            })
            .min()
    }

    /// Forgets when the next event falls due: after a change, which may have scheduled
    /// one (a deletion, a rotation, a key enabled again).
    pub(super) fn changed(&mut self) {
        self.next_event = None;
    }

    /// Finds the key a reference names, from `caller`'s point of view.
    pub(super) fn resolve(
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

    /// The key `key_ref` names, once `caller` is allowed `action` on it for a request with
    /// encryption context `context` (policy conditions see the alias `key_ref` used and
    /// the key's aliases).
    pub(super) fn authorized(
        &self,
        caller: &Caller,
        key_ref: &str,
        accepts: Accepts,
        action: &str,
        context: Option<&EncryptionContext>,
    ) -> Result<&KeyRecord, KmsError> {
        let id = self.resolve_id(caller, key_ref, accepts)?;
        self.authorize_on(caller, &id, key_ref, action, context)?;
        self.keys
            .get(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_ref}' does not exist")))
    }

    /// [`State::authorized`], for a change to the key.
    pub(super) fn authorized_mut(
        &mut self,
        caller: &Caller,
        key_ref: &str,
        accepts: Accepts,
        action: &str,
        context: Option<&EncryptionContext>,
    ) -> Result<&mut KeyRecord, KmsError> {
        let id = self.resolve_id(caller, key_ref, accepts)?;
        self.authorize_on(caller, &id, key_ref, action, context)?;
        self.keys
            .get_mut(&id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_ref}' does not exist")))
    }

    /// Checks `action` on key `id`, which the request named as `key_ref`.
    pub(super) fn authorize_on(
        &self,
        caller: &Caller,
        id: &str,
        key_ref: &str,
        action: &str,
        context: Option<&EncryptionContext>,
    ) -> Result<(), KmsError> {
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_ref}' does not exist")))?;
        let policy = KeyPolicy::parse(&key.policy)?;
        // Aliases are gathered only for a policy whose conditions read them.
        let (aliases, request_alias) = if policy.reads_aliases() {
            let request_alias = match KeyRef::parse(key_ref) {
                Ok(KeyRef::AliasName(alias) | KeyRef::AliasArn { alias, .. }) => Some(alias),
                _ => None,
            };
            (self.aliases_of(id), request_alias)
        } else {
            (Vec::new(), None)
        };
        key.authorize_with(
            &policy,
            caller,
            action,
            &RequestFacts {
                encryption_context: context,
                grant_operations: None,
                request_alias: request_alias.as_deref(),
                resource_aliases: Some(&aliases),
            },
        )
    }

    /// The names of the aliases that point at key `id`.
    pub(super) fn aliases_of(&self, id: &str) -> Vec<String> {
        self.aliases
            .iter()
            .filter(|a| a.target_key_id == id)
            .map(|a| a.name.clone())
            .collect()
    }

    pub(super) fn resolve_mut(
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

    pub(super) fn resolve_id(
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
    pub(super) fn arn(&self) -> String {
        key_arn(&self.region, &self.account, &self.id)
    }

    /// Checks that the key's `policy` (given what the request brings, `facts`), or a grant
    /// whose constraints the request's encryption context meets, allows `caller` `action`;
    /// the policy's explicit Deny wins over any grant.
    pub(super) fn authorize_with(
        &self,
        policy: &KeyPolicy,
        caller: &Caller,
        action: &str,
        facts: &RequestFacts<'_>,
    ) -> Result<(), KmsError> {
        match policy.decide(caller, action, Some(&self.arn()), facts) {
            Some(true) => Ok(()),
            None if self.granted(caller, action, facts.encryption_context) => Ok(()),
            _ => Err(self.denied(caller, action)),
        }
    }

    pub(super) fn denied(&self, caller: &Caller, action: &str) -> KmsError {
        KmsError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {} because no resource-based policy allows the {action} action",
            caller.principal(),
            self.arn()
        ))
    }

    /// Neither pending deletion nor disabled, with AWS's messages.
    pub(super) fn check_usable(&self) -> Result<(), KmsError> {
        self.check_not_pending_deletion()?;
        self.check_not_pending_import()?;
        if self.state == KeyState::Disabled {
            return Err(KmsError::Disabled(format!("{} is disabled.", self.arn())));
        }
        Ok(())
    }

    /// The checks Encrypt, Decrypt and GenerateDataKey make after authorization.
    pub(super) fn check_usable_for_encryption(&self) -> Result<(), KmsError> {
        self.check_usable()?;
        if self.spec != KeySpec::SymmetricDefault || self.usage != KeyUsage::EncryptDecrypt {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} has KeySpec {} and KeyUsage {}; this operation needs a SYMMETRIC_DEFAULT key (RSA keys for ENCRYPT_DECRYPT encrypt with EncryptionAlgorithm RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256)",
                self.arn(),
                self.spec,
                self.usage
            )));
        }
        Ok(())
    }

    /// The checks an operation on a key's material makes after authorization: the key is
    /// usable, and has the usage the operation needs.
    pub(super) fn check_usable_for(
        &self,
        usage: KeyUsage,
        operation: &str,
    ) -> Result<(), KmsError> {
        self.check_usable()?;
        if self.usage != usage {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} has KeySpec {} and KeyUsage {}; {operation} needs a key with KeyUsage {usage}",
                self.arn(),
                self.spec,
                self.usage
            )));
        }
        Ok(())
    }

    pub(super) fn check_not_pending_import(&self) -> Result<(), KmsError> {
        if self.state == KeyState::PendingImport {
            Err(KmsError::InvalidState(format!(
                "{} is pending import.",
                self.arn()
            )))
        } else {
            Ok(())
        }
    }

    pub(super) fn check_not_pending_deletion(&self) -> Result<(), KmsError> {
        if self.state == KeyState::PendingDeletion {
            Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn()
            )))
        } else {
            Ok(())
        }
    }

    pub(super) fn check_symmetric(&self, operation: &str) -> Result<(), KmsError> {
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

    /// AWS's KeyMaterialId for material `version`: 64 hex digits, here the key id's 32
    /// and the version's, so that it is stable and says which version it is.
    pub(super) fn material_id(&self, version: u32) -> String {
        if let Some(imported) = self.imported(version) {
            return imported.id().to_string();
        }
        let id: String = self.id.chars().filter(|c| *c != '-').collect();
        format!("{id}{version:032x}")
    }

    pub(super) fn current_material_id(&self) -> Result<String, KmsError> {
        Ok(self.material_id(self.current_material()?.version))
    }

    pub(super) fn current_material(&self) -> Result<&Material, KmsError> {
        self.materials
            .last()
            .ok_or_else(|| KmsError::Internal(format!("{} has no key material", self.arn())))
    }

    pub(super) fn add_material(&mut self, at: Timestamp, kind: RotationKind, key: SecretKey) {
        let version = self.materials.last().map_or(1, |m| m.version + 1);
        self.materials.push(Material {
            version,
            created: at,
            key,
        });
        self.rotations.push(StoredRotation { date: at, kind });
    }

    pub(super) fn metadata(&self) -> KeyMetadata {
        let algorithms = self.spec.algorithms(self.usage);
        let (expiration_model, valid_to) = self.expiration();
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect();
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
            customer_master_key_spec: self.spec.customer_master_key_spec(),
            encryption_algorithms: algorithms
                .encryption
                .iter()
                .map(|a| a.to_string())
                .collect(),
            signing_algorithms: algorithms.signing.iter().map(|a| a.to_string()).collect(),
            mac_algorithms: algorithms.mac.iter().map(|a| a.to_string()).collect(),
            key_agreement_algorithms: names(algorithms.key_agreement),
            encapsulation_algorithms: names(algorithms.encapsulation),
            origin: self.origin.aws_name(),
            expiration_model,
            valid_to,
            key_manager: "CUSTOMER",
            multi_region: false,
            pending_deletion_window_in_days: self.pending_window_days,
            current_key_material_id: self.materials.last().map(|m| self.material_id(m.version)),
        }
    }

    /// The key pair or HMAC key, for a key that is not SYMMETRIC_DEFAULT and has one.
    fn key_material_if_any(&self) -> Option<KeyMaterial<'_>> {
        self.secret.as_ref().map(|secret| KeyMaterial {
            spec: self.spec,
            secret: secret.expose(),
        })
    }

    /// The key pair or HMAC key the operations of non-symmetric keys use.
    pub(super) fn key_material(&self) -> Result<KeyMaterial<'_>, KmsError> {
        self.key_material_if_any().ok_or_else(|| {
            KmsError::Internal(format!(
                "{} ({}) was created by an atrest that kept no key material for {} keys; create a new key",
                self.arn(),
                self.spec,
                self.spec
            ))
        })
    }

    pub(super) fn seal(
        &self,
        backend: Backend,
        nonce: Nonce,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let material = self.current_material()?;
        let header = CiphertextBlob::header(&self.id, material.version)
            .ok_or_else(|| KmsError::Internal(format!("key id {} is not a UUID", self.id)))?;
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
