//! What a grant is: the operations it may allow (and which key types support them), its
//! encryption-context constraints and how they compare, how it is stored and listed, its
//! tokens, and AWS's checks on CreateGrant's members. The operations are in `grants`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;

/// The most grants a key can carry.
pub(super) const MAX_GRANTS: usize = 50_000;
pub(super) const TOKEN_TAG: &[u8; 4] = b"atrg";

/// What a grant may allow, as AWS names the operations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum GrantOperation {
    Decrypt,
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    ReEncryptFrom,
    ReEncryptTo,
    Sign,
    Verify,
    GetPublicKey,
    CreateGrant,
    RetireGrant,
    DescribeKey,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
    Encapsulate,
    Decapsulate,
}

impl GrantOperation {
    const ALL: [GrantOperation; 19] = [
        Self::Decrypt,
        Self::Encrypt,
        Self::GenerateDataKey,
        Self::GenerateDataKeyWithoutPlaintext,
        Self::ReEncryptFrom,
        Self::ReEncryptTo,
        Self::Sign,
        Self::Verify,
        Self::GetPublicKey,
        Self::CreateGrant,
        Self::RetireGrant,
        Self::DescribeKey,
        Self::GenerateDataKeyPair,
        Self::GenerateDataKeyPairWithoutPlaintext,
        Self::GenerateMac,
        Self::VerifyMac,
        Self::DeriveSharedSecret,
        Self::Encapsulate,
        Self::Decapsulate,
    ];

    /// The operation AWS calls `name`.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| {
                KmsError::Validation(format!(
                    "1 validation error detected: Value '[{name}]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    Self::ALL.map(|op| op.name()).join(", ")
                ))
            })
    }

    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Decrypt => "Decrypt",
            Self::Encrypt => "Encrypt",
            Self::GenerateDataKey => "GenerateDataKey",
            Self::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Self::ReEncryptFrom => "ReEncryptFrom",
            Self::ReEncryptTo => "ReEncryptTo",
            Self::Sign => "Sign",
            Self::Verify => "Verify",
            Self::GetPublicKey => "GetPublicKey",
            Self::CreateGrant => "CreateGrant",
            Self::RetireGrant => "RetireGrant",
            Self::DescribeKey => "DescribeKey",
            Self::GenerateDataKeyPair => "GenerateDataKeyPair",
            Self::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
            Self::GenerateMac => "GenerateMac",
            Self::VerifyMac => "VerifyMac",
            Self::DeriveSharedSecret => "DeriveSharedSecret",
            Self::Encapsulate => "Encapsulate",
            Self::Decapsulate => "Decapsulate",
        }
    }

    /// Whether a key of this spec and usage supports the operation (AWS refuses a grant
    /// for one it does not).
    pub(super) fn supported_by(self, spec: KeySpec, usage: KeyUsage) -> bool {
        use GrantOperation::*;
        match self {
            CreateGrant | RetireGrant | DescribeKey => true,
            Encrypt | Decrypt | ReEncryptFrom | ReEncryptTo => usage == KeyUsage::EncryptDecrypt,
            GenerateDataKey
            | GenerateDataKeyWithoutPlaintext
            | GenerateDataKeyPair
            | GenerateDataKeyPairWithoutPlaintext => spec == KeySpec::SymmetricDefault,
            GetPublicKey => spec.is_asymmetric(),
            Sign | Verify => usage == KeyUsage::SignVerify,
            GenerateMac | VerifyMac => usage == KeyUsage::GenerateVerifyMac,
            DeriveSharedSecret => usage == KeyUsage::KeyAgreement,
            Encapsulate | Decapsulate => usage == KeyUsage::EncapsulateDecapsulate,
        }
    }

    /// The grant operation an action (`kms:Decrypt`) needs, if grants can allow it.
    pub(super) fn for_action(action: &str) -> Option<Self> {
        let name = action.strip_prefix("kms:")?;
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Encryption-context constraints: a grant applies only to requests whose context equals,
/// or includes, these pairs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GrantConstraints {
    /// Pairs every request's context must include.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context_subset: Option<EncryptionContext>,
    /// The whole context every request must have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context_equals: Option<EncryptionContext>,
}

