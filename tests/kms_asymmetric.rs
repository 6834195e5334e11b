//! LocalKms's asymmetric, HMAC and ML-KEM keys through the public API: each operation in
//! each key state as AWS's key state table says, policies and grants, seeded key pairs,
//! the state file, last usage. (Interoperability with an independent implementation is
//! `tests/peers/kms_asymmetric.py`, run by `tests/kms_peers.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateGrantRequest, CreateKeyRequest, EncryptionAlgorithm, EncryptionContext,
    GrantOperation, KeySpec, KeyState, KeyUsage, LocalKms, LocalKmsClient, MacAlgorithm,
    MessageType, SigningAlgorithm,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::code;
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const PARTNER_ROLE: &str = "arn:aws:iam::444455556666:role/partner";

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)))
}

fn client_of(kms: &Arc<LocalKms>) -> LocalKmsClient {
    kms.client(Caller::account_root(ACCOUNT, REGION).unwrap())
}

fn key(client: &LocalKmsClient, spec: KeySpec, usage: KeyUsage) -> String {
    client
        .create_key(CreateKeyRequest {
            key_spec: spec,
            key_usage: Some(usage),
            ..Default::default()
        })
        .unwrap()
        .key_id
}

/// The new operations, each on a key of a spec that supports it.
#[derive(Clone, Copy, Debug)]
enum Op {
    Sign,
    Verify,
    GetPublicKey,
    RsaEncrypt,
    RsaDecrypt,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
    Encapsulate,
    Decapsulate,
    GenerateDataKeyPair,
}

impl Op {
    const ALL: [Op; 11] = [
        Op::Sign,
        Op::Verify,
        Op::GetPublicKey,
        Op::RsaEncrypt,
        Op::RsaDecrypt,
        Op::GenerateMac,
        Op::VerifyMac,
        Op::DeriveSharedSecret,
        Op::Encapsulate,
        Op::Decapsulate,
        Op::GenerateDataKeyPair,
    ];
}

/// A key for `op`, made Enabled, with what the operation needs made while it was.
struct Subject {
    key: String,
    made: Vec<u8>,
}

