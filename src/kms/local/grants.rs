//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and the
//! permission a grant gives, which every call on a key consults after its key policy.
//!
//! As AWS: a grant allows its grantee the operations it lists on one key (the key policy's
//! explicit Deny still wins); encryption-context constraints apply to the operations that
//! take a context (keys compared without case, values with it) and not to the others; a
//! grantee with CreateGrant may pass on only what it holds, as strictly constrained; a
//! grant is retired by its retiring principal, by its grantee when it allows RetireGrant,
//! or by the root of the account that made it, and revoked by whoever the key policy
//! allows kms:RevokeGrant. Grants take effect at once, so grant tokens are accepted (a
//! malformed one is refused) and change nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;

/// The most grants a key can carry.
const MAX_GRANTS: usize = 50_000;
const TOKEN_TAG: &[u8; 4] = b"atrg";

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
    fn supported_by(self, spec: KeySpec, usage: KeyUsage) -> bool {
        use GrantOperation::*;
        match self {
            CreateGrant | RetireGrant | DescribeKey => true,
            Encrypt | Decrypt | ReEncryptFrom | ReEncryptTo => usage == KeyUsage::EncryptDecrypt,
            GenerateDataKey
            | GenerateDataKeyWithoutPlaintext
            | GenerateDataKeyPair
            | GenerateDataKeyPairWithoutPlaintext => spec == KeySpec::SymmetricDefault,
            GetPublicKey => !matches!(spec, KeySpec::SymmetricDefault | KeySpec::Hmac256),
            Sign | Verify => usage == KeyUsage::SignVerify,
            GenerateMac | VerifyMac => usage == KeyUsage::GenerateVerifyMac,
            DeriveSharedSecret | Encapsulate | Decapsulate => false,
        }
    }

    /// The grant operation an action (`kms:Decrypt`) needs, if grants can allow it.
    fn for_action(action: &str) -> Option<Self> {
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
    fn allow(&self, context: &EncryptionContext) -> bool {
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
    fn at_least_as_strict_as(&self, parent: &GrantConstraints) -> bool {
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
fn folded(context: &EncryptionContext) -> EncryptionContext {
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

    fn entry(&self, key_arn: &str) -> GrantListEntry {
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
fn principal_is(principal: &str, caller: &Caller) -> bool {
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

impl LocalKmsClient {
    /// CreateGrant: allows `grantee_principal` the operations on the key. With a name, a
    /// retry with the same parameters returns the existing grant's id.
    pub fn create_grant(
        &self,
        key_id: &str,
        request: CreateGrantRequest,
    ) -> Result<NewGrant, KmsError> {
        check_principal("granteePrincipal", &request.grantee_principal)?;
        if let Some(retiring) = &request.retiring_principal {
            check_principal("retiringPrincipal", retiring)?;
        }
        if request.operations.is_empty() {
            return Err(KmsError::Validation(
                "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
            ));
        }
        if let Some(name) = &request.name {
            check_grant_name(name)?;
        }
        let constraints = request
            .constraints
            .filter(|c| *c != GrantConstraints::default());
        self.write(|state, now| {
            let key = state.resolve_mut(&self.caller, key_id, GRANTS)?;
            let operation_names: Vec<&str> =
                request.operations.iter().map(|op| op.name()).collect();
            let facts = RequestFacts {
                grant_operations: Some(&operation_names),
                ..RequestFacts::default()
            };
            let policy_allows = key.policy_decision(&self.caller, "kms:CreateGrant", &facts)?;
            if policy_allows != Some(true) {
                let passed_on = policy_allows.is_none()
                    && key.grants.iter().any(|parent| {
                        parent.allows(&self.caller, GrantOperation::CreateGrant, None)
                            && request
                                .operations
                                .iter()
                                .all(|op| parent.operations.contains(op))
                            && parent.constraints.as_ref().is_none_or(|p| {
                                constraints
                                    .as_ref()
                                    .is_some_and(|c| c.at_least_as_strict_as(p))
                            })
                    });
                if !passed_on {
                    return Err(key.denied(&self.caller, "kms:CreateGrant"));
                }
            }
            key.check_usable()?;
            if let Some(op) = request
                .operations
                .iter()
                .find(|op| !op.supported_by(key.spec, key.usage))
            {
                return Err(KmsError::Validation(format!(
                    "{} is not a valid grant operation for {} ({} {})",
                    op.name(),
                    key.arn(),
                    key.spec,
                    key.usage
                )));
            }
            let mut operations = request.operations.clone();
            operations.dedup();
            let same = |g: &&StoredGrant| {
                g.name.is_some()
                    && g.name == request.name
                    && g.grantee == request.grantee_principal
                    && g.retiring == request.retiring_principal
                    && g.operations == operations
                    && g.constraints == constraints
            };
            let grant_id = match key.grants.iter().find(same) {
                Some(existing) => existing.id.clone(),
                None => {
                    if key.grants.len() >= MAX_GRANTS {
                        return Err(KmsError::LimitExceeded(format!(
                            "{} has the maximum of {MAX_GRANTS} grants",
                            key.arn()
                        )));
                    }
                    let mut id = [0u8; 32];
                    self.kms.fill(&mut id);
                    let id = crate::kms::hex::encode(&id);
                    key.grants.push(StoredGrant {
                        id: id.clone(),
                        name: request.name.clone(),
                        created: now,
                        grantee: request.grantee_principal.clone(),
                        retiring: request.retiring_principal.clone(),
                        issuing_account: format!("arn:aws:iam::{}:root", self.caller.account()),
                        operations,
                        constraints: constraints.clone(),
                    });
                    id
                }
            };
            Ok(NewGrant {
                grant_token: grant_token(&key.id, &grant_id, &self.kms)?,
                grant_id,
            })
        })
    }

    /// ListGrants: the key's grants, optionally only one id or one grantee's.
    pub fn list_grants(
        &self,
        key_id: &str,
        grant_id: Option<&str>,
        grantee_principal: Option<&str>,
    ) -> Result<Vec<GrantListEntry>, KmsError> {
        if let Some(id) = grant_id {
            check_grant_id(id)?;
        }
        self.kms.read(|state, _| {
            let key = state.resolve(&self.caller, key_id, GRANTS)?;
            key.authorize(&self.caller, "kms:ListGrants")?;
            let arn = key.arn();
            Ok(key
                .grants
                .iter()
                .filter(|g| grant_id.is_none_or(|id| g.id == id))
                .filter(|g| grantee_principal.is_none_or(|p| g.grantee == p))
                .map(|g| g.entry(&arn))
                .collect())
        })
    }

    /// ListRetirableGrants: the grants of the caller's region, on any key, that
    /// `retiring_principal` (of the caller's own account) may retire.
    pub fn list_retirable_grants(
        &self,
        retiring_principal: &str,
    ) -> Result<Vec<GrantListEntry>, KmsError> {
        check_principal("retiringPrincipal", retiring_principal)?;
        let account = super::super::parse_principal_arn(retiring_principal)?;
        if account != self.caller.account() {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: kms:ListRetirableGrants for {retiring_principal}, a principal of another account",
                self.caller.principal()
            )));
        }
        self.kms.read(|state, _| {
            Ok(state
                .keys
                .values()
                .filter(|k| k.region == self.caller.region())
                .flat_map(|k| {
                    let arn = k.arn();
                    k.grants
                        .iter()
                        .filter(|g| g.retiring.as_deref() == Some(retiring_principal))
                        .map(move |g| g.entry(&arn))
                })
                .collect())
        })
    }

    /// RetireGrant: deletes a grant, as its retiring principal, its grantee (when it allows
    /// RetireGrant) or the root of the account that made it.
    pub fn retire_grant(&self, grant: GrantRef<'_>) -> Result<(), KmsError> {
        // A token names its key outright, in whichever account; an id goes with a key
        // reference, resolved as any other.
        let (key_ref, grant_id) = match grant {
            GrantRef::Token(token) => {
                let (key_id, grant_id) = parse_grant_token(token)?;
                (KeyOf::Id(key_id), grant_id)
            }
            GrantRef::Id { key_id, grant_id } => {
                check_grant_id(grant_id)?;
                (KeyOf::Ref(key_id), grant_id.to_string())
            }
        };
        self.write(|state, _| {
            let key = match &key_ref {
                KeyOf::Ref(key_id) => state.resolve_mut(&self.caller, key_id, GRANTS)?,
                KeyOf::Id(id) => state
                    .keys
                    .get_mut(id)
                    .filter(|k| k.region == self.caller.region())
                    .ok_or_else(|| not_found(&grant_id))?,
            };
            let position = key.grant_position(&grant_id)?;
            let grant = key.grants.get(position).ok_or_else(|| not_found(&grant_id))?;
            let caller = &self.caller;
            let may = grant.retiring.as_deref() == Some(caller.principal())
                || grant.allows(caller, GrantOperation::RetireGrant, None)
                || grant.issuing_account == caller.principal();
            if !may {
                return Err(KmsError::AccessDenied(format!(
                    "User: {} is not authorized to perform: kms:RetireGrant on grant {grant_id}: it is not the grant's retiring principal, a grantee allowed RetireGrant, or the account that made it",
                    caller.principal()
                )));
            }
            key.grants.remove(position);
            Ok(())
        })
    }

    /// RevokeGrant: deletes a grant, as a principal the key policy allows kms:RevokeGrant.
    pub fn revoke_grant(&self, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        check_grant_id(grant_id)?;
        self.write(|state, _| {
            let key = state.resolve_mut(&self.caller, key_id, GRANTS)?;
            key.authorize(&self.caller, "kms:RevokeGrant")?;
            let position = key.grant_position(grant_id)?;
            key.grants.remove(position);
            Ok(())
        })
    }
}

impl KeyRecord {
    /// Whether the key policy allows `caller` `action` for a request with `facts`
    /// (`Some(true)`), denies it explicitly (`Some(false)`), or says nothing (`None`), so
    /// grants decide.
    pub(super) fn policy_decision(
        &self,
        caller: &Caller,
        action: &str,
        facts: &RequestFacts<'_>,
    ) -> Result<Option<bool>, KmsError> {
        Ok(KeyPolicy::parse(&self.policy)?.decide(caller, action, Some(&self.arn()), facts))
    }

    /// Whether a grant gives `caller` the grant operation `action` needs.
    pub(super) fn granted(
        &self,
        caller: &Caller,
        action: &str,
        context: Option<&EncryptionContext>,
    ) -> bool {
        GrantOperation::for_action(action)
            .is_some_and(|op| self.grants.iter().any(|g| g.allows(caller, op, context)))
    }

    fn grant_position(&self, grant_id: &str) -> Result<usize, KmsError> {
        self.grants
            .iter()
            .position(|g| g.id == grant_id)
            .ok_or_else(|| not_found(grant_id))
    }
}

/// The key of a grant to retire: a reference from the caller, or the id a token holds.
enum KeyOf<'a> {
    Ref(&'a str),
    Id(String),
}

fn not_found(grant_id: &str) -> KmsError {
    KmsError::NotFound(format!("Grant ID {grant_id} not found"))
}

/// A token naming grant `grant_id` of key `key_id`: opaque to callers, different on every
/// call, naming no secret.
fn grant_token(key_id: &str, grant_id: &str, kms: &LocalKms) -> Result<String, KmsError> {
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
fn parse_grant_token(token: &str) -> Result<(String, String), KmsError> {
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

fn check_grant_id(grant_id: &str) -> Result<(), KmsError> {
    if grant_id.len() == 64 && grant_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(KmsError::InvalidGrantId(format!(
            "{grant_id:?} is not a grant id"
        )))
    }
}

fn check_grant_name(name: &str) -> Result<(), KmsError> {
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
fn check_principal(member: &str, principal: &str) -> Result<(), KmsError> {
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
