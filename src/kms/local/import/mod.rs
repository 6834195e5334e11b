//! Imported key material (bring your own key): keys of origin EXTERNAL, made without
//! material (PendingImport); GetParametersForImport's RSA wrapping keys and import tokens,
//! valid 24 hours on the emulator clock; ImportKeyMaterial, of the key's first material,
//! of the same material again, or (symmetric keys) of new material that RotateKeyOnDemand
//! then makes current; expirations the clock enforces; DeleteImportedKeyMaterial. Without
//! all its imported material a key is PendingImport.

mod operations;

use super::*;

/// Where a key's material comes from, as AWS names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// Made by the KMS.
    #[default]
    #[serde(rename = "AWS_KMS")]
    AwsKms,
    /// Imported by its owner.
    #[serde(rename = "EXTERNAL")]
    External,
}

impl Origin {
    /// The name AWS uses.
    pub fn aws_name(self) -> &'static str {
        match self {
            Origin::AwsKms => "AWS_KMS",
            Origin::External => "EXTERNAL",
        }
    }

    /// The origin AWS calls `name`: AWS_CLOUDHSM and EXTERNAL_KEY_STORE (custom key
    /// stores) are not emulated.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        match name {
            "AWS_KMS" => Ok(Origin::AwsKms),
            "EXTERNAL" => Ok(Origin::External),
            "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE" => Err(KmsError::UnsupportedOperation(format!(
                "Origin {name} needs a custom key store, which LocalKms does not emulate"
            ))),
            other => Err(validation::not_in_enum(
                "origin",
                other,
                &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
            )),
        }
    }

    pub(super) fn is_aws_kms(&self) -> bool {
        *self == Origin::AwsKms
    }
}

/// Whether ImportKeyMaterial brings the key new material or material it had before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportType {
    /// `NEW_KEY_MATERIAL`: the key's first, or (symmetric keys) the next for rotation.
    NewKeyMaterial,
    /// `EXISTING_KEY_MATERIAL`: material imported before (deleted or expired since).
    ExistingKeyMaterial,
}

impl ImportType {
    /// The import type AWS calls `name`.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        match name {
            "NEW_KEY_MATERIAL" => Ok(ImportType::NewKeyMaterial),
            "EXISTING_KEY_MATERIAL" => Ok(ImportType::ExistingKeyMaterial),
            other => Err(validation::not_in_enum(
                "importType",
                other,
                &["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"],
            )),
        }
    }
}

/// What GetParametersForImport returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportParameters {
    /// The key's ARN.
    pub key_arn: String,
    /// The token ImportKeyMaterial must be given with material wrapped under `public_key`.
    pub import_token: Vec<u8>,
    /// The RSA wrapping key, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// When the token and wrapping key stop being accepted: 24 hours on.
    pub parameters_valid_to: Timestamp,
}

/// ImportKeyMaterial's parameters.
#[derive(Clone, Debug)]
pub struct ImportKeyMaterialRequest {
    /// From GetParametersForImport.
    pub import_token: Vec<u8>,
    /// The material, wrapped with the token's wrapping key and algorithm.
    pub encrypted_key_material: Vec<u8>,
    /// When the material expires (KEY_MATERIAL_EXPIRES; at most 365 days on); `None` for
    /// KEY_MATERIAL_DOES_NOT_EXPIRE.
    pub valid_to: Option<Timestamp>,
    /// New or existing material; `None` takes AWS's default (new for the first import).
    pub import_type: Option<ImportType>,
    /// The id the material must have, when re-importing.
    pub key_material_id: Option<String>,
    /// Free text kept with the material.
    pub description: Option<String>,
}

/// How long GetParametersForImport's answer is valid.
const PARAMETERS_VALID_HOURS: u64 = 24;
/// The furthest an imported material's ValidTo may be.
const MAX_VALID_DAYS: u32 = 365;
/// Parameter sets kept per key (the oldest is dropped past this).
const MAX_PARAMETERS: usize = 10;

/// An EXTERNAL key's import state: parameters handed out and every material imported.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct Imports {
    parameters: Vec<StoredParameters>,
    materials: Vec<ImportedMaterial>,
}

