//! `atrest kms ...`, as a user of the AWS CLI drives it: the same commands, flags and
//! answers, on the root's embedded KMS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "common/cli.rs"]
mod cli;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cli::{atrest, fails, json, ok};

#[test]
fn kms_commands_behave_as_the_aws_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let created = json(root, &["kms", "create-key", "--description", "test key"]);
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(created["KeyMetadata"]["KeyState"], "Enabled");
    assert_eq!(created["KeyMetadata"]["KeySpec"], "SYMMETRIC_DEFAULT");
    ok(
        root,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/cli",
            "--target-key-id",
            &key_id,
        ],
    );
    let listed = json(root, &["kms", "list-aliases"]);
    assert_eq!(listed["Aliases"][0]["TargetKeyId"], key_id.as_str());
    let plaintext = BASE64.encode(b"hello from the cli");
    let encrypted = json(
        root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            "alias/cli",
            "--plaintext",
            &plaintext,
            "--encryption-context",
            "app=cli,env=test",
        ],
    );
    let blob = encrypted["CiphertextBlob"].as_str().unwrap();
    let decrypted = json(
        root,
        &[
            "kms",
            "decrypt",
            "--key-id",
            &key_id,
            "--ciphertext-blob",
            blob,
            "--encryption-context",
            r#"{"env":"test","app":"cli"}"#,
        ],
    );
    assert_eq!(decrypted["Plaintext"], plaintext.as_str());
    fails(
        root,
        &["kms", "decrypt", "--ciphertext-blob", blob],
        "InvalidCiphertextException",
    );

    ok(root, &["kms", "disable-key", "--key-id", &key_id]);
    let stderr = fails(
        root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &key_id,
            "--plaintext",
            &plaintext,
        ],
        "DisabledException",
    );
    assert!(stderr.contains("hint: enable the key"), "{stderr}");
    ok(root, &["kms", "enable-key", "--key-id", &key_id]);

    ok(root, &["kms", "rotate-key-on-demand", "--key-id", &key_id]);
    let rotations = json(root, &["kms", "list-key-rotations", "--key-id", &key_id]);
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
    let again = json(
        root,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            blob,
            "--encryption-context",
            "app=cli,env=test",
        ],
    );
    assert_eq!(again["Plaintext"], plaintext.as_str());

    ok(
        root,
        &[
            "kms",
            "enable-key-rotation",
            "--key-id",
            &key_id,
            "--rotation-period-in-days",
            "90",
        ],
    );
    let status = json(
        root,
        &["kms", "get-key-rotation-status", "--key-id", &key_id],
    );
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 90);

    let scheduled = json(
        root,
        &[
            "kms",
            "schedule-key-deletion",
            "--key-id",
            &key_id,
            "--pending-window-in-days",
            "7",
        ],
    );
    assert_eq!(scheduled["KeyState"], "PendingDeletion");
    fails(
        root,
        &["kms", "enable-key", "--key-id", &key_id],
        "KMSInvalidStateException",
    );
    ok(root, &["clock", "advance", "8d"]);
    ok(root, &["tick"]);
    fails(
        root,
        &["kms", "describe-key", "--key-id", &key_id],
        "NotFoundException",
    );
    fails(
        root,
        &["kms", "create-key", "--key-spec", "NOPE"],
        "ValidationException",
    );
}

#[test]
fn policies_and_callers_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let arn = json(root, &["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let role = "arn:aws:iam::444455556666:role/atlas";
    let policy = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"111122223333"}},"Action":"kms:*","Resource":"*"}},
            {{"Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"}}]}}"#
    );
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, policy).unwrap();
    ok(
        root,
        &[
            "kms",
            "put-key-policy",
            "--key-id",
            &arn,
            "--policy",
            &format!("file://{}", policy_file.display()),
        ],
    );
    let blob = json(
        root,
        &[
            "--caller",
            role,
            "kms",
            "encrypt",
            "--key-id",
            &arn,
            "--plaintext",
            "AAAA",
        ],
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    let stderr = fails(
        root,
        &[
            "--caller",
            role,
            "kms",
            "decrypt",
            "--key-id",
            &arn,
            "--ciphertext-blob",
            &blob,
        ],
        "AccessDeniedException",
    );
    assert!(stderr.contains("kms:Decrypt"), "{stderr}");
    let id = arn.rsplit('/').next().unwrap();
    fails(
        root,
        &["--caller", role, "kms", "describe-key", "--key-id", id],
        "full key ARN",
    );
}

#[test]
fn a_corrupt_kms_state_file_is_reported_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(root, &["kms", "create-key"]);
    let state = root.join("kms/state.json");
    std::fs::write(&state, b"{ not json").unwrap();
    let stderr = fails(root, &["kms", "list-keys"], "KMSInternalException");
    assert!(stderr.contains("state.json"), "{stderr}");
    assert_eq!(std::fs::read(&state).unwrap(), b"{ not json");
}

