//! Imported key material (origin EXTERNAL) through LocalKms's public API: the import
//! lifecycle on the emulator clock (tokens valid 24 hours, material that expires), deletion
//! and re-import of the same material, rotation to new material, key pairs imported with
//! RSA_AES_KEY_WRAP. The wrapping is done here with aws-lc-rs, as an importer would.
//! (The state table's PendingImport column is in `tests/kms_local.rs` and `kms_wire.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::clock::{days, Clock, ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateKeyRequest, EncryptionContext, ImportKeyMaterialRequest, ImportType, KeySpec,
    KeyState, KeyUsage, LocalKms, LocalKmsClient, MessageType, Origin, ReplicateKeyRequest,
    SigningAlgorithm, WrappingAlgorithm,
};
use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use common::{code, wrap_for_import};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

fn setup() -> (Arc<ManualClock>, Arc<LocalKms>, LocalKmsClient) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock.clone());
    let client = kms.client(Caller::account_root(ACCOUNT, REGION).unwrap());
    (clock, kms, client)
}

fn external_key(client: &LocalKmsClient, spec: KeySpec, usage: Option<KeyUsage>) -> String {
    client
        .create_key(CreateKeyRequest {
            key_spec: spec,
            key_usage: usage,
            origin: Origin::External,
            ..Default::default()
        })
        .unwrap()
        .key_id
}

/// The request importing `material` under fresh parameters (RSAES_OAEP_SHA_256).
fn import(client: &LocalKmsClient, key: &str, material: &[u8]) -> ImportKeyMaterialRequest {
    let parameters = client
        .get_parameters_for_import(key, WrappingAlgorithm::RsaesOaepSha256, KeySpec::Rsa3072)
        .unwrap();
    ImportKeyMaterialRequest {
        import_token: parameters.import_token,
        encrypted_key_material: wrap_for_import(&parameters.public_key, material),
        valid_to: None,
        import_type: None,
        key_material_id: None,
        description: None,
    }
}

fn state(client: &LocalKmsClient, key: &str) -> KeyState {
    client.describe_key(key).unwrap().key_state
}

#[test]
fn imported_material_lives_expires_and_comes_back_on_the_clock() {
    let (clock, kms, client) = setup();
    let key = external_key(&client, KeySpec::SymmetricDefault, None);
    let metadata = client.describe_key(&key).unwrap();
    assert_eq!(
        (metadata.origin, metadata.key_state, metadata.enabled),
        ("EXTERNAL", KeyState::PendingImport, false)
    );
    let context = EncryptionContext::new();
    assert_eq!(
        code(client.encrypt(&key, b"x", &context)),
        "KMSInvalidStateException"
    );

    let material = [42u8; 32];
    let mut request = import(&client, &key, &material);
    request.valid_to = Some(clock.now().saturating_add(days(30)));
    let (_, id) = client.import_key_material(&key, request).unwrap();
    assert_eq!(id.len(), 64);
    let metadata = client.describe_key(&key).unwrap();
    assert_eq!(metadata.key_state, KeyState::Enabled);
    assert_eq!(metadata.expiration_model, Some("KEY_MATERIAL_EXPIRES"));
    assert_eq!(
        metadata.current_key_material_id.as_deref(),
        Some(id.as_str())
    );
    let blob = client.encrypt(&key, b"before expiry", &context).unwrap();

    clock.advance(days(31));
    assert_eq!(kms.tick().unwrap(), 1);
    assert_eq!(state(&client, &key), KeyState::PendingImport);
    assert_eq!(
        code(client.decrypt(Some(&key), &blob.ciphertext_blob, &context)),
        "KMSInvalidStateException"
    );
    assert_eq!(code(client.enable_key(&key)), "KMSInvalidStateException");

    // Other material is refused; the same material, now without expiry, restores the key
    // and what it encrypted.
    let wrong = import(&client, &key, &[1; 32]);
    assert_eq!(
        code(client.import_key_material(&key, wrong)),
        "IncorrectKeyMaterialException"
    );
    let mut again = import(&client, &key, &material);
    again.key_material_id = Some(id.clone());
    assert_eq!(client.import_key_material(&key, again).unwrap().1, id);
    assert_eq!(state(&client, &key), KeyState::Enabled);
    let opened = client
        .decrypt(Some(&key), &blob.ciphertext_blob, &context)
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"before expiry");
    assert_eq!(opened.key_material_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        client.describe_key(&key).unwrap().expiration_model,
        Some("KEY_MATERIAL_DOES_NOT_EXPIRE")
    );

    // Deleted on purpose: PendingImport until imported again.
    let (_, deleted) = client.delete_imported_key_material(&key, None).unwrap();
    assert_eq!(deleted.as_deref(), Some(id.as_str()));
    assert_eq!(state(&client, &key), KeyState::PendingImport);
    client
        .import_key_material(&key, import(&client, &key, &material))
        .unwrap();
    assert_eq!(state(&client, &key), KeyState::Enabled);
}