fn subject(client: &LocalKmsClient, op: Op) -> Subject {
    let (spec, usage) = match op {
        Op::Sign | Op::Verify | Op::GetPublicKey => (KeySpec::EccNistP256, KeyUsage::SignVerify),
        Op::RsaEncrypt | Op::RsaDecrypt => (KeySpec::Rsa2048, KeyUsage::EncryptDecrypt),
        Op::GenerateMac | Op::VerifyMac => (KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
        Op::DeriveSharedSecret => (KeySpec::EccNistP256, KeyUsage::KeyAgreement),
        Op::Encapsulate | Op::Decapsulate => (KeySpec::MlKem768, KeyUsage::EncapsulateDecapsulate),
        Op::GenerateDataKeyPair => (KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt),
    };
    let key = key(client, spec, usage);
    let none = EncryptionContext::new();
    let made = match op {
        Op::Verify => {
            client
                .sign(&key, b"m", MessageType::Raw, SigningAlgorithm::EcdsaSha256)
                .unwrap()
                .signature
        }
        Op::RsaDecrypt => {
            client
                .encrypt_with(&key, b"m", &none, EncryptionAlgorithm::RsaesOaepSha256)
                .unwrap()
                .ciphertext_blob
        }
        Op::VerifyMac => {
            client
                .generate_mac(&key, b"m", MacAlgorithm::HmacSha256)
                .unwrap()
                .1
        }
        Op::DeriveSharedSecret => client.get_public_key(&key).unwrap().public_key,
        Op::Decapsulate => client.encapsulate(&key).unwrap().ciphertext,
        _ => Vec::new(),
    };
    Subject { key, made }
}

fn run(client: &LocalKmsClient, op: Op, s: &Subject) -> String {
    let none = EncryptionContext::new();
    let k = s.key.as_str();
    match op {
        Op::Sign => code(client.sign(k, b"m", MessageType::Raw, SigningAlgorithm::EcdsaSha256)),
        Op::Verify => code(client.verify(
            k,
            b"m",
            MessageType::Raw,
            &s.made,
            SigningAlgorithm::EcdsaSha256,
        )),
        Op::GetPublicKey => code(client.get_public_key(k)),
        Op::RsaEncrypt => {
            code(client.encrypt_with(k, b"m", &none, EncryptionAlgorithm::RsaesOaepSha256))
        }
        Op::RsaDecrypt => code(client.decrypt_with(
            Some(k),
            &s.made,
            &none,
            EncryptionAlgorithm::RsaesOaepSha256,
        )),
        Op::GenerateMac => code(client.generate_mac(k, b"m", MacAlgorithm::HmacSha256)),
        Op::VerifyMac => code(client.verify_mac(k, b"m", &s.made, MacAlgorithm::HmacSha256)),
        Op::DeriveSharedSecret => code(client.derive_shared_secret(k, &s.made)),
        Op::Encapsulate => code(client.encapsulate(k)),
        Op::Decapsulate => code(client.decapsulate(k, &s.made)),
        Op::GenerateDataKeyPair => {
            code(client.generate_data_key_pair(k, KeySpec::EccNistP384, &none, true))
        }
    }
}

#[test]
fn every_new_operation_answers_each_key_state_as_aws_documents() {
    let kms = LocalKms::in_memory(clock());
    let client = client_of(&kms);
    for op in Op::ALL {
        for (state, expected) in [
            (KeyState::Enabled, "ok"),
            (KeyState::Disabled, "DisabledException"),
            (KeyState::PendingDeletion, "KMSInvalidStateException"),
        ] {
            let s = subject(&client, op);
            match state {
                KeyState::Enabled => {}
                KeyState::Disabled => client.disable_key(&s.key).unwrap(),
                KeyState::PendingDeletion => {
                    client.schedule_key_deletion(&s.key, Some(7)).unwrap();
                }
                KeyState::PendingImport | KeyState::PendingReplicaDeletion => {
                    unreachable!("not in this table")
                }
            }
            assert_eq!(run(&client, op, &s), expected, "{op:?} on a {state} key");
        }
    }
}

#[test]
fn each_operation_needs_its_usage_and_the_keys_algorithms() {
    let kms = LocalKms::in_memory(clock());
    let client = client_of(&kms);
    let signing = key(&client, KeySpec::EccNistP256, KeyUsage::SignVerify);
    let agreeing = key(&client, KeySpec::EccNistP256, KeyUsage::KeyAgreement);
    let symmetric = client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    let rsa = key(&client, KeySpec::Rsa2048, KeyUsage::SignVerify);
    let sign = |k: &str, a| code(client.sign(k, b"m", MessageType::Raw, a));
    assert_eq!(
        sign(&agreeing, SigningAlgorithm::EcdsaSha256),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        sign(&symmetric, SigningAlgorithm::EcdsaSha256),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        sign(&signing, SigningAlgorithm::RsassaPssSha256),
        "InvalidKeyUsageException"
    );
    assert_eq!(sign(&rsa, SigningAlgorithm::RsassaPssSha512), "ok");
    assert_eq!(
        code(client.derive_shared_secret(&signing, b"not a key")),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        code(client.derive_shared_secret(&agreeing, b"not a key")),
        "ValidationException"
    );
    assert_eq!(
        code(client.get_public_key(&symmetric)),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(client.encrypt_with(
            &rsa,
            b"m",
            &EncryptionContext::new(),
            EncryptionAlgorithm::RsaesOaepSha1
        )),
        "InvalidKeyUsageException"
    );
    let sealing = key(&client, KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
    let context: EncryptionContext = [("a".to_string(), "b".to_string())].into();
    assert_eq!(
        code(client.encrypt_with(&sealing, b"m", &context, EncryptionAlgorithm::RsaesOaepSha1)),
        "ValidationException"
    );
    assert_eq!(
        code(client.generate_data_key_pair(&symmetric, KeySpec::Hmac256, &context, true)),
        "ValidationException"
    );
}

#[test]
fn policies_and_grants_decide_who_signs() {
    let kms = LocalKms::in_memory(clock());
    let owner = client_of(&kms);
    let partner = kms.client(Caller::new(PARTNER_ROLE, REGION).unwrap());
    let signing = key(&owner, KeySpec::EccNistP384, KeyUsage::SignVerify);
    let arn = owner.describe_key(&signing).unwrap().arn;
    let sign = || code(partner.sign(&arn, b"m", MessageType::Raw, SigningAlgorithm::EcdsaSha384));
    assert_eq!(sign(), "AccessDeniedException");
    assert_eq!(code(partner.get_public_key(&arn)), "AccessDeniedException");
    owner
        .create_grant(
            &signing,
            CreateGrantRequest {
                grantee_principal: PARTNER_ROLE.into(),
                operations: vec![GrantOperation::Sign, GrantOperation::GetPublicKey],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(sign(), "ok");
    assert_eq!(code(partner.get_public_key(&arn)), "ok");
    assert_eq!(
        code(partner.verify(
            &arn,
            b"m",
            MessageType::Raw,
            b"sig",
            SigningAlgorithm::EcdsaSha384
        )),
        "AccessDeniedException"
    );
    let refused = owner.create_grant(
        &signing,
        CreateGrantRequest {
            grantee_principal: PARTNER_ROLE.into(),
            operations: vec![GrantOperation::GenerateMac],
            ..Default::default()
        },
    );
    assert_eq!(code(refused), "ValidationException");
    let usage = owner
        .get_key_last_usage(&signing)
        .unwrap()
        .key_last_usage
        .unwrap();
    assert_eq!(usage.operation, "GetPublicKey");
}

#[test]
fn key_pairs_survive_the_state_file_and_seeds_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    let (public, signature) = {
        let kms = LocalKms::open(dir.path(), clock()).unwrap();
        let client = client_of(&kms);
        let k = key(&client, KeySpec::EccNistEdwards25519, KeyUsage::SignVerify);
        let public = client.get_public_key(&k).unwrap().public_key;
        let signed = client
            .sign(&k, b"m", MessageType::Raw, SigningAlgorithm::Ed25519Sha512)
            .unwrap();
        (public, (k, signed.signature))
    };
    let kms = LocalKms::open(dir.path(), clock()).unwrap();
    let client = client_of(&kms);
    let (k, signature) = signature;
    assert_eq!(client.get_public_key(&k).unwrap().public_key, public);
    client
        .verify(
            &k,
            b"m",
            MessageType::Raw,
            &signature,
            SigningAlgorithm::Ed25519Sha512,
        )
        .unwrap();

    // A seed file gives a key its PKCS #8: two emulators then share one public key.
    let pkcs8 = "MC4CAQAwBQYDK2VwBCIEIFqHY4t26CR1Qu4Ab1u3dYVC0lsbhJ0b6Jw6qYEsbG+L";
    let seed = json!({"Keys": [{
        "KeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11",
        "KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "SIGN_VERIFY", "KeyMaterial": [pkcs8]
    }]})
    .to_string();
    let publics: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let kms = LocalKms::in_memory(clock());
            kms.seed(&seed, ACCOUNT, REGION).unwrap();
            client_of(&kms)
                .get_public_key("0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11")
                .unwrap()
                .public_key
        })
        .collect();
    assert_eq!(publics[0], publics[1]);
    let kms = LocalKms::in_memory(clock());
    let short_hmac = json!({"Keys": [{
        "KeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11",
        "KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC", "KeyMaterial": [BASE64.encode([1; 16])]
    }]})
    .to_string();
    assert_eq!(
        code(kms.seed(&short_hmac, ACCOUNT, REGION)),
        "ValidationException"
    );
}
