//! What a KMS key is and may do, in AWS's names: its key spec, its key usage, which usages
//! each spec allows, and the algorithms (encryption, signing, MAC, key agreement,
//! encapsulation) AWS lists for each spec and usage.

use std::fmt;

use super::validation;
use super::KmsError;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $aws:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $aws)] $variant,)*
        }

        impl $name {
            /// Every value LocalKms emulates, in AWS's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name AWS uses.
            pub fn aws_name(self) -> &'static str {
                match self {
                    $($name::$variant => $aws,)*
                }
            }

            fn find(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.aws_name() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.aws_name())
            }
        }
    };
}

named_enum! {
    /// The kind of key material, as AWS names it.
    KeySpec {
        /// AES-256-GCM, for encryption.
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        /// An RSA 2048-bit key pair.
        Rsa2048 = "RSA_2048",
        /// An RSA 3072-bit key pair.
        Rsa3072 = "RSA_3072",
        /// An RSA 4096-bit key pair.
        Rsa4096 = "RSA_4096",
        /// A NIST P-256 (secp256r1) key pair.
        EccNistP256 = "ECC_NIST_P256",
        /// A NIST P-384 (secp384r1) key pair.
        EccNistP384 = "ECC_NIST_P384",
        /// A NIST P-521 (secp521r1) key pair.
        EccNistP521 = "ECC_NIST_P521",
        /// A secp256k1 key pair.
        EccSecgP256k1 = "ECC_SECG_P256K1",
        /// A 224-bit HMAC key.
        Hmac224 = "HMAC_224",
        /// A 256-bit HMAC key.
        Hmac256 = "HMAC_256",
        /// A 384-bit HMAC key.
        Hmac384 = "HMAC_384",
        /// A 512-bit HMAC key.
        Hmac512 = "HMAC_512",
        /// An ML-DSA-44 key pair (FIPS 204).
        MlDsa44 = "ML_DSA_44",
        /// An ML-DSA-65 key pair (FIPS 204).
        MlDsa65 = "ML_DSA_65",
        /// An ML-DSA-87 key pair (FIPS 204).
        MlDsa87 = "ML_DSA_87",
        /// An Ed25519 key pair.
        EccNistEdwards25519 = "ECC_NIST_EDWARDS25519",
        /// An ML-KEM-512 key pair (FIPS 203).
        MlKem512 = "ML_KEM_512",
        /// An ML-KEM-768 key pair (FIPS 203).
        MlKem768 = "ML_KEM_768",
        /// An ML-KEM-1024 key pair (FIPS 203).
        MlKem1024 = "ML_KEM_1024",
    }
}

named_enum! {
    /// What a key may be used for, as AWS names it.
    KeyUsage {
        /// Sign and verify.
        SignVerify = "SIGN_VERIFY",
        /// Encrypt and decrypt.
        EncryptDecrypt = "ENCRYPT_DECRYPT",
        /// Generate and verify MACs.
        GenerateVerifyMac = "GENERATE_VERIFY_MAC",
        /// Derive shared secrets (ECDH).
        KeyAgreement = "KEY_AGREEMENT",
        /// Encapsulate and decapsulate shared secrets (ML-KEM).
        EncapsulateDecapsulate = "ENCAPSULATE_DECAPSULATE",
    }
}

named_enum! {
    /// An encryption algorithm, as AWS names it.
    EncryptionAlgorithm {
        /// AES-256-GCM under a symmetric key.
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        /// RSA-OAEP with SHA-1 (and MGF1 with SHA-1).
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        /// RSA-OAEP with SHA-256 (and MGF1 with SHA-256).
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
    }
}

named_enum! {
    /// A signing algorithm, as AWS names it.
    SigningAlgorithm {
        /// RSA-PSS with SHA-256.
        RsassaPssSha256 = "RSASSA_PSS_SHA_256",
        /// RSA-PSS with SHA-384.
        RsassaPssSha384 = "RSASSA_PSS_SHA_384",
        /// RSA-PSS with SHA-512.
        RsassaPssSha512 = "RSASSA_PSS_SHA_512",
        /// RSA PKCS #1 v1.5 with SHA-256.
        RsassaPkcs1V15Sha256 = "RSASSA_PKCS1_V1_5_SHA_256",
        /// RSA PKCS #1 v1.5 with SHA-384.
        RsassaPkcs1V15Sha384 = "RSASSA_PKCS1_V1_5_SHA_384",
        /// RSA PKCS #1 v1.5 with SHA-512.
        RsassaPkcs1V15Sha512 = "RSASSA_PKCS1_V1_5_SHA_512",
        /// ECDSA with SHA-256 (DER signature).
        EcdsaSha256 = "ECDSA_SHA_256",
        /// ECDSA with SHA-384 (DER signature).
        EcdsaSha384 = "ECDSA_SHA_384",
        /// ECDSA with SHA-512 (DER signature).
        EcdsaSha512 = "ECDSA_SHA_512",
        /// ML-DSA, whose message representative is SHAKE-256.
        MlDsaShake256 = "ML_DSA_SHAKE_256",
        /// Pure Ed25519.
        Ed25519Sha512 = "ED25519_SHA_512",
        /// HashEdDSA (Ed25519ph) over SHA-512.
        Ed25519PhSha512 = "ED25519_PH_SHA_512",
    }
}

