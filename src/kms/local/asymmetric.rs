//! The operations of [`LocalKmsClient`] on keys that are not SYMMETRIC_DEFAULT, and the
//! data key pairs symmetric keys wrap: Sign, Verify, GetPublicKey, Encrypt and Decrypt
//! with RSA, GenerateMac, VerifyMac, DeriveSharedSecret, Encapsulate, Decapsulate and
//! GenerateDataKeyPair. Each is checked against the key's state, usage, policy and grants
//! as the symmetric operations are; the cryptography is `key_material`'s.

use super::key_material::{data_key_pair, KeyMaterial};
use super::*;
use crate::kms::key_spec::names;

/// What Sign returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The ARN of the key that signed.
    pub key_arn: String,
    /// The signature: DER for ECDSA, raw for RSA, Ed25519 and ML-DSA.
    pub signature: Vec<u8>,
    /// The algorithm that made it.
    pub signing_algorithm: SigningAlgorithm,
}

/// What GetPublicKey returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The key's ARN.
    pub key_arn: String,
    /// DER SubjectPublicKeyInfo (RFC 5280).
    pub public_key: Vec<u8>,
    /// The key's spec.
    pub key_spec: KeySpec,
    /// The key's usage.
    pub key_usage: KeyUsage,
    /// What the key may be used with.
    pub algorithms: Algorithms,
}

/// What GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext return.
pub struct DataKeyPair {
    /// The ARN of the symmetric key that wrapped the private key.
    pub key_arn: String,
    /// The pair's spec.
    pub key_pair_spec: KeySpec,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// DER PKCS #8, zeroized on drop; `None` from GenerateDataKeyPairWithoutPlaintext.
    pub private_key_plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The private key, encrypted under the symmetric key (Decrypt opens it).
    pub private_key_ciphertext_blob: Vec<u8>,
    /// The key material version that wrapped it.
    pub key_material_id: String,
}

/// What DeriveSharedSecret, Encapsulate and Decapsulate return: a secret zeroized on
/// drop, and for Encapsulate the ciphertext that carries it.
pub struct SharedSecret {
    /// The ARN of the key used.
    pub key_arn: String,
    /// The shared secret.
    pub shared_secret: Zeroizing<Vec<u8>>,
}

/// What Encapsulate returns.
pub struct Encapsulated {
    /// The secret, and the key's ARN.
    pub secret: SharedSecret,
    /// The ML-KEM ciphertext the key's owner decapsulates.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for DataKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyPair")
            .field("key_arn", &self.key_arn)
            .field("key_pair_spec", &self.key_pair_spec)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// The data key pair specs AWS offers outside its China Regions.
const DATA_KEY_PAIR_SPECS: &[KeySpec] = &[
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EccNistP256,
    KeySpec::EccNistP384,
    KeySpec::EccNistP521,
    KeySpec::EccSecgP256k1,
    KeySpec::EccNistEdwards25519,
    KeySpec::MlKem512,
    KeySpec::MlKem768,
    KeySpec::MlKem1024,
];

/// KeyPairSpec, as AWS checks it.
pub fn parse_key_pair_spec(name: &str) -> Result<KeySpec, KmsError> {
    match KeySpec::parse(name) {
        Ok(spec) if DATA_KEY_PAIR_SPECS.contains(&spec) => Ok(spec),
        Err(e @ KmsError::UnsupportedOperation(_)) => Err(e),
        _ => {
            let mut names: Vec<&str> = DATA_KEY_PAIR_SPECS.iter().map(|s| s.aws_name()).collect();
            names.push("SM2");
            Err(validation::not_in_enum("keyPairSpec", name, &names))
        }
    }
}

/// Message and Plaintext: 1 to 4096 bytes.
fn check_message(member: &str, message: &[u8]) -> Result<(), KmsError> {
    validation::length(member, Shown::Secret, message.len(), 1, MAX_PLAINTEXT)
}

impl LocalKmsClient {
    /// The key `key_id` names, authorized for `action` and usable for `usage`, with its
    /// key pair or HMAC key.
    fn material_for<'s>(
        &self,
        state: &'s State,
        key_id: &str,
        action: &str,
        usage: KeyUsage,
    ) -> Result<(&'s KeyRecord, KeyMaterial<'s>), KmsError> {
        let key = state.authorized(&self.caller, key_id, USE, action, None)?;
        key.check_usable_for(usage, action.trim_start_matches("kms:"))?;
        Ok((key, key.key_material()?))
    }

