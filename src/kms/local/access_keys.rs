//! The emulated account's IAM users' long-term access keys: what an access key id and its
//! secret stand for, so that credentials given to atrest (a project's legacy credentials,
//! a request to `kms serve`) call as the user they belong to, and unknown ones are refused.
//! Kept in the KMS state with the keys' material, owner-only.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::*;

/// An access key as stored.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(super) struct StoredAccessKey {
    secret: String,
    #[zeroize(skip)]
    principal: String,
    #[zeroize(skip)]
    created: Timestamp,
}

/// A new access key, as IAM's CreateAccessKey returns it: the only time its secret is
/// shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewAccessKey {
    /// The user it belongs to.
    pub user_name: String,
    /// The access key id (`AKIA...`).
    pub access_key_id: String,
    /// Always `Active`.
    pub status: &'static str,
    /// The secret access key.
    #[serde(serialize_with = "expose")]
    pub secret_access_key: Zeroizing<String>,
    /// When it was made.
    pub create_date: Timestamp,
}

fn expose<S: serde::Serializer>(secret: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret)
}

/// A registered access key: its id, secret and principal.
pub struct AccessKeyIdentity {
    /// The access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: Zeroizing<String>,
    /// The IAM principal it calls as.
    pub principal: String,
}

impl LocalKms {
    /// IAM's CreateAccessKey for user `user_name` of `account`: a new access key id and
    /// secret that call as `arn:aws:iam::ACCOUNT:user/NAME`.
    pub fn create_access_key(
        &self,
        account: &str,
        user_name: &str,
    ) -> Result<NewAccessKey, KmsError> {
        let valid_name = !user_name.is_empty()
            && user_name.len() <= 64
            && user_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !valid_name {
            return Err(KmsError::Validation(format!(
                "{user_name:?} is not an IAM user name (1 to 64 letters, digits and +=,.@_-)"
            )));
        }
        let principal = format!("arn:aws:iam::{account}:user/{user_name}");
        Caller::new(&principal, "us-east-1")?;
        let access_key_id = format!("AKIA{}", self.random_alphanumeric(16).to_uppercase());
        let secret = self.random_alphanumeric(40);
        self.write(|state, now| {
            state.access_keys.insert(
                access_key_id.clone(),
                StoredAccessKey {
                    secret: secret.to_string(),
                    principal: principal.clone(),
                    created: now,
                },
            );
            Ok(NewAccessKey {
                user_name: user_name.to_string(),
                access_key_id: access_key_id.clone(),
                status: "Active",
                secret_access_key: secret.clone(),
                create_date: now,
            })
        })
    }

    /// The principal that `access_key_id` with `secret` calls as; an unknown key or a
    /// wrong secret is refused as AWS refuses them.
    pub fn access_key_principal(
        &self,
        access_key_id: &str,
        secret: Option<&str>,
    ) -> Result<String, KmsError> {
        self.read(|state, _| {
            let key = state.access_keys.get(access_key_id).ok_or_else(|| {
                KmsError::AccessDenied(format!(
                    "UnrecognizedClientException: access key {access_key_id} does not exist in this account"
                ))
            })?;
            if secret.is_some_and(|s| s != key.secret) {
                return Err(KmsError::AccessDenied(format!(
                    "InvalidSignatureException: the secret given for access key {access_key_id} is not its secret"
                )));
            }
            Ok(key.principal.clone())
        })
    }

    /// Every registered access key, for `kms serve` to verify requests with.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyIdentity>, KmsError> {
        self.read(|state, _| {
            Ok(state
                .access_keys
                .iter()
                .map(|(id, key)| AccessKeyIdentity {
                    access_key_id: id.clone(),
                    secret_access_key: Zeroizing::new(key.secret.clone()),
                    principal: key.principal.clone(),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn access_keys_call_as_their_user_and_nothing_else() {
        let kms = LocalKms::in_memory(Arc::new(SystemClock));
        let key = kms.create_access_key("111122223333", "alice").unwrap();
        assert!(key.access_key_id.starts_with("AKIA") && key.access_key_id.len() == 20);
        assert_eq!(
            kms.access_key_principal(&key.access_key_id, Some(&key.secret_access_key))
                .unwrap(),
            "arn:aws:iam::111122223333:user/alice"
        );
        assert!(kms
            .access_key_principal(&key.access_key_id, Some("wrong"))
            .is_err());
        assert!(kms
            .access_key_principal("AKIANOTHERE0000000", None)
            .is_err());
        assert!(kms.create_access_key("111122223333", "no/slash").is_err());
        assert_eq!(kms.access_keys().unwrap().len(), 1);
    }
}
