//! Multi-Region keys: one `mrk-` key id in several regions of an account, a primary and
//! its replicas, sharing key material (a replica decrypts what the primary encrypted, and
//! the primary's rotations reach every replica) while each has its own state, policy,
//! aliases, tags and grants. ReplicateKey, UpdatePrimaryRegion, DescribeKey's
//! MultiRegionConfiguration, and AWS's deletion rule: a primary scheduled for deletion
//! waits (PendingReplicaDeletion) until its replicas are gone.

use super::*;

/// A multi-Region key's shared property: which region holds the primary.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(super) struct MultiRegion {
    pub(super) primary_region: String,
}

/// One key of a multi-Region set, as DescribeKey lists it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct MultiRegionKey {
    /// The key's ARN.
    pub arn: String,
    /// The key's region.
    pub region: String,
}

/// DescribeKey's MultiRegionConfiguration.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct MultiRegionConfiguration {
    /// `PRIMARY` or `REPLICA`.
    pub multi_region_key_type: &'static str,
    /// The primary key.
    pub primary_key: MultiRegionKey,
    /// Every replica.
    pub replica_keys: Vec<MultiRegionKey>,
}

/// What ReplicateKey returns.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The new replica.
    pub metadata: KeyMetadata,
    /// Its key policy.
    pub policy: String,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// ReplicateKey's parameters beyond the key and region.
#[derive(Clone, Debug, Default)]
pub struct ReplicateKeyRequest {
    /// The replica's policy; `None` gives AWS's default.
    pub policy: Option<String>,
    /// Accept a policy that does not let the caller change it again.
    pub bypass_policy_lockout_safety_check: bool,
    /// The replica's description (not shared: empty by default).
    pub description: String,
    /// The replica's tags (not shared).
    pub tags: Vec<Tag>,
}

impl KeyRecord {
    fn multi_region_key(&self) -> MultiRegionKey {
        MultiRegionKey {
            arn: self.arn(),
            region: self.region.clone(),
        }
    }

    pub(super) fn is_replica(&self) -> bool {
        self.multi_region
            .as_ref()
            .is_some_and(|m| m.primary_region != self.region)
    }

    /// Rotation is the primary's business: its rotations reach the replicas.
    pub(super) fn check_not_replica(&self, operation: &str) -> Result<(), KmsError> {
        if self.is_replica() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is a multi-Region replica key: call {operation} on its primary key",
                self.arn()
            )));
        }
        Ok(())
    }
}

