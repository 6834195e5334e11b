//! A caller's view of LocalKms: every operation, checked against the key's state and
//! policy as that caller.

use super::*;

/// Calls LocalKms as one caller. Every AWS KMS operation LocalKms emulates is a method.
#[derive(Clone)]
pub struct LocalKmsClient {
    pub(super) kms: Arc<LocalKms>,
    pub(super) caller: Caller,
    /// Every call checks everything and changes nothing (AWS's `DryRun`).
    pub(super) dry_run: bool,
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

impl LocalKmsClient {
    /// Who this client calls as.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The emulated service behind this client.
    pub fn service(&self) -> &Arc<LocalKms> {
        &self.kms
    }

    /// The same caller, with every call checked as usual and nothing changed: AWS's
    /// `DryRun`. A call that would succeed returns what it would have returned.
    pub fn dry_run(&self) -> LocalKmsClient {
        LocalKmsClient {
            dry_run: true,
            ..self.clone()
        }
    }

    /// A change to the state, or its dry run.
    pub(super) fn write<R>(
        &self,
        f: impl FnOnce(&mut State, Timestamp) -> Result<R, KmsError>,
    ) -> Result<R, KmsError> {
        if self.dry_run {
            self.kms.dry_write(f)
        } else {
            self.kms.write(f)
        }
    }

    /// CreateKey: a new key in the caller's account and region, Enabled.
    pub fn create_key(&self, request: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        check_description(&request.description)?;
        let spec = request.key_spec;
        let usage = match request.key_usage {
            Some(usage) => usage,
            None if spec == KeySpec::SymmetricDefault => KeyUsage::EncryptDecrypt,
            None => {
                return Err(KmsError::Validation(format!(
                    "KeyUsage is required for KeySpec {spec}: one of {}",
                    crate::kms::key_spec::names(spec.usages())
                )))
            }
        };
        spec.check_usage(usage)?;
        let policy =
            self.initial_policy(request.policy, request.bypass_policy_lockout_safety_check)?;
        let tags = tags::initial_tags(&request.tags)?;
        // Made before the state is locked: an RSA pair takes a while.
        let external = request.origin == Origin::External;
        let secret = match spec {
            _ if external => None,
            KeySpec::SymmetricDefault => None,
            _ => Some(key_material::generate(spec, |b| self.kms.fill(b))?),
        };
        let caller = &self.caller;
        self.write(|state, now| {
            let id = if request.multi_region {
                self.kms.new_multi_region_id()
            } else {
                self.kms.new_key_id()
            };
            let mut key = KeyRecord {
                description: request.description,
                policy,
                tags,
                secret,
                multi_region: request.multi_region.then(|| MultiRegion {
                    primary_region: caller.region().to_string(),
                }),
                ..KeyRecord::new(
                    id,
                    caller.account().to_string(),
                    caller.region().to_string(),
                    spec,
                    usage,
                    request.origin,
                    now,
                )
            };
            if key.spec == KeySpec::SymmetricDefault && !external {
                key.materials.push(Material {
                    version: 1,
                    created: now,
                    key: self.kms.new_secret_key(),
                });
            }
            let stored = key.storage_key();
            state.keys.insert(stored.clone(), key);
            let key = state
                .keys
                .get(&stored)
                .ok_or_else(|| KmsError::Internal("the new key vanished".into()))?;
            Ok(state.describe(key))
        })
    }

    /// A new key's policy: the one given (refused if it would lock the caller out, unless
    /// `bypass_lockout_check`), or AWS's default for the caller's account.
    pub(super) fn initial_policy(
        &self,
        policy: Option<String>,
        bypass_lockout_check: bool,
    ) -> Result<String, KmsError> {
        match policy {
            Some(doc) => {
                let parsed = KeyPolicy::parse(&doc)?;
                if !bypass_lockout_check {
                    check_lockout(&parsed, &self.caller, None)?;
                }
                Ok(doc)
            }
            None => Ok(KeyPolicy::default_document(self.caller.account())),
        }
    }

