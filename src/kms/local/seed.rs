//! Seed files: a LocalKms set up from a document instead of calls, so that a test or an
//! emulator starts with known keys. Each key has a fixed id, account, region, state,
//! policy, tags and key material, past versions included (so ciphertexts made elsewhere
//! under old material still decrypt), and aliases name them. Seeding only adds: a key or
//! alias already there identically is left alone, one there differently is an error, and
//! nothing is changed unless the whole file can be applied.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::client::check_rotation_period;
use super::key_material;
use super::tags::{check_tags, merge_tags};
use super::*;

/// A seed file, with AWS's member names.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    keys: Vec<SeedKey>,
    #[serde(default)]
    aliases: Vec<SeedAlias>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SeedKey {
    key_id: String,
    #[serde(rename = "AWSAccountId")]
    account: Option<String>,
    region: Option<String>,
    #[serde(default)]
    description: String,
    key_spec: Option<String>,
    key_usage: Option<String>,
    key_state: Option<String>,
    policy: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    /// Base64 key material, oldest version first; the last is current.
    #[serde(default)]
    key_material: Vec<SecretText>,
    rotation_period_in_days: Option<u32>,
}

/// Text that holds a secret: wiped when dropped, never shown.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
struct SecretText(String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<key material>")
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SeedAlias {
    alias_name: String,
    target_key_id: String,
}

/// What seeding did.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Seeded {
    /// ARNs of the keys added.
    pub keys_created: Vec<String>,
    /// ARNs of the keys that were there already, identical.
    pub keys_present: Vec<String>,
    /// Aliases added.
    pub aliases_created: Vec<String>,
    /// Aliases that were there already, naming the same key.
    pub aliases_present: Vec<String>,
}

impl LocalKms {
    /// Applies the seed file `document` (JSON): its keys, then its aliases. A key's
    /// account and region default to `account` and `region`.
    pub fn seed(&self, document: &str, account: &str, region: &str) -> Result<Seeded, KmsError> {
        let bad = |why: String| KmsError::Validation(format!("the seed file {why}"));
        let file: SeedFile = serde_json::from_str(document)
            .map_err(|e| bad(format!("is not a seed document: {e}")))?;
        let keys = file
            .keys
            .iter()
            .map(|k| planned_key(k, account, region))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|state, now| {
            let mut seeded = Seeded::default();
            // Everything is checked before anything changes.
            for key in &keys {
                if let Some(existing) = state.keys.get(&key.id) {
                    if !existing.same_material(key) || existing.account != key.account {
                        return Err(KmsError::AlreadyExists(format!(
                            "key {} exists already, with other key material or in another account; a seed file only adds keys",
                            existing.arn()
                        )));
                    }
                }
            }
            let mut aliases = Vec::new();
            for alias in &file.aliases {
                keyref::validate_alias(&alias.alias_name)?;
                let target = keys
                    .iter()
                    .find(|k| k.id == alias.target_key_id)
                    .map(|k| (k.account.clone(), k.region.clone()))
                    .or_else(|| {
                        state
                            .keys
                            .get(&alias.target_key_id)
                            .map(|k| (k.account.clone(), k.region.clone()))
                    })
                    .ok_or_else(|| {
                        bad(format!(
                            "names key {} for {}, which neither it nor the KMS has",
                            alias.target_key_id, alias.alias_name
                        ))
                    })?;
                match state.aliases.iter().find(|a| {
                    a.name == alias.alias_name && (&a.account, &a.region) == (&target.0, &target.1)
                }) {
                    Some(a) if a.target_key_id == alias.target_key_id => {
                        seeded.aliases_present.push(alias.alias_name.clone())
                    }
                    Some(_) => {
                        return Err(KmsError::AlreadyExists(format!(
                            "alias {} exists already for another key",
                            alias.alias_name
                        )))
                    }
                    None => aliases.push((alias, target)),
                }
            }
            for key in keys {
                if state.keys.contains_key(&key.id) {
                    seeded.keys_present.push(key_arn(&key.region, &key.account, &key.id));
                    continue;
                }
                let record = key.into_record(now, &mut |b| self.fill(b))?;
                seeded.keys_created.push(record.arn());
                state.keys.insert(record.id.clone(), record);
            }
            for (alias, (account, region)) in aliases {
                state.aliases.push(StoredAlias {
                    name: alias.alias_name.clone(),
                    account,
                    region,
                    target_key_id: alias.target_key_id.clone(),
                    created: Some(now),
                    updated: Some(now),
                });
                seeded.aliases_created.push(alias.alias_name.clone());
            }
            Ok(seeded)
        })
    }
}

/// A seed file's key, checked and decoded.
struct PlannedKey {
    id: String,
    account: String,
    region: String,
    description: String,
    spec: KeySpec,
    usage: KeyUsage,
    state: KeyState,
    policy: String,
    tags: Vec<Tag>,
    materials: Vec<SecretKey>,
    /// The key pair or HMAC key of a non-symmetric key, when the seed gives it.
    secret: Option<SecretBytes>,
    rotation_period_days: Option<u32>,
}