named_enum! {
    /// A MAC algorithm, as AWS names it.
    MacAlgorithm {
        /// HMAC with SHA-224.
        HmacSha224 = "HMAC_SHA_224",
        /// HMAC with SHA-256.
        HmacSha256 = "HMAC_SHA_256",
        /// HMAC with SHA-384.
        HmacSha384 = "HMAC_SHA_384",
        /// HMAC with SHA-512.
        HmacSha512 = "HMAC_SHA_512",
    }
}

named_enum! {
    /// What Sign and Verify are given, as AWS names it.
    MessageType {
        /// The message itself: the algorithm hashes it.
        Raw = "RAW",
        /// A digest the caller made with the algorithm's hash.
        Digest = "DIGEST",
        /// ML-DSA's 64-byte message representative μ (FIPS 204).
        ExternalMu = "EXTERNAL_MU",
    }
}

named_enum! {
    /// How key material is wrapped for import (GetParametersForImport), as AWS names it.
    WrappingAlgorithm {
        /// RSA-OAEP with SHA-1 of the material itself.
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        /// RSA-OAEP with SHA-256 of the material itself.
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        /// RSA-OAEP (SHA-1) of an AES-256 key, then AES key wrap with padding (RFC 5649)
        /// of the material under it.
        RsaAesKeyWrapSha1 = "RSA_AES_KEY_WRAP_SHA_1",
        /// RSA-OAEP (SHA-256) of an AES-256 key, then AES key wrap with padding.
        RsaAesKeyWrapSha256 = "RSA_AES_KEY_WRAP_SHA_256",
    }
}

impl WrappingAlgorithm {
    /// The algorithm AWS calls `name`. RSAES_PKCS1_V1_5, which AWS stopped taking in
    /// October 2023, and SM2PKE (China Regions) are refused with AWS's reasons.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        if name == "RSAES_PKCS1_V1_5" {
            return Err(KmsError::Validation(
                "the RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256".into(),
            ));
        }
        let mut names: Vec<&str> = Self::ALL.iter().map(|a| a.aws_name()).collect();
        names.splice(0..0, ["RSAES_PKCS1_V1_5"]);
        names.push("SM2PKE");
        parse_named(Self::find(name), "wrappingAlgorithm", name, &names)
    }

    /// The OAEP hash that wraps the material or the AES key: SHA-256, or SHA-1.
    pub fn oaep(self) -> EncryptionAlgorithm {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => {
                EncryptionAlgorithm::RsaesOaepSha1
            }
            _ => EncryptionAlgorithm::RsaesOaepSha256,
        }
    }

    /// Whether an AES key wraps the material (the RSA_AES algorithms).
    pub fn wraps_with_aes(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        )
    }
}

/// The wrapping key specs GetParametersForImport makes.
pub fn parse_wrapping_key_spec(name: &str) -> Result<KeySpec, KmsError> {
    const SPECS: [KeySpec; 3] = [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096];
    parse_named(
        SPECS.iter().copied().find(|s| s.aws_name() == name),
        "wrappingKeySpec",
        name,
        &["RSA_2048", "RSA_3072", "RSA_4096", "SM2"],
    )
}

/// Every key spec AWS KMS has, in its model's order.
const AWS_KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];

const AWS_ENCRYPTION_ALGORITHMS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

const AWS_SIGNING_ALGORITHMS: &[&str] = &[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
];

/// The SM2 names, which AWS offers in its China Regions only.
fn china_only(name: &str) -> Option<KmsError> {
    matches!(name, "SM2" | "SM2PKE" | "SM2DSA").then(|| {
        KmsError::UnsupportedOperation(format!(
            "{name} is available only in the AWS China Regions (cn-north-1, cn-northwest-1), which LocalKms does not emulate"
        ))
    })
}

/// The value AWS calls `name`, or AWS's enum error naming `member` and every value it has.
fn parse_named<T>(
    found: Option<T>,
    member: &str,
    name: &str,
    aws_names: &[&str],
) -> Result<T, KmsError> {
    match found {
        Some(value) => Ok(value),
        None => {
            Err(china_only(name)
                .unwrap_or_else(|| validation::not_in_enum(member, name, aws_names)))
        }
    }
}

