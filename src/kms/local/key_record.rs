//! One key as the emulated HSM keeps it: its record (spec, usage, state, policy, material
//! versions, rotations, tags, grants, imports, multi-Region settings) and the rules it
//! applies to a call (state, usage, policy and grants), its metadata and its sealing.

use super::*;

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
    /// A multi-Region key's shared settings (which region holds the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) multi_region: Option<MultiRegion>,
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

/// Where the state keeps a key: under its id, and a multi-Region key (whose replicas
/// share the id) under its id and region.
pub(super) fn storage_key(id: &str, region: &str) -> String {
    if keyref::is_multi_region_id(id) {
        format!("{id}@{region}")
    } else {
        id.to_string()
    }
}

impl KeyRecord {
    /// A new key of `account` in `region`: Enabled, or PendingImport when its material is
    /// to be imported (`origin`); no description, policy, tags, material, rotations,
    /// grants or usage yet, which callers add.
    pub(super) fn new(
        id: String,
        account: String,
        region: String,
        spec: KeySpec,
        usage: KeyUsage,
        origin: Origin,
        created: Timestamp,
    ) -> Self {
        KeyRecord {
            id,
            account,
            region,
            description: String::new(),
            spec,
            usage,
            state: if origin == Origin::External {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
            created,
            deletion_date: None,
            pending_window_days: None,
            policy: String::new(),
            materials: Vec::new(),
            auto_rotation: None,
            rotations: Vec::new(),
            on_demand_rotations: 0,
            tags: Vec::new(),
            grants: Vec::new(),
            last_usage: None,
            secret: None,
            origin,
            imports: None,
            multi_region: None,
        }
    }

    pub(super) fn storage_key(&self) -> String {
        storage_key(&self.id, &self.region)
    }

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
        match self.state {
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn()
            ))),
            KeyState::PendingReplicaDeletion => Err(KmsError::InvalidState(format!(
                "{} is pending replica deletion.",
                self.arn()
            ))),
            _ => Ok(()),
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

    /// AWS's KeyMaterialId for material `version`: 64 hex digits. Imported material has
    /// its own (derived from key and material); other material the key id's 32 digits and
    /// the version's, so that it is stable and says which version it is.
    pub(super) fn material_id(&self, version: u32) -> String {
        if let Some(imported) = self.imported(version) {
            return imported.id().to_string();
        }
        let id: String = self
            .id
            .trim_start_matches("mrk-")
            .chars()
            .filter(|c| *c != '-')
            .collect();
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
            encryption_algorithms: strings(algorithms.encryption),
            signing_algorithms: strings(algorithms.signing),
            mac_algorithms: strings(algorithms.mac),
            key_agreement_algorithms: strings(algorithms.key_agreement),
            encapsulation_algorithms: strings(algorithms.encapsulation),
            origin: self.origin.aws_name(),
            expiration_model,
            valid_to,
            key_manager: "CUSTOMER",
            multi_region: self.multi_region.is_some(),
            multi_region_configuration: None,
            pending_deletion_window_in_days: self.pending_window_days,
            current_key_material_id: self.materials.last().map(|m| self.material_id(m.version)),
        }
    }

    /// The key pair or HMAC key, for a key that is not SYMMETRIC_DEFAULT and has one.
    pub(super) fn key_material_if_any(&self) -> Option<KeyMaterial<'_>> {
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
            .ok_or_else(|| KmsError::Internal(format!("key id {} is not a key id", self.id)))?;
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

/// AWS's names of algorithms, as DescribeKey lists them.
fn strings<T: fmt::Display>(algorithms: &[T]) -> Vec<String> {
    algorithms.iter().map(|a| a.to_string()).collect()
}
