//! AwsKms (the AWS SDK for Rust) against `atrest kms serve` (LocalKms over AWS's wire
//! protocol): the strict behaviour must survive the trip, and a store must work through it.
//! Everything listens on 127.0.0.1 only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::wire::{Endpoint, Identities};
use atrest::kms::{
    AssumeRole, AwsKms, AwsKmsConfig, EncryptionContext, KeyState, Kms, KmsError, KmsServer,
    LocalKms, StaticCredentials,
};
use atrest::store::{restore_snapshot, LocalDirStorage, RestoreTarget, Store, StoreOptions};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantOperation, Tag};
use common::peers::Served;
use common::{check_state_table, Op, TableSubject};
use zeroize::Zeroizing;

const ROOT: &str = "arn:aws:iam::111122223333:root";

const ATLAS_ROLE: &str = "arn:aws:iam::111122223333:role/atlas";

/// The endpoint's identities: unverified (no access key registered), the Atlas role
/// assumable with its external id.
fn identities() -> Identities {
    let mut identities = Identities::new(ROOT).unwrap();
    identities
        .add_role(ATLAS_ROLE, Some("atlas-external-id"))
        .unwrap();
    identities
}

fn serve_with(identities: Identities) -> (Arc<LocalKms>, KmsServer) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock);
    let server =
        KmsServer::start("127.0.0.1:0", Endpoint::new(kms.clone(), identities), false).unwrap();
    (kms, server)
}

fn serve() -> (Arc<LocalKms>, KmsServer) {
    serve_with(identities())
}

/// AwsKms signing with these credentials.
fn client_as(url: &str, access_key_id: &str, secret: &str, token: Option<&str>) -> AwsKms {
    let mut config = config(url);
    config.max_attempts = 1;
    config.credentials = Some(StaticCredentials {
        access_key_id: access_key_id.into(),
        secret_access_key: Zeroizing::new(secret.into()),
        session_token: token.map(|t| Zeroizing::new(t.to_string())),
    });
    AwsKms::connect(config).unwrap()
}

fn refused_as(result: Result<atrest::kms::KeyMetadata, KmsError>, code: &str) {
    match result {
        Err(KmsError::AccessDenied(m)) => assert!(m.contains(code), "{m}"),
        other => panic!("expected {code}, got {other:?}"),
    }
}

#[test]
fn registered_access_keys_are_verified_and_others_refused() {
    let mut ids = identities();
    ids.add_access_key(
        "AKIAALICE0000000",
        "alice-secret",
        "arn:aws:iam::111122223333:user/alice",
    )
    .unwrap();
    let (_kms, server) = serve_with(ids);
    let url = server.url();
    let alice = client_as(&url, "AKIAALICE0000000", "alice-secret", None);
    let key = alice.create_key("alice's").unwrap().arn;
    alice.describe_key(&key).unwrap();
    refused_as(
        client_as(&url, "AKIAALICE0000000", "not-her-secret", None).describe_key(&key),
        "InvalidSignatureException",
    );
    refused_as(
        client_as(&url, "AKIATESTROOT", "anything", None).describe_key(&key),
        "UnrecognizedClientException",
    );
    // Session credentials never issued here, however they are spelled.
    refused_as(
        client_as(&url, "ASIA1234567890ABCDEF", "x", Some("token")).describe_key(&key),
        "UnrecognizedClientException",
    );
}

