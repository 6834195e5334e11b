//! LocalKms built without the `aws-lc` feature has no asymmetric or HMAC cryptography
//! (aws-lc-rs is its only source): keys of those specs cannot be created, and any a state
//! file holds refuse every operation on their material, saying why.

use zeroize::Zeroizing;

pub(crate) use super::secret_bytes::SecretBytes;
use super::{
    EncryptionAlgorithm, KeySpec, KmsError, MessageType, SigningAlgorithm, WrappingAlgorithm,
};

/// A key pair or HMAC key: its spec and its secret bytes.
#[derive(Clone, Copy)]
pub(crate) struct KeyMaterial<'a> {
    pub(crate) spec: KeySpec,
    #[allow(dead_code)]
    pub(crate) secret: &'a [u8],
}

fn unavailable(spec: KeySpec) -> KmsError {
    KmsError::UnsupportedOperation(format!(
        "{spec} keys need atrest built with its aws-lc feature (aws-lc-rs), which this build lacks"
    ))
}

pub(crate) fn generate(
    spec: KeySpec,
    _fill: impl FnOnce(&mut [u8]),
) -> Result<SecretBytes, KmsError> {
    Err(unavailable(spec))
}

pub(crate) fn data_key_pair(spec: KeySpec) -> Result<(SecretBytes, Vec<u8>), KmsError> {
    Err(unavailable(spec))
}

pub(crate) fn unwrap_imported(
    wrapping: KeyMaterial<'_>,
    _: WrappingAlgorithm,
    _: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    Err(unavailable(wrapping.spec))
}

pub(crate) fn stored_form(
    spec: KeySpec,
    _: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    Err(unavailable(spec))
}

/// Never called: no material is imported without the aws-lc feature.
pub(crate) fn imported_material_id(key_id: &str, _: &[u8]) -> String {
    key_id.to_string()
}

impl KeyMaterial<'_> {
    /// Material that cannot be checked here is kept as it is.
    pub(crate) fn check(&self) -> Result<(), KmsError> {
        Ok(())
    }

    pub(crate) fn public_key(&self) -> Result<Vec<u8>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn sign(
        &self,
        _: SigningAlgorithm,
        _: MessageType,
        _: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn verify(
        &self,
        _: SigningAlgorithm,
        _: MessageType,
        _: &[u8],
        _: &[u8],
    ) -> Result<bool, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn max_plaintext(&self, _: EncryptionAlgorithm) -> Result<usize, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn rsa_encrypt(
        &self,
        _: EncryptionAlgorithm,
        _: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn rsa_decrypt(
        &self,
        _: EncryptionAlgorithm,
        _: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn mac(&self, _: &[u8]) -> Result<Vec<u8>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn verify_mac(&self, _: &[u8], _: &[u8]) -> Result<bool, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn derive_shared_secret(&self, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn encapsulate(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), KmsError> {
        Err(unavailable(self.spec))
    }

    pub(crate) fn decapsulate(&self, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        Err(unavailable(self.spec))
    }
}