impl GrantConstraints {
    /// Whether a request with `context` meets the constraints.
    pub(super) fn allow(&self, context: &EncryptionContext) -> bool {
        let request = folded(context);
        let subset = self
            .encryption_context_subset
            .as_ref()
            .is_none_or(|s| folded(s).iter().all(|(k, v)| request.get(k) == Some(v)));
        let equals = self
            .encryption_context_equals
            .as_ref()
            .is_none_or(|e| folded(e) == request);
        subset && equals
    }

    /// Whether every request these constraints allow, `parent` allows too.
    pub(super) fn at_least_as_strict_as(&self, parent: &GrantConstraints) -> bool {
        let mine_equals = self.encryption_context_equals.as_ref().map(folded);
        let mine_subset = self.encryption_context_subset.as_ref().map(folded);
        let required_pairs_held = |required: &EncryptionContext| {
            let required = folded(required);
            [&mine_equals, &mine_subset]
                .into_iter()
                .flatten()
                .any(|mine| required.iter().all(|(k, v)| mine.get(k) == Some(v)))
        };
        let equals_kept = parent
            .encryption_context_equals
            .as_ref()
            .is_none_or(|e| mine_equals.as_ref() == Some(&folded(e)));
        let subset_kept = parent
            .encryption_context_subset
            .as_ref()
            .is_none_or(required_pairs_held);
        equals_kept && subset_kept
    }
}

/// A context with its keys in lower case: grant constraints compare keys without case.
pub(super) fn folded(context: &EncryptionContext) -> EncryptionContext {
    context
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect()
}

/// A grant as the state file keeps it, on its key.
#[derive(Serialize, Deserialize, Clone)]
pub(super) struct StoredGrant {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) created: Timestamp,
    pub(super) grantee: String,
    pub(super) retiring: Option<String>,
    pub(super) issuing_account: String,
    pub(super) operations: Vec<GrantOperation>,
    pub(super) constraints: Option<GrantConstraints>,
}

impl StoredGrant {
    /// Whether the grant gives `caller` `operation` for a request with `context` (`None`:
    /// the operation takes no context).
    pub(super) fn allows(
        &self,
        caller: &Caller,
        operation: GrantOperation,
        context: Option<&EncryptionContext>,
    ) -> bool {
        principal_is(&self.grantee, caller)
            && self.operations.contains(&operation)
            && match (&self.constraints, context) {
                (Some(constraints), Some(context)) => constraints.allow(context),
                _ => true,
            }
    }

    pub(super) fn entry(&self, key_arn: &str) -> GrantListEntry {
        GrantListEntry {
            key_id: key_arn.to_string(),
            grant_id: self.id.clone(),
            name: self.name.clone(),
            creation_date: self.created,
            grantee_principal: self.grantee.clone(),
            retiring_principal: self.retiring.clone(),
            issuing_account: self.issuing_account.clone(),
            operations: self.operations.clone(),
            constraints: self.constraints.clone(),
        }
    }
}

/// Whether `principal` (an ARN in a grant) names `caller`: the caller itself, or its
/// account's root, which stands for the account as in key policies.
pub(super) fn principal_is(principal: &str, caller: &Caller) -> bool {
    principal == caller.principal()
        || principal == format!("arn:aws:iam::{}:root", caller.account())
}

/// CreateGrant's parameters.
#[derive(Clone, Debug, Default)]
pub struct CreateGrantRequest {
    /// Who gets the permissions: an IAM principal ARN.
    pub grantee_principal: String,
    /// Who may retire the grant besides its creator's account.
    pub retiring_principal: Option<String>,
    /// What the grant allows.
    pub operations: Vec<GrantOperation>,
    /// Encryption-context constraints.
    pub constraints: Option<GrantConstraints>,
    /// A name that makes retries return the same grant.
    pub name: Option<String>,
}

/// What CreateGrant returns.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NewGrant {
    /// A token that names the grant (a new one on every call).
    pub grant_token: String,
    /// The grant's id.
    pub grant_id: String,
}