#[test]
fn forged_session_credentials_are_refused_even_unverified() {
    let (_kms, server) = serve();
    let url = server.url();
    let root = client(&url);
    let key = root.create_key("k").unwrap().arn;
    // What the endpoint used to issue: ASIA + hex of the role ARN.
    let forged: String = format!(
        "ASIA{}",
        ATLAS_ROLE
            .bytes()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    refused_as(
        client_as(&url, &forged, "x", Some("atrest-session")).describe_key(&key),
        "UnrecognizedClientException",
    );
    // The role with a wrong external id is not handed out.
    let mut as_role = config(&url);
    as_role.max_attempts = 1;
    as_role.assume_role = Some(AssumeRole {
        role_arn: ATLAS_ROLE.into(),
        external_id: Some("guessed".into()),
        session_name: "s".into(),
    });
    let denied = AwsKms::connect(as_role).and_then(|k| k.describe_key(&key));
    assert!(
        matches!(&denied, Err(KmsError::AccessDenied(m)) if m.contains("sts:AssumeRole")),
        "{denied:?}"
    );
}

#[test]
fn the_server_stays_on_loopback_unless_told() {
    let kms = LocalKms::in_memory(Arc::new(ManualClock::new(Timestamp::from_millis(0))));
    let refused =
        KmsServer::start("0.0.0.0:0", Endpoint::new(kms.clone(), identities()), false).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(refused.to_string().contains("loopback"), "{refused}");
    KmsServer::start("0.0.0.0:0", Endpoint::new(kms, identities()), true).unwrap();
}

fn config(url: &str) -> AwsKmsConfig {
    let mut config = AwsKmsConfig::new("us-east-1");
    config.endpoint = Some(url.to_string());
    config.credentials = Some(StaticCredentials {
        access_key_id: "AKIATESTROOT".into(),
        secret_access_key: Zeroizing::new("not-checked".into()),
        session_token: None,
    });
    config
}

fn client(url: &str) -> AwsKms {
    AwsKms::connect(config(url)).unwrap()
}

fn ctx() -> EncryptionContext {
    [("purpose".to_string(), "wire".to_string())].into()
}

fn outcome<T>(r: Result<T, KmsError>) -> String {
    r.map_or_else(|e| e.aws_name().to_string(), |_| "ok".to_string())
}

/// Runs an SDK call on AwsKms's runtime; "ok" or the error code the SDK parsed.
macro_rules! sdk {
    ($aws:expr, |$c:ident| $call:expr) => {{
        let $c = $aws.sdk().clone();
        let result = $aws
            .block_on(async move { $call.send().await.map(|_| ()) })
            .unwrap();
        match result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.code().unwrap_or("no code").to_string(),
        }
    }};
}

/// Admin calls through the raw SDK, the four store calls through AwsKms's mapping.
struct Wire {
    aws: AwsKms,
    aliases: usize,
}

impl Wire {
    /// A symmetric key of imported material, made and imported through the SDK.
    fn imported_key(&self) -> String {
        use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, OriginType, WrappingKeySpec};
        let sdk = self.aws.sdk().clone();
        self.aws
            .block_on(async move {
                let key = sdk
                    .create_key()
                    .origin(OriginType::External)
                    .send()
                    .await
                    .unwrap()
                    .key_metadata
                    .unwrap()
                    .key_id;
                let parameters = sdk
                    .get_parameters_for_import()
                    .key_id(&key)
                    .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
                    .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                    .send()
                    .await
                    .unwrap();
                let wrapped =
                    common::wrap_for_import(parameters.public_key.unwrap().as_ref(), &[7; 32]);
                sdk.import_key_material()
                    .key_id(&key)
                    .import_token(parameters.import_token.unwrap())
                    .encrypted_key_material(Blob::new(wrapped))
                    .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
                    .send()
                    .await
                    .unwrap();
                key
            })
            .unwrap()
    }
}

