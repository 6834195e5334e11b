//! The answers of Sign, Verify, GetPublicKey, GenerateDataKeyPair (with and without
//! plaintext), GenerateMac, VerifyMac, DeriveSharedSecret, Encapsulate and Decapsulate.
//! Secrets (private keys, shared secrets) are base64 in zeroizing strings.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use zeroize::Zeroizing;

use super::zeroizing_str;
use crate::kms::{
    DataKeyPair, Encapsulated, KeySpec, KeyUsage, MacAlgorithm, PublicKeyInfo, SharedSecret,
    Signed, SigningAlgorithm,
};

/// Sign.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct SignResponse {
    /// The ARN of the key that signed.
    pub key_id: String,
    /// The signature, base64.
    pub signature: String,
    /// The algorithm that made it.
    pub signing_algorithm: SigningAlgorithm,
}

impl From<Signed> for SignResponse {
    fn from(s: Signed) -> Self {
        SignResponse {
            key_id: s.key_arn,
            signature: BASE64.encode(&s.signature),
            signing_algorithm: s.signing_algorithm,
        }
    }
}

/// Verify: answered only for a valid signature (an invalid one is
/// KMSInvalidSignatureException).
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// The ARN of the key that verified.
    pub key_id: String,
    /// True.
    pub signature_valid: bool,
    /// The algorithm that verified.
    pub signing_algorithm: SigningAlgorithm,
}

/// GetPublicKey.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct GetPublicKeyResponse {
    /// The key's ARN.
    pub key_id: String,
    /// DER SubjectPublicKeyInfo, base64.
    pub public_key: String,
    /// The key's spec under its old name, for the specs that name knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_master_key_spec: Option<KeySpec>,
    /// The key's spec.
    pub key_spec: KeySpec,
    /// The key's usage.
    pub key_usage: KeyUsage,
    /// Encrypt and Decrypt's algorithms (RSA keys for ENCRYPT_DECRYPT).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub encryption_algorithms: &'static [crate::kms::EncryptionAlgorithm],
    /// Sign and Verify's algorithms.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub signing_algorithms: &'static [SigningAlgorithm],
    /// DeriveSharedSecret's algorithms.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub key_agreement_algorithms: &'static [&'static str],
    /// Encapsulate and Decapsulate's algorithms.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub encapsulation_algorithms: &'static [&'static str],
}

impl From<PublicKeyInfo> for GetPublicKeyResponse {
    fn from(p: PublicKeyInfo) -> Self {
        GetPublicKeyResponse {
            key_id: p.key_arn,
            public_key: BASE64.encode(&p.public_key),
            customer_master_key_spec: p.key_spec.customer_master_key_spec(),
            key_spec: p.key_spec,
            key_usage: p.key_usage,
            encryption_algorithms: p.algorithms.encryption,
            signing_algorithms: p.algorithms.signing,
            key_agreement_algorithms: p.algorithms.key_agreement,
            encapsulation_algorithms: p.algorithms.encapsulation,
        }
    }
}

/// GenerateDataKeyPair, and GenerateDataKeyPairWithoutPlaintext (without the private
/// key's plaintext). The base64 private key is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataKeyPairResponse {
    /// The private key encrypted under the KMS key, base64.
    pub private_key_ciphertext_blob: String,
    /// The private key, PKCS #8 DER in base64.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_zeroizing_str"
    )]
    pub private_key_plaintext: Option<Zeroizing<String>>,
    /// The public key, SubjectPublicKeyInfo DER in base64.
    pub public_key: String,
    /// The ARN of the KMS key.
    pub key_id: String,
    /// The pair's spec.
    pub key_pair_spec: KeySpec,
    /// The key material version that encrypted the private key.
    pub key_material_id: String,
}

impl From<DataKeyPair> for DataKeyPairResponse {
    fn from(p: DataKeyPair) -> Self {
        DataKeyPairResponse {
            private_key_ciphertext_blob: BASE64.encode(&p.private_key_ciphertext_blob),
            private_key_plaintext: p
                .private_key_plaintext
                .map(|k| Zeroizing::new(BASE64.encode(&k))),
            public_key: BASE64.encode(&p.public_key),
            key_id: p.key_arn,
            key_pair_spec: p.key_pair_spec,
            key_material_id: p.key_material_id,
        }
    }
}

/// GenerateMac.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacResponse {
    /// The MAC, base64.
    pub mac: String,
    /// The algorithm that made it.
    pub mac_algorithm: MacAlgorithm,
    /// The ARN of the key.
    pub key_id: String,
}

/// VerifyMac: answered only for a valid MAC (an invalid one is KMSInvalidMacException).
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacResponse {
    /// The ARN of the key.
    pub key_id: String,
    /// True.
    pub mac_valid: bool,
    /// The algorithm that verified.
    pub mac_algorithm: MacAlgorithm,
}

/// DeriveSharedSecret. The base64 secret is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretResponse {
    /// The ARN of the key.
    pub key_id: String,
    /// The raw ECDH secret, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub shared_secret: Zeroizing<String>,
    /// ECDH.
    pub key_agreement_algorithm: &'static str,
    /// Where the key's material came from.
    pub key_origin: &'static str,
}

impl From<SharedSecret> for DeriveSharedSecretResponse {
    fn from(s: SharedSecret) -> Self {
        DeriveSharedSecretResponse {
            key_id: s.key_arn,
            shared_secret: Zeroizing::new(BASE64.encode(&s.shared_secret)),
            key_agreement_algorithm: "ECDH",
            key_origin: "AWS_KMS",
        }
    }
}

/// Encapsulate. The base64 secret is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncapsulateResponse {
    /// The ARN of the key.
    pub key_id: String,
    /// The shared secret, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub shared_secret: Zeroizing<String>,
    /// The ML-KEM ciphertext, base64.
    pub shared_secret_ciphertext_blob: String,
    /// ML_KEM.
    pub encapsulation_algorithm: &'static str,
}

impl From<Encapsulated> for EncapsulateResponse {
    fn from(e: Encapsulated) -> Self {
        EncapsulateResponse {
            key_id: e.secret.key_arn,
            shared_secret: Zeroizing::new(BASE64.encode(&e.secret.shared_secret)),
            shared_secret_ciphertext_blob: BASE64.encode(&e.ciphertext),
            encapsulation_algorithm: "ML_KEM",
        }
    }
}

/// Decapsulate. The base64 secret is zeroized on drop.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecapsulateResponse {
    /// The ARN of the key.
    pub key_id: String,
    /// The shared secret, base64.
    #[serde(serialize_with = "zeroizing_str")]
    pub shared_secret: Zeroizing<String>,
    /// ML_KEM.
    pub encapsulation_algorithm: &'static str,
}

impl From<SharedSecret> for DecapsulateResponse {
    fn from(s: SharedSecret) -> Self {
        DecapsulateResponse {
            key_id: s.key_arn,
            shared_secret: Zeroizing::new(BASE64.encode(&s.shared_secret)),
            encapsulation_algorithm: "ML_KEM",
        }
    }
}

fn optional_zeroizing_str<S: serde::Serializer>(
    value: &Option<Zeroizing<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}
