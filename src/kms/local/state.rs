//! The emulated HSM's state: its keys (`key_record`) and aliases, as the state file holds
//! them; loading, checking and saving it; the events the clock brings (deletions,
//! rotations, expiries); and finding the key a reference names, for a caller.

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
            if *id != key.storage_key() || !keyref::is_key_id(&key.id) {
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
            if !self
                .keys
                .contains_key(&storage_key(&alias.target_key_id, &alias.region))
            {
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
        let due: Vec<(String, String)> = self
            .keys
            .values()
            .filter(|k| {
                k.state == KeyState::PendingDeletion && k.deletion_date.is_some_and(|d| d <= now)
            })
            .map(|k| (k.id.clone(), k.region.clone()))
            .collect();
        for (id, region) in &due {
            // Dropping the record zeroizes its material: the key is gone for good.
            self.keys.remove(&storage_key(id, region));
            self.aliases
                .retain(|a| !(&a.target_key_id == id && &a.region == region));
            events += 1;
        }
        events += self.start_primary_deletions(now);
        let mut rotated = Vec::new();
        for key in self.keys.values_mut() {
            if key.expire_imported(now) {
                events += 1;
            }
            if key.state != KeyState::Enabled {
                continue;
            }
            if key.multi_region.is_some() && key.auto_rotation.is_some_and(|r| r.next <= now) {
                rotated.push(key.storage_key());
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
        for stored in &rotated {
            self.sync_replicas(stored);
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
                // Waits for its replicas' deletions, which have their own dates.
                KeyState::PendingReplicaDeletion => None,
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

    /// The names of the aliases that point at the key stored under `stored`.
    pub(super) fn aliases_of(&self, stored: &str) -> Vec<String> {
        let Some(key) = self.keys.get(stored) else {
            return Vec::new();
        };
        self.aliases
            .iter()
            .filter(|a| a.target_key_id == key.id && a.region == key.region)
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
        let stored = storage_key(&id, region);
        match self.keys.get(&stored) {
            Some(k) if k.account == account && k.region == region => Ok(stored),
            Some(k) if k.region == region && matches!(reference, KeyRef::Id(_)) => Err(KmsError::NotFound(format!(
                "Key '{}' does not exist in account {account}: a key in another account ({}) must be named by its full key ARN",
                key_arn(region, account, &id),
                k.account
            ))),
            _ => Err(KmsError::NotFound(format!("Key '{}' does not exist", key_arn(region, account, &id)))),
        }
    }
}
