//! Sign and Verify with a key pair: RSA (PSS and PKCS #1 v1.5), ECDSA, Ed25519 (pure and
//! HashEdDSA) and ML-DSA (a message, or its external μ), over a message or its digest, with
//! AWS's rules for which message types each algorithm takes.

use super::*;

impl KeyMaterial<'_> {
    /// Sign: a signature over `message` (the message itself, or its digest) by
    /// `algorithm`, which the caller has checked the key supports.
    pub(crate) fn sign(
        &self,
        algorithm: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let spec = self.spec;
        let signing = "signing";
        let rng = SystemRandom::new();
        if rsa_size(spec).is_some() {
            let pair = RsaKeyPair::from_pkcs8(self.secret).map_err(rejected(spec))?;
            let (encoding, _) = rsa_signing(algorithm)?;
            let mut out = vec![0u8; pair.public_modulus_len()];
            match digest_of(algorithm, message_type, message)? {
                Some(digest) => pair.sign_digest(encoding, &digest, &mut out),
                None => pair.sign(encoding, &rng, message, &mut out),
            }
            .map_err(internal(signing))?;
            return Ok(out);
        }
        if let Some(curve) = curve(spec) {
            let pair =
                EcdsaKeyPair::from_pkcs8(curve.signing, self.secret).map_err(rejected(spec))?;
            let signature = match digest_of(algorithm, message_type, message)? {
                Some(digest) => pair.sign_digest(&digest),
                None => pair.sign(&rng, message),
            }
            .map_err(internal(signing))?;
            return Ok(signature.as_ref().to_vec());
        }
        if spec == KeySpec::EccNistEdwards25519 {
            let pair = self.ed25519()?;
            if check_ed25519_message_type(algorithm, message_type)? == Ed25519::Pure {
                return Ok(pair.sign(message).as_ref().to_vec());
            }
            let seed = pair
                .seed()
                .and_then(|s| s.as_be_bytes())
                .map_err(internal(signing))?;
            let seed: &[u8; 32] = seed
                .as_ref()
                .try_into()
                .map_err(|_| KmsError::Internal("an Ed25519 seed is not 32 bytes".into()))?;
            let public = ed25519_public(&pair)?;
            let private = aws_lc_raw::Ed25519Private {
                seed,
                public: &public,
            };
            return aws_lc_raw::ed25519ph_sign(&private, message)
                .map(|s| s.to_vec())
                .ok_or_else(|| KmsError::Internal("HashEdDSA signing failed".into()));
        }
        if let Some((signing_algorithm, _)) = ml_dsa(spec) {
            let pair =
                PqdsaKeyPair::from_pkcs8(signing_algorithm, self.secret).map_err(rejected(spec))?;
            if check_ml_dsa_message(message_type, message)? == MlDsaInput::Mu {
                return aws_lc_raw::ml_dsa_sign_mu(
                    self.secret,
                    message,
                    signing_algorithm.signature_len(),
                )
                .ok_or_else(|| KmsError::Internal("ML-DSA signing of a mu failed".into()));
            }
            let mut out = vec![0u8; signing_algorithm.signature_len()];
            let len = pair.sign(message, &mut out).map_err(internal(signing))?;
            out.truncate(len);
            return Ok(out);
        }
        Err(KmsError::Internal(format!("{spec} keys do not sign")))
    }

    /// Verify: whether `signature` is the key's over `message` by `algorithm`.
    pub(crate) fn verify(
        &self,
        algorithm: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, KmsError> {
        let spec = self.spec;
        let public = |bytes: &[u8], alg: &'static dyn signature::VerificationAlgorithm| {
            signature::UnparsedPublicKey::new(alg, bytes.to_vec())
        };
        let checked = |key: signature::UnparsedPublicKey<Vec<u8>>| -> Result<bool, KmsError> {
            Ok(match digest_of(algorithm, message_type, message)? {
                Some(digest) => key.verify_digest(&digest, signature).is_ok(),
                None => key.verify(message, signature).is_ok(),
            })
        };
        if rsa_size(spec).is_some() {
            let pair = RsaKeyPair::from_pkcs8(self.secret).map_err(rejected(spec))?;
            let (_, parameters) = rsa_signing(algorithm)?;
            return checked(public(pair.public_key().as_ref(), parameters));
        }
        if let Some(curve) = curve(spec) {
            let pair =
                EcdsaKeyPair::from_pkcs8(curve.signing, self.secret).map_err(rejected(spec))?;
            return checked(public(pair.public_key().as_ref(), curve.verification));
        }
        if spec == KeySpec::EccNistEdwards25519 {
            let pair = self.ed25519()?;
            if check_ed25519_message_type(algorithm, message_type)? == Ed25519::Prehashed {
                return Ok(aws_lc_raw::ed25519ph_verify(
                    &ed25519_public(&pair)?,
                    message,
                    signature,
                ));
            }
            return Ok(public(pair.public_key().as_ref(), &signature::ED25519)
                .verify(message, signature)
                .is_ok());
        }
        if let Some((signing_algorithm, verification)) = ml_dsa(spec) {
            if check_ml_dsa_message(message_type, message)? == MlDsaInput::Mu {
                return Ok(aws_lc_raw::ml_dsa_verify_mu(
                    self.secret,
                    message,
                    signature,
                ));
            }
            let pair =
                PqdsaKeyPair::from_pkcs8(signing_algorithm, self.secret).map_err(rejected(spec))?;
            return Ok(public(pair.public_key().as_ref(), verification)
                .verify(message, signature)
                .is_ok());
        }
        Err(KmsError::Internal(format!("{spec} keys do not verify")))
    }
}

