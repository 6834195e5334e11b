//! How a caller names a key: key id, key ARN, alias name or alias ARN, as AWS accepts them.

use std::fmt;

use super::validation::{self, Shown};
use super::KmsError;

/// A parsed key reference. Which forms an operation accepts is the operation's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// `1234abcd-12ab-34cd-56ef-1234567890ab`, in the caller's account and region.
    Id(String),
    /// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
    KeyArn {
        /// The key's region.
        region: String,
        /// The key's account.
        account: String,
        /// The key's id.
        id: String,
    },
    /// `alias/NAME`, in the caller's account and region.
    AliasName(String),
    /// `arn:aws:kms:REGION:ACCOUNT:alias/NAME`.
    AliasArn {
        /// The alias's region.
        region: String,
        /// The alias's account.
        account: String,
        /// `alias/NAME`.
        alias: String,
    },
}

impl KeyRef {
    /// Parses any of the four forms; a malformed reference is `NotFoundException`, as in AWS.
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        validation::length("keyId", Shown::Value(s), s.chars().count(), 1, 2048)?;
        if let Some(rest) = s.strip_prefix("arn:") {
            let invalid = || KmsError::NotFound(format!("Invalid arn {s}"));
            let mut parts = rest.splitn(5, ':');
            let (partition, service, region, account, resource) = match (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) {
                (Some(p), Some(sv), Some(r), Some(a), Some(res)) => (p, sv, r, a, res),
                _ => return Err(invalid()),
            };
            if partition != "aws" || service != "kms" {
                return Err(invalid());
            }
            validate_region(region).map_err(|_| invalid())?;
            validate_account(account).map_err(|_| invalid())?;
            let (region, account) = (region.to_string(), account.to_string());
            if let Some(id) = resource.strip_prefix("key/") {
                if !is_key_id(id) {
                    return Err(invalid());
                }
                return Ok(KeyRef::KeyArn {
                    region,
                    account,
                    id: id.to_string(),
                });
            }
            if resource.starts_with("alias/") {
                validate_alias(resource).map_err(|_| invalid())?;
                return Ok(KeyRef::AliasArn {
                    region,
                    account,
                    alias: resource.to_string(),
                });
            }
            return Err(invalid());
        }
        if s.starts_with("alias/") {
            validate_alias(s)?;
            return Ok(KeyRef::AliasName(s.to_string()));
        }
        if is_key_id(s) {
            return Ok(KeyRef::Id(s.to_ascii_lowercase()));
        }
        Err(KmsError::NotFound(format!("Invalid keyId '{s}'")))
    }

    /// Whether the reference names an alias.
    pub fn is_alias(&self) -> bool {
        matches!(self, KeyRef::AliasName(_) | KeyRef::AliasArn { .. })
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Id(id) => f.write_str(id),
            KeyRef::KeyArn {
                region,
                account,
                id,
            } => write!(f, "{}", key_arn(region, account, id)),
            KeyRef::AliasName(a) => f.write_str(a),
            KeyRef::AliasArn {
                region,
                account,
                alias,
            } => write!(f, "arn:aws:kms:{region}:{account}:{alias}"),
        }
    }
}

pub fn key_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

/// A key id: a UUID in its canonical 8-4-4-4-12 form, or a multi-Region key's `mrk-`
/// and 32 hex digits.
pub fn is_key_id(s: &str) -> bool {
    is_uuid(s) || is_multi_region_id(s)
}

/// A multi-Region key's id: `mrk-` and 32 lowercase hex digits.
pub fn is_multi_region_id(s: &str) -> bool {
    s.strip_prefix("mrk-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The multi-Region key id these 16 random bytes make.
pub fn multi_region_id(b: &[u8; 16]) -> String {
    format!("mrk-{}", super::hex::encode(b))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The version 4 UUID these 16 random bytes make, as AWS gives new keys.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    key_id_from_bytes(&b)
}

pub fn key_id_from_bytes(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The 16 bytes of a key id (a UUID's, or the hex of a multi-Region id); `None` if it is
/// not a key id.
pub fn key_id_to_bytes(id: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = if is_uuid(id) {
        id.bytes().filter(|&b| b != b'-').collect()
    } else {
        id.strip_prefix("mrk-")
            .filter(|_| is_multi_region_id(id))?
            .bytes()
            .collect()
    };
    let mut out = [0u8; 16];
    for (slot, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

pub fn validate_account(account: &str) -> Result<(), KmsError> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(KmsError::Validation(format!(
            "account {account:?} is not a 12-digit AWS account id"
        )))
    }
}

/// Region names as AWS spells them: `us-east-1`, `eu-west-2`, `ap-southeast-3`.
pub fn validate_region(region: &str) -> Result<(), KmsError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = match parts.split_last() {
        Some((number, words)) if words.len() >= 2 => {
            words
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KmsError::Validation(format!(
            "region {region:?} is not an AWS region name like us-east-1"
        )))
    }
}

/// `alias/NAME`: 1–250 characters of letters, digits, `/_-`; `alias/aws/` is AWS's own.
pub fn validate_alias(alias: &str) -> Result<(), KmsError> {
    validation::length(
        "aliasName",
        Shown::Value(alias),
        alias.chars().count(),
        1,
        256,
    )?;
    if !alias
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
    {
        return Err(validation::pattern(
            "aliasName",
            alias,
            "^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let name = alias.strip_prefix("alias/").ok_or_else(|| {
        KmsError::Validation(r#"Alias must start with the prefix "alias/"."#.into())
    })?;
    if name.is_empty() || name.contains(':') {
        return Err(KmsError::Validation(format!(
            "{alias} is not a valid alias name: alias/ must be followed by letters, digits, '/', '_' or '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn parses_all_four_forms() {
        assert_eq!(KeyRef::parse(ID).unwrap(), KeyRef::Id(ID.into()));
        let arn = format!("arn:aws:kms:eu-west-2:111122223333:key/{ID}");
        assert_eq!(
            KeyRef::parse(&arn).unwrap(),
            KeyRef::KeyArn {
                region: "eu-west-2".into(),
                account: "111122223333".into(),
                id: ID.into()
            }
        );
        assert_eq!(KeyRef::parse(&arn).unwrap().to_string(), arn);
        assert_eq!(
            KeyRef::parse("alias/atrest-default").unwrap(),
            KeyRef::AliasName("alias/atrest-default".into())
        );
        assert!(matches!(
            KeyRef::parse("arn:aws:kms:us-east-1:111122223333:alias/x").unwrap(),
            KeyRef::AliasArn { .. }
        ));
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "not-a-key",
            "1234abcd-12ab-34cd-56ef-1234567890a",
            "arn:aws:kms:us-east-1:111122223333:key/nope",
            "arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1",
            "alias/",
            "alias/has space",
        ] {
            assert!(KeyRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn key_ids_round_trip_through_bytes() {
        let id = uuid_v4(rand::random());
        assert!(is_key_id(&id));
        assert_eq!(key_id_from_bytes(&key_id_to_bytes(&id).unwrap()), id);
    }
}
