//! The key material of keys that are not SYMMETRIC_DEFAULT: RSA, elliptic-curve, Ed25519,
//! ML-DSA and ML-KEM key pairs and HMAC keys. Made, kept (PKCS #8 for signing and RSA
//! pairs, the raw key for HMAC and ML-KEM) and used through aws-lc-rs. Pure cryptography:
//! which key may do what, and in which state, is the client's business. Signing is
//! `signing`'s.

mod signing;

use aws_lc_rs::agreement;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::hmac;
use aws_lc_rs::kem;
use aws_lc_rs::key_wrap::{self, KeyWrapPadded as _};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, PqdsaKeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use super::aws_lc_raw;
pub(crate) use super::secret_bytes::SecretBytes;
use super::{
    EncryptionAlgorithm, KeySpec, KmsError, MessageType, SigningAlgorithm, WrappingAlgorithm,
};

/// A key pair or HMAC key: its spec and its secret bytes.
#[derive(Clone, Copy)]
pub(crate) struct KeyMaterial<'a> {
    pub(crate) spec: KeySpec,
    pub(crate) secret: &'a [u8],
}

/// What a failing aws-lc-rs call becomes: the KMS's own failure, never the caller's.
fn internal(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KmsError + '_ {
    move |_| KmsError::Internal(format!("{what} failed in the emulated HSM"))
}

fn rejected(spec: KeySpec) -> impl Fn(aws_lc_rs::error::KeyRejected) -> KmsError {
    move |e| KmsError::Internal(format!("the stored {spec} key material is unusable: {e}"))
}

/// The curve behind an elliptic-curve spec: its ECDSA signing and verification
/// algorithms (DER signatures, AWS's form) and, for NIST curves, ECDH.
struct Curve {
    signing: &'static signature::EcdsaSigningAlgorithm,
    verification: &'static signature::EcdsaVerificationAlgorithm,
    ecdh: Option<&'static agreement::Algorithm>,
}

fn curve(spec: KeySpec) -> Option<Curve> {
    use signature::*;
    let (signing, verification, ecdh) = match spec {
        KeySpec::EccNistP256 => (
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &ECDSA_P256_SHA256_ASN1,
            Some(&agreement::ECDH_P256),
        ),
        KeySpec::EccNistP384 => (
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &ECDSA_P384_SHA384_ASN1,
            Some(&agreement::ECDH_P384),
        ),
        KeySpec::EccNistP521 => (
            &ECDSA_P521_SHA512_ASN1_SIGNING,
            &ECDSA_P521_SHA512_ASN1,
            Some(&agreement::ECDH_P521),
        ),
        KeySpec::EccSecgP256k1 => (
            &ECDSA_P256K1_SHA256_ASN1_SIGNING,
            &ECDSA_P256K1_SHA256_ASN1,
            None,
        ),
        _ => return None,
    };
    Some(Curve {
        signing,
        verification,
        ecdh,
    })
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    match spec {
        KeySpec::Rsa2048 => Some(KeySize::Rsa2048),
        KeySpec::Rsa3072 => Some(KeySize::Rsa3072),
        KeySpec::Rsa4096 => Some(KeySize::Rsa4096),
        _ => None,
    }
}

fn ml_dsa(
    spec: KeySpec,
) -> Option<(
    &'static signature::PqdsaSigningAlgorithm,
    &'static signature::PqdsaVerificationAlgorithm,
)> {
    match spec {
        KeySpec::MlDsa44 => Some((&signature::ML_DSA_44_SIGNING, &signature::ML_DSA_44)),
        KeySpec::MlDsa65 => Some((&signature::ML_DSA_65_SIGNING, &signature::ML_DSA_65)),
        KeySpec::MlDsa87 => Some((&signature::ML_DSA_87_SIGNING, &signature::ML_DSA_87)),
        _ => None,
    }
}

/// An ML-KEM parameter set: its algorithm, its module rank k, and the last byte of its
/// object identifier (2.16.840.1.101.3.4.4.x, FIPS 203's registration).
struct MlKem {
    algorithm: &'static kem::Algorithm,
    rank: usize,
    oid_last: u8,
}