impl TableSubject for Wire {
    fn key_in_state(&mut self, state: KeyState) -> (String, Vec<u8>) {
        let key = match state {
            KeyState::PendingImport => self.imported_key(),
            _ => self.aws.create_key("table").unwrap().key_id,
        };
        let blob = self
            .aws
            .encrypt(&key, b"secret", &ctx())
            .unwrap()
            .ciphertext_blob;
        match state {
            KeyState::Enabled => {}
            KeyState::Disabled => self.aws.disable_key(&key).unwrap(),
            KeyState::PendingDeletion => self.aws.schedule_key_deletion(&key, 7).unwrap(),
            KeyState::PendingImport => {
                let k = key.clone();
                assert_eq!(
                    sdk!(self.aws, |c| c.delete_imported_key_material().key_id(k)),
                    "ok"
                );
            }
            KeyState::PendingReplicaDeletion => unreachable!("tests/kms_multi_region.rs"),
        }
        assert_eq!(self.aws.describe_key(&key).unwrap().key_state, state);
        (key, blob)
    }

    fn run(&mut self, op: Op, key: &str, blob: &[u8]) -> String {
        let aws = &self.aws;
        let k = key.to_string();
        self.aliases += 1;
        let alias = format!("alias/table-{}", self.aliases);
        use Op::*;
        match op {
            Encrypt => outcome(aws.encrypt(key, b"x", &ctx())),
            Decrypt => outcome(aws.decrypt(key, blob, &ctx())),
            GenerateDataKey => outcome(aws.generate_data_key(key, &ctx())),
            DescribeKey => outcome(aws.describe_key(key)),
            EnableKey => sdk!(aws, |c| c.enable_key().key_id(k)),
            DisableKey => sdk!(aws, |c| c.disable_key().key_id(k)),
            ScheduleKeyDeletion => sdk!(aws, |c| c.schedule_key_deletion().key_id(k)),
            CancelKeyDeletion => sdk!(aws, |c| c.cancel_key_deletion().key_id(k)),
            EnableKeyRotation => sdk!(aws, |c| c.enable_key_rotation().key_id(k)),
            DisableKeyRotation => sdk!(aws, |c| c.disable_key_rotation().key_id(k)),
            RotateKeyOnDemand => sdk!(aws, |c| c.rotate_key_on_demand().key_id(k)),
            GetKeyRotationStatus => sdk!(aws, |c| c.get_key_rotation_status().key_id(k)),
            ListKeyRotations => sdk!(aws, |c| c.list_key_rotations().key_id(k)),
            CreateAlias => sdk!(aws, |c| c.create_alias().alias_name(alias).target_key_id(k)),
            PutKeyPolicy => {
                let sdk = aws.sdk().clone();
                let policy = aws
                    .block_on(async move { sdk.get_key_policy().key_id(k).send().await })
                    .unwrap()
                    .unwrap()
                    .policy
                    .unwrap();
                let k = key.to_string();
                sdk!(aws, |c| c.put_key_policy().key_id(k).policy(policy))
            }
            GetKeyPolicy => sdk!(aws, |c| c.get_key_policy().key_id(k)),
            GenerateDataKeyWithoutPlaintext => sdk!(aws, |c| c
                .generate_data_key_without_plaintext()
                .key_id(k)
                .number_of_bytes(32)),
            ReEncrypt => {
                let blob = Blob::new(blob);
                let context = Some(ctx().into_iter().collect());
                sdk!(aws, |c| c
                    .re_encrypt()
                    .ciphertext_blob(blob)
                    .set_source_encryption_context(context)
                    .destination_key_id(k))
            }
            UpdateKeyDescription => {
                sdk!(aws, |c| c
                    .update_key_description()
                    .key_id(k)
                    .description("table"))
            }
            TagResource => {
                let tag = Tag::builder()
                    .tag_key("table")
                    .tag_value("cell")
                    .build()
                    .unwrap();
                sdk!(aws, |c| c.tag_resource().key_id(k).tags(tag))
            }
            UntagResource => sdk!(aws, |c| c.untag_resource().key_id(k).tag_keys("table")),
            ListResourceTags => sdk!(aws, |c| c.list_resource_tags().key_id(k)),
            ListKeyPolicies => sdk!(aws, |c| c.list_key_policies().key_id(k)),
            CreateGrant => sdk!(aws, |c| c
                .create_grant()
                .key_id(k)
                .grantee_principal("arn:aws:iam::444455556666:role/table")
                .operations(GrantOperation::Decrypt)),
            ListGrants => sdk!(aws, |c| c.list_grants().key_id(k)),
        }
    }
}