fn planned_key(key: &SeedKey, account: &str, region: &str) -> Result<PlannedKey, KmsError> {
    let bad = |why: String| KmsError::Validation(format!("seed key {}: {why}", key.key_id));
    if !keyref::is_key_id(&key.key_id) || keyref::is_multi_region_id(&key.key_id) {
        return Err(bad(
            "KeyId must be a key id (a UUID): seed files give single-Region keys".into(),
        ));
    }
    let account = key.account.clone().unwrap_or_else(|| account.to_string());
    let region = key.region.clone().unwrap_or_else(|| region.to_string());
    keyref::validate_account(&account)?;
    keyref::validate_region(&region)?;
    let spec = match &key.key_spec {
        Some(name) => KeySpec::parse(name)?,
        None => KeySpec::SymmetricDefault,
    };
    let usage = match &key.key_usage {
        Some(name) => KeyUsage::parse(name)?,
        None => spec.default_usage(),
    };
    spec.check_usage(usage)?;
    let state = match key.key_state.as_deref() {
        None | Some("Enabled") => KeyState::Enabled,
        Some("Disabled") => KeyState::Disabled,
        Some(other) => {
            return Err(bad(format!(
                "KeyState {other} cannot be seeded (Enabled or Disabled)"
            )))
        }
    };
    let policy = match &key.policy {
        Some(doc) => {
            KeyPolicy::parse(doc)?;
            doc.clone()
        }
        None => KeyPolicy::default_document(&account),
    };
    check_tags(&key.tags)?;
    let mut tags = Vec::new();
    merge_tags(&mut tags, &key.tags);
    let decoded = key
        .key_material
        .iter()
        .enumerate()
        .map(|(i, text)| {
            BASE64
                .decode(text.0.trim())
                .map(Zeroizing::new)
                .map_err(|_| bad(format!("KeyMaterial {} is not base64", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (materials, secret) = match spec {
        KeySpec::SymmetricDefault if decoded.is_empty() => {
            return Err(bad("a SYMMETRIC_DEFAULT key needs its KeyMaterial".into()))
        }
        KeySpec::SymmetricDefault => (
            decoded
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    SecretKey::from_slice(bytes)
                        .map_err(|_| bad(format!("KeyMaterial {} is not 32 bytes", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None,
        ),
        _ if decoded.len() > 1 => {
            return Err(bad(format!(
                "{spec} keys take one KeyMaterial (their key, PKCS #8 for key pairs), not {}",
                decoded.len()
            )))
        }
        _ => {
            let secret = decoded
                .into_iter()
                .next()
                .map(key_material::SecretBytes::new);
            if let Some(secret) = &secret {
                KeyMaterial {
                    spec,
                    secret: secret.expose(),
                }
                .check()
                .map_err(|e| bad(format!("KeyMaterial is not a {spec} key: {}", e.message())))?;
            }
            (Vec::new(), secret)
        }
    };
    if let Some(period) = key.rotation_period_in_days {
        check_rotation_period(period)?;
    }
    Ok(PlannedKey {
        id: key.key_id.to_ascii_lowercase(),
        account,
        region,
        description: key.description.clone(),
        spec,
        usage,
        state,
        policy,
        tags,
        materials,
        secret,
        rotation_period_days: key.rotation_period_in_days,
    })
}

impl PlannedKey {
    fn into_record(
        self,
        now: Timestamp,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<KeyRecord, KmsError> {
        let secret = match (self.spec, self.secret) {
            (KeySpec::SymmetricDefault, _) => None,
            (_, Some(given)) => Some(given),
            (spec, None) => Some(key_material::generate(spec, fill)?),
        };
        Ok(KeyRecord {
            description: self.description,
            state: self.state,
            policy: self.policy,
            materials: (1..)
                .zip(self.materials)
                .map(|(version, key)| Material {
                    version,
                    created: now,
                    key,
                })
                .collect(),
            auto_rotation: self.rotation_period_days.map(|period_days| AutoRotation {
                period_days,
                next: now.saturating_add(days(period_days.into())),
            }),
            tags: self.tags,
            secret,
            ..KeyRecord::new(
                self.id,
                self.account,
                self.region,
                self.spec,
                self.usage,
                Origin::AwsKms,
                now,
            )
        })
    }
}

impl KeyRecord {
    fn same_material(&self, planned: &PlannedKey) -> bool {
        let same_secret = match (&self.secret, &planned.secret) {
            (Some(have), Some(given)) => have.expose() == given.expose(),
            (None, Some(_)) => false,
            (_, None) => true,
        };
        same_secret
            && self.materials.len() == planned.materials.len()
            && self
                .materials
                .iter()
                .zip(&planned.materials)
                .all(|(m, p)| m.key.expose() == p.expose())
    }
}
