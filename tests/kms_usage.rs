//! GetKeyLastUsage: each key's last successful cryptographic operation, on the emulator
//! clock, seen at once in the process that made it and by others once written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use atrest::clock::{Clock, ManualClock, SharedClock, Timestamp};
use atrest::kms::{Caller, CreateKeyRequest, LocalKms, LocalKmsClient};
use common::ctx;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

fn client(kms: &Arc<LocalKms>) -> LocalKmsClient {
    kms.client(Caller::account_root(ACCOUNT, REGION).unwrap())
}

fn last(client: &LocalKmsClient, key: &str) -> Option<(String, Timestamp)> {
    client
        .get_key_last_usage(key)
        .unwrap()
        .key_last_usage
        .map(|u| (u.operation, u.timestamp))
}

#[test]
fn each_successful_cryptographic_operation_is_the_keys_last_use() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock.clone());
    let client = client(&kms);
    let a = client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    let b = client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    let report = client.get_key_last_usage(&a).unwrap();
    assert_eq!(report.key_last_usage, None);
    assert_eq!(report.tracking_start_date, report.key_creation_date);

    let sealed = client.encrypt(&a, b"x", &ctx(&[])).unwrap().ciphertext_blob;
    assert_eq!(last(&client, &a), Some(("Encrypt".into(), clock.now())));
    clock.advance(Duration::from_secs(3600));
    client.decrypt(None, &sealed, &ctx(&[])).unwrap();
    assert_eq!(last(&client, &a), Some(("Decrypt".into(), clock.now())));
    clock.advance(Duration::from_secs(60));
    client
        .re_encrypt(None, &sealed, &ctx(&[]), &b, &ctx(&[]))
        .unwrap();
    assert_eq!(last(&client, &a).unwrap().0, "ReEncrypt");
    assert_eq!(last(&client, &b).unwrap().0, "ReEncrypt");
    client
        .generate_data_key_without_plaintext(&b, 32, &ctx(&[]))
        .unwrap();
    assert_eq!(
        last(&client, &b).unwrap().0,
        "GenerateDataKeyWithoutPlaintext"
    );

    // Neither a dry run nor a refused call is a use.
    let before = last(&client, &a);
    clock.advance(Duration::from_secs(60));
    client.dry_run().encrypt(&a, b"x", &ctx(&[])).unwrap();
    client.disable_key(&a).unwrap();
    assert!(client.encrypt(&a, b"x", &ctx(&[])).is_err());
    assert_eq!(last(&client, &a), before);
}

#[test]
fn another_process_sees_a_use_once_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let shared: SharedClock = clock.clone();
    let mine = LocalKms::open(dir.path(), shared.clone()).unwrap();
    let theirs = LocalKms::open(dir.path(), shared.clone()).unwrap();
    let key = client(&mine)
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id;
    client(&mine).encrypt(&key, b"x", &ctx(&[])).unwrap();
    // Not written on each Encrypt: the other process does not see it yet...
    assert_eq!(last(&client(&theirs), &key), None);
    // ...until a minute has passed and this process makes any call.
    clock.advance(Duration::from_secs(61));
    client(&mine).describe_key(&key).unwrap();
    assert_eq!(last(&client(&theirs), &key).unwrap().0, "Encrypt");
    // A process that ends writes what it has.
    client(&mine)
        .decrypt(
            None,
            &client(&mine)
                .encrypt(&key, b"y", &ctx(&[]))
                .unwrap()
                .ciphertext_blob,
            &ctx(&[]),
        )
        .unwrap();
    drop(mine);
    assert_eq!(last(&client(&theirs), &key).unwrap().0, "Decrypt");
}