impl State {
    /// Every key of `key`'s multi-Region set (`key` too), primary first.
    fn multi_region_set<'s>(&'s self, key: &KeyRecord) -> Vec<&'s KeyRecord> {
        let Some(multi) = &key.multi_region else {
            return Vec::new();
        };
        let mut set: Vec<&KeyRecord> = self
            .keys
            .values()
            .filter(|k| k.id == key.id && k.account == key.account)
            .collect();
        set.sort_by_key(|k| (k.region != multi.primary_region, k.region.clone()));
        set
    }

    /// The replicas of a primary key (none for other keys).
    pub(super) fn replica_count(&self, key: &KeyRecord) -> usize {
        if key.multi_region.is_none() || key.is_replica() {
            return 0;
        }
        self.multi_region_set(key).len().saturating_sub(1)
    }

    /// DescribeKey's answer: the key's metadata with its multi-Region configuration.
    pub(super) fn describe(&self, key: &KeyRecord) -> KeyMetadata {
        let mut metadata = key.metadata();
        let set = self.multi_region_set(key);
        if let Some((primary, replicas)) = set.split_first() {
            metadata.multi_region = true;
            metadata.multi_region_configuration = Some(MultiRegionConfiguration {
                multi_region_key_type: if key.is_replica() {
                    "REPLICA"
                } else {
                    "PRIMARY"
                },
                primary_key: primary.multi_region_key(),
                replica_keys: replicas.iter().map(|k| k.multi_region_key()).collect(),
            });
        }
        metadata
    }

    /// The replicas of the primary stored under `stored`, to change (none for a key that
    /// is not a multi-Region primary).
    fn replicas_mut(&mut self, stored: &str) -> Vec<&mut KeyRecord> {
        let Some(primary) = self.keys.get(stored) else {
            return Vec::new();
        };
        if primary.multi_region.is_none() || primary.is_replica() {
            return Vec::new();
        }
        let (id, account, region) = (
            primary.id.clone(),
            primary.account.clone(),
            primary.region.clone(),
        );
        self.keys
            .values_mut()
            .filter(|k| k.id == id && k.account == account && k.region != region)
            .collect()
    }

    /// Gives every replica of the primary stored under `stored` its material and
    /// rotations, after the primary rotated. Not imported material: AWS copies none of it,
    /// each replica imports it (see [`State::rotate_imported_replicas`]).
    pub(super) fn sync_replicas(&mut self, stored: &str) {
        let Some(primary) = self.keys.get(stored) else {
            return;
        };
        if primary.is_external() {
            return;
        }
        let materials = copy_materials(&primary.materials);
        let rotations = primary.rotations.clone();
        for replica in self.replicas_mut(stored) {
            replica.materials = copy_materials(&materials);
            replica.rotations = rotations.clone();
        }
    }

    /// The ARNs of the replicas of the primary stored under `stored` that have not imported
    /// material `material_id`.
    pub(super) fn replicas_lacking(&self, stored: &str, material_id: &str) -> Vec<String> {
        let Some(primary) = self.keys.get(stored) else {
            return Vec::new();
        };
        if primary.is_replica() {
            return Vec::new();
        }
        self.multi_region_set(primary)
            .iter()
            .skip(1)
            .filter(|replica| !replica.has_imported(material_id))
            .map(|replica| replica.arn())
            .collect()
    }

    /// The imported materials of `replica`'s primary: (id, version, waiting for rotation).
    /// `None` for a key that is not a replica.
    pub(super) fn primary_imports(&self, replica: &KeyRecord) -> Option<Vec<(String, u32, bool)>> {
        if !replica.is_replica() {
            return None;
        }
        let set = self.multi_region_set(replica);
        Some(
            set.first()
                .map(|p| p.imported_materials())
                .unwrap_or_default(),
        )
    }

    /// The replicas of the primary stored under `stored` drop material `material_id`,
    /// imported for a rotation that will not come.
    pub(super) fn forget_pending_in_replicas(&mut self, stored: &str, material_id: &str) {
        for replica in self.replicas_mut(stored) {
            replica.forget_pending(material_id);
        }
    }

    /// After the EXTERNAL primary stored under `stored` rotated on demand: each replica
    /// makes the same material, which it imported, current.
    pub(super) fn rotate_imported_replicas(
        &mut self,
        stored: &str,
        now: Timestamp,
    ) -> Result<(), KmsError> {
        for replica in self.replicas_mut(stored) {
            replica.rotate_imported(now)?;
        }
        Ok(())
    }

    /// Primaries waiting for their replicas' deletion whose replicas are gone begin
    /// their own waiting period; how many did.
    pub(super) fn start_primary_deletions(&mut self, now: Timestamp) -> usize {
        let ready: Vec<String> = self
            .keys
            .values()
            .filter(|k| k.state == KeyState::PendingReplicaDeletion && self.replica_count(k) == 0)
            .map(|k| k.storage_key())
            .collect();
        for stored in &ready {
            if let Some(key) = self.keys.get_mut(stored) {
                let window = key
                    .pending_window_days
                    .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(now.saturating_add(days(window.into())));
            }
        }
        ready.len()
    }
}

fn copy_materials(materials: &[Material]) -> Vec<Material> {
    materials
        .iter()
        .map(|m| Material {
            version: m.version,
            created: m.created,
            key: SecretKey::from(Zeroizing::new(*m.key.expose())),
        })
        .collect()
}

