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

use super::grant_terms::*;
use super::*;

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
            let id = state.resolve_id(&self.caller, key_id, GRANTS)?;
            let aliases = state.aliases_of(&id);
            let key = state
                .keys
                .get_mut(&id)
                .ok_or_else(|| KmsError::NotFound(format!("Key '{key_id}' does not exist")))?;
            let operation_names: Vec<&str> =
                request.operations.iter().map(|op| op.name()).collect();
            let facts = RequestFacts {
                grant_operations: Some(&operation_names),
                resource_aliases: Some(&aliases),
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
            let key = state.authorized(&self.caller, key_id, GRANTS, "kms:ListGrants", None)?;
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
                    .get_mut(&storage_key(id, self.caller.region()))
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
            let key =
                state.authorized_mut(&self.caller, key_id, GRANTS, "kms:RevokeGrant", None)?;
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