#[test]
fn import_tokens_are_the_keys_own_and_last_a_day() {
    let (clock, _kms, client) = setup();
    let key = external_key(&client, KeySpec::SymmetricDefault, None);
    let other = external_key(&client, KeySpec::SymmetricDefault, None);
    let for_other = import(&client, &other, &[3; 32]);
    assert_eq!(
        code(client.import_key_material(&key, for_other)),
        "InvalidImportTokenException"
    );
    let mut forged = import(&client, &key, &[3; 32]);
    forged.import_token = vec![0; 32];
    assert_eq!(
        code(client.import_key_material(&key, forged)),
        "InvalidImportTokenException"
    );
    let mut garbled = import(&client, &key, &[3; 32]);
    garbled.encrypted_key_material[10] ^= 1;
    assert_eq!(
        code(client.import_key_material(&key, garbled)),
        "InvalidCiphertextException"
    );
    let short = import(&client, &key, &[3; 16]);
    assert_eq!(
        code(client.import_key_material(&key, short)),
        "IncorrectKeyMaterialException"
    );
    let mut too_late = import(&client, &key, &[3; 32]);
    too_late.valid_to = Some(clock.now().saturating_add(days(366)));
    assert_eq!(
        code(client.import_key_material(&key, too_late)),
        "ValidationException"
    );
    let stale = import(&client, &key, &[3; 32]);
    clock.advance(days(1));
    assert_eq!(
        code(client.import_key_material(&key, stale)),
        "ExpiredImportTokenException"
    );
    let made_here = client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    assert_eq!(
        code(client.get_parameters_for_import(
            &made_here,
            WrappingAlgorithm::RsaesOaepSha1,
            KeySpec::Rsa2048
        )),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(client.enable_key_rotation(&key, None)),
        "UnsupportedOperationException"
    );
}

#[test]
fn new_imported_material_becomes_current_on_demand() {
    let (_clock, _kms, client) = setup();
    let key = external_key(&client, KeySpec::SymmetricDefault, None);
    let (_, first) = client
        .import_key_material(&key, import(&client, &key, &[1; 32]))
        .unwrap();
    let context = EncryptionContext::new();
    let old = client.encrypt(&key, b"old", &context).unwrap();
    let mut next = import(&client, &key, &[2; 32]);
    next.import_type = Some(ImportType::NewKeyMaterial);
    next.description = Some("second".into());
    let (_, second) = client.import_key_material(&key, next).unwrap();
    let listed = client.list_key_materials(&key).unwrap();
    let states: Vec<_> = listed.iter().map(|r| r.key_material_state).collect();
    assert_eq!(states, ["CURRENT", "PENDING_ROTATION"]);
    assert_eq!(
        client.describe_key(&key).unwrap().current_key_material_id,
        Some(first.clone())
    );

    client.rotate_key_on_demand(&key).unwrap();
    assert_eq!(
        client.describe_key(&key).unwrap().current_key_material_id,
        Some(second.clone())
    );
    let new = client.encrypt(&key, b"new", &context).unwrap();
    let opened_old = client
        .decrypt(Some(&key), &old.ciphertext_blob, &context)
        .unwrap();
    let opened_new = client
        .decrypt(Some(&key), &new.ciphertext_blob, &context)
        .unwrap();
    assert_eq!(opened_old.key_material_id, Some(first));
    assert_eq!(opened_new.key_material_id, Some(second));
    let rotations = client.list_key_rotations(&key).unwrap();
    assert_eq!(rotations.len(), 1);
    assert_eq!(
        rotations[0].key_material_description.as_deref(),
        Some("second")
    );
    assert_eq!(
        code(client.rotate_key_on_demand(&key)),
        "UnsupportedOperationException"
    );
}

