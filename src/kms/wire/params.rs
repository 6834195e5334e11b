//! A KMS request's JSON members, read one by one as AWS reads them: types checked
//! (`SerializationException`), required members present, lists, maps, tags, grant
//! constraints and pagination in AWS's forms.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::page::{page, Page, PageRules};
use super::WireError;
use crate::clock::Timestamp;
use crate::kms::responses::DEFAULT_POLICY_NAME;
use crate::kms::validation;
use crate::kms::{
    check_grant_tokens, EncryptionAlgorithm, EncryptionContext, GrantConstraints, KmsError, Tag,
};

/// A member as AWS's validation messages name it: `KeyId` is `keyId`.
pub(super) fn member_name(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// A request's JSON object, read field by field with AWS's validation errors.
pub(super) struct Params(Map<String, Value>);

impl Params {
    pub(super) fn parse(body: &[u8]) -> Result<Self, WireError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Params(map)),
            Ok(_) => Err(WireError::serialization(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(WireError::serialization(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    pub(super) fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field).filter(|v| !v.is_null())
    }

    pub(super) fn opt_str(&mut self, field: &str) -> Result<Option<String>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be a string"
            ))),
        }
    }

    pub(super) fn str(&mut self, field: &str) -> Result<String, WireError> {
        self.opt_str(field)?
            .ok_or_else(|| WireError::missing(&member_name(field)))
    }

    pub(super) fn opt_u32(&mut self, field: &str) -> Result<Option<u32>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    WireError::serialization(format!("{field} must be a non-negative integer"))
                }),
        }
    }

    /// The size of a data key: `KeySpec` (AES_256, AES_128) or `NumberOfBytes`, one of them.
    pub(super) fn data_key_bytes(&mut self) -> Result<usize, WireError> {
        match (self.opt_str("KeySpec")?, self.opt_u32("NumberOfBytes")?) {
            (Some(_), Some(_)) => {
                Err(KmsError::Validation("give KeySpec or NumberOfBytes, not both".into()).into())
            }
            (Some(spec), None) => match spec.as_str() {
                "AES_256" => Ok(32),
                "AES_128" => Ok(16),
                other => {
                    Err(validation::not_in_enum("keySpec", other, &["AES_256", "AES_128"]).into())
                }
            },
            (None, Some(n)) => Ok(n as usize),
            (None, None) => Err(KmsError::Validation(
                "give KeySpec (AES_256, AES_128) or NumberOfBytes".into(),
            )
            .into()),
        }
    }

    /// The page of `items` the request's `Limit` and `Marker` ask for.
    pub(super) fn page<T>(
        &mut self,
        items: Vec<T>,
        rules: PageRules,
    ) -> Result<Page<T>, WireError> {
        let limit = self.opt_u32("Limit")?;
        let marker = self.opt_str("Marker")?;
        page(items, rules, limit, marker.as_deref())
    }

    /// A timestamp member: seconds since the epoch, as AWS's JSON protocol sends it.
    pub(super) fn opt_timestamp(&mut self, field: &str) -> Result<Option<Timestamp>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Some(Timestamp::from_millis((s * 1000.0) as u64)))
                .ok_or_else(|| {
                    WireError::serialization(format!("{field} must be seconds since the epoch"))
                }),
        }
    }

    pub(super) fn opt_bool(&mut self, field: &str) -> Result<Option<bool>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be a boolean"
            ))),
        }
    }

    /// A base64 field, decoded; the encoded text is zeroized too.
    pub(super) fn blob(&mut self, field: &str) -> Result<Zeroizing<Vec<u8>>, WireError> {
        let encoded = Zeroizing::new(self.str(field)?);
        BASE64
            .decode(encoded.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| WireError::serialization(format!("{field} is not valid base64")))
    }

    /// A list of strings, if sent.
    pub(super) fn strings(&mut self, field: &str) -> Result<Option<Vec<String>>, WireError> {
        let bad = || WireError::serialization(format!("{field} must be a list of strings"));
        match self.take(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad()),
        }
    }

    /// `Tags`: a list of `{"TagKey", "TagValue"}`, both required.
    pub(super) fn tags(&mut self) -> Result<Option<Vec<Tag>>, WireError> {
        let Some(value) = self.take("Tags") else {
            return Ok(None);
        };
        let bad = || WireError::serialization("Tags must be a list of {TagKey, TagValue}");
        let Value::Array(items) = value else {
            return Err(bad());
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let member = |name: &str, path: &str| match item.get(name) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    None | Some(Value::Null) => {
                        Err(WireError::missing(&format!("tags.{}.member.{path}", i + 1)))
                    }
                    Some(_) => Err(bad()),
                };
                Ok(Tag {
                    key: member("TagKey", "tagKey")?,
                    value: member("TagValue", "tagValue")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `GrantTokens`: each one CreateGrant made, at most 10 (grants are in effect at once
    /// here, so they change nothing else).
    pub(super) fn grant_tokens(&mut self) -> Result<(), WireError> {
        Ok(check_grant_tokens(
            &self.strings("GrantTokens")?.unwrap_or_default(),
        )?)
    }

    /// Members LocalKms does not emulate: refused when sent, never ignored.
    pub(super) fn not_emulated(&mut self, fields: &[&str]) -> Result<(), WireError> {
        match fields.iter().find(|f| self.take(f).is_some()) {
            Some(field) => Err(KmsError::Validation(format!(
                "{field} is not emulated by LocalKms (AWS service principals)"
            ))
            .into()),
            None => Ok(()),
        }
    }

    /// CreateGrant's `Constraints`.
    pub(super) fn constraints(&mut self) -> Result<Option<GrantConstraints>, WireError> {
        let Some(value) = self.take("Constraints") else {
            return Ok(None);
        };
        let Value::Object(map) = value else {
            return Err(WireError::serialization("Constraints must be an object"));
        };
        let mut inner = Params(map);
        inner.not_emulated(&["SourceArn"])?;
        let constraints = GrantConstraints {
            encryption_context_subset: inner.opt_context("EncryptionContextSubset")?,
            encryption_context_equals: inner.opt_context("EncryptionContextEquals")?,
        };
        if let Some(unknown) = inner.0.keys().next() {
            return Err(WireError::serialization(format!(
                "{unknown} is not a member of Constraints"
            )));
        }
        Ok(Some(constraints))
    }

    pub(super) fn context(&mut self, field: &str) -> Result<EncryptionContext, WireError> {
        Ok(self.opt_context(field)?.unwrap_or_default())
    }

    pub(super) fn opt_context(
        &mut self,
        field: &str,
    ) -> Result<Option<EncryptionContext>, WireError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k, v)),
                    _ => Err(WireError::serialization(format!(
                        "{field} values must be strings"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(WireError::serialization(format!(
                "{field} must be an object of strings"
            ))),
        }
    }

    /// An encryption algorithm member; SYMMETRIC_DEFAULT when absent, as AWS defaults it.
    pub(super) fn encryption_algorithm(
        &mut self,
        field: &str,
    ) -> Result<EncryptionAlgorithm, WireError> {
        match self.opt_str(field)? {
            None => Ok(EncryptionAlgorithm::SymmetricDefault),
            Some(name) => Ok(EncryptionAlgorithm::parse(&member_name(field), &name)?),
        }
    }

    /// ReEncrypt's algorithms: LocalKms re-encrypts between symmetric keys only.
    pub(super) fn symmetric_algorithm(&mut self, field: &str) -> Result<(), WireError> {
        match self.encryption_algorithm(field)? {
            EncryptionAlgorithm::SymmetricDefault => Ok(()),
            other => Err(KmsError::UnsupportedOperation(format!(
                "{field} {other}: LocalKms re-encrypts between symmetric keys only; Decrypt with the RSA key and Encrypt again"
            ))
            .into()),
        }
    }

    pub(super) fn policy_name(&mut self) -> Result<(), WireError> {
        match self.opt_str("PolicyName")? {
            None => Ok(()),
            Some(n) if n == DEFAULT_POLICY_NAME => Ok(()),
            Some(n) => Err(KmsError::Validation(format!(
                "PolicyName {n:?}: the only valid policy name is default"
            ))
            .into()),
        }
    }
}
