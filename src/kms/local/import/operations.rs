//! GetParametersForImport, ImportKeyMaterial and DeleteImportedKeyMaterial as one
//! caller: wrapping keys and tokens handed out, material unwrapped, checked and put in
//! its place (first, again, or for rotation).

use super::super::key_material::{imported_material_id, stored_form, unwrap_imported};
use super::*;

impl LocalKmsClient {
    /// GetParametersForImport: an RSA wrapping key of `wrapping_spec` for `algorithm` and
    /// its import token, valid for 24 hours, for an EXTERNAL key of the caller's account.
    pub fn get_parameters_for_import(
        &self,
        key_id: &str,
        algorithm: WrappingAlgorithm,
        wrapping_spec: KeySpec,
    ) -> Result<ImportParameters, KmsError> {
        let action = "kms:GetParametersForImport";
        let check = |key: &KeyRecord| -> Result<(), KmsError> {
            key.check_origin(true)?;
            key.check_not_pending_deletion()
        };
        self.kms.read(|state, _| {
            check(state.authorized(&self.caller, key_id, MANAGE, action, None)?)
        })?;
        // Made before the state is locked: an RSA pair takes a while.
        let wrapping_key = key_material::generate(wrapping_spec, |_| {})?;
        let public_key = KeyMaterial {
            spec: wrapping_spec,
            secret: wrapping_key.expose(),
        }
        .public_key()?;
        let mut token = [0u8; 32];
        self.kms.fill(&mut token);
        self.write(|state, now| {
            let key = state.authorized_mut(&self.caller, key_id, MANAGE, action, None)?;
            check(key)?;
            let imports = key.imports.get_or_insert_with(Imports::default);
            imports.parameters.retain(|p| p.valid_to > now);
            if imports.parameters.len() >= MAX_PARAMETERS {
                imports.parameters.remove(0);
            }
            let valid_to = now.saturating_add(std::time::Duration::from_secs(
                PARAMETERS_VALID_HOURS * 3600,
            ));
            imports.parameters.push(StoredParameters {
                token: crate::kms::hex::encode(&token),
                wrapping_spec,
                wrapping_key,
                algorithm,
                valid_to,
            });
            Ok(ImportParameters {
                key_arn: key.arn(),
                import_token: token.to_vec(),
                public_key,
                parameters_valid_to: valid_to,
            })
        })
    }

    /// ImportKeyMaterial: the key's material, unwrapped with the token's wrapping key.
    /// The key's first material, or material it had (and lost to deletion or expiry);
    /// for a symmetric key also new material, which RotateKeyOnDemand makes current.
    /// Returns the key's ARN and the material's KeyMaterialId.
    pub fn import_key_material(
        &self,
        key_id: &str,
        request: ImportKeyMaterialRequest,
    ) -> Result<(String, String), KmsError> {
        if let Some(description) = &request.description {
            validation::length(
                "keyMaterialDescription",
                Shown::Value(description),
                description.chars().count(),
                0,
                256,
            )?;
        }
        self.write(|state, now| {
            let key =
                state.authorized(&self.caller, key_id, MANAGE, "kms:ImportKeyMaterial", None)?;
            key.check_origin(true)?;
            key.check_not_pending_deletion()?;
            if let Some(valid_to) = request.valid_to {
                let latest = now.saturating_add(days(MAX_VALID_DAYS.into()));
                if valid_to <= now || valid_to > latest {
                    return Err(KmsError::Validation(format!(
                        "ValidTo must be in the future and at most {MAX_VALID_DAYS} days from now"
                    )));
                }
            }
            let material = unwrap_with_token(key, &request.import_token, &request.encrypted_key_material, now)?;
            let material = stored_form(key.spec, material)?;
            check_material(key.spec, &material)?;
            let id = imported_material_id(&key.id, &material);
            if let Some(given) = &request.key_material_id {
                if request.import_type == Some(ImportType::NewKeyMaterial) {
                    return Err(KmsError::Validation(
                        "KeyMaterialId cannot be given with ImportType NEW_KEY_MATERIAL".into(),
                    ));
                }
                if *given != id {
                    return Err(KmsError::IncorrectKeyMaterial(format!(
                        "the key material imported has id {id}, not the KeyMaterialId given ({given})"
                    )));
                }
            }
            let primary = state.primary_imports(key);
            let stored = key.storage_key();
            let key = state
                .keys
                .get_mut(&stored)
                .ok_or_else(|| KmsError::Internal("the key vanished".into()))?;
            match primary {
                Some(primary) => install_in_replica(key, id.clone(), material, &request, &primary, now)?,
                None => install(key, id.clone(), material, &request, now)?,
            }
            if key.state == KeyState::PendingImport && !key.lacks_material() {
                key.state = KeyState::Enabled;
            }
            Ok((key.arn(), id))
        })
    }