fn ml_kem(spec: KeySpec) -> Option<MlKem> {
    let (algorithm, rank, oid_last) = match spec {
        KeySpec::MlKem512 => (&kem::ML_KEM_512, 2, 1),
        KeySpec::MlKem768 => (&kem::ML_KEM_768, 3, 2),
        KeySpec::MlKem1024 => (&kem::ML_KEM_1024, 4, 3),
        _ => return None,
    };
    Some(MlKem {
        algorithm,
        rank,
        oid_last,
    })
}

impl MlKem {
    /// The encapsulation key inside a decapsulation key: FIPS 203 lays the latter out as
    /// dk_PKE (384·k bytes), then ek (384·k + 32 bytes), then H(ek) and z.
    fn encapsulation_key<'d>(&self, decapsulation_key: &'d [u8]) -> Option<&'d [u8]> {
        let start = 384 * self.rank;
        decapsulation_key.get(start..start + 384 * self.rank + 32)
    }
}

/// An HMAC spec's algorithm and key length (the spec's bits).
fn hmac_algorithm(spec: KeySpec) -> Option<(hmac::Algorithm, usize)> {
    match spec {
        KeySpec::Hmac224 => Some((hmac::HMAC_SHA224, 28)),
        KeySpec::Hmac256 => Some((hmac::HMAC_SHA256, 32)),
        KeySpec::Hmac384 => Some((hmac::HMAC_SHA384, 48)),
        KeySpec::Hmac512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

/// New key material for a key of `spec` (not SYMMETRIC_DEFAULT). HMAC keys come from
/// `fill` (LocalKms's entropy, so seeded runs replay them); key pairs from aws-lc-rs's
/// own generator.
pub(crate) fn generate(
    spec: KeySpec,
    fill: impl FnOnce(&mut [u8]),
) -> Result<SecretBytes, KmsError> {
    let made = "generating a key pair";
    let bytes: Vec<u8> = if let Some((_, len)) = hmac_algorithm(spec) {
        let mut key = Zeroizing::new(vec![0u8; len]);
        fill(&mut key);
        return Ok(SecretBytes::new(key));
    } else if let Some(size) = rsa_size(spec) {
        let pair = RsaKeyPair::generate(size).map_err(internal(made))?;
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .map_err(internal(made))?
            .as_ref()
            .to_vec()
    } else if let Some(curve) = curve(spec) {
        EcdsaKeyPair::generate(curve.signing)
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(internal(made))?
            .as_ref()
            .to_vec()
    } else if spec == KeySpec::EccNistEdwards25519 {
        Ed25519KeyPair::generate()
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(internal(made))?
            .as_ref()
            .to_vec()
    } else if let Some((signing, _)) = ml_dsa(spec) {
        PqdsaKeyPair::generate(signing)
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(internal(made))?
            .as_ref()
            .to_vec()
    } else if let Some(ml_kem) = ml_kem(spec) {
        kem::DecapsulationKey::generate(ml_kem.algorithm)
            .and_then(|key| key.key_bytes())
            .map_err(internal(made))?
            .as_ref()
            .to_vec()
    } else {
        return Err(KmsError::Internal(format!(
            "{spec} keys have no key material of this kind"
        )));
    };
    Ok(SecretBytes::new(Zeroizing::new(bytes)))
}

/// A new data key pair of `spec`: the private key as PKCS #8 and the public key as
/// SubjectPublicKeyInfo, both DER, as GenerateDataKeyPair returns them.
pub(crate) fn data_key_pair(spec: KeySpec) -> Result<(SecretBytes, Vec<u8>), KmsError> {
    if let Some(ml_kem) = ml_kem(spec) {
        // AWS hands out an ML-KEM pair's private key as a PKCS #8 seed.
        let mut seed = Zeroizing::new([0u8; 64]);
        aws_lc_rs::rand::fill(&mut seed[..]).map_err(internal("drawing a seed"))?;
        let pkcs8 = ml_kem_seed_pkcs8(ml_kem.oid_last, &seed);
        let (_, public) = aws_lc_raw::ml_kem_from_pkcs8(&pkcs8)
            .ok_or_else(|| KmsError::Internal(format!("aws-lc made no {spec} key from a seed")))?;
        return Ok((
            SecretBytes::new(pkcs8),
            ml_kem_spki(ml_kem.oid_last, &public),
        ));
    }
    let private = generate(spec, |_| {})?;
    let public = KeyMaterial {
        spec,
        secret: private.expose(),
    }
    .public_key()?;
    Ok((private, public))
}

impl KeyMaterial<'_> {
    /// Checks that the bytes are a usable key of the spec (seed files, the state file).
    pub(crate) fn check(&self) -> Result<(), KmsError> {
        match hmac_algorithm(self.spec) {
            Some((_, len)) if self.secret.len() == len => Ok(()),
            Some((_, len)) => Err(KmsError::Validation(format!(
                "{} key material is {len} bytes, not {}",
                self.spec,
                self.secret.len()
            ))),
            None => self.public_key().map(drop),
        }
    }

    /// The public key, DER SubjectPublicKeyInfo (RFC 5280), as GetPublicKey returns it.
    pub(crate) fn public_key(&self) -> Result<Vec<u8>, KmsError> {
        let spec = self.spec;
        let encoding = "encoding the public key";
        let der = if rsa_size(spec).is_some() {
            let pair = RsaKeyPair::from_pkcs8(self.secret).map_err(rejected(spec))?;
            pair.public_key().as_der().map_err(internal(encoding))?
        } else if let Some(curve) = curve(spec) {
            let pair =
                EcdsaKeyPair::from_pkcs8(curve.signing, self.secret).map_err(rejected(spec))?;
            pair.public_key().as_der().map_err(internal(encoding))?
        } else if spec == KeySpec::EccNistEdwards25519 {
            let pair = self.ed25519()?;
            pair.public_key().as_der().map_err(internal(encoding))?
        } else if let Some((signing, _)) = ml_dsa(spec) {
            let pair = PqdsaKeyPair::from_pkcs8(signing, self.secret).map_err(rejected(spec))?;
            pair.public_key().as_der().map_err(internal(encoding))?
        } else if let Some(ml_kem) = ml_kem(spec) {
            let (_, raw) = self.ml_kem_keys()?;
            return Ok(ml_kem_spki(ml_kem.oid_last, raw));
        } else {
            return Err(KmsError::UnsupportedOperation(format!(
                "{spec} keys have no public key"
            )));
        };
        Ok(der.as_ref().to_vec())
    }

    fn ed25519(&self) -> Result<Ed25519KeyPair, KmsError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(self.secret).map_err(rejected(self.spec))
    }

    /// The largest plaintext `algorithm` encrypts under this RSA key.
    pub(crate) fn max_plaintext(&self, algorithm: EncryptionAlgorithm) -> Result<usize, KmsError> {
        let key = self.rsa_decrypting()?;
        let public = OaepPublicEncryptingKey::new(key.public_key()).map_err(internal("RSA"))?;
        Ok(public.max_plaintext_size(oaep(algorithm)?))
    }

    fn rsa_decrypting(&self) -> Result<PrivateDecryptingKey, KmsError> {
        PrivateDecryptingKey::from_pkcs8(self.secret).map_err(rejected(self.spec))
    }

    /// RSA-OAEP encryption under the public key; the caller has checked the length.
    pub(crate) fn rsa_encrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let key = self.rsa_decrypting()?;
        let public = OaepPublicEncryptingKey::new(key.public_key()).map_err(internal("RSA"))?;
        let mut out = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(oaep(algorithm)?, plaintext, &mut out, None)
            .map_err(internal("RSA encryption"))?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// RSA-OAEP decryption; a ciphertext that does not open is the caller's error.
    pub(crate) fn rsa_decrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key = OaepPrivateDecryptingKey::new(self.rsa_decrypting()?).map_err(internal("RSA"))?;
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let len = key
            .decrypt(oaep(algorithm)?, ciphertext, &mut out, None)
            .map_err(|_| {
                KmsError::InvalidCiphertext(format!(
                    "the ciphertext does not decrypt with this {} key and {algorithm}",
                    self.spec
                ))
            })?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// The HMAC of `message` under this key.
    pub(crate) fn mac(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let (algorithm, _) = hmac_algorithm(self.spec)
            .ok_or_else(|| KmsError::Internal(format!("{} keys make no MACs", self.spec)))?;
        let key = hmac::Key::new(algorithm, self.secret);
        Ok(hmac::sign(&key, message).as_ref().to_vec())
    }

    /// Whether `mac` is this key's HMAC of `message` (compared in constant time).
    pub(crate) fn verify_mac(&self, message: &[u8], mac: &[u8]) -> Result<bool, KmsError> {
        let (algorithm, _) = hmac_algorithm(self.spec)
            .ok_or_else(|| KmsError::Internal(format!("{} keys make no MACs", self.spec)))?;
        let key = hmac::Key::new(algorithm, self.secret);
        Ok(hmac::verify(&key, message, mac).is_ok())
    }

    /// ECDH with a peer's public key (DER SubjectPublicKeyInfo on the key's curve): the
    /// raw shared secret.
    pub(crate) fn derive_shared_secret(
        &self,
        peer_public_key: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let algorithm = curve(self.spec)
            .and_then(|c| c.ecdh)
            .ok_or_else(|| KmsError::Internal(format!("{} keys agree on nothing", self.spec)))?;
        let private = agreement::PrivateKey::from_private_key_der(algorithm, self.secret)
            .map_err(rejected(self.spec))?;
        let peer = agreement::UnparsedPublicKey::new(algorithm, peer_public_key);
        agreement::agree(
            &private,
            peer,
            KmsError::Validation(format!(
                "PublicKey is not a DER-encoded SubjectPublicKeyInfo of a point on the {} curve",
                self.spec
            )),
            |secret| Ok(Zeroizing::new(secret.to_vec())),
        )
    }

    /// ML-KEM encapsulation under the public key: the ciphertext and the shared secret.
    pub(crate) fn encapsulate(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), KmsError> {
        let (ml_kem, raw) = self.ml_kem_keys()?;
        let (ciphertext, secret) = kem::EncapsulationKey::new(ml_kem.algorithm, raw)
            .map_err(rejected(self.spec))?
            .encapsulate()
            .map_err(internal("encapsulation"))?;
        Ok((
            ciphertext.as_ref().to_vec(),
            Zeroizing::new(secret.as_ref().to_vec()),
        ))
    }

    /// ML-KEM decapsulation: the shared secret. A ciphertext of the wrong length is the
    /// caller's error; one of the right length always gives a secret (ML-KEM's implicit
    /// rejection), as AWS's does.
    pub(crate) fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key = self.decapsulation_key()?;
        let secret = key
            .decapsulate(kem::Ciphertext::from(ciphertext))
            .map_err(|_| {
                KmsError::InvalidCiphertext(format!(
                    "SharedSecretCiphertextBlob is not an {} ciphertext ({} bytes)",
                    self.spec,
                    ciphertext.len()
                ))
            })?;
        Ok(Zeroizing::new(secret.as_ref().to_vec()))
    }

    fn decapsulation_key(&self) -> Result<kem::DecapsulationKey, KmsError> {
        let (ml_kem, _) = self.ml_kem_keys()?;
        kem::DecapsulationKey::new(ml_kem.algorithm, self.secret).map_err(rejected(self.spec))
    }

    /// An ML-KEM key's parameters and raw encapsulation (public) key.
    fn ml_kem_keys(&self) -> Result<(MlKem, &[u8]), KmsError> {
        let ml_kem = ml_kem(self.spec)
            .ok_or_else(|| KmsError::Internal(format!("{} keys encapsulate nothing", self.spec)))?;
        let public = ml_kem.encapsulation_key(self.secret).ok_or_else(|| {
            KmsError::Internal(format!(
                "the stored {} key material is {} bytes, too short",
                self.spec,
                self.secret.len()
            ))
        })?;
        Ok((ml_kem, public))
    }
}