/// An RSA signing algorithm's padding for signing and parameters for verifying.
fn rsa_signing(
    algorithm: SigningAlgorithm,
) -> Result<
    (
        &'static dyn signature::RsaEncoding,
        &'static signature::RsaParameters,
    ),
    KmsError,
> {
    use SigningAlgorithm::*;
    Ok(match algorithm {
        RsassaPssSha256 => (
            &signature::RSA_PSS_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
        ),
        RsassaPssSha384 => (
            &signature::RSA_PSS_SHA384,
            &signature::RSA_PSS_2048_8192_SHA384,
        ),
        RsassaPssSha512 => (
            &signature::RSA_PSS_SHA512,
            &signature::RSA_PSS_2048_8192_SHA512,
        ),
        RsassaPkcs1V15Sha256 => (
            &signature::RSA_PKCS1_SHA256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        RsassaPkcs1V15Sha384 => (
            &signature::RSA_PKCS1_SHA384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        RsassaPkcs1V15Sha512 => (
            &signature::RSA_PKCS1_SHA512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        other => {
            return Err(KmsError::Internal(format!(
                "{other} is not an RSA signing algorithm"
            )))
        }
    })
}

/// For a DIGEST message, the digest the caller made, checked to be the algorithm's
/// length; `None` for a RAW message, which the algorithm hashes itself.
fn digest_of(
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Option<digest::Digest>, KmsError> {
    match message_type {
        MessageType::Raw => Ok(None),
        MessageType::ExternalMu => Err(KmsError::Validation(format!(
            "MessageType EXTERNAL_MU is only for ML_DSA_SHAKE_256, not {algorithm}"
        ))),
        MessageType::Digest => {
            let hash = match algorithm.digest_len() {
                Some(32) => &digest::SHA256,
                Some(48) => &digest::SHA384,
                Some(64) => &digest::SHA512,
                _ => {
                    return Err(KmsError::Validation(format!(
                        "{algorithm} signs messages, not digests: use MessageType RAW"
                    )))
                }
            };
            if message.len() != hash.output_len() {
                return Err(KmsError::Validation(format!(
                    "a DIGEST message for {algorithm} must be {} bytes, not {}",
                    hash.output_len(),
                    message.len()
                )));
            }
            digest::Digest::import_less_safe(message, hash)
                .map(Some)
                .map_err(internal("reading the digest"))
        }
    }
}

/// Which Ed25519 scheme a request asks for.
#[derive(PartialEq, Eq)]
enum Ed25519 {
    Pure,
    Prehashed,
}

/// AWS's rules: ED25519_SHA_512 signs RAW messages, ED25519_PH_SHA_512 signs DIGESTs
/// (which HashEdDSA hashes once more, as AWS's does).
fn check_ed25519_message_type(
    algorithm: SigningAlgorithm,
    message_type: MessageType,
) -> Result<Ed25519, KmsError> {
    match (algorithm, message_type) {
        (SigningAlgorithm::Ed25519Sha512, MessageType::Raw) => Ok(Ed25519::Pure),
        (SigningAlgorithm::Ed25519PhSha512, MessageType::Digest) => Ok(Ed25519::Prehashed),
        (SigningAlgorithm::Ed25519Sha512, _) => Err(KmsError::Validation(
            "ED25519_SHA_512 requires MessageType RAW".into(),
        )),
        _ => Err(KmsError::Validation(
            "ED25519_PH_SHA_512 requires MessageType DIGEST".into(),
        )),
    }
}

fn ed25519_public(pair: &Ed25519KeyPair) -> Result<[u8; 32], KmsError> {
    pair.public_key()
        .as_ref()
        .try_into()
        .map_err(|_| KmsError::Internal("an Ed25519 public key is not 32 bytes".into()))
}

/// What an ML-DSA request signs: the message, or its representative μ.
#[derive(PartialEq, Eq)]
enum MlDsaInput {
    Message,
    Mu,
}

fn check_ml_dsa_message(message_type: MessageType, message: &[u8]) -> Result<MlDsaInput, KmsError> {
    match message_type {
        MessageType::Raw => Ok(MlDsaInput::Message),
        MessageType::ExternalMu if message.len() == aws_lc_raw::MU_LEN => Ok(MlDsaInput::Mu),
        MessageType::ExternalMu => Err(KmsError::Validation(format!(
            "an EXTERNAL_MU message must be {} bytes, not {}",
            aws_lc_raw::MU_LEN,
            message.len()
        ))),
        MessageType::Digest => Err(KmsError::Validation(
            "ML_DSA_SHAKE_256 takes MessageType RAW or EXTERNAL_MU, not DIGEST".into(),
        )),
    }
}
