//! Every pair signs and verifies, digests, HMAC lengths, ML-KEM, and no input panics.

use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

/// One key of each spec, made once: RSA pairs take a while.
fn keys() -> &'static Vec<(KeySpec, SecretBytes)> {
    static KEYS: OnceLock<Vec<(KeySpec, SecretBytes)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeySpec::ALL
            .iter()
            .filter(|s| **s != KeySpec::SymmetricDefault && **s != KeySpec::Rsa4096)
            .map(|s| (*s, generate(*s, |b| b.fill(3)).unwrap()))
            .collect()
    })
}

proptest! {
    /// Whatever a caller sends as a signature, peer public key, ciphertext, MAC,
    /// ML-KEM ciphertext or wrapped import, the answer is a value or an error.
    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700), pick in any::<u8>()) {
        for (spec, secret) in keys() {
            let key = KeyMaterial { spec: *spec, secret: secret.expose() };
            let algorithm = SigningAlgorithm::ALL[usize::from(pick) % SigningAlgorithm::ALL.len()];
            let kind = MessageType::ALL[usize::from(pick / 3) % MessageType::ALL.len()];
            let _ = key.verify(algorithm, kind, &bytes, &bytes);
            let _ = key.sign(algorithm, kind, &bytes);
            let _ = key.derive_shared_secret(&bytes);
            let _ = key.decapsulate(&bytes);
            let _ = key.verify_mac(&bytes, &bytes);
            let _ = key.rsa_decrypt(EncryptionAlgorithm::RsaesOaepSha256, &bytes);
            let wrapping = WrappingAlgorithm::ALL[usize::from(pick) % WrappingAlgorithm::ALL.len()];
            let _ = unwrap_imported(key, wrapping, &bytes);
            let _ = KeyMaterial { spec: *spec, secret: &bytes }.check();
        }
    }
}

fn material(spec: KeySpec) -> SecretBytes {
    generate(spec, |b| b.fill(7)).unwrap()
}

#[test]
fn every_pair_signs_and_verifies_with_each_algorithm() {
    for spec in KeySpec::ALL.iter().copied().filter(|s| s.is_asymmetric()) {
        let secret = material(spec);
        let key = KeyMaterial {
            spec,
            secret: secret.expose(),
        };
        key.check().unwrap();
        assert_eq!(key.public_key().unwrap()[0], 0x30, "{spec}");
        let usage = crate::kms::KeyUsage::SignVerify;
        if spec.check_usage(usage).is_err() {
            continue;
        }
        for algorithm in spec.algorithms(usage).signing {
            let (kind, message, other) = match algorithm {
                SigningAlgorithm::Ed25519PhSha512 => (MessageType::Digest, [1; 64], [2; 64]),
                _ => (MessageType::Raw, [1; 64], [2; 64]),
            };
            let signature = key.sign(*algorithm, kind, &message).unwrap();
            assert!(key.verify(*algorithm, kind, &message, &signature).unwrap());
            assert!(!key.verify(*algorithm, kind, &other, &signature).unwrap());
            if spec.aws_name().starts_with("ML_DSA") {
                let signature = key
                    .sign(*algorithm, MessageType::ExternalMu, &message)
                    .unwrap();
                let mu = MessageType::ExternalMu;
                assert!(key.verify(*algorithm, mu, &message, &signature).unwrap());
                assert!(!key.verify(*algorithm, mu, &other, &signature).unwrap());
            }
        }
    }
}

#[test]
fn a_digest_signed_verifies_as_its_message() {
    let secret = material(KeySpec::EccNistP384);
    let key = KeyMaterial {
        spec: KeySpec::EccNistP384,
        secret: secret.expose(),
    };
    let digest = digest::digest(&digest::SHA384, b"message");
    let signature = key
        .sign(
            SigningAlgorithm::EcdsaSha384,
            MessageType::Digest,
            digest.as_ref(),
        )
        .unwrap();
    assert!(key
        .verify(
            SigningAlgorithm::EcdsaSha384,
            MessageType::Raw,
            b"message",
            &signature
        )
        .unwrap());
    let short = key.sign(SigningAlgorithm::EcdsaSha384, MessageType::Digest, &[0; 32]);
    assert_eq!(short.unwrap_err().aws_name(), "ValidationException");
}

#[test]
fn hmac_keys_have_their_specs_length() {
    let secret = material(KeySpec::Hmac224);
    assert_eq!(secret.expose().len(), 28);
    let key = KeyMaterial {
        spec: KeySpec::Hmac224,
        secret: secret.expose(),
    };
    let mac = key.mac(b"m").unwrap();
    assert_eq!(mac.len(), 28);
    assert!(key.verify_mac(b"m", &mac).unwrap());
    assert!(!key.verify_mac(b"n", &mac).unwrap());
}

#[test]
fn ml_kem_shares_a_secret() {
    let secret = material(KeySpec::MlKem768);
    let key = KeyMaterial {
        spec: KeySpec::MlKem768,
        secret: secret.expose(),
    };
    let (ciphertext, shared) = key.encapsulate().unwrap();
    assert_eq!(*key.decapsulate(&ciphertext).unwrap(), *shared);
    assert!(key.decapsulate(&ciphertext[1..]).is_err());
    assert_eq!(&key.public_key().unwrap()[..4], &[0x30, 0x82, 0x04, 0xb2]);
}