/// Key material an importer wrapped under `wrapping` (an RSA key GetParametersForImport
/// made) with `algorithm`, unwrapped; anything that does not unwrap is
/// `InvalidCiphertextException`, as AWS answers it.
pub(crate) fn unwrap_imported(
    wrapping: KeyMaterial<'_>,
    algorithm: WrappingAlgorithm,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if !algorithm.wraps_with_aes() {
        return wrapping.rsa_decrypt(algorithm.oaep(), wrapped);
    }
    let split = RsaKeyPair::from_pkcs8(wrapping.secret)
        .map_err(rejected(wrapping.spec))?
        .public_modulus_len();
    let (wrapped_aes_key, wrapped_material) = wrapped.split_at_checked(split).ok_or_else(|| {
        KmsError::InvalidCiphertext(format!(
            "EncryptedKeyMaterial is {} bytes: {algorithm} needs the {split}-byte RSA-wrapped AES key, then the wrapped material",
            wrapped.len()
        ))
    })?;
    let aes_key = wrapping.rsa_decrypt(algorithm.oaep(), wrapped_aes_key)?;
    let not_unwrapped = || {
        KmsError::InvalidCiphertext(
            "the key material does not unwrap under the AES key (AES key wrap with padding, RFC 5649)".into(),
        )
    };
    let kek = key_wrap::AesKek::new(&key_wrap::AES_256, &aes_key).map_err(|_| not_unwrapped())?;
    let mut out = Zeroizing::new(vec![0u8; wrapped_material.len()]);
    let len = kek
        .unwrap_with_padding(wrapped_material, &mut out)
        .map_err(|_| not_unwrapped())?
        .len();
    out.truncate(len);
    Ok(out)
}