impl KeySpec {
    /// The spec AWS calls `name`. SM2 (China Regions only) is
    /// `UnsupportedOperationException`; a name AWS does not have is AWS's enum error.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        parse_named(Self::find(name), "keySpec", name, AWS_KEY_SPECS)
    }

    /// The usages AWS allows a key of this spec, the first being the one atrest assumes
    /// where a usage is not given (seed files, old answers).
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeySpec::*;
        match self {
            SymmetricDefault => &[KeyUsage::EncryptDecrypt],
            Rsa2048 | Rsa3072 | Rsa4096 => &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify],
            EccNistP256 | EccNistP384 | EccNistP521 => {
                &[KeyUsage::SignVerify, KeyUsage::KeyAgreement]
            }
            EccSecgP256k1 | EccNistEdwards25519 | MlDsa44 | MlDsa65 | MlDsa87 => {
                &[KeyUsage::SignVerify]
            }
            Hmac224 | Hmac256 | Hmac384 | Hmac512 => &[KeyUsage::GenerateVerifyMac],
            MlKem512 | MlKem768 | MlKem1024 => &[KeyUsage::EncapsulateDecapsulate],
        }
    }

    /// The usage of a key of this spec when none is given: where AWS does not say (seed
    /// files, old answers), the spec's first usage.
    pub fn default_usage(self) -> KeyUsage {
        self.usages()
            .first()
            .copied()
            .unwrap_or(KeyUsage::EncryptDecrypt)
    }

    /// Checks that a key of this spec may have `usage`, with AWS's words.
    pub fn check_usage(self, usage: KeyUsage) -> Result<(), KmsError> {
        if self.usages().contains(&usage) {
            return Ok(());
        }
        Err(KmsError::Validation(format!(
            "KeyUsage {usage} is not compatible with KeySpec {self}; it allows {}",
            names(self.usages())
        )))
    }

    /// The spec under the name AWS used first (CustomerMasterKeySpec), which it still
    /// returns for the specs that name knows (not Ed25519, ML-DSA or ML-KEM).
    pub fn customer_master_key_spec(self) -> Option<KeySpec> {
        use KeySpec::*;
        match self {
            EccNistEdwards25519 | MlDsa44 | MlDsa65 | MlDsa87 | MlKem512 | MlKem768 | MlKem1024 => {
                None
            }
            other => Some(other),
        }
    }

    /// HMAC keys: symmetric, but not for encryption.
    pub fn is_hmac(self) -> bool {
        self.usages() == [KeyUsage::GenerateVerifyMac]
    }

    /// Whether the key is a pair with a public half (GetPublicKey answers).
    pub fn is_asymmetric(self) -> bool {
        self != KeySpec::SymmetricDefault && !self.is_hmac()
    }

    /// The algorithms AWS lists for a key of this spec used for `usage`.
    pub fn algorithms(self, usage: KeyUsage) -> Algorithms {
        use KeySpec::*;
        let mut all = Algorithms::default();
        match (self, usage) {
            (SymmetricDefault, _) => all.encryption = &[EncryptionAlgorithm::SymmetricDefault],
            (Rsa2048 | Rsa3072 | Rsa4096, KeyUsage::EncryptDecrypt) => {
                all.encryption = &[
                    EncryptionAlgorithm::RsaesOaepSha1,
                    EncryptionAlgorithm::RsaesOaepSha256,
                ]
            }
            (Rsa2048 | Rsa3072 | Rsa4096, _) => {
                all.signing = &[
                    SigningAlgorithm::RsassaPssSha256,
                    SigningAlgorithm::RsassaPssSha384,
                    SigningAlgorithm::RsassaPssSha512,
                    SigningAlgorithm::RsassaPkcs1V15Sha256,
                    SigningAlgorithm::RsassaPkcs1V15Sha384,
                    SigningAlgorithm::RsassaPkcs1V15Sha512,
                ]
            }
            (EccNistP256 | EccNistP384 | EccNistP521, KeyUsage::KeyAgreement) => {
                all.key_agreement = &["ECDH"]
            }
            (EccNistP256 | EccSecgP256k1, _) => all.signing = &[SigningAlgorithm::EcdsaSha256],
            (EccNistP384, _) => all.signing = &[SigningAlgorithm::EcdsaSha384],
            (EccNistP521, _) => all.signing = &[SigningAlgorithm::EcdsaSha512],
            (EccNistEdwards25519, _) => {
                all.signing = &[
                    SigningAlgorithm::Ed25519Sha512,
                    SigningAlgorithm::Ed25519PhSha512,
                ]
            }
            (MlDsa44 | MlDsa65 | MlDsa87, _) => all.signing = &[SigningAlgorithm::MlDsaShake256],
            (Hmac224, _) => all.mac = &[MacAlgorithm::HmacSha224],
            (Hmac256, _) => all.mac = &[MacAlgorithm::HmacSha256],
            (Hmac384, _) => all.mac = &[MacAlgorithm::HmacSha384],
            (Hmac512, _) => all.mac = &[MacAlgorithm::HmacSha512],
            (MlKem512 | MlKem768 | MlKem1024, _) => all.encapsulation = &["ML_KEM"],
        }
        all
    }
}

