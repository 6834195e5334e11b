//! Seed files: LocalKms set up with fixed keys, material versions and aliases, as a test
//! suite or an emulator needs to start from a known state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::{Caller, EncryptionContext, KeyState, KmsError, LocalKms, LocalKmsClient};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const KEY: &str = "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11";
const OTHER: &str = "5e2e5f7a-3f1c-4c7e-8d1e-7a1b2c3d4e5f";

fn kms() -> (Arc<LocalKms>, LocalKmsClient) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock);
    let client = kms.client(Caller::account_root(ACCOUNT, REGION).unwrap());
    (kms, client)
}

fn material(byte: u8) -> String {
    BASE64.encode([byte; 32])
}

fn seed_file(materials: &[String]) -> String {
    json!({
        "Keys": [
            {"KeyId": KEY, "Description": "seeded", "KeyMaterial": materials,
             "Tags": [{"TagKey": "team", "TagValue": "kms"}], "RotationPeriodInDays": 90},
            {"KeyId": OTHER, "KeyState": "Disabled", "KeyMaterial": [material(9)]}
        ],
        "Aliases": [{"AliasName": "alias/seeded", "TargetKeyId": KEY}]
    })
    .to_string()
}

#[test]
fn seeded_keys_have_their_ids_material_versions_aliases_and_state() {
    // A ciphertext made under the first material, elsewhere.
    let (first, first_client) = kms();
    first
        .seed(&seed_file(&[material(1)]), ACCOUNT, REGION)
        .unwrap();
    let context: EncryptionContext = [("app".to_string(), "seed".to_string())].into();
    let old = first_client
        .encrypt("alias/seeded", b"made under version 1", &context)
        .unwrap()
        .ciphertext_blob;

    // The same key seeded with a second, current material: the old ciphertext opens.
    let (kms, client) = kms();
    let seeded = kms
        .seed(&seed_file(&[material(1), material(2)]), ACCOUNT, REGION)
        .unwrap();
    assert_eq!(seeded.keys_created.len(), 2);
    assert_eq!(seeded.aliases_created, ["alias/seeded"]);
    let opened = client.decrypt(Some(KEY), &old, &context).unwrap();
    assert_eq!(&opened.plaintext[..], b"made under version 1");
    assert!(opened
        .key_material_id
        .unwrap()
        .ends_with(&format!("{:032x}", 1)));
    let metadata = client.describe_key("alias/seeded").unwrap();
    assert_eq!(metadata.key_id, KEY);
    assert!(metadata
        .current_key_material_id
        .unwrap()
        .ends_with(&format!("{:032x}", 2)));
    assert_eq!(client.list_resource_tags(KEY).unwrap()[0].value, "kms");
    assert!(
        client
            .get_key_rotation_status(KEY)
            .unwrap()
            .key_rotation_enabled
    );
    assert_eq!(
        client.describe_key(OTHER).unwrap().key_state,
        KeyState::Disabled
    );
}

#[test]
fn seeding_only_adds_and_all_or_nothing() {
    let (kms, client) = kms();
    let file = seed_file(&[material(1)]);
    kms.seed(&file, ACCOUNT, REGION).unwrap();
    let again = kms.seed(&file, ACCOUNT, REGION).unwrap();
    assert_eq!(
        (again.keys_present.len(), again.aliases_present.len()),
        (2, 1)
    );
    assert!(again.keys_created.is_empty());
    // Other material under the same id is refused, and the file's new alias not added.
    let mut changed: serde_json::Value = serde_json::from_str(&seed_file(&[material(7)])).unwrap();
    changed["Aliases"][0]["AliasName"] = json!("alias/another");
    assert!(matches!(
        kms.seed(&changed.to_string(), ACCOUNT, REGION),
        Err(KmsError::AlreadyExists(_))
    ));
    assert_eq!(client.list_aliases().unwrap().len(), 1);
}

#[test]
fn bad_seed_files_are_clear_errors() {
    let (kms, client) = kms();
    for (file, expected) in [
        (json!({"Keys": [{"KeyId": KEY}]}), "needs its KeyMaterial"),
        (
            json!({"Keys": [{"KeyId": KEY, "KeyMaterial": [BASE64.encode([1; 16])]}]}),
            "not 32 bytes",
        ),
        (
            json!({"Keys": [{"KeyId": "k1", "KeyMaterial": [material(1)]}]}),
            "a UUID",
        ),
        (json!({"Keys": [], "Extra": 1}), "not a seed document"),
        (
            json!({"Aliases": [{"AliasName": "alias/x", "TargetKeyId": KEY}]}),
            "neither it nor the KMS has",
        ),
        (
            json!({"Keys": [{"KeyId": KEY, "KeyState": "PendingDeletion", "KeyMaterial": [material(1)]}]}),
            "cannot be seeded",
        ),
    ] {
        let error = kms.seed(&file.to_string(), ACCOUNT, REGION).unwrap_err();
        assert!(error.to_string().contains(expected), "{file}: {error}");
    }
    assert!(client.list_keys().unwrap().is_empty());
}