/// AWS's KeyMaterialId for imported material: derived from the key and the material (here
/// SHA-256 over both, in hex), so the same material imported again has the same id.
pub(crate) fn imported_material_id(key_id: &str, material: &[u8]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(key_id.as_bytes());
    context.update(material);
    crate::kms::hex::encode(context.finish().as_ref())
}

fn oaep(
    algorithm: EncryptionAlgorithm,
) -> Result<&'static aws_lc_rs::rsa::OaepAlgorithm, KmsError> {
    match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        EncryptionAlgorithm::SymmetricDefault => Err(KmsError::Internal(
            "SYMMETRIC_DEFAULT is not an RSA algorithm".into(),
        )),
    }
}

/// Imported key material in the form the key keeps it: an ML-KEM key's PKCS #8 (seed or
/// expanded, as AWS takes it) becomes its expanded decapsulation key; other material is
/// kept as imported. Material that is no key of the spec is the importer's error.
pub(crate) fn stored_form(
    spec: KeySpec,
    imported: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let Some(ml_kem) = ml_kem(spec) else {
        return Ok(imported);
    };
    aws_lc_raw::ml_kem_from_pkcs8(&imported)
        .map(|(private, _)| private)
        .filter(|private| kem::DecapsulationKey::new(ml_kem.algorithm, private).is_ok())
        .ok_or_else(|| {
            KmsError::IncorrectKeyMaterial(format!(
                "the imported key material is not a PKCS #8 {spec} private key"
            ))
        })
}