#[derive(Serialize, Deserialize)]
struct StoredParameters {
    /// The import token, hex.
    token: String,
    wrapping_spec: KeySpec,
    wrapping_key: SecretBytes,
    algorithm: WrappingAlgorithm,
    valid_to: Timestamp,
}

/// One material imported into a key. Its bytes are the key's own (`materials` or
/// `secret`) while imported, and gone once deleted or expired.
#[derive(Serialize, Deserialize)]
pub(super) struct ImportedMaterial {
    /// AWS's KeyMaterialId: derived from key and material.
    id: String,
    /// The symmetric material version it is (1 for other specs).
    version: u32,
    /// When it expires; `None`: never.
    valid_to: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// New material RotateKeyOnDemand has not made current yet, with its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_rotation: Option<SecretBytes>,
}

impl ImportedMaterial {
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

impl KeyRecord {
    pub(super) fn is_external(&self) -> bool {
        self.origin == Origin::External
    }

    /// Whether material `id` was imported into this key (current, past or waiting).
    pub(super) fn has_imported(&self, id: &str) -> bool {
        self.imports
            .as_ref()
            .is_some_and(|i| i.materials.iter().any(|m| m.id == id))
    }

    /// Every material imported: (id, version, waiting for rotation).
    pub(super) fn imported_materials(&self) -> Vec<(String, u32, bool)> {
        self.imports.as_ref().map_or_else(Vec::new, |i| {
            i.materials
                .iter()
                .map(|m| (m.id.clone(), m.version, m.pending_rotation.is_some()))
                .collect()
        })
    }

    /// Drops material `id` if it waits for a rotation.
    pub(super) fn forget_pending(&mut self, id: &str) {
        if let Some(imports) = self.imports.as_mut() {
            imports
                .materials
                .retain(|m| m.id != id || m.pending_rotation.is_none());
        }
    }

    /// The id of the material waiting for RotateKeyOnDemand, if one is.
    pub(super) fn pending_material_id(&self) -> Option<String> {
        self.imports.as_ref().and_then(|i| {
            i.materials
                .iter()
                .find(|m| m.pending_rotation.is_some())
                .map(|m| m.id.clone())
        })
    }

    /// The operations on imported material need an EXTERNAL key, and the rotation
    /// schedule operations one that is not, in AWS's words.
    pub(super) fn check_origin(&self, external: bool) -> Result<(), KmsError> {
        if self.is_external() == external {
            return Ok(());
        }
        Err(KmsError::UnsupportedOperation(format!(
            "{} origin is {} which is not valid for this operation.",
            self.arn(),
            self.origin.aws_name()
        )))
    }

    /// The imported material of material version `version`, once current or past.
    pub(super) fn imported(&self, version: u32) -> Option<&ImportedMaterial> {
        self.imports
            .as_ref()?
            .materials
            .iter()
            .find(|m| m.version == version && m.pending_rotation.is_none())
    }

    /// Whether the bytes of imported material `version` are in the key.
    fn holds(&self, version: u32) -> bool {
        match self.spec {
            KeySpec::SymmetricDefault => self.materials.iter().any(|m| m.version == version),
            _ => self.secret.is_some(),
        }
    }

    /// True while an EXTERNAL key lacks material: none imported yet, or some deleted or
    /// expired.
    pub(super) fn lacks_material(&self) -> bool {
        let Some(imports) = &self.imports else {
            return self.is_external();
        };
        let mut imported = imports
            .materials
            .iter()
            .filter(|m| m.pending_rotation.is_none())
            .peekable();
        imported.peek().is_none() || imported.any(|m| !self.holds(m.version))
    }

    /// DescribeKey's ExpirationModel and ValidTo, from the current imported material.
    pub(super) fn expiration(&self) -> (Option<&'static str>, Option<Timestamp>) {
        let current = self.materials.last().map_or(1, |m| m.version);
        match self.imported(current) {
            Some(m) if m.valid_to.is_some() => (Some("KEY_MATERIAL_EXPIRES"), m.valid_to),
            Some(_) => (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), None),
            None => (None, None),
        }
    }