    /// DeleteImportedKeyMaterial: the material `key_material_id` names (the current one
    /// when `None`) leaves the key, which is PendingImport until it is imported again
    /// (a key pending deletion stays so). Returns the key's ARN and the material's id.
    pub fn delete_imported_key_material(
        &self,
        key_id: &str,
        key_material_id: Option<&str>,
    ) -> Result<(String, Option<String>), KmsError> {
        self.write(|state, _| {
            let key = state.authorized_mut(
                &self.caller,
                key_id,
                MANAGE,
                "kms:DeleteImportedKeyMaterial",
                None,
            )?;
            key.check_origin(true)?;
            let arn = key.arn();
            let current = key.materials.last().map_or(1, |m| m.version);
            let Some(imports) = key.imports.as_mut() else {
                return Ok((arn, None));
            };
            let index = match key_material_id {
                Some(id) => imports
                    .materials
                    .iter()
                    .position(|m| m.id == id)
                    .ok_or_else(|| KmsError::NotFound(format!("{arn} has no key material {id}")))?,
                None => match imports
                    .materials
                    .iter()
                    .position(|m| m.version == current && m.pending_rotation.is_none())
                {
                    Some(i) => i,
                    None => return Ok((arn, None)),
                },
            };
            let Some(target) = imports.materials.get(index) else {
                return Ok((arn, None));
            };
            let (id, version) = (target.id.clone(), target.version);
            if target.pending_rotation.is_none() {
                key.remove_material(version);
                return Ok((arn, Some(id)));
            }
            imports.materials.remove(index);
            // A multi-Region primary's new material leaves its replicas with it, as AWS's
            // does.
            let stored = key.storage_key();
            state.forget_pending_in_replicas(&stored, &id);
            Ok((arn, Some(id)))
        })
    }
}

/// The material in `wrapped`, unwrapped with the parameters `token` names.
fn unwrap_with_token(
    key: &KeyRecord,
    token: &[u8],
    wrapped: &[u8],
    now: Timestamp,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let token = crate::kms::hex::encode(token);
    let parameters = key
        .imports
        .as_ref()
        .and_then(|i| i.parameters.iter().find(|p| p.token == token))
        .ok_or_else(|| {
            KmsError::InvalidImportToken(format!(
                "the import token was not made for {} by GetParametersForImport",
                key.arn()
            ))
        })?;
    if parameters.valid_to <= now {
        return Err(KmsError::ExpiredImportToken(format!(
            "the import token for {} expired; call GetParametersForImport again",
            key.arn()
        )));
    }
    let wrapping = KeyMaterial {
        spec: parameters.wrapping_spec,
        secret: parameters.wrapping_key.expose(),
    };
    unwrap_imported(wrapping, parameters.algorithm, wrapped)
}

/// Material of the right kind for a key of `spec`: 32 bytes for SYMMETRIC_DEFAULT, the
/// spec's length for HMAC, a PKCS #8 private key of the spec's type for a key pair.
fn check_material(spec: KeySpec, material: &[u8]) -> Result<(), KmsError> {
    let valid = match spec {
        KeySpec::SymmetricDefault => material.len() == 32,
        _ => KeyMaterial {
            spec,
            secret: material,
        }
        .check()
        .is_ok(),
    };
    if valid {
        return Ok(());
    }
    Err(KmsError::IncorrectKeyMaterial(format!(
        "the imported key material is not valid for a {spec} key ({} bytes)",
        material.len()
    )))
}