impl LocalKmsClient {
    /// ReplicateKey: a replica of the multi-Region primary key `key_id` in `replica_region`
    /// of the same account, sharing its id, spec, usage and material.
    pub fn replicate_key(
        &self,
        key_id: &str,
        replica_region: &str,
        request: ReplicateKeyRequest,
    ) -> Result<Replica, KmsError> {
        keyref::validate_region(replica_region)?;
        check_description(&request.description)?;
        let policy =
            self.initial_policy(request.policy, request.bypass_policy_lockout_safety_check)?;
        let tags = tags::initial_tags(&request.tags)?;
        self.write(|state, now| {
            let primary =
                state.authorized(&self.caller, key_id, MANAGE, "kms:ReplicateKey", None)?;
            if primary.multi_region.is_none() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} is not a multi-Region key",
                    primary.arn()
                )));
            }
            if primary.is_replica() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} is a replica key: replicate its primary key",
                    primary.arn()
                )));
            }
            primary.check_not_pending_deletion()?;
            if primary.state == KeyState::Disabled {
                return Err(KmsError::Disabled(format!(
                    "{} is disabled.",
                    primary.arn()
                )));
            }
            if replica_region == primary.region {
                return Err(KmsError::Validation(format!(
                    "ReplicaRegion {replica_region} is the primary key's own region"
                )));
            }
            let stored = storage_key(&primary.id, replica_region);
            if state.keys.contains_key(&stored) {
                return Err(KmsError::AlreadyExists(format!(
                    "{} already has a replica in {replica_region}",
                    primary.arn()
                )));
            }
            let imported = primary.is_external();
            // A replica of imported material is PendingImport: the material is imported
            // into it again.
            let replica = KeyRecord {
                description: request.description.clone(),
                policy: policy.clone(),
                materials: if imported {
                    Vec::new()
                } else {
                    copy_materials(&primary.materials)
                },
                rotations: if imported {
                    Vec::new()
                } else {
                    primary.rotations.clone()
                },
                tags: tags.clone(),
                secret: match (&primary.secret, imported) {
                    (Some(secret), false) => {
                        Some(SecretBytes::new(Zeroizing::new(secret.expose().to_vec())))
                    }
                    _ => None,
                },
                multi_region: primary.multi_region.clone(),
                ..KeyRecord::new(
                    primary.id.clone(),
                    primary.account.clone(),
                    replica_region.to_string(),
                    primary.spec,
                    primary.usage,
                    primary.origin,
                    now,
                )
            };
            state.keys.insert(stored.clone(), replica);
            let replica = state
                .keys
                .get(&stored)
                .ok_or_else(|| KmsError::Internal("the replica vanished".into()))?;
            Ok(Replica {
                metadata: state.describe(replica),
                policy: policy.clone(),
                tags: tags.clone(),
            })
        })
    }

    /// UpdatePrimaryRegion: the replica in `primary_region` becomes the primary of the
    /// multi-Region key whose primary `key_id` names; the old primary becomes a replica.
    pub fn update_primary_region(
        &self,
        key_id: &str,
        primary_region: &str,
    ) -> Result<(), KmsError> {
        keyref::validate_region(primary_region)?;
        self.write(|state, _| {
            let primary = state.authorized(
                &self.caller,
                key_id,
                MANAGE,
                "kms:UpdatePrimaryRegion",
                None,
            )?;
            if primary.multi_region.is_none() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} is not a multi-Region key",
                    primary.arn()
                )));
            }
            primary.check_not_replica("UpdatePrimaryRegion")?;
            primary.check_not_pending_deletion()?;
            let (id, account) = (primary.id.clone(), primary.account.clone());
            if primary.region == primary_region {
                return Ok(());
            }
            let target = state
                .keys
                .get(&storage_key(&id, primary_region))
                .ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "{} has no replica in {primary_region}",
                        primary.arn()
                    ))
                })?;
            target.check_not_pending_deletion()?;
            // Rotation is a shared property, run by whichever key is primary.
            let rotation = primary.auto_rotation;
            for key in state
                .keys
                .values_mut()
                .filter(|k| k.id == id && k.account == account)
            {
                key.multi_region = Some(MultiRegion {
                    primary_region: primary_region.to_string(),
                });
                key.auto_rotation = if key.region == primary_region {
                    rotation
                } else {
                    None
                };
            }
            Ok(())
        })
    }
}