#[test]
fn the_state_table_passes_through_the_wire() {
    let (_kms, server) = serve();
    check_state_table(&mut Wire {
        aws: client(&server.url()),
        aliases: 0,
    });
}

#[test]
fn decrypt_stays_bound_to_its_key_and_context() {
    let (_kms, server) = serve();
    let aws = client(&server.url());
    let a = aws.create_key("a").unwrap().arn;
    let b = aws.create_key("b").unwrap().arn;
    let blob = aws.encrypt(&a, b"secret", &ctx()).unwrap().ciphertext_blob;
    assert_eq!(
        &aws.decrypt(&a, &blob, &ctx()).unwrap().plaintext[..],
        b"secret"
    );
    assert!(matches!(
        aws.decrypt(&b, &blob, &ctx()),
        Err(KmsError::IncorrectKey(_))
    ));
    assert!(matches!(
        aws.decrypt(&a, &blob, &EncryptionContext::new()),
        Err(KmsError::InvalidCiphertext(_))
    ));
    let mut tampered = blob.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        aws.decrypt(&a, &tampered, &ctx()),
        Err(KmsError::InvalidCiphertext(_))
    ));
    assert!(matches!(
        aws.describe_key("alias/none"),
        Err(KmsError::NotFound(_))
    ));
    let data_key = aws.generate_data_key(&a, &ctx()).unwrap();
    assert_eq!(data_key.plaintext.len(), 32);
    assert_eq!(
        aws.decrypt(&a, &data_key.ciphertext_blob, &ctx())
            .unwrap()
            .plaintext,
        data_key.plaintext
    );
}

#[test]
fn an_assumed_role_is_held_to_the_key_policy() {
    let (_kms, server) = serve();
    let admin = client(&server.url());
    let key = admin.create_key("role test").unwrap().arn;
    let mut as_role = config(&server.url());
    as_role.assume_role = Some(AssumeRole {
        role_arn: ATLAS_ROLE.into(),
        external_id: Some("atlas-external-id".into()),
        session_name: "atrest-test".into(),
    });
    let role = AwsKms::connect(as_role).unwrap();
    // The default policy trusts the account, so the role may use the key...
    role.encrypt(&key, b"x", &ctx()).unwrap();
    // ...until the policy denies that role Encrypt (the account's grant stays).
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:role/atlas"},
             "Action": "kms:Encrypt", "Resource": "*"}
        ]
    })
    .to_string();
    let k = key.clone();
    let sdk = admin.sdk().clone();
    admin
        .block_on(async move { sdk.put_key_policy().key_id(k).policy(policy).send().await })
        .unwrap()
        .unwrap();
    let denied = role.encrypt(&key, b"x", &ctx()).unwrap_err();
    assert!(matches!(denied, KmsError::AccessDenied(_)), "{denied}");
    assert!(denied.to_string().contains("role/atlas"), "{denied}");
    admin.encrypt(&key, b"x", &ctx()).unwrap();
    role.describe_key(&key).unwrap();
}

