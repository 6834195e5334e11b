//! LocalKms against AWS KMS's documented behaviour, through the public API only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::{check_state_table, wrap_for_import, Op, TableSubject};

use atrest::clock::{days, Clock, ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateGrantRequest, CreateKeyRequest, EncryptionContext, GrantOperation,
    ImportKeyMaterialRequest, KeySpec, KeyState, KeyUsage, Kms, KmsError, LocalKms, LocalKmsClient,
    Origin, RotationKind, Tag, WrappingAlgorithm,
};

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
const REGION: &str = "us-east-1";

fn setup() -> (Arc<ManualClock>, Arc<LocalKms>, LocalKmsClient) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock.clone());
    let client = kms.client(Caller::account_root(ACCOUNT, REGION).unwrap());
    (clock, kms, client)
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn symmetric_key(client: &LocalKmsClient) -> String {
    client
        .create_key(CreateKeyRequest::default())
        .unwrap()
        .key_id
}

/// A symmetric key of imported material (origin EXTERNAL), its material imported.
fn imported_key(client: &LocalKmsClient) -> String {
    let key = client
        .create_key(CreateKeyRequest {
            origin: Origin::External,
            ..Default::default()
        })
        .unwrap()
        .key_id;
    let parameters = client
        .get_parameters_for_import(&key, WrappingAlgorithm::RsaesOaepSha256, KeySpec::Rsa2048)
        .unwrap();
    let request = ImportKeyMaterialRequest {
        import_token: parameters.import_token,
        encrypted_key_material: wrap_for_import(&parameters.public_key, &[7; 32]),
        valid_to: None,
        import_type: None,
        key_material_id: None,
        description: None,
    };
    client.import_key_material(&key, request).unwrap();
    key
}

fn outcome<T>(r: Result<T, KmsError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.aws_name().to_string(),
    }
}

fn tag() -> Tag {
    Tag {
        key: "table".into(),
        value: "cell".into(),
    }
}

/// A fresh LocalKms per key, so each cell of the table starts clean.
struct Local(Option<LocalKmsClient>);

impl TableSubject for Local {
    fn key_in_state(&mut self, state: KeyState) -> (String, Vec<u8>) {
        let (_, _, client) = setup();
        let key = match state {
            KeyState::PendingImport => imported_key(&client),
            _ => symmetric_key(&client),
        };
        let blob = client
            .encrypt(&key, b"secret", &ctx(&[("purpose", "table")]))
            .unwrap()
            .ciphertext_blob;
        match state {
            KeyState::Enabled => {}
            KeyState::Disabled => client.disable_key(&key).unwrap(),
            KeyState::PendingDeletion => {
                client.schedule_key_deletion(&key, Some(7)).unwrap();
            }
            KeyState::PendingImport => {
                client.delete_imported_key_material(&key, None).unwrap();
            }
            KeyState::PendingReplicaDeletion => unreachable!("tests/kms_multi_region.rs"),
        }
        assert_eq!(client.describe_key(&key).unwrap().key_state, state);
        self.0 = Some(client);
        (key, blob)
    }

    fn run(&mut self, op: Op, key: &str, blob: &[u8]) -> String {
        let client = self.0.as_ref().unwrap();
        let context = ctx(&[("purpose", "table")]);
        let policy = client.get_key_policy(key).unwrap();
        use Op::*;
        match op {
            Encrypt => outcome(client.encrypt(key, b"x", &context)),
            Decrypt => outcome(client.decrypt(Some(key), blob, &context)),
            GenerateDataKey => outcome(client.generate_data_key(key, 32, &context)),
            DescribeKey => outcome(client.describe_key(key)),
            EnableKey => outcome(client.enable_key(key)),
            DisableKey => outcome(client.disable_key(key)),
            ScheduleKeyDeletion => outcome(client.schedule_key_deletion(key, None)),
            CancelKeyDeletion => outcome(client.cancel_key_deletion(key)),
            EnableKeyRotation => outcome(client.enable_key_rotation(key, None)),
            DisableKeyRotation => outcome(client.disable_key_rotation(key)),
            RotateKeyOnDemand => outcome(client.rotate_key_on_demand(key)),
            GetKeyRotationStatus => outcome(client.get_key_rotation_status(key)),
            ListKeyRotations => outcome(client.list_key_rotations(key)),
            CreateAlias => outcome(client.create_alias("alias/table", key)),
            PutKeyPolicy => outcome(client.put_key_policy(key, &policy)),
            GetKeyPolicy => outcome(client.get_key_policy(key)),
            GenerateDataKeyWithoutPlaintext => {
                outcome(client.generate_data_key_without_plaintext(key, 32, &context))
            }
            ReEncrypt => outcome(client.re_encrypt(Some(key), blob, &context, key, &context)),
            UpdateKeyDescription => outcome(client.update_key_description(key, "table")),
            TagResource => outcome(client.tag_resource(key, &[tag()])),
            UntagResource => outcome(client.untag_resource(key, &["table".to_string()])),
            ListResourceTags => outcome(client.list_resource_tags(key)),
            ListKeyPolicies => outcome(client.list_key_policies(key)),
            CreateGrant => outcome(client.create_grant(
                key,
                CreateGrantRequest {
                    grantee_principal: "arn:aws:iam::444455556666:role/table".into(),
                    operations: vec![GrantOperation::Decrypt],
                    ..Default::default()
                },
            )),
            ListGrants => outcome(client.list_grants(key, None, None)),
        }
    }
}