/// ML-KEM's PKCS #8 in seed form (RFC 9935): the algorithm's identifier and the 64-byte
/// seed, tagged `[0]`.
fn ml_kem_seed_pkcs8(oid_last: u8, seed: &[u8; 64]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(vec![
        0x30, 0x54, 0x02, 0x01, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
        0x04, 0x04, oid_last, 0x04, 0x42, 0x80, 0x40,
    ]);
    der.extend_from_slice(seed);
    der
}

/// ML-KEM's public key as SubjectPublicKeyInfo: the algorithm's identifier (no
/// parameters) and the raw encapsulation key in a BIT STRING.
fn ml_kem_spki(oid_last: u8, raw: &[u8]) -> Vec<u8> {
    let oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, oid_last,
    ];
    let mut algorithm = vec![0x30];
    der_length(&mut algorithm, oid.len());
    algorithm.extend_from_slice(&oid);
    let mut bits = vec![0x03];
    der_length(&mut bits, raw.len() + 1);
    bits.push(0);
    bits.extend_from_slice(raw);
    let mut spki = vec![0x30];
    der_length(&mut spki, algorithm.len() + bits.len());
    spki.extend_from_slice(&algorithm);
    spki.extend_from_slice(&bits);
    spki
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
}

#[cfg(test)]
mod tests;
