//! The `key_material` fuzz target: LocalKms's operations on asymmetric, HMAC and ML-KEM
//! keys and on imports, given arbitrary signatures, messages, peer public keys,
//! ciphertexts, MACs, wrapped key material and import tokens. The keys are made once per
//! process (RSA pairs take a while); any answer but a panic is fine.

use std::sync::{Arc, OnceLock};

use crate::clock::{ManualClock, Timestamp};
use crate::kms::{
    Caller, CreateKeyRequest, EncryptionAlgorithm, EncryptionContext, ImportKeyMaterialRequest,
    KeySpec, KeyUsage, LocalKms, LocalKmsClient, MacAlgorithm, MessageType, Origin,
    SigningAlgorithm, WrappingAlgorithm,
};

struct Fixture {
    client: LocalKmsClient,
    signing: Vec<String>,
    rsa_encryption: String,
    agreement: String,
    ml_kem: String,
    hmac: String,
    external: String,
    import_token: Vec<u8>,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1 << 40)));
            let kms = LocalKms::in_memory(clock);
            let client = kms.client(Caller::account_root("111122223333", "us-east-1").ok()?);
            let key = |spec, usage, origin| {
                client
                    .create_key(CreateKeyRequest {
                        key_spec: spec,
                        key_usage: Some(usage),
                        origin,
                        ..Default::default()
                    })
                    .ok()
                    .map(|m| m.key_id)
            };
            let sign = KeyUsage::SignVerify;
            let signing = [
                KeySpec::Rsa2048,
                KeySpec::EccNistP256,
                KeySpec::EccSecgP256k1,
                KeySpec::EccNistEdwards25519,
                KeySpec::MlDsa44,
            ]
            .into_iter()
            .map(|spec| key(spec, sign, Origin::AwsKms))
            .collect::<Option<Vec<_>>>()?;
            let external = key(
                KeySpec::SymmetricDefault,
                KeyUsage::EncryptDecrypt,
                Origin::External,
            )?;
            let import_token = client
                .get_parameters_for_import(
                    &external,
                    WrappingAlgorithm::RsaAesKeyWrapSha256,
                    KeySpec::Rsa2048,
                )
                .ok()?
                .import_token;
            Some(Fixture {
                signing,
                rsa_encryption: key(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt, Origin::AwsKms)?,
                agreement: key(KeySpec::EccNistP384, KeyUsage::KeyAgreement, Origin::AwsKms)?,
                ml_kem: key(
                    KeySpec::MlKem512,
                    KeyUsage::EncapsulateDecapsulate,
                    Origin::AwsKms,
                )?,
                hmac: key(
                    KeySpec::Hmac256,
                    KeyUsage::GenerateVerifyMac,
                    Origin::AwsKms,
                )?,
                external,
                import_token,
                client,
            })
        })
        .as_ref()
}

/// The first byte picks the operation (and the key, algorithm and message type); the
/// rest is its input.
pub fn key_material(data: &[u8]) {
    let (Some(f), [selector, input @ ..]) = (fixture(), data) else {
        return;
    };
    let pick = usize::from(*selector);
    let client = &f.client;
    let algorithm = SigningAlgorithm::ALL[pick % SigningAlgorithm::ALL.len()];
    let message_type = MessageType::ALL[(pick / 16) % MessageType::ALL.len()];
    let signing = &f.signing[(pick / 4) % f.signing.len()];
    let (message, tail) = input.split_at(input.len() / 2);
    let _ = match pick % 8 {
        0 => client
            .verify(signing, message, message_type, tail, algorithm)
            .map(drop),
        1 => client
            .sign(signing, input, message_type, algorithm)
            .map(drop),
        2 => client.derive_shared_secret(&f.agreement, input).map(drop),
        3 => client.decapsulate(&f.ml_kem, input).map(drop),
        4 => client
            .decrypt_with(
                Some(&f.rsa_encryption),
                input,
                &EncryptionContext::new(),
                EncryptionAlgorithm::RsaesOaepSha256,
            )
            .map(drop),
        5 => client
            .verify_mac(&f.hmac, message, tail, MacAlgorithm::HmacSha256)
            .map(drop),
        6 => client
            .import_key_material(&f.external, import(f.import_token.clone(), input))
            .map(drop),
        _ => client
            .import_key_material(&f.external, import(message.to_vec(), tail))
            .map(drop),
    };
}

fn import(import_token: Vec<u8>, wrapped: &[u8]) -> ImportKeyMaterialRequest {
    ImportKeyMaterialRequest {
        import_token,
        encrypted_key_material: wrapped.to_vec(),
        valid_to: None,
        import_type: None,
        key_material_id: None,
        description: None,
    }
}