#[test]
fn every_state_and_operation_behaves_as_aws_documents() {
    check_state_table(&mut Local(None));
}

#[test]
fn cancelling_deletion_leaves_the_key_disabled() {
    let (_, _, client) = setup();
    let key = symmetric_key(&client);
    client.schedule_key_deletion(&key, Some(7)).unwrap();
    client.cancel_key_deletion(&key).unwrap();
    let meta = client.describe_key(&key).unwrap();
    assert_eq!(meta.key_state, KeyState::Disabled);
    assert_eq!(meta.deletion_date, None);
    assert_eq!(
        outcome(client.encrypt(&key, b"x", &EncryptionContext::new())),
        "DisabledException"
    );
    client.enable_key(&key).unwrap();
    client
        .encrypt(&key, b"x", &EncryptionContext::new())
        .unwrap();
}

#[test]
fn deletion_destroys_the_key_when_the_window_ends() {
    let (clock, kms, client) = setup();
    let key = symmetric_key(&client);
    client.create_alias("alias/doomed", &key).unwrap();
    assert_eq!(
        outcome(client.schedule_key_deletion(&key, Some(6))),
        "ValidationException"
    );
    assert_eq!(
        outcome(client.schedule_key_deletion(&key, Some(31))),
        "ValidationException"
    );
    let date = client.schedule_key_deletion(&key, Some(7)).unwrap();
    assert_eq!(date.since(clock.now()), days(7));
    clock.advance(days(6));
    assert_eq!(kms.tick().unwrap(), 0);
    assert_eq!(
        client.describe_key(&key).unwrap().key_state,
        KeyState::PendingDeletion
    );
    clock.advance(days(1));
    assert_eq!(kms.tick().unwrap(), 1);
    assert_eq!(outcome(client.describe_key(&key)), "NotFoundException");
    assert_eq!(
        outcome(client.describe_key("alias/doomed")),
        "NotFoundException"
    );
    assert!(client.list_aliases().unwrap().is_empty());
}