#[test]
fn ml_kem_keys_import_and_pair_as_pkcs8_seeds() {
    let (_clock, _kms, client) = setup();
    let wrapper = client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    let pair = client
        .generate_data_key_pair(&wrapper, KeySpec::MlKem512, &EncryptionContext::new(), true)
        .unwrap();
    let seed_pkcs8 = pair.private_key_plaintext.unwrap();
    assert_eq!(
        seed_pkcs8.len(),
        86,
        "a seed, as AWS hands ML-KEM private keys out"
    );
    // Imported into an EXTERNAL ML-KEM key, the same seed is the same key pair.
    let key = external_key(
        &client,
        KeySpec::MlKem512,
        Some(KeyUsage::EncapsulateDecapsulate),
    );
    let request = import(&client, &key, &seed_pkcs8);
    client.import_key_material(&key, request).unwrap();
    assert_eq!(
        client.get_public_key(&key).unwrap().public_key,
        pair.public_key
    );
    let sealed = client.encapsulate(&key).unwrap();
    let opened = client.decapsulate(&key, &sealed.ciphertext).unwrap();
    assert_eq!(*opened.shared_secret, *sealed.secret.shared_secret);
    let other = external_key(
        &client,
        KeySpec::MlKem768,
        Some(KeyUsage::EncapsulateDecapsulate),
    );
    let wrong_size = import(&client, &other, &seed_pkcs8);
    assert_eq!(
        code(client.import_key_material(&other, wrong_size)),
        "IncorrectKeyMaterialException"
    );
}

#[test]
fn a_key_pair_imports_wrapped_under_an_aes_key() {
    let (_clock, _kms, client) = setup();
    let key = external_key(&client, KeySpec::EccNistP256, Some(KeyUsage::SignVerify));
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();

    // RSA_AES_KEY_WRAP_SHA_256: an AES-256 key wrapped with RSA-OAEP, then the material
    // wrapped with padding under that key.
    let parameters = client
        .get_parameters_for_import(
            &key,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            KeySpec::Rsa4096,
        )
        .unwrap();
    let aes_key = [9u8; 32];
    let rsa = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(&parameters.public_key).unwrap(),
    )
    .unwrap();
    let mut wrapped = vec![0u8; rsa.ciphertext_size()];
    rsa.encrypt(&OAEP_SHA256_MGF1SHA256, &aes_key, &mut wrapped, None)
        .unwrap();
    let mut material = vec![0u8; pkcs8.as_ref().len() + 16];
    let len = AesKek::new(&AES_256, &aes_key)
        .unwrap()
        .wrap_with_padding(pkcs8.as_ref(), &mut material)
        .unwrap()
        .len();
    wrapped.extend_from_slice(&material[..len]);
    let request = ImportKeyMaterialRequest {
        import_token: parameters.import_token,
        encrypted_key_material: wrapped,
        valid_to: None,
        import_type: None,
        key_material_id: None,
        description: None,
    };
    client.import_key_material(&key, request).unwrap();
    assert_eq!(state(&client, &key), KeyState::Enabled);

    let signed = client
        .sign(
            &key,
            b"mine",
            MessageType::Raw,
            SigningAlgorithm::EcdsaSha256,
        )
        .unwrap();
    signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        pair.public_key().as_ref(),
    )
    .verify(b"mine", &signed.signature)
    .unwrap();

    // A key pair takes only its first material; an RSA key is not a P-256 key.
    let other = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let mut second = import(&client, &key, b"not used");
    let parameters = client
        .get_parameters_for_import(&key, WrappingAlgorithm::RsaesOaepSha256, KeySpec::Rsa4096)
        .unwrap();
    second.import_token = parameters.import_token;
    second.encrypted_key_material =
        wrap_for_import(&parameters.public_key, other.to_pkcs8v1().unwrap().as_ref());
    second.import_type = Some(ImportType::NewKeyMaterial);
    assert_eq!(
        code(client.import_key_material(&key, second)),
        "IncorrectKeyMaterialException"
    );
}