#[test]
fn a_store_works_end_to_end_through_aws_kms() {
    let (_kms, server) = serve();
    let aws: Arc<AwsKms> = Arc::new(client(&server.url()));
    let cmk = aws.create_key("store cmk").unwrap().arn;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::create(&path, aws.clone(), &cmk, StoreOptions::default()).unwrap();
    store.put("orders", b"k1", b"v1").unwrap();
    store.rotate_master_key().unwrap();
    store.put("orders", b"k2", b"v2").unwrap();
    let storage = LocalDirStorage::new(dir.path().join("snapshots")).unwrap();
    let snapshot = store.create_snapshot(&storage, &mut |_| {}).unwrap();
    drop(store);
    let store = Store::open(&path, aws.clone(), &cmk, StoreOptions::default()).unwrap();
    assert_eq!(
        store.get("orders", b"k1").unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    drop(store);
    let restored_path = dir.path().join("restored");
    let restored = restore_snapshot(
        &storage,
        &snapshot.id,
        aws.clone(),
        RestoreTarget {
            path: &restored_path,
            kms: aws.clone(),
            cmk: &cmk,
            region: "us-east-1",
            options: StoreOptions::default(),
        },
    )
    .unwrap();
    assert_eq!(
        restored.get("orders", b"k2").unwrap().as_deref(),
        Some(&b"v2"[..])
    );
}

/// A stand-in for KMS that answers ThrottlingException to the first `throttles` requests
/// and a DescribeKey result after; returns its URL and its request count.
fn throttling_stub(throttles: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut length = 0;
                let mut line = String::new();
                let mut started = false;
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    started = true;
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    line.clear();
                }
                if !started {
                    break;
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, body) = if n < throttles {
                    (
                        "400 Bad Request",
                        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string(),
                    )
                } else {
                    (
                        "200 OK",
                        serde_json::json!({"KeyMetadata": {
                        "KeyId": "k", "Arn": "arn:aws:kms:us-east-1:111122223333:key/k",
                        "AWSAccountId": "111122223333", "Enabled": true, "KeyState": "Enabled",
                        "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT",
                        "CreationDate": 1.7e9}})
                        .to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, count)
}

#[test]
fn throttling_is_retried_with_backoff_and_a_bound() {
    let (url, count) = throttling_stub(2);
    let aws = AwsKms::connect(config(&url)).unwrap();
    assert!(aws.describe_key("k").is_ok());
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "two throttles, then success"
    );

    let (url, count) = throttling_stub(usize::MAX);
    let mut bounded = config(&url);
    bounded.max_attempts = 3;
    let err = AwsKms::connect(bounded)
        .unwrap()
        .describe_key("k")
        .unwrap_err();
    assert!(matches!(err, KmsError::Throttled(_)), "{err}");
    assert!(err.is_retryable());
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "gives up after max_attempts"
    );
}

#[test]
fn an_unreachable_kms_is_unavailable_not_a_panic() {
    let port = common::peers::free_port();
    let mut dead = config(&format!("http://127.0.0.1:{port}"));
    dead.max_attempts = 2;
    dead.attempt_timeout = Duration::from_secs(2);
    let err = AwsKms::connect(dead)
        .unwrap()
        .describe_key("k")
        .unwrap_err();
    assert!(matches!(err, KmsError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
}

#[test]
fn aws_kms_needs_no_runtime_from_its_caller_and_works_inside_one() {
    let (_kms, server) = serve();
    let aws = client(&server.url());
    let key = aws.create_key("nested").unwrap().arn;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async { aws.encrypt(&key, b"x", &ctx()).unwrap() });
    drop(runtime);
    drop(aws);
}

#[test]
fn a_seeded_deterministic_server_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"Keys": [{"KeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11",
                      "KeyMaterial": ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}],
            "Aliases": [{"AliasName": "alias/seeded", "TargetKeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11"}]}"#,
    )
    .unwrap();
    let run = |name: &str| {
        let root = dir.path().join(name);
        let served = Served::start(
            &root,
            &["--seed", seed.to_str().unwrap(), "--deterministic", "42"],
        );
        let aws = client(&served.url);
        let sealed = aws
            .encrypt("alias/seeded", b"replayed", &ctx())
            .unwrap()
            .ciphertext_blob;
        let created = aws.create_key("fresh").unwrap().key_id;
        (sealed, created)
    };
    let (first, second) = (run("a"), run("b"));
    assert_eq!(first, second, "same seed, same calls: same bytes");
    assert!(first.1 != "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11");
}