#[test]
fn keys_are_named_by_id_arn_alias_or_alias_arn() {
    let (_, _, client) = setup();
    let meta = client
        .create_key(CreateKeyRequest {
            description: "cmk".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        meta.arn,
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", meta.key_id)
    );
    client
        .create_alias("alias/atrest-default", &meta.arn)
        .unwrap();
    assert_eq!(
        outcome(client.create_alias("alias/atrest-default", &meta.key_id)),
        "AlreadyExistsException"
    );
    assert_eq!(
        outcome(client.create_alias("alias/aws/s3", &meta.key_id)),
        "ValidationException"
    );
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/atrest-default");
    for name in [
        meta.key_id.as_str(),
        &meta.arn,
        "alias/atrest-default",
        &alias_arn,
    ] {
        assert_eq!(
            client.describe_key(name).unwrap().key_id,
            meta.key_id,
            "{name}"
        );
        let blob = client
            .encrypt(name, b"hello", &EncryptionContext::new())
            .unwrap()
            .ciphertext_blob;
        let out = client
            .decrypt(Some(name), &blob, &EncryptionContext::new())
            .unwrap();
        assert_eq!(&out.plaintext[..], b"hello");
        assert_eq!(out.key_arn, meta.arn);
    }
    // Management calls take a key id or ARN, not an alias.
    assert_eq!(
        outcome(client.disable_key("alias/atrest-default")),
        "NotFoundException"
    );
    // Another region's endpoint does not see the key.
    let west = client
        .service()
        .client(Caller::account_root(ACCOUNT, "us-west-2").unwrap());
    assert_eq!(
        outcome(west.describe_key(&meta.key_id)),
        "NotFoundException"
    );
    assert_eq!(outcome(west.describe_key(&meta.arn)), "NotFoundException");
    assert_eq!(
        outcome(client.describe_key("1234abcd-12ab-34cd-56ef-1234567890ab")),
        "NotFoundException"
    );
    assert_eq!(outcome(client.describe_key("bogus")), "NotFoundException");
    client.delete_alias("alias/atrest-default").unwrap();
    assert_eq!(
        outcome(client.describe_key("alias/atrest-default")),
        "NotFoundException"
    );
}

#[test]
fn decrypt_is_bound_to_its_key_and_context() {
    let (_, _, client) = setup();
    let a = symmetric_key(&client);
    let b = symmetric_key(&client);
    let context = ctx(&[("cluster", "c1"), ("node", "0")]);
    let blob = client
        .encrypt(&a, b"master key", &context)
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        outcome(client.decrypt(Some(&b), &blob, &context)),
        "IncorrectKeyException"
    );
    assert_eq!(
        outcome(client.decrypt(Some(&a), &blob, &ctx(&[("cluster", "c1")]))),
        "InvalidCiphertextException"
    );
    assert_eq!(
        outcome(client.decrypt(Some(&a), &blob, &EncryptionContext::new())),
        "InvalidCiphertextException"
    );
    assert_eq!(
        &client.decrypt(None, &blob, &context).unwrap().plaintext[..],
        b"master key"
    );
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let got = outcome(client.decrypt(None, &bad, &context));
        assert_eq!(got, "InvalidCiphertextException", "flipped byte {i}");
    }
    for len in 0..blob.len() {
        assert_eq!(
            outcome(client.decrypt(Some(&a), &blob[..len], &context)),
            "InvalidCiphertextException"
        );
    }
    // Through the trait, the key is always named.
    let kms: &dyn Kms = &client;
    assert_eq!(
        outcome(kms.decrypt(&b, &blob, &context)),
        "IncorrectKeyException"
    );
    let dk = kms.generate_data_key(&a, &context).unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(
        kms.decrypt(&a, &dk.ciphertext_blob, &context)
            .unwrap()
            .plaintext,
        dk.plaintext
    );
    assert_eq!(
        outcome(client.encrypt(&a, &[0; 4097], &context)),
        "ValidationException"
    );
    assert_eq!(
        outcome(client.encrypt(&a, &[], &context)),
        "ValidationException"
    );
}

#[test]
fn only_symmetric_keys_encrypt() {
    let (_, _, client) = setup();
    for (spec, usage) in [
        (KeySpec::Rsa2048, KeyUsage::EncryptDecrypt),
        (KeySpec::EccNistP256, KeyUsage::SignVerify),
        (KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
        (KeySpec::MlKem768, KeyUsage::EncapsulateDecapsulate),
    ] {
        let key = client
            .create_key(CreateKeyRequest {
                key_spec: spec,
                key_usage: Some(usage),
                ..Default::default()
            })
            .unwrap()
            .key_id;
        assert_eq!(client.describe_key(&key).unwrap().key_spec, spec);
        assert_eq!(
            outcome(client.encrypt(&key, b"x", &EncryptionContext::new())),
            "InvalidKeyUsageException"
        );
        assert_eq!(
            outcome(client.generate_data_key(&key, 32, &EncryptionContext::new())),
            "InvalidKeyUsageException"
        );
        assert_eq!(
            outcome(client.rotate_key_on_demand(&key)),
            "UnsupportedOperationException"
        );
        assert_eq!(
            outcome(client.enable_key_rotation(&key, None)),
            "UnsupportedOperationException"
        );
    }
    let bad = CreateKeyRequest {
        key_usage: Some(KeyUsage::SignVerify),
        ..Default::default()
    };
    assert_eq!(outcome(client.create_key(bad)), "ValidationException");
    let without_usage = CreateKeyRequest {
        key_spec: KeySpec::Rsa2048,
        ..Default::default()
    };
    assert_eq!(
        outcome(client.create_key(without_usage)),
        "ValidationException"
    );
}

#[test]
fn on_demand_rotation_keeps_old_ciphertexts_readable() {
    let (_, _, client) = setup();
    let key = symmetric_key(&client);
    let context = ctx(&[("k", "v")]);
    let old = client
        .encrypt(&key, b"before", &context)
        .unwrap()
        .ciphertext_blob;
    for _ in 0..10 {
        client.rotate_key_on_demand(&key).unwrap();
    }
    assert_eq!(
        outcome(client.rotate_key_on_demand(&key)),
        "LimitExceededException"
    );
    let new = client
        .encrypt(&key, b"after", &context)
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        &client
            .decrypt(Some(&key), &old, &context)
            .unwrap()
            .plaintext[..],
        b"before"
    );
    assert_eq!(
        &client
            .decrypt(Some(&key), &new, &context)
            .unwrap()
            .plaintext[..],
        b"after"
    );
    let rotations = client.list_key_rotations(&key).unwrap();
    assert_eq!(rotations.len(), 10);
    assert!(rotations
        .iter()
        .all(|r| r.rotation_type == Some(RotationKind::OnDemand)));
    let material = client
        .describe_key(&key)
        .unwrap()
        .current_key_material_id
        .unwrap();
    assert!(material.len() == 64 && material.ends_with(&format!("{:032x}", 11)));
}