#[test]
fn a_multi_region_key_of_imported_material_rotates_once_every_replica_imported_the_new_material() {
    let (_clock, kms, east) = setup();
    let west = kms.client(Caller::account_root(ACCOUNT, "eu-west-1").unwrap());
    let key = east
        .create_key(CreateKeyRequest {
            origin: Origin::External,
            multi_region: true,
            ..Default::default()
        })
        .unwrap()
        .arn;
    east.import_key_material(&key, import(&east, &key, &[1; 32]))
        .unwrap();
    let replica = east
        .replicate_key(&key, "eu-west-1", ReplicateKeyRequest::default())
        .unwrap()
        .metadata
        .arn;
    // A replica of imported material waits for its own import of the primary's material.
    assert_eq!(state(&west, &replica), KeyState::PendingImport);
    assert_eq!(
        code(west.import_key_material(&replica, import(&west, &replica, &[9; 32]))),
        "IncorrectKeyMaterialException"
    );
    west.import_key_material(&replica, import(&west, &replica, &[1; 32]))
        .unwrap();
    assert_eq!(state(&west, &replica), KeyState::Enabled);
    let context = EncryptionContext::new();
    let old = east.encrypt(&key, b"old", &context).unwrap();

    // New material goes into the primary; the replica does not take new material of its own.
    let mut next = import(&east, &key, &[2; 32]);
    next.import_type = Some(ImportType::NewKeyMaterial);
    let (_, second) = east.import_key_material(&key, next).unwrap();
    let states = |client: &LocalKmsClient, key: &str| -> Vec<&'static str> {
        let listed = client.list_key_materials(key).unwrap();
        listed.iter().map(|r| r.key_material_state).collect()
    };
    assert_eq!(
        states(&east, &key),
        ["CURRENT", "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"]
    );
    assert_eq!(
        code(east.rotate_key_on_demand(&key)),
        "KMSInvalidStateException"
    );
    let mut own = import(&west, &replica, &[3; 32]);
    own.import_type = Some(ImportType::NewKeyMaterial);
    assert_eq!(
        code(west.import_key_material(&replica, own)),
        "IncorrectKeyMaterialException"
    );
    let mut same = import(&west, &replica, &[2; 32]);
    same.import_type = Some(ImportType::ExistingKeyMaterial);
    west.import_key_material(&replica, same).unwrap();
    // Deleting the primary's new material deletes the replica's too; then again.
    east.delete_imported_key_material(&key, Some(&second))
        .unwrap();
    assert_eq!(states(&east, &key), ["CURRENT"]);
    assert_eq!(states(&west, &replica), ["CURRENT"]);
    let mut next = import(&east, &key, &[2; 32]);
    next.import_type = Some(ImportType::NewKeyMaterial);
    east.import_key_material(&key, next).unwrap();
    let mut same = import(&west, &replica, &[2; 32]);
    same.import_type = Some(ImportType::ExistingKeyMaterial);
    west.import_key_material(&replica, same).unwrap();
    assert_eq!(states(&east, &key), ["CURRENT", "PENDING_ROTATION"]);
    assert_eq!(states(&west, &replica), ["CURRENT", "PENDING_ROTATION"]);

    // Rotating the primary rotates the set: both encrypt under the new material, and each
    // decrypts what the other encrypted, before and after.
    east.rotate_key_on_demand(&key).unwrap();
    for (client, arn) in [(&east, &key), (&west, &replica)] {
        let described = client.describe_key(arn).unwrap();
        assert_eq!(described.current_key_material_id, Some(second.clone()));
        assert_eq!(states(client, arn), ["NON_CURRENT", "CURRENT"]);
        assert_eq!(client.list_key_rotations(arn).unwrap().len(), 1);
    }
    let new = west.encrypt(&replica, b"new", &context).unwrap();
    assert_eq!(
        east.decrypt(Some(&key), &new.ciphertext_blob, &context)
            .unwrap()
            .key_material_id,
        Some(second)
    );
    assert_eq!(
        west.decrypt(Some(&replica), &old.ciphertext_blob, &context)
            .unwrap()
            .plaintext
            .as_slice(),
        b"old"
    );
}
