//! Multi-Region keys through LocalKms's public API: a primary and its replicas in other
//! regions of one account share id and material (each decrypts what the others encrypt,
//! before and after rotations) but not state, policy or aliases; UpdatePrimaryRegion; and
//! AWS's deletion rule for primaries with replicas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::clock::{days, ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateKeyRequest, EncryptionContext, KeyState, LocalKms, LocalKmsClient,
    ReplicateKeyRequest,
};
use common::code;

const ACCOUNT: &str = "111122223333";

struct World {
    clock: Arc<ManualClock>,
    kms: Arc<LocalKms>,
    east: LocalKmsClient,
    west: LocalKmsClient,
    primary: String,
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock.clone());
    let east = kms.client(Caller::account_root(ACCOUNT, "us-east-1").unwrap());
    let west = kms.client(Caller::account_root(ACCOUNT, "eu-west-1").unwrap());
    let primary = east
        .create_key(CreateKeyRequest {
            multi_region: true,
            ..Default::default()
        })
        .unwrap()
        .key_id;
    World {
        clock,
        kms,
        east,
        west,
        primary,
    }
}

fn replicate(w: &World) -> String {
    w.east
        .replicate_key(&w.primary, "eu-west-1", ReplicateKeyRequest::default())
        .unwrap()
        .metadata
        .arn
}

#[test]
fn a_replica_shares_the_primarys_id_and_material_and_not_its_state() {
    let w = world();
    assert!(
        w.primary.starts_with("mrk-") && w.primary.len() == 36,
        "{}",
        w.primary
    );
    let described = w.east.describe_key(&w.primary).unwrap();
    let config = described.multi_region_configuration.unwrap();
    assert!(described.multi_region);
    let material = described.current_key_material_id.unwrap();
    assert!(material.len() == 64 && material.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(config.multi_region_key_type, "PRIMARY");
    assert!(config.replica_keys.is_empty());

    let replica_arn = replicate(&w);
    assert_eq!(
        replica_arn,
        format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{}", w.primary)
    );
    let replica = w.west.describe_key(&w.primary).unwrap();
    let config = replica.multi_region_configuration.unwrap();
    assert_eq!(config.multi_region_key_type, "REPLICA");
    assert_eq!(config.primary_key.region, "us-east-1");
    let primary_view = w.east.describe_key(&w.primary).unwrap();
    assert_eq!(
        primary_view
            .multi_region_configuration
            .unwrap()
            .replica_keys[0]
            .arn,
        replica_arn
    );

    // Each side decrypts the other's ciphertexts, named by id, ARN or not at all.
    let context: EncryptionContext = [("app".to_string(), "orders".to_string())].into();
    let east_blob = w
        .east
        .encrypt(&w.primary, b"from the east", &context)
        .unwrap();
    let opened = w
        .west
        .decrypt(Some(&replica_arn), &east_blob.ciphertext_blob, &context)
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"from the east");
    let west_blob = w
        .west
        .encrypt(&w.primary, b"from the west", &context)
        .unwrap();
    let opened = w
        .east
        .decrypt(None, &west_blob.ciphertext_blob, &context)
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"from the west");

    // State and aliases are each key's own.
    w.west.disable_key(&w.primary).unwrap();
    assert_eq!(
        code(w.west.encrypt(&w.primary, b"x", &context)),
        "DisabledException"
    );
    w.east.encrypt(&w.primary, b"x", &context).unwrap();
    w.east.create_alias("alias/orders", &w.primary).unwrap();
    assert_eq!(
        code(w.west.describe_key("alias/orders")),
        "NotFoundException"
    );

    // Rules.
    assert_eq!(
        code(
            w.east
                .replicate_key(&w.primary, "eu-west-1", ReplicateKeyRequest::default())
        ),
        "AlreadyExistsException"
    );
    assert_eq!(
        code(
            w.west
                .replicate_key(&w.primary, "ap-south-1", ReplicateKeyRequest::default())
        ),
        "UnsupportedOperationException"
    );
    let single = w
        .east
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    assert_eq!(
        code(
            w.east
                .replicate_key(&single, "eu-west-1", ReplicateKeyRequest::default())
        ),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(w.west.rotate_key_on_demand(&w.primary)),
        "UnsupportedOperationException"
    );
}

#[test]
fn the_primarys_rotations_reach_its_replicas() {
    let w = world();
    replicate(&w);
    let context = EncryptionContext::new();
    w.east.rotate_key_on_demand(&w.primary).unwrap();
    let blob = w.east.encrypt(&w.primary, b"on demand", &context).unwrap();
    assert_eq!(
        &w.west
            .decrypt(None, &blob.ciphertext_blob, &context)
            .unwrap()
            .plaintext[..],
        b"on demand"
    );
    w.east.enable_key_rotation(&w.primary, Some(90)).unwrap();
    w.clock.advance(days(91));
    assert!(w.kms.tick().unwrap() >= 1);
    let blob = w.east.encrypt(&w.primary, b"automatic", &context).unwrap();
    let opened = w
        .west
        .decrypt(None, &blob.ciphertext_blob, &context)
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"automatic");
    assert_eq!(
        opened.key_material_id,
        w.east
            .describe_key(&w.primary)
            .unwrap()
            .current_key_material_id
    );
}

#[test]
fn the_primary_moves_and_waits_for_its_replicas_to_be_deleted() {
    let w = world();
    replicate(&w);
    w.east
        .update_primary_region(&w.primary, "eu-west-1")
        .unwrap();
    let west = w.west.describe_key(&w.primary).unwrap();
    assert_eq!(
        west.multi_region_configuration
            .unwrap()
            .multi_region_key_type,
        "PRIMARY"
    );
    assert_eq!(
        code(w.east.update_primary_region(&w.primary, "us-east-1")),
        "UnsupportedOperationException"
    );
    w.west
        .update_primary_region(&w.primary, "us-east-1")
        .unwrap();

    w.east.schedule_key_deletion(&w.primary, Some(7)).unwrap();
    let primary = w.east.describe_key(&w.primary).unwrap();
    assert_eq!(primary.key_state, KeyState::PendingReplicaDeletion);
    assert_eq!(primary.deletion_date, None);
    assert_eq!(
        code(w.east.encrypt(&w.primary, b"x", &EncryptionContext::new())),
        "KMSInvalidStateException"
    );
    w.west.schedule_key_deletion(&w.primary, Some(7)).unwrap();
    w.clock.advance(days(7));
    w.kms.tick().unwrap();
    assert_eq!(code(w.west.describe_key(&w.primary)), "NotFoundException");
    let primary = w.east.describe_key(&w.primary).unwrap();
    assert_eq!(primary.key_state, KeyState::PendingDeletion);
    assert!(primary.deletion_date.is_some());
    w.clock.advance(days(7));
    w.kms.tick().unwrap();
    assert_eq!(code(w.east.describe_key(&w.primary)), "NotFoundException");
}
