//! A caller's aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases. An alias names
//! one key of its own account and region; moving it keeps it on a key of the same type.

use super::*;

impl LocalKmsClient {
    /// CreateAlias: `alias_name` points to a key of the caller's account and region.
    pub fn create_alias(&self, alias_name: &str, target_key_id: &str) -> Result<(), KmsError> {
        keyref::validate_alias(alias_name)?;
        if alias_name.starts_with("alias/aws/") {
            return Err(KmsError::Validation(format!(
                "{alias_name}: the alias/aws/ prefix is reserved for AWS managed keys"
            )));
        }
        self.write(|state, now| {
            let key = state.authorized(&self.caller, target_key_id, MANAGE, "kms:CreateAlias", None)?;
            key.check_not_pending_deletion()?;
            let (account, region, target) = (key.account.clone(), key.region.clone(), key.id.clone());
            if state.aliases.iter().any(|a| a.name == alias_name && a.account == account && a.region == region) {
                return Err(KmsError::AlreadyExists(format!(
                    "An alias with the name arn:aws:kms:{region}:{account}:{alias_name} already exists"
                )));
            }
            state.aliases.push(StoredAlias {
                name: alias_name.to_string(),
                account,
                region,
                target_key_id: target,
                created: Some(now),
                updated: Some(now),
            });
            Ok(())
        })
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, alias_name: &str) -> Result<(), KmsError> {
        keyref::validate_alias(alias_name)?;
        self.write(|state, _| {
            let caller = &self.caller;
            let (position, target) = self.find_alias(state, alias_name)?;
            state.authorize_on(caller, &target.id, alias_name, "kms:DeleteAlias", None)?;
            state.aliases.remove(position);
            Ok(())
        })
    }

    /// The aliases of the caller's account and region.
    pub fn list_aliases(&self) -> Result<Vec<AliasEntry>, KmsError> {
        self.kms.read(|state, _| {
            Ok(state
                .aliases
                .iter()
                .filter(|a| a.account == self.caller.account() && a.region == self.caller.region())
                .map(StoredAlias::entry)
                .collect())
        })
    }

    /// UpdateAlias: points `alias_name` at `target_key_id` instead, a key of the same
    /// account, region and type (spec and usage) that is not pending deletion. The caller
    /// needs kms:UpdateAlias on both the key it leaves and the key it joins.
    pub fn update_alias(&self, alias_name: &str, target_key_id: &str) -> Result<(), KmsError> {
        keyref::validate_alias(alias_name)?;
        self.write(|state, now| {
            let caller = &self.caller;
            let (position, current) = self.find_alias(state, alias_name)?;
            state.authorize_on(caller, &current.id, alias_name, "kms:UpdateAlias", None)?;
            let next = state.authorized(caller, target_key_id, MANAGE, "kms:UpdateAlias", None)?;
            next.check_not_pending_deletion()?;
            if next.account != caller.account() || next.region != caller.region() {
                return Err(KmsError::Validation(format!(
                    "{target_key_id} is not in the alias's account and region"
                )));
            }
            if (next.spec, next.usage) != (current.spec, current.usage) {
                return Err(KmsError::Validation(format!(
                    "{alias_name} can only be moved to a key of the same type as its current one"
                )));
            }
            let next_id = next.id.clone();
            if let Some(alias) = state.aliases.get_mut(position) {
                alias.target_key_id = next_id;
                alias.updated = Some(now);
            }
            Ok(())
        })
    }

    /// The caller's alias `alias_name` (its place in the state) and the key it names.
    fn find_alias<'s>(
        &self,
        state: &'s State,
        alias_name: &str,
    ) -> Result<(usize, &'s KeyRecord), KmsError> {
        let caller = &self.caller;
        let position = state
            .aliases
            .iter()
            .position(|a| {
                a.name == alias_name && a.account == caller.account() && a.region == caller.region()
            })
            .ok_or_else(|| KmsError::NotFound(format!("Alias {alias_name} is not found.")))?;
        let target = state
            .aliases
            .get(position)
            .and_then(|alias| {
                state
                    .keys
                    .get(&storage_key(&alias.target_key_id, &alias.region))
            })
            .ok_or_else(|| KmsError::Internal(format!("alias {alias_name} points at no key")))?;
        Ok((position, target))
    }
}