    /// Sign: a signature over `message` (1 to 4096 bytes; a digest of the algorithm's
    /// length with [`MessageType::Digest`]) with the private key of a SIGN_VERIFY key.
    pub fn sign(
        &self,
        key_id: &str,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
    ) -> Result<Signed, KmsError> {
        check_message("message", message)?;
        self.kms.read(|state, now| {
            let (key, material) =
                self.material_for(state, key_id, "kms:Sign", KeyUsage::SignVerify)?;
            check_algorithm(key, key.spec.algorithms(key.usage).signing, algorithm)?;
            let signature = material.sign(algorithm, message_type, message)?;
            self.used(key, "Sign", now);
            Ok(Signed {
                key_arn: key.arn(),
                signature,
                signing_algorithm: algorithm,
            })
        })
    }

    /// Verify: the key's ARN when `signature` is the key's over `message`;
    /// [`KmsError::InvalidSignature`] when it is not.
    pub fn verify(
        &self,
        key_id: &str,
        message: &[u8],
        message_type: MessageType,
        signature: &[u8],
        algorithm: SigningAlgorithm,
    ) -> Result<String, KmsError> {
        check_message("message", message)?;
        validation::length("signature", Shown::Secret, signature.len(), 1, 6144)?;
        self.kms.read(|state, now| {
            let (key, material) =
                self.material_for(state, key_id, "kms:Verify", KeyUsage::SignVerify)?;
            check_algorithm(key, key.spec.algorithms(key.usage).signing, algorithm)?;
            if !material.verify(algorithm, message_type, message, signature)? {
                return Err(KmsError::InvalidSignature(format!(
                    "the signature is not {}'s over this message with {algorithm}",
                    key.arn()
                )));
            }
            self.used(key, "Verify", now);
            Ok(key.arn())
        })
    }