    /// DescribeKey: the key's metadata, in any state.
    pub fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.kms.read(|state, _| {
            let key = state.authorized(&self.caller, key_id, USE, "kms:DescribeKey", None)?;
            Ok(state.describe(key))
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
        self.write(|state, now| {
            let key = state.authorized_mut(&self.caller, key_id, MANAGE, "kms:EnableKey", None)?;
            key.check_not_pending_deletion()?;
            key.check_not_pending_import()?;
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
        self.write(|state, _| {
            let key = state.authorized_mut(&self.caller, key_id, MANAGE, "kms:DisableKey", None)?;
            key.check_not_pending_deletion()?;
            key.check_not_pending_import()?;
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
        validation::range("pendingWindowInDays", window.into(), 1, 365)?;
        if !PENDING_WINDOW_DAYS.contains(&window) {
            return Err(KmsError::Validation(format!(
                "PendingWindowInDays must be between {} and {} days, not {window}",
                PENDING_WINDOW_DAYS.start(),
                PENDING_WINDOW_DAYS.end()
            )));
        }
        self.write(|state, now| {
            let action = "kms:ScheduleKeyDeletion";
            let replicas = state.replica_count(state.authorized(
                &self.caller,
                key_id,
                MANAGE,
                action,
                None,
            )?);
            let key = state.authorized_mut(&self.caller, key_id, MANAGE, action, None)?;
            key.check_not_pending_deletion()?;
            let date = now.saturating_add(days(window.into()));
            key.pending_window_days = Some(window);
            if replicas > 0 {
                // AWS's rule: the primary's waiting period begins when its replicas are
                // deleted; until then it is PendingReplicaDeletion, with no date.
                key.state = KeyState::PendingReplicaDeletion;
                key.deletion_date = None;
            } else {
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(date);
            }
            Ok(key.deletion_date.unwrap_or(date))
        })
    }

    /// Leaves the key Disabled, as AWS does: enable it to use it again.
    pub fn cancel_key_deletion(&self, key_id: &str) -> Result<(), KmsError> {
        self.write(|state, _| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:CancelKeyDeletion",
                None,
            )?;
            if !matches!(
                key.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            ) {
                return Err(KmsError::InvalidState(format!(
                    "{} is not pending deletion.",
                    key.arn()
                )));
            }
            key.state = if key.lacks_material() {
                KeyState::PendingImport
            } else {
                KeyState::Disabled
            };
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
        check_rotation_period(period)?;
        self.write(|state, now| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:EnableKeyRotation",
                None,
            )?;
            key.check_symmetric("EnableKeyRotation")?;
            key.check_not_replica("EnableKeyRotation")?;
            key.check_origin(false)?;
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
        self.write(|state, _| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:DisableKeyRotation",
                None,
            )?;
            key.check_symmetric("DisableKeyRotation")?;
            key.check_origin(false)?;
            key.check_usable_for_encryption()?;
            key.auto_rotation = None;
            Ok(())
        })
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(&self, key_id: &str) -> Result<RotationStatus, KmsError> {
        self.kms.read(|state, _| {
            let key = state.authorized(
                &self.caller,
                key_id,
                MANAGE,
                "kms:GetKeyRotationStatus",
                None,
            )?;
            key.check_symmetric("GetKeyRotationStatus")?;
            key.check_origin(false)?;
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
        self.write(|state, now| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:RotateKeyOnDemand",
                None,
            )?;
            key.check_symmetric("RotateKeyOnDemand")?;
            key.check_not_replica("RotateKeyOnDemand")?;
            key.check_usable_for_encryption()?;
            if key.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
                return Err(KmsError::LimitExceeded(format!(
                    "{} has had the maximum of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
                    key.arn()
                )));
            }
            let (id, arn, stored) = (key.id.clone(), key.arn(), key.storage_key());
            if !key.is_external() {
                key.add_material(now, RotationKind::OnDemand, self.kms.new_secret_key());
                key.on_demand_rotations += 1;
                state.sync_replicas(&stored);
                return Ok(id);
            }
            // Imported material: a multi-Region key's replicas must each hold the new
            // material before the set rotates to it, together.
            if let Some(material) = key.pending_material_id() {
                let lacking = state.replicas_lacking(&stored, &material);
                if !lacking.is_empty() {
                    return Err(KmsError::InvalidState(format!(
                        "the new key material {material} of {arn} is PENDING_MULTI_REGION_IMPORT_AND_ROTATION: import it into the replica keys {} (ImportType EXISTING_KEY_MATERIAL) before rotating",
                        lacking.join(", ")
                    )));
                }
            }
            let key = state
                .keys
                .get_mut(&stored)
                .ok_or_else(|| KmsError::Internal("the key vanished".into()))?;
            key.rotate_imported(now)?;
            key.on_demand_rotations += 1;
            state.rotate_imported_replicas(&stored, now)?;
            Ok(id)
        })
    }

    /// ListKeyRotations: every material rotation of the key, oldest first (AWS's default,
    /// `IncludeKeyMaterial` ROTATIONS_ONLY).
    pub fn list_key_rotations(&self, key_id: &str) -> Result<Vec<RotationRecord>, KmsError> {
        self.key_materials(key_id, false)
    }

    /// ListKeyRotations with `IncludeKeyMaterial` ALL_KEY_MATERIAL: the first material
    /// (and any a seed file gave) before the rotations.
    pub fn list_key_materials(&self, key_id: &str) -> Result<Vec<RotationRecord>, KmsError> {
        self.key_materials(key_id, true)
    }

    fn key_materials(&self, key_id: &str, all: bool) -> Result<Vec<RotationRecord>, KmsError> {
        self.kms.read(|state, _| {
            let key =
                state.authorized(&self.caller, key_id, MANAGE, "kms:ListKeyRotations", None)?;
            key.check_symmetric("ListKeyRotations")?;
            if key.is_external() {
                let mut all_imported = key.imported_rotations();
                all_imported.retain(|r| all || r.rotation_date.is_some());
                // A multi-Region primary's new material waits for its replicas to import it.
                let stored = key.storage_key();
                for record in &mut all_imported {
                    if record.key_material_state == "PENDING_ROTATION"
                        && !state
                            .replicas_lacking(&stored, &record.key_material_id)
                            .is_empty()
                    {
                        record.key_material_state = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION";
                    }
                }
                return Ok(all_imported);
            }
            let current = key.current_material()?.version;
            // Materials a seed file gave have no rotation: the rotations made the last ones.
            let unrotated = key.materials.len().saturating_sub(key.rotations.len());
            let rotations =
                std::iter::repeat_n(None, unrotated).chain(key.rotations.iter().map(Some));
            Ok(key
                .materials
                .iter()
                .zip(rotations)
                .filter(|(_, rotation)| all || rotation.is_some())
                .map(|(material, rotation)| RotationRecord {
                    key_id: key.arn(),
                    rotation_date: rotation.map(|r| r.date),
                    rotation_type: rotation.map(|r| r.kind),
                    key_material_id: key.material_id(material.version),
                    key_material_state: if material.version == current {
                        "CURRENT"
                    } else {
                        "NON_CURRENT"
                    },
                    import_state: None,
                    expiration_model: None,
                    valid_to: None,
                    key_material_description: None,
                })
                .collect())
        })
    }

    /// Replaces the key policy, kept as given (GetKeyPolicy returns it unchanged). As AWS
    /// does, refuses a policy that would lock the caller out of changing it again.
    pub fn put_key_policy(&self, key_id: &str, policy: &str) -> Result<(), KmsError> {
        self.put_key_policy_with(key_id, policy, false)
    }

    /// PutKeyPolicy with AWS's `BypassPolicyLockoutSafetyCheck`: when `bypass_lockout_check`,
    /// a policy that locks the caller out is accepted, as AWS accepts it.
    pub fn put_key_policy_with(
        &self,
        key_id: &str,
        policy: &str,
        bypass_lockout_check: bool,
    ) -> Result<(), KmsError> {
        let parsed = KeyPolicy::parse(policy)?;
        self.write(|state, _| {
            let key =
                state.authorized_mut(&self.caller, key_id, MANAGE, "kms:PutKeyPolicy", None)?;
            if !bypass_lockout_check {
                check_lockout(&parsed, &self.caller, Some(&key.arn()))?;
            }
            key.policy = policy.to_string();
            Ok(())
        })
    }

    /// GetKeyPolicy: the policy document.
    pub fn get_key_policy(&self, key_id: &str) -> Result<String, KmsError> {
        self.kms.read(|state, _| {
            let key = state.authorized(&self.caller, key_id, MANAGE, "kms:GetKeyPolicy", None)?;
            Ok(key.policy.clone())
        })
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(&self, key_id: &str, description: &str) -> Result<(), KmsError> {
        check_description(description)?;
        self.write(|state, _| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:UpdateKeyDescription",
                None,
            )?;
            key.check_not_pending_deletion()?;
            key.description = description.to_string();
            Ok(())
        })
    }

    /// ListKeyPolicies: a key has one policy, named `default`.
    pub fn list_key_policies(&self, key_id: &str) -> Result<Vec<String>, KmsError> {
        self.kms.read(|state, _| {
            state.authorized(&self.caller, key_id, MANAGE, "kms:ListKeyPolicies", None)?;
            Ok(vec![crate::kms::responses::DEFAULT_POLICY_NAME.to_string()])
        })
    }
}

/// RotationPeriodInDays, as AWS checks it.
pub(super) fn check_rotation_period(period: u32) -> Result<(), KmsError> {
    validation::range(
        "rotationPeriodInDays",
        period.into(),
        (*ROTATION_PERIOD_DAYS.start()).into(),
        (*ROTATION_PERIOD_DAYS.end()).into(),
    )
}

pub(super) fn check_description(description: &str) -> Result<(), KmsError> {
    validation::length(
        "description",
        Shown::Value(description),
        description.chars().count(),
        0,
        MAX_DESCRIPTION,
    )
}

fn check_lockout(
    policy: &KeyPolicy,
    caller: &Caller,
    key_arn: Option<&str>,
) -> Result<(), KmsError> {
    if policy.allows(caller, "kms:PutKeyPolicy", key_arn) {
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