#[test]
fn automatic_rotation_follows_the_clock() {
    let (clock, kms, client) = setup();
    let key = symmetric_key(&client);
    let context = EncryptionContext::new();
    let old = client
        .encrypt(&key, b"old", &context)
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        outcome(client.enable_key_rotation(&key, Some(89))),
        "ValidationException"
    );
    client.enable_key_rotation(&key, Some(90)).unwrap();
    let status = client.get_key_rotation_status(&key).unwrap();
    assert!(status.key_rotation_enabled);
    assert_eq!(status.rotation_period_in_days, Some(90));
    assert_eq!(
        status.next_rotation_date.unwrap().since(clock.now()),
        days(90)
    );
    clock.advance(days(89));
    assert_eq!(kms.tick().unwrap(), 0);
    clock.advance(days(2));
    assert_eq!(kms.tick().unwrap(), 1);
    // A year later without a tick: the next call applies the three rotations due.
    clock.advance(days(270));
    let rotations = client.list_key_rotations(&key).unwrap();
    assert_eq!(rotations.len(), 4);
    assert!(rotations
        .iter()
        .all(|r| r.rotation_type == Some(RotationKind::Automatic)));
    assert_eq!(
        &client
            .decrypt(Some(&key), &old, &context)
            .unwrap()
            .plaintext[..],
        b"old"
    );
    // A disabled key does not rotate; re-enabled, it rotates once, now.
    client.disable_key(&key).unwrap();
    clock.advance(days(400));
    assert_eq!(kms.tick().unwrap(), 0);
    client.enable_key(&key).unwrap();
    assert_eq!(kms.tick().unwrap(), 1);
    assert_eq!(client.list_key_rotations(&key).unwrap().len(), 5);
    client.disable_key_rotation(&key).unwrap();
    assert!(
        !client
            .get_key_rotation_status(&key)
            .unwrap()
            .key_rotation_enabled
    );
}

#[test]
fn key_policies_decide_who_may_call_what() {
    let (_, kms, owner) = setup();
    let role = format!("arn:aws:iam::{OTHER_ACCOUNT}:role/atlas");
    let key = owner.create_key(CreateKeyRequest::default()).unwrap();
    let atlas = kms.client(Caller::new(&role, REGION).unwrap());
    let context = EncryptionContext::new();
    // Another account's caller sees nothing by bare id, and is denied by ARN.
    let err = atlas.describe_key(&key.key_id).unwrap_err();
    assert_eq!(err.aws_name(), "NotFoundException");
    assert!(err.to_string().contains("full key ARN"), "{err}");
    assert_eq!(
        outcome(atlas.describe_key(&key.arn)),
        "AccessDeniedException"
    );
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}},
            {{"Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"}}]}}"#
    );
    owner.put_key_policy(&key.key_id, &policy).unwrap();
    assert_eq!(atlas.describe_key(&key.arn).unwrap().key_id, key.key_id);
    let blob = atlas
        .encrypt(&key.arn, b"mk", &context)
        .unwrap()
        .ciphertext_blob;
    let denied = atlas.decrypt(Some(&key.arn), &blob, &context).unwrap_err();
    assert_eq!(denied.aws_name(), "AccessDeniedException");
    assert!(denied.to_string().contains("kms:Decrypt"), "{denied}");
    assert!(denied.to_string().contains(&role), "{denied}");
    // Management is not cross-account.
    assert_eq!(outcome(atlas.disable_key(&key.arn)), "NotFoundException");
    // A policy that would lock its author out is refused.
    let lockout = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    assert_eq!(
        outcome(owner.put_key_policy(&key.key_id, &lockout)),
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        outcome(owner.put_key_policy(&key.key_id, "{")),
        "MalformedPolicyDocumentException"
    );
}