    /// GetPublicKey: the public half of an asymmetric key.
    pub fn get_public_key(&self, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, "kms:GetPublicKey", None)?;
            key.check_usable()?;
            if !key.spec.is_asymmetric() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} is a {} key, which has no public key",
                    key.arn(),
                    key.spec
                )));
            }
            let public_key = key.key_material()?.public_key()?;
            self.used(key, "GetPublicKey", now);
            Ok(PublicKeyInfo {
                key_arn: key.arn(),
                public_key,
                key_spec: key.spec,
                key_usage: key.usage,
                algorithms: key.spec.algorithms(key.usage),
            })
        })
    }

    /// Encrypt with `algorithm`: SYMMETRIC_DEFAULT under a symmetric key (as
    /// [`LocalKmsClient::encrypt`]), RSA-OAEP under the public key of an RSA key for
    /// ENCRYPT_DECRYPT, which takes no encryption context and at most what the key size
    /// and algorithm allow (RSA_2048 with SHA-256: 190 bytes).
    pub fn encrypt_with(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Encrypted, KmsError> {
        if algorithm == EncryptionAlgorithm::SymmetricDefault {
            return self.encrypt(key_id, plaintext, context);
        }
        check_message("plaintext", plaintext)?;
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, "kms:Encrypt", Some(context))?;
            let material = rsa_material(key, algorithm, context)?;
            let limit = material.max_plaintext(algorithm)?;
            if plaintext.len() > limit {
                return Err(KmsError::Validation(format!(
                    "Plaintext is {} bytes; {algorithm} under a {} key encrypts at most {limit}",
                    plaintext.len(),
                    key.spec
                )));
            }
            let ciphertext_blob = material.rsa_encrypt(algorithm, plaintext)?;
            self.used(key, "Encrypt", now);
            Ok(Encrypted {
                ciphertext_blob,
                key_arn: key.arn(),
            })
        })
    }

    /// Decrypt with `algorithm`: as [`LocalKmsClient::decrypt`] for SYMMETRIC_DEFAULT;
    /// RSA-OAEP with the private key of the RSA key `key_id`, which must be named (an RSA
    /// ciphertext does not say which key made it).
    pub fn decrypt_with(
        &self,
        key_id: Option<&str>,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Decrypted, KmsError> {
        if algorithm == EncryptionAlgorithm::SymmetricDefault {
            return self.decrypt(key_id, ciphertext_blob, context);
        }
        let key_id = key_id.ok_or_else(|| {
            KmsError::Validation(format!(
                "KeyId is required to decrypt with {algorithm}: an RSA ciphertext does not name its key"
            ))
        })?;
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, "kms:Decrypt", Some(context))?;
            let plaintext =
                rsa_material(key, algorithm, context)?.rsa_decrypt(algorithm, ciphertext_blob)?;
            self.used(key, "Decrypt", now);
            Ok(Decrypted {
                plaintext,
                key_arn: key.arn(),
                key_material_id: None,
            })
        })
    }

    /// GenerateMac: the HMAC of `message` under a GENERATE_VERIFY_MAC key.
    pub fn generate_mac(
        &self,
        key_id: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<(String, Vec<u8>), KmsError> {
        check_message("message", message)?;
        self.kms.read(|state, now| {
            let (key, material) = self.material_for(
                state,
                key_id,
                "kms:GenerateMac",
                KeyUsage::GenerateVerifyMac,
            )?;
            check_algorithm(key, key.spec.algorithms(key.usage).mac, algorithm)?;
            let mac = material.mac(message)?;
            self.used(key, "GenerateMac", now);
            Ok((key.arn(), mac))
        })
    }

    /// VerifyMac: the key's ARN when `mac` is its HMAC of `message`;
    /// [`KmsError::InvalidMac`] when it is not.
    pub fn verify_mac(
        &self,
        key_id: &str,
        message: &[u8],
        mac: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<String, KmsError> {
        check_message("message", message)?;
        validation::length("mac", Shown::Secret, mac.len(), 1, 6144)?;
        self.kms.read(|state, now| {
            let (key, material) =
                self.material_for(state, key_id, "kms:VerifyMac", KeyUsage::GenerateVerifyMac)?;
            check_algorithm(key, key.spec.algorithms(key.usage).mac, algorithm)?;
            if !material.verify_mac(message, mac)? {
                return Err(KmsError::InvalidMac(format!(
                    "the MAC is not {}'s over this message with {algorithm}",
                    key.arn()
                )));
            }
            self.used(key, "VerifyMac", now);
            Ok(key.arn())
        })
    }

    /// DeriveSharedSecret: ECDH between a KEY_AGREEMENT key's private key and a peer's
    /// public key (DER SubjectPublicKeyInfo on the same curve).
    pub fn derive_shared_secret(
        &self,
        key_id: &str,
        peer_public_key: &[u8],
    ) -> Result<SharedSecret, KmsError> {
        validation::length("publicKey", Shown::Secret, peer_public_key.len(), 1, 8192)?;
        self.kms.read(|state, now| {
            let (key, material) = self.material_for(
                state,
                key_id,
                "kms:DeriveSharedSecret",
                KeyUsage::KeyAgreement,
            )?;
            let shared_secret = material.derive_shared_secret(peer_public_key)?;
            self.used(key, "DeriveSharedSecret", now);
            Ok(SharedSecret {
                key_arn: key.arn(),
                shared_secret,
            })
        })
    }

    /// Encapsulate: a fresh shared secret and its ML-KEM ciphertext under the key's
    /// public key.
    pub fn encapsulate(&self, key_id: &str) -> Result<Encapsulated, KmsError> {
        self.kms.read(|state, now| {
            let (key, material) = self.material_for(
                state,
                key_id,
                "kms:Encapsulate",
                KeyUsage::EncapsulateDecapsulate,
            )?;
            let (ciphertext, shared_secret) = material.encapsulate()?;
            self.used(key, "Encapsulate", now);
            Ok(Encapsulated {
                secret: SharedSecret {
                    key_arn: key.arn(),
                    shared_secret,
                },
                ciphertext,
            })
        })
    }

    /// Decapsulate: the shared secret an ML-KEM ciphertext made for the key carries.
    pub fn decapsulate(&self, key_id: &str, ciphertext: &[u8]) -> Result<SharedSecret, KmsError> {
        validation::length(
            "sharedSecretCiphertextBlob",
            Shown::Secret,
            ciphertext.len(),
            1,
            6144,
        )?;
        self.kms.read(|state, now| {
            let (key, material) = self.material_for(
                state,
                key_id,
                "kms:Decapsulate",
                KeyUsage::EncapsulateDecapsulate,
            )?;
            let shared_secret = material.decapsulate(ciphertext)?;
            self.used(key, "Decapsulate", now);
            Ok(SharedSecret {
                key_arn: key.arn(),
                shared_secret,
            })
        })
    }

    /// GenerateDataKeyPair (`with_plaintext`) or GenerateDataKeyPairWithoutPlaintext: a
    /// new key pair of `spec` for use outside the KMS, its private key encrypted under
    /// the symmetric key `key_id` and `context`.
    pub fn generate_data_key_pair(
        &self,
        key_id: &str,
        spec: KeySpec,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPair, KmsError> {
        let action = if with_plaintext {
            "kms:GenerateDataKeyPair"
        } else {
            "kms:GenerateDataKeyPairWithoutPlaintext"
        };
        // Checked before the pair is made: RSA pairs take long to make.
        self.kms.read(|state, _| {
            state
                .authorized(&self.caller, key_id, USE, action, Some(context))?
                .check_usable_for_encryption()
        })?;
        if !DATA_KEY_PAIR_SPECS.contains(&spec) {
            return Err(KmsError::Validation(format!(
                "{spec} is not a data key pair spec; KeyPairSpec is one of {}",
                names(DATA_KEY_PAIR_SPECS)
            )));
        }
        let (private, public_key) = data_key_pair(spec)?;
        self.kms.read(|state, now| {
            let key = state.authorized(&self.caller, key_id, USE, action, Some(context))?;
            key.check_usable_for_encryption()?;
            let private_key_ciphertext_blob = key.seal(
                self.kms.backend,
                self.kms.new_nonce(),
                private.expose(),
                context,
            )?;
            self.used(key, action.trim_start_matches("kms:"), now);
            Ok(DataKeyPair {
                key_arn: key.arn(),
                key_pair_spec: spec,
                public_key,
                private_key_plaintext: with_plaintext
                    .then(|| Zeroizing::new(private.expose().to_vec())),
                private_key_ciphertext_blob,
                key_material_id: key.current_material_id()?,
            })
        })
    }
}

/// The key pair of an RSA key for ENCRYPT_DECRYPT, for `algorithm` without an encryption
/// context, or why not.
fn rsa_material<'k>(
    key: &'k KeyRecord,
    algorithm: EncryptionAlgorithm,
    context: &EncryptionContext,
) -> Result<KeyMaterial<'k>, KmsError> {
    key.check_usable()?;
    check_algorithm(key, key.spec.algorithms(key.usage).encryption, algorithm)?;
    if !context.is_empty() {
        return Err(KmsError::Validation(format!(
            "EncryptionContext is supported only with symmetric keys; {algorithm} takes none"
        )));
    }
    key.key_material()
}

/// Checks that the key supports `algorithm`, one of the algorithms of its kind
/// (`supported`, from its spec and usage).
fn check_algorithm<T: PartialEq + fmt::Display>(
    key: &KeyRecord,
    supported: &[T],
    algorithm: T,
) -> Result<(), KmsError> {
    if supported.contains(&algorithm) {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} ({}, {}) does not support {algorithm}; it supports {}",
        key.arn(),
        key.spec,
        key.usage,
        names(supported)
    )))
}