/// The algorithms a key supports, one list per kind (empty where the key has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// Encrypt and Decrypt.
    pub encryption: &'static [EncryptionAlgorithm],
    /// Sign and Verify.
    pub signing: &'static [SigningAlgorithm],
    /// GenerateMac and VerifyMac.
    pub mac: &'static [MacAlgorithm],
    /// DeriveSharedSecret.
    pub key_agreement: &'static [&'static str],
    /// Encapsulate and Decapsulate.
    pub encapsulation: &'static [&'static str],
}

/// `A, B, C` for messages; "none" for an empty list.
pub(crate) fn names<T: fmt::Display>(values: &[T]) -> String {
    if values.is_empty() {
        return "none".into();
    }
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl KeyUsage {
    /// The usage AWS calls `name`, or AWS's enum error.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        parse_named(
            Self::find(name),
            "keyUsage",
            name,
            &Self::ALL.iter().map(|u| u.aws_name()).collect::<Vec<_>>(),
        )
    }
}

impl EncryptionAlgorithm {
    /// The algorithm AWS calls `name`, or AWS's enum error naming `member`.
    pub fn parse(member: &str, name: &str) -> Result<Self, KmsError> {
        parse_named(Self::find(name), member, name, AWS_ENCRYPTION_ALGORITHMS)
    }
}

impl SigningAlgorithm {
    /// The algorithm AWS calls `name`, or AWS's enum error.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        parse_named(
            Self::find(name),
            "signingAlgorithm",
            name,
            AWS_SIGNING_ALGORITHMS,
        )
    }

    /// The length of the digest the algorithm signs, which a DIGEST message must have;
    /// `None` where the algorithm takes no digest of AWS's kind (pure Ed25519, ML-DSA).
    pub fn digest_len(self) -> Option<usize> {
        use SigningAlgorithm::*;
        match self {
            RsassaPssSha256 | RsassaPkcs1V15Sha256 | EcdsaSha256 => Some(32),
            RsassaPssSha384 | RsassaPkcs1V15Sha384 | EcdsaSha384 => Some(48),
            RsassaPssSha512 | RsassaPkcs1V15Sha512 | EcdsaSha512 | Ed25519PhSha512 => Some(64),
            MlDsaShake256 | Ed25519Sha512 => None,
        }
    }
}

impl MacAlgorithm {
    /// The algorithm AWS calls `name`, or AWS's enum error.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        parse_named(
            Self::find(name),
            "macAlgorithm",
            name,
            &Self::ALL.iter().map(|a| a.aws_name()).collect::<Vec<_>>(),
        )
    }
}

impl MessageType {
    /// The message type AWS calls `name`, or AWS's enum error.
    pub fn parse(name: &str) -> Result<Self, KmsError> {
        parse_named(
            Self::find(name),
            "messageType",
            name,
            &Self::ALL.iter().map(|m| m.aws_name()).collect::<Vec<_>>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aws_spec_but_sm2_is_emulated() {
        for name in AWS_KEY_SPECS {
            match KeySpec::parse(name) {
                Ok(spec) => assert_eq!(spec.aws_name(), *name),
                Err(e) => assert_eq!(
                    (*name, e.aws_name()),
                    ("SM2", "UnsupportedOperationException")
                ),
            }
        }
        assert_eq!(KeySpec::ALL.len(), AWS_KEY_SPECS.len() - 1);
        assert_eq!(
            KeySpec::parse("AES_999").unwrap_err().aws_name(),
            "ValidationException"
        );
    }

    #[test]
    fn every_spec_and_usage_lists_algorithms_for_it() {
        for spec in KeySpec::ALL {
            for usage in spec.usages() {
                let a = spec.algorithms(*usage);
                let kinds = [
                    a.encryption.len(),
                    a.signing.len(),
                    a.mac.len(),
                    a.key_agreement.len(),
                    a.encapsulation.len(),
                ];
                assert_eq!(
                    kinds.iter().filter(|n| **n > 0).count(),
                    1,
                    "{spec} {usage}"
                );
            }
        }
        assert!(KeySpec::EccSecgP256k1
            .check_usage(KeyUsage::KeyAgreement)
            .is_err());
        assert!(KeySpec::EccNistP384
            .check_usage(KeyUsage::KeyAgreement)
            .is_ok());
    }
}
