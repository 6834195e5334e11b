//! AwsKms against moto's server, an independent implementation of AWS KMS's protocol
//! (from PyPI; `.ci/bootstrap` installs it, `.ci/run` starts it). moto does not enforce
//! key states or policies, so only what it does implement is checked here; the strict
//! behaviour is LocalKms's (tests/kms_wire.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::kms::{AwsKms, AwsKmsConfig, EncryptionContext, Kms, KmsError, StaticCredentials};
use atrest::store::{Store, StoreOptions};
use common::peers::Moto;
use zeroize::Zeroizing;

fn moto_kms(moto: &Moto) -> AwsKms {
    let mut config = AwsKmsConfig::new("us-east-1");
    config.endpoint = Some(moto.url.clone());
    config.credentials = Some(StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: Zeroizing::new("testing".into()),
        session_token: None,
    });
    AwsKms::connect(config).unwrap()
}

/// One moto server for both checks: each test would otherwise start its own.
#[test]
fn atrest_runs_on_moto() {
    let moto = Moto::start();
    a_store_is_created_and_reopened_through_moto(&moto);
    moto_errors_map_to_the_vocabulary(&moto);
    moto_differs_from_aws_where_the_readme_says(&moto);
}

fn a_store_is_created_and_reopened_through_moto(moto: &Moto) {
    let kms = Arc::new(moto_kms(moto));
    let cmk = kms.create_key("atrest on moto").unwrap();
    assert!(cmk.arn.starts_with("arn:aws:kms:us-east-1:"), "{}", cmk.arn);
    let described = kms.describe_key(&cmk.key_id).unwrap();
    assert_eq!(described.arn, cmk.arn);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path(), kms.clone(), &cmk.arn, StoreOptions::default()).unwrap();
    store.put("orders", b"id-1", b"first").unwrap();
    store.rotate_master_key().unwrap();
    store.put("orders", b"id-2", b"second").unwrap();
    drop(store);
    let store = Store::open(dir.path(), kms, &cmk.arn, StoreOptions::default()).unwrap();
    assert_eq!(
        store.get("orders", b"id-1").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        store.get("orders", b"id-2").unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

fn moto_errors_map_to_the_vocabulary(moto: &Moto) {
    let kms = moto_kms(moto);
    let missing = kms
        .describe_key("arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000")
        .unwrap_err();
    assert!(matches!(missing, KmsError::NotFound(_)), "{missing}");
    let key = kms.create_key("errors").unwrap().arn;
    let garbage = kms
        .decrypt(
            &key,
            b"not a ciphertext moto made",
            &EncryptionContext::new(),
        )
        .unwrap_err();
    assert!(
        matches!(garbage, KmsError::InvalidCiphertext(_)),
        "{garbage}"
    );
    let oversized = kms
        .encrypt(&key, &[0; 5000], &EncryptionContext::new())
        .unwrap_err();
    assert!(matches!(oversized, KmsError::Validation(_)), "{oversized}");
}

/// Where moto differs from AWS, as the README says: a disabled key still encrypts, and a
/// Decrypt under the wrong KeyId fails with another exception than AWS's. If
/// this starts failing, moto became stricter and the README's table should say so.
fn moto_differs_from_aws_where_the_readme_says(moto: &Moto) {
    let kms = moto_kms(moto);
    let key = kms.create_key("lax").unwrap().key_id;
    let other = kms.create_key("other").unwrap().key_id;
    let none = EncryptionContext::new();
    let blob = kms.encrypt(&key, b"x", &none).unwrap().ciphertext_blob;
    let wrong_key = kms.decrypt(&other, &blob, &none);
    // By key id: moto 5.2.5 answers DisableKey by ARN with an HTML 500 (a KeyError).
    kms.disable_key(&key).unwrap();
    assert!(
        kms.encrypt(&key, b"x", &none).is_ok(),
        "moto refused a disabled key"
    );
    // AWS answers IncorrectKeyException; moto refuses, but as AccessDeniedException.
    assert!(
        matches!(wrong_key, Err(KmsError::AccessDenied(_))),
        "{wrong_key:?}"
    );
}