    /// Removes the bytes of imported material `version`.
    fn remove_material(&mut self, version: u32) {
        match self.spec {
            KeySpec::SymmetricDefault => self.materials.retain(|m| m.version != version),
            _ => self.secret = None,
        }
        if !matches!(
            self.state,
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
        ) {
            self.state = KeyState::PendingImport;
        }
    }

    /// Deletes imported material whose ValidTo has passed; whether any was.
    pub(super) fn expire_imported(&mut self, now: Timestamp) -> bool {
        let due: Vec<u32> = match &self.imports {
            Some(imports) => imports
                .materials
                .iter()
                .filter(|m| m.pending_rotation.is_none() && m.valid_to.is_some_and(|t| t <= now))
                .map(|m| m.version)
                .filter(|v| self.holds(*v))
                .collect(),
            None => return false,
        };
        for version in &due {
            self.remove_material(*version);
        }
        !due.is_empty()
    }

    /// When imported material next expires.
    pub(super) fn next_expiry(&self) -> Option<Timestamp> {
        self.imports
            .as_ref()?
            .materials
            .iter()
            .filter(|m| m.pending_rotation.is_none() && self.holds(m.version))
            .filter_map(|m| m.valid_to)
            .min()
    }

    /// RotateKeyOnDemand of an EXTERNAL key: the material imported for rotation becomes
    /// current.
    pub(super) fn rotate_imported(&mut self, now: Timestamp) -> Result<(), KmsError> {
        let arn = self.arn();
        let pending = self
            .imports
            .as_mut()
            .and_then(|i| i.materials.iter_mut().find(|m| m.pending_rotation.is_some()))
            .ok_or_else(|| {
                KmsError::UnsupportedOperation(format!(
                    "{arn} has imported key material: import new material (ImportType NEW_KEY_MATERIAL) before rotating it on demand"
                ))
            })?;
        let bytes = pending.pending_rotation.take();
        let version = pending.version;
        let key = bytes
            .map(|b| SecretKey::from_slice(b.expose()))
            .transpose()
            .map_err(|e| KmsError::Internal(e.to_string()))?
            .ok_or_else(|| KmsError::Internal("pending material without bytes".into()))?;
        self.materials.push(Material {
            version,
            created: now,
            key,
        });
        self.rotations.push(StoredRotation {
            date: now,
            kind: RotationKind::OnDemand,
        });
        Ok(())
    }

    /// ListKeyRotations of an EXTERNAL key: every material imported, its import state,
    /// expiry and whether it is current, past, or waiting for rotation.
    pub(super) fn imported_rotations(&self) -> Vec<RotationRecord> {
        let Some(imports) = &self.imports else {
            return Vec::new();
        };
        let current = self.materials.last().map(|m| m.version);
        let mut rotations = self.rotations.iter();
        imports
            .materials
            .iter()
            .map(|m| {
                let rotated = m.version > 1 && m.pending_rotation.is_none();
                let rotation = if rotated { rotations.next() } else { None };
                RotationRecord {
                    key_id: self.arn(),
                    rotation_date: rotation.map(|r| r.date),
                    rotation_type: rotation.map(|r| r.kind),
                    key_material_id: m.id.clone(),
                    key_material_state: if m.pending_rotation.is_some() {
                        "PENDING_ROTATION"
                    } else if Some(m.version) == current || self.spec != KeySpec::SymmetricDefault {
                        "CURRENT"
                    } else {
                        "NON_CURRENT"
                    },
                    import_state: Some(if m.pending_rotation.is_some() || self.holds(m.version) {
                        "IMPORTED"
                    } else {
                        "PENDING_IMPORT"
                    }),
                    expiration_model: Some(if m.valid_to.is_some() {
                        "KEY_MATERIAL_EXPIRES"
                    } else {
                        "KEY_MATERIAL_DOES_NOT_EXPIRE"
                    }),
                    valid_to: m.valid_to,
                    key_material_description: m.description.clone(),
                }
            })
            .collect()
    }
}
