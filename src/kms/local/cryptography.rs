//! The cryptographic operations of [`LocalKmsClient`]: Encrypt, Decrypt, ReEncrypt and the
//! data keys, each checked against the key's state, usage, policy and grants (with the
//! request's encryption context, which grant constraints and policy conditions read).

use super::*;

impl LocalKmsClient {
    /// Encrypt: 1 to 4096 bytes under the key's current material, bound to `context`.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Encrypted, KmsError> {
        validation::length(
            "plaintext",
            Shown::Secret,
            plaintext.len(),
            1,
            MAX_PLAINTEXT,
        )?;
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, "kms:Encrypt", Some(context))?;
            key.check_usable_for_encryption()?;
            let ciphertext_blob =
                key.seal(self.kms.backend, self.kms.new_nonce(), plaintext, context)?;
            self.used(key, "Encrypt", now);
            Ok(Encrypted {
                ciphertext_blob,
                key_arn: key.arn(),
            })
        })
    }

    /// Decrypts a blob. With `key_id`, the blob must have been made by that key
    /// ([`KmsError::IncorrectKey`] otherwise); without, the blob names its key, as AWS
    /// allows for symmetric keys.
    pub fn decrypt(
        &self,
        key_id: Option<&str>,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, KmsError> {
        self.kms.read(|state, now| {
            let opened = self.open(state, key_id, ciphertext_blob, context, "kms:Decrypt")?;
            self.used(opened.key, "Decrypt", now);
            Ok(Decrypted {
                key_arn: opened.key.arn(),
                key_material_id: Some(opened.key.material_id(opened.version)),
                plaintext: opened.plaintext,
            })
        })
    }

    /// ReEncrypt: opens `ciphertext_blob` (made by `source_key_id` when named, under
    /// `source_context`) and seals its plaintext under `destination_key_id` and
    /// `destination_context`, inside the KMS. The caller needs kms:ReEncryptFrom on the
    /// source key and kms:ReEncryptTo on the destination key.
    pub fn re_encrypt(
        &self,
        source_key_id: Option<&str>,
        ciphertext_blob: &[u8],
        source_context: &EncryptionContext,
        destination_key_id: &str,
        destination_context: &EncryptionContext,
    ) -> Result<ReEncrypted, KmsError> {
        self.kms.read(|state, now| {
            let opened = self.open(
                state,
                source_key_id,
                ciphertext_blob,
                source_context,
                "kms:ReEncryptFrom",
            )?;
            let destination = state.authorized(
                &self.caller,
                destination_key_id,
                USE,
                "kms:ReEncryptTo",
                Some(destination_context),
            )?;
            destination.check_usable_for_encryption()?;
            let ciphertext_blob = destination.seal(
                self.kms.backend,
                self.kms.new_nonce(),
                &opened.plaintext,
                destination_context,
            )?;
            self.used(opened.key, "ReEncrypt", now);
            self.used(destination, "ReEncrypt", now);
            Ok(ReEncrypted {
                ciphertext_blob,
                source_key_arn: opened.key.arn(),
                key_arn: destination.arn(),
                source_key_material_id: opened.key.material_id(opened.version),
                destination_key_material_id: destination.current_material_id()?,
            })
        })
    }

    /// Opens a blob for `action` (Decrypt, ReEncryptFrom): the key that made it, which
    /// must be `key_id` when one is named, its material version and the plaintext.
    fn open<'s>(
        &self,
        state: &'s State,
        key_id: Option<&str>,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
        action: &str,
    ) -> Result<Opened<'s>, KmsError> {
        let blob = CiphertextBlob::decode(ciphertext_blob)?;
        if let Some(named) = key_id {
            let named = state.resolve(&self.caller, named, USE)?;
            if named.id != blob.key_id {
                return Err(KmsError::IncorrectKey(format!(
                    "The key ID in the request ({}) does not identify the KMS key that encrypted the ciphertext",
                    named.arn()
                )));
            }
        }
        let key = state
            .keys
            .get(&storage_key(&blob.key_id, self.caller.region()))
            .filter(|k| k.region == self.caller.region())
            .ok_or_else(|| {
                KmsError::InvalidCiphertext("no key in this region made this ciphertext".into())
            })?;
        state.authorize_on(
            &self.caller,
            &key.storage_key(),
            key_id.unwrap_or(&key.id),
            action,
            Some(context),
        )?;
        key.check_usable_for_encryption()?;
        let material = key
            .materials
            .iter()
            .find(|m| m.version == blob.material_version)
            .ok_or_else(|| {
                KmsError::InvalidCiphertext(format!(
                    "{} has no key material version {}",
                    key.arn(),
                    blob.material_version
                ))
            })?;
        let aead = Aead::new(&material.key, self.kms.backend)
            .map_err(|e| KmsError::Internal(e.to_string()))?;
        let plaintext = aead
            .open(&blob.nonce, &blob.aad(context), blob.sealed)
            .map_err(|_| {
                KmsError::InvalidCiphertext(
                    "the ciphertext does not authenticate: it was altered, or the encryption context differs".into(),
                )
            })?;
        Ok(Opened {
            key,
            version: material.version,
            plaintext,
        })
    }

    /// GenerateDataKey: `number_of_bytes` random bytes, in the clear and wrapped.
    pub fn generate_data_key(
        &self,
        key_id: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        self.generate(key_id, number_of_bytes, context, "kms:GenerateDataKey")
    }

    /// GenerateDataKeyWithoutPlaintext: a data key wrapped by the key; its plaintext never
    /// leaves the KMS (Decrypt gets it later).
    pub fn generate_data_key_without_plaintext(
        &self,
        key_id: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
    ) -> Result<WrappedDataKey, KmsError> {
        let generated = self.generate(
            key_id,
            number_of_bytes,
            context,
            "kms:GenerateDataKeyWithoutPlaintext",
        )?;
        Ok(WrappedDataKey {
            ciphertext_blob: generated.ciphertext_blob,
            key_arn: generated.key_arn,
            key_material_id: generated.key_material_id,
        })
    }

    /// GenerateRandom: `number_of_bytes` (1 to 1024) random bytes. No key is involved.
    pub fn generate_random(&self, number_of_bytes: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        check_number_of_bytes(number_of_bytes)?;
        let mut bytes = Zeroizing::new(vec![0u8; number_of_bytes]);
        self.kms.fill(&mut bytes);
        Ok(bytes)
    }

    fn generate(
        &self,
        key_id: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
        action: &str,
    ) -> Result<GeneratedDataKey, KmsError> {
        check_number_of_bytes(number_of_bytes)?;
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, action, Some(context))?;
            key.check_usable_for_encryption()?;
            let mut plaintext = Zeroizing::new(vec![0u8; number_of_bytes]);
            self.kms.fill(&mut plaintext);
            let ciphertext_blob =
                key.seal(self.kms.backend, self.kms.new_nonce(), &plaintext, context)?;
            self.used(key, action.trim_start_matches("kms:"), now);
            Ok(GeneratedDataKey {
                plaintext,
                ciphertext_blob,
                key_arn: key.arn(),
                key_material_id: Some(key.current_material_id()?),
            })
        })
    }
}

/// A blob opened by [`LocalKmsClient::open`].
struct Opened<'s> {
    key: &'s KeyRecord,
    version: u32,
    plaintext: Zeroizing<Vec<u8>>,
}

/// NumberOfBytes, as AWS checks it.
fn check_number_of_bytes(number_of_bytes: usize) -> Result<(), KmsError> {
    validation::range("numberOfBytes", number_of_bytes as u64, 1, 1024)
}