#[test]
fn more_kms_commands_as_the_aws_cli_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = |description: &str| {
        json(root, &["kms", "create-key", "--description", description])["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (key("a"), key("b"));
    let wrapped = json(
        root,
        &["kms", "generate-data-key-without-plaintext", "--key-id", &a],
    );
    assert!(wrapped.get("Plaintext").is_none());
    let opened = json(
        root,
        &[
            "kms",
            "decrypt",
            "--key-id",
            &a,
            "--ciphertext-blob",
            wrapped["CiphertextBlob"].as_str().unwrap(),
        ],
    );
    let plain = BASE64
        .decode(opened["Plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(plain.len(), 32);
    let random = json(root, &["kms", "generate-random", "--number-of-bytes", "16"]);
    assert_eq!(
        BASE64
            .decode(random["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    fails(
        root,
        &["kms", "generate-random", "--number-of-bytes", "2000"],
        "at 'numberOfBytes'",
    );
    ok(
        root,
        &[
            "kms",
            "update-key-description",
            "--key-id",
            &a,
            "--description",
            "renamed",
        ],
    );
    assert_eq!(
        json(root, &["kms", "describe-key", "--key-id", &a])["KeyMetadata"]["Description"],
        "renamed"
    );
    ok(
        root,
        &[
            "kms",
            "create-alias",
            "--alias-name",
            "alias/m",
            "--target-key-id",
            &a,
        ],
    );
    ok(
        root,
        &[
            "kms",
            "update-alias",
            "--alias-name",
            "alias/m",
            "--target-key-id",
            &b,
        ],
    );
    assert_eq!(
        json(root, &["kms", "describe-key", "--key-id", "alias/m"])["KeyMetadata"]["KeyId"],
        b.as_str()
    );
    assert_eq!(
        json(root, &["kms", "list-key-policies", "--key-id", &a])["PolicyNames"],
        serde_json::json!(["default"])
    );
    let sealed = json(
        root,
        &[
            "kms",
            "encrypt",
            "--key-id",
            &a,
            "--plaintext",
            "aGVsbG8=",
            "--encryption-context",
            "v=1",
        ],
    );
    let moved = json(
        root,
        &[
            "kms",
            "re-encrypt",
            "--ciphertext-blob",
            sealed["CiphertextBlob"].as_str().unwrap(),
            "--source-encryption-context",
            "v=1",
            "--destination-key-id",
            "alias/m",
        ],
    );
    assert!(moved["KeyId"].as_str().unwrap().ends_with(&b));
    let opened = json(
        root,
        &[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            moved["CiphertextBlob"].as_str().unwrap(),
        ],
    );
    assert_eq!(opened["Plaintext"], "aGVsbG8=");
    ok(
        root,
        &[
            "kms",
            "tag-resource",
            "--key-id",
            &a,
            "--tags",
            "TagKey=team,TagValue=kms",
            "TagKey=env,TagValue=",
        ],
    );
    ok(
        root,
        &["kms", "untag-resource", "--key-id", &a, "--tag-keys", "env"],
    );
    assert_eq!(
        json(root, &["kms", "list-resource-tags", "--key-id", &a])["Tags"],
        serde_json::json!([{"TagKey": "team", "TagValue": "kms"}])
    );
    fails(
        root,
        &[
            "kms",
            "tag-resource",
            "--key-id",
            &a,
            "--tags",
            "TagKey=aws:x,TagValue=y",
        ],
        "TagException",
    );
    fails(
        root,
        &["kms", "tag-resource", "--key-id", &a, "--tags", "team=kms"],
        "TagKey=K,TagValue=V",
    );
    let partner = "arn:aws:iam::444455556666:role/partner";
    let made = json(
        root,
        &[
            "kms",
            "create-grant",
            "--key-id",
            &a,
            "--grantee-principal",
            partner,
            "--operations",
            "Encrypt",
            "Decrypt",
            "--constraints",
            r#"{"EncryptionContextSubset":{"app":"orders"}}"#,
        ],
    );
    let listed = json(root, &["kms", "list-grants", "--key-id", &a]);
    assert_eq!(listed["Grants"][0]["GrantId"], made["GrantId"]);
    assert_eq!(
        listed["Grants"][0]["Operations"],
        serde_json::json!(["Encrypt", "Decrypt"])
    );
    let arn = json(root, &["kms", "describe-key", "--key-id", &a])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    // The partner encrypts under a context: only the grant lets it, and only for app=orders.
    let partner_encrypts = |app: &str| {
        let context = format!("app={app}");
        atrest(
            root,
            &[
                "--caller",
                partner,
                "kms",
                "encrypt",
                "--key-id",
                &arn,
                "--plaintext",
                "aGk=",
                "--encryption-context",
                &context,
            ],
        )
    };
    assert!(partner_encrypts("orders").status.success());
    let denied = |out: std::process::Output| {
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("AccessDenied")
    };
    assert!(denied(partner_encrypts("other")));
    ok(
        root,
        &[
            "kms",
            "retire-grant",
            "--grant-token",
            made["GrantToken"].as_str().unwrap(),
        ],
    );
    assert!(denied(partner_encrypts("orders")));
    fails(
        root,
        &["kms", "revoke-grant", "--key-id", &a, "--grant-id", "nope"],
        "InvalidGrantIdException",
    );
}

#[test]
fn seed_files_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = root.join("seed.json");
    std::fs::write(
        &file,
        r#"{"Keys": [{"KeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11", "Description": "seeded",
                      "KeyMaterial": ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]}],
            "Aliases": [{"AliasName": "alias/seeded", "TargetKeyId": "0b0a73ce-6b0d-4c41-9e86-0cb45d5a2f11"}]}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let seeded = json(root, &["kms", "seed", file]);
    assert_eq!(
        seeded["AliasesCreated"],
        serde_json::json!(["alias/seeded"])
    );
    let again = json(root, &["kms", "seed", file]);
    assert_eq!(again["KeysPresent"].as_array().unwrap().len(), 1);
    assert_eq!(
        json(root, &["kms", "describe-key", "--key-id", "alias/seeded"])["KeyMetadata"]
            ["Description"],
        "seeded"
    );
    std::fs::write(root.join("bad.json"), r#"{"Keys": [{"KeyId": "nope"}]}"#).unwrap();
    fails(
        root,
        &["kms", "seed", root.join("bad.json").to_str().unwrap()],
        "a UUID",
    );
}