#[test]
fn state_persists_across_reopen_with_owner_only_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let caller = Caller::account_root(ACCOUNT, REGION).unwrap();
    let context = ctx(&[("a", "b")]);
    let (key, blob) = {
        let kms = LocalKms::open(dir.path(), clock.clone()).unwrap();
        let client = kms.client(caller.clone());
        let key = symmetric_key(&client);
        client.create_alias("alias/kept", &key).unwrap();
        client.enable_key_rotation(&key, Some(90)).unwrap();
        (
            key,
            client
                .encrypt("alias/kept", b"kept", &context)
                .unwrap()
                .ciphertext_blob,
        )
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("state.json")), 0o600);
    // A second handle on the same directory (another process, say) sees the same keys.
    let kms = LocalKms::open(dir.path(), clock.clone()).unwrap();
    let client = kms.client(caller);
    assert_eq!(
        &client
            .decrypt(Some(&key), &blob, &context)
            .unwrap()
            .plaintext[..],
        b"kept"
    );
    assert_eq!(client.describe_key("alias/kept").unwrap().key_id, key);
    clock.advance(days(91));
    client.encrypt(&key, b"x", &context).unwrap();
    let reopened = LocalKms::open(dir.path(), clock.clone())
        .unwrap()
        .client(client.caller().clone());
    assert_eq!(reopened.list_key_rotations(&key).unwrap().len(), 1);
    // A crash mid-write leaves a temporary file beside the intact state.
    std::fs::write(dir.path().join("state.json.tmp"), b"{\"half").unwrap();
    assert_eq!(
        &reopened
            .decrypt(Some(&key), &blob, &context)
            .unwrap()
            .plaintext[..],
        b"kept"
    );
}

#[test]
fn a_corrupt_state_file_is_an_error_and_is_never_reset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    {
        let kms = LocalKms::open(dir.path(), clock.clone()).unwrap();
        symmetric_key(&kms.client(Caller::account_root(ACCOUNT, REGION).unwrap()));
    }
    let path = dir.path().join("state.json");
    let good = std::fs::read(&path).unwrap();
    let corruptions: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        good[..good.len() / 2].to_vec(),
        Vec::new(),
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"format\":1", "\"format\":99", 1)
            .into_bytes(),
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"key\":\"", "\"key\":\"AAAA", 1)
            .into_bytes(),
    ];
    for bad in corruptions {
        std::fs::write(&path, &bad).unwrap();
        let err = LocalKms::open(dir.path(), clock.clone()).unwrap_err();
        assert_eq!(err.aws_name(), "KMSInternalException");
        assert!(err.to_string().contains("state.json"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "the corrupt file was rewritten"
        );
    }
}

#[test]
fn handles_sharing_a_directory_see_each_others_changes() {
    // Two handles on one directory, as two processes sharing a root hold it: each keeps
    // the state in memory, and must read it again once the other has changed it.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let caller = Caller::account_root(ACCOUNT, REGION).unwrap();
    let a = LocalKms::open(dir.path(), clock.clone())
        .unwrap()
        .client(caller.clone());
    let b = LocalKms::open(dir.path(), clock.clone())
        .unwrap()
        .client(caller);
    assert!(b.list_keys().unwrap().is_empty());
    let key = symmetric_key(&a);
    assert_eq!(b.list_keys().unwrap().len(), 1, "b sees a's new key");
    b.disable_key(&key).unwrap();
    assert_eq!(
        outcome(a.encrypt(&key, b"x", &ctx(&[]))),
        "DisabledException"
    );
    b.enable_key(&key).unwrap();
    for _ in 0..50 {
        let blob = a.encrypt(&key, b"x", &ctx(&[])).unwrap().ciphertext_blob;
        b.decrypt(Some(&key), &blob, &ctx(&[])).unwrap();
    }
}