/// Puts unwrapped material into a multi-Region replica: only material imported into its
/// primary (`primary`: id, version, waiting for rotation), under the primary's version;
/// the primary's new material waits in the replica too, for the primary's
/// RotateKeyOnDemand. New material of its own a replica does not take.
fn install_in_replica(
    key: &mut KeyRecord,
    id: String,
    material: Zeroizing<Vec<u8>>,
    request: &ImportKeyMaterialRequest,
    primary: &[(String, u32, bool)],
    now: Timestamp,
) -> Result<(), KmsError> {
    let arn = key.arn();
    let Some((_, version, pending)) = primary.iter().find(|(known, _, _)| *known == id) else {
        return Err(KmsError::IncorrectKeyMaterial(format!(
            "{arn} is a multi-Region replica: import the key material its primary key holds (new material goes into the primary key first, with ImportType NEW_KEY_MATERIAL)"
        )));
    };
    let imports = key.imports.get_or_insert_with(Imports::default);
    if request.import_type == Some(ImportType::NewKeyMaterial) && !imports.materials.is_empty() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{arn} is a multi-Region replica: import new key material into its primary key, then into this key with ImportType EXISTING_KEY_MATERIAL"
        )));
    }
    match imports.materials.iter_mut().find(|m| m.id == id) {
        Some(entry) => {
            entry.valid_to = request.valid_to;
            entry.description = request.description.clone().or(entry.description.take());
            if entry.pending_rotation.is_some() {
                entry.pending_rotation = Some(SecretBytes::new(material));
                return Ok(());
            }
        }
        None => {
            let mut entry = ImportedMaterial {
                id,
                version: *version,
                valid_to: request.valid_to,
                description: request.description.clone(),
                pending_rotation: None,
            };
            if *pending {
                entry.pending_rotation = Some(SecretBytes::new(material));
                imports.materials.push(entry);
                imports.materials.sort_by_key(|m| m.version);
                return Ok(());
            }
            imports.materials.push(entry);
            imports.materials.sort_by_key(|m| m.version);
        }
    }
    place_material(key, *version, material, now)
}

/// Material `version` among the key's materials (symmetric keys, in version order), or
/// the key's one secret (other specs).
fn place_material(
    key: &mut KeyRecord,
    version: u32,
    material: Zeroizing<Vec<u8>>,
    now: Timestamp,
) -> Result<(), KmsError> {
    match key.spec {
        KeySpec::SymmetricDefault => {
            if !key.materials.iter().any(|m| m.version == version) {
                let secret = SecretKey::from_slice(&material)
                    .map_err(|e| KmsError::Internal(e.to_string()))?;
                let at = key
                    .materials
                    .iter()
                    .position(|m| m.version > version)
                    .unwrap_or(key.materials.len());
                key.materials.insert(
                    at,
                    Material {
                        version,
                        created: now,
                        key: secret,
                    },
                );
            }
        }
        _ => key.secret = Some(SecretBytes::new(material)),
    }
    Ok(())
}

/// Puts unwrapped material into the key, as the first, a re-imported, or (symmetric
/// keys) a new material for rotation.
fn install(
    key: &mut KeyRecord,
    id: String,
    material: Zeroizing<Vec<u8>>,
    request: &ImportKeyMaterialRequest,
    now: Timestamp,
) -> Result<(), KmsError> {
    let arn = key.arn();
    let spec = key.spec;
    let imports = key.imports.get_or_insert_with(Imports::default);
    let first = imports.materials.is_empty();
    let import_type = request.import_type.unwrap_or(if first {
        ImportType::NewKeyMaterial
    } else {
        ImportType::ExistingKeyMaterial
    });
    let known = imports.materials.iter().position(|m| m.id == id);
    let version = match (known, import_type) {
        (Some(i), _) => {
            let Some(entry) = imports.materials.get_mut(i) else {
                return Err(KmsError::Internal("imported material vanished".into()));
            };
            entry.valid_to = request.valid_to;
            entry.description = request.description.clone().or(entry.description.take());
            if entry.pending_rotation.is_some() {
                entry.pending_rotation = Some(SecretBytes::new(material));
                return Ok(());
            }
            entry.version
        }
        (None, ImportType::ExistingKeyMaterial) => {
            return Err(KmsError::IncorrectKeyMaterial(format!(
                "the key material is not the material previously imported into {arn}"
            )))
        }
        (None, ImportType::NewKeyMaterial) if first => {
            imports.materials.push(ImportedMaterial {
                id,
                version: 1,
                valid_to: request.valid_to,
                description: request.description.clone(),
                pending_rotation: None,
            });
            1
        }
        (None, ImportType::NewKeyMaterial) if spec != KeySpec::SymmetricDefault => {
            return Err(KmsError::IncorrectKeyMaterial(format!(
                "{arn} is a {spec} key, which takes only its first key material; reimport that one"
            )))
        }
        (None, ImportType::NewKeyMaterial) => {
            if imports
                .materials
                .iter()
                .any(|m| m.pending_rotation.is_some())
            {
                return Err(KmsError::Validation(format!(
                    "{arn} already has key material waiting for RotateKeyOnDemand"
                )));
            }
            let version = imports
                .materials
                .iter()
                .map(|m| m.version)
                .max()
                .unwrap_or(0)
                + 1;
            imports.materials.push(ImportedMaterial {
                id,
                version,
                valid_to: request.valid_to,
                description: request.description.clone(),
                pending_rotation: Some(SecretBytes::new(material)),
            });
            return Ok(());
        }
    };
    place_material(key, version, material, now)
}