/// A grant, as ListGrants and ListRetirableGrants report it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GrantListEntry {
    /// The key's ARN.
    pub key_id: String,
    /// The grant's id.
    pub grant_id: String,
    /// Its name, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was made.
    #[serde(serialize_with = "epoch_seconds")]
    pub creation_date: Timestamp,
    /// Who it allows.
    pub grantee_principal: String,
    /// Who may retire it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    /// The root of the account that made it.
    pub issuing_account: String,
    /// What it allows.
    pub operations: Vec<GrantOperation>,
    /// Its constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<GrantConstraints>,
}

/// Which grant RetireGrant retires: by token, or by key and id.
#[derive(Clone, Debug)]
pub enum GrantRef<'a> {
    /// A token CreateGrant returned.
    Token(&'a str),
    /// A key id or key ARN, and the grant's id.
    Id {
        /// The key.
        key_id: &'a str,
        /// The grant.
        grant_id: &'a str,
    },
}

/// A token naming grant `grant_id` of key `key_id`: opaque to callers, different on every
/// call, naming no secret.
pub(super) fn grant_token(
    key_id: &str,
    grant_id: &str,
    kms: &LocalKms,
) -> Result<String, KmsError> {
    let key = keyref::key_id_to_bytes(key_id)
        .ok_or_else(|| KmsError::Internal(format!("key id {key_id} is not a UUID")))?;
    let grant = crate::kms::hex::decode(grant_id)
        .ok_or_else(|| KmsError::Internal(format!("grant id {grant_id} is not hex")))?;
    let mut nonce = [0u8; 16];
    kms.fill(&mut nonce);
    let mut bytes = TOKEN_TAG.to_vec();
    bytes.extend_from_slice(&key);
    bytes.extend_from_slice(&grant);
    bytes.extend_from_slice(&nonce);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key id and grant id a token names; `InvalidGrantTokenException` for anything
/// CreateGrant did not make.
pub(super) fn parse_grant_token(token: &str) -> Result<(String, String), KmsError> {
    let invalid = || KmsError::InvalidGrantToken("The grant token is not valid.".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    if bytes.len() != 4 + 16 + 32 + 16 || bytes.get(..4) != Some(TOKEN_TAG.as_slice()) {
        return Err(invalid());
    }
    let key: [u8; 16] = bytes
        .get(4..20)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    let grant = bytes.get(20..52).ok_or_else(invalid)?;
    Ok((
        keyref::key_id_from_bytes(&key),
        crate::kms::hex::encode(grant),
    ))
}

/// Grant tokens sent with a request: each must be one CreateGrant made (they change
/// nothing else, grants being in effect at once here); at most 10.
pub fn check_grant_tokens(tokens: &[String]) -> Result<(), KmsError> {
    validation::length(
        "grantTokens",
        Shown::Value(&format!("{tokens:?}")),
        tokens.len(),
        0,
        10,
    )?;
    tokens
        .iter()
        .try_for_each(|t| parse_grant_token(t).map(|_| ()))
}

pub(super) fn check_grant_id(grant_id: &str) -> Result<(), KmsError> {
    if grant_id.len() == 64 && grant_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(KmsError::InvalidGrantId(format!(
            "{grant_id:?} is not a grant id"
        )))
    }
}

pub(super) fn check_grant_name(name: &str) -> Result<(), KmsError> {
    validation::length("name", Shown::Value(name), name.len(), 1, 256)?;
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
    {
        Ok(())
    } else {
        Err(validation::pattern("name", name, "^[a-zA-Z0-9:/_-]+$"))
    }
}

/// A grantee or retiring principal: the model's pattern, then an IAM principal ARN.
pub(super) fn check_principal(member: &str, principal: &str) -> Result<(), KmsError> {
    validation::length(
        member,
        Shown::Value(principal),
        principal.chars().count(),
        1,
        256,
    )?;
    if !principal
        .chars()
        .all(|c| c.is_alphanumeric() || "_+=,.@:/-".contains(c))
    {
        return Err(validation::pattern(member, principal, "^[\\w+=,.@:/-]+$"));
    }
    super::super::parse_principal_arn(principal)
        .map(|_| ())
        .map_err(|_| KmsError::InvalidArn(format!("{principal} is not a valid IAM principal ARN")))
}
