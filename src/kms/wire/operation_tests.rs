//! The operations over the protocol, without sockets: ReEncrypt, tags, the metadata and
//! policy shapes, validation messages and the lockout check, as AWS answers them.

use serde_json::{json, Value};

use super::tests::{call, endpoint};
use super::Endpoint;

fn new_key(e: &Endpoint, body: serde_json::Value) -> String {
    let (status, created) = call(e, "CreateKey", &body.to_string());
    assert_eq!(status, 200, "{created}");
    created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn error_of(e: &Endpoint, op: &str, body: serde_json::Value) -> String {
    let (status, answer) = call(e, op, &body.to_string());
    assert_ne!(status, 200, "{op} succeeded: {answer}");
    answer["__type"].as_str().unwrap().to_string()
}

#[test]
fn re_encrypt_moves_a_ciphertext_between_keys_and_contexts_inside_the_kms() {
    let e = endpoint();
    let (a, b) = (new_key(&e, json!({})), new_key(&e, json!({})));
    let (_, sealed) = call(
        &e,
        "Encrypt",
        &json!({"KeyId": a, "Plaintext": "aGVsbG8=", "EncryptionContext": {"v": "1"}}).to_string(),
    );
    let blob = sealed["CiphertextBlob"].clone();
    let request = json!({"CiphertextBlob": blob, "SourceEncryptionContext": {"v": "1"},
        "DestinationKeyId": b, "DestinationEncryptionContext": {"v": "2"}});
    let (status, moved) = call(&e, "ReEncrypt", &request.to_string());
    assert_eq!(status, 200, "{moved}");
    let (_, described) = call(&e, "DescribeKey", &json!({ "KeyId": b }).to_string());
    assert_eq!(moved["KeyId"], described["KeyMetadata"]["Arn"]);
    assert_eq!(
        moved["DestinationKeyMaterialId"],
        described["KeyMetadata"]["CurrentKeyMaterialId"]
    );
    assert!(moved["SourceKeyId"].as_str().unwrap().ends_with(&a));
    assert_eq!(moved["SourceEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    let (status, opened) = call(
        &e,
        "Decrypt",
        &json!({"KeyId": b, "CiphertextBlob": moved["CiphertextBlob"], "EncryptionContext": {"v": "2"}})
            .to_string(),
    );
    assert_eq!(
        (status, opened["Plaintext"].as_str()),
        (200, Some("aGVsbG8="))
    );
    assert_eq!(opened["KeyMaterialId"], moved["DestinationKeyMaterialId"]);
    // Each side is checked: the source key named, the source context, the destination's state.
    let mut wrong_source = request.clone();
    wrong_source["SourceKeyId"] = json!(b);
    assert_eq!(
        error_of(&e, "ReEncrypt", wrong_source),
        "IncorrectKeyException"
    );
    let mut wrong_context = request.clone();
    wrong_context["SourceEncryptionContext"] = json!({"v": "9"});
    assert_eq!(
        error_of(&e, "ReEncrypt", wrong_context),
        "InvalidCiphertextException"
    );
    let mut dry = request.clone();
    dry["DryRun"] = json!(true);
    assert_eq!(error_of(&e, "ReEncrypt", dry), "DryRunOperationException");
    call(&e, "DisableKey", &json!({ "KeyId": b }).to_string());
    assert_eq!(
        error_of(&e, "ReEncrypt", request.clone()),
        "DisabledException"
    );
    call(&e, "EnableKey", &json!({ "KeyId": b }).to_string());
    // kms:ReEncryptFrom on the source key is its own permission.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:ReEncryptFrom", "Resource": "*"}]});
    let (status, _) = call(
        &e,
        "PutKeyPolicy",
        &json!({"KeyId": a, "Policy": policy.to_string()}).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(error_of(&e, "ReEncrypt", request), "AccessDeniedException");
}

#[test]
fn tags_follow_aws_rules_and_page() {
    let e = endpoint();
    let key = new_key(
        &e,
        json!({"Tags": [{"TagKey": "team", "TagValue": "storage"}, {"TagKey": "env", "TagValue": ""}]}),
    );
    let list = |body: serde_json::Value| call(&e, "ListResourceTags", &body.to_string()).1;
    assert_eq!(
        list(json!({ "KeyId": key }))["Tags"],
        json!([{"TagKey": "team", "TagValue": "storage"}, {"TagKey": "env", "TagValue": ""}])
    );
    let tag = |tags: serde_json::Value| json!({"KeyId": key, "Tags": tags});
    let (status, _) = call(
        &e,
        "TagResource",
        &tag(json!([{"TagKey": "team", "TagValue": "kms"}, {"TagKey": "cost", "TagValue": "42"}]))
            .to_string(),
    );
    assert_eq!(status, 200);
    let first = list(json!({"KeyId": key, "Limit": 2}));
    assert_eq!(first["Truncated"], true);
    assert_eq!(
        first["Tags"][0],
        json!({"TagKey": "team", "TagValue": "kms"})
    );
    let rest = list(json!({"KeyId": key, "Marker": first["NextMarker"]}));
    assert_eq!(rest["Tags"], json!([{"TagKey": "cost", "TagValue": "42"}]));
    call(
        &e,
        "UntagResource",
        &json!({"KeyId": key, "TagKeys": ["env", "absent"]}).to_string(),
    );
    assert_eq!(
        list(json!({ "KeyId": key }))["Tags"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // AWS's refusals: the reserved prefix, the model's lengths, 50 tags a key.
    let reserved = tag(json!([{"TagKey": "aws:owner", "TagValue": "x"}]));
    assert_eq!(error_of(&e, "TagResource", reserved), "TagException");
    let (_, long) = call(
        &e,
        "TagResource",
        &tag(json!([{"TagKey": "k".repeat(129), "TagValue": "x"}])).to_string(),
    );
    assert_eq!(long["__type"], "ValidationException");
    assert!(long["message"]
        .as_str()
        .unwrap()
        .contains("at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"));
    let many: Vec<_> = (0..49)
        .map(|i| json!({"TagKey": format!("t{i}"), "TagValue": "x"}))
        .collect();
    assert_eq!(
        error_of(&e, "TagResource", tag(json!(many))),
        "LimitExceededException"
    );
    let too_many: Vec<_> = (0..51)
        .map(|i| json!({"TagKey": format!("t{i}"), "TagValue": "x"}))
        .collect();
    assert_eq!(
        error_of(&e, "CreateKey", json!({ "Tags": too_many })),
        "LimitExceededException"
    );
    assert_eq!(
        error_of(&e, "TagResource", json!({ "KeyId": key })),
        "ValidationException"
    );
}

#[test]
fn metadata_material_ids_alias_dates_and_policies_are_aws_shaped() {
    let e = endpoint();
    let key = new_key(&e, json!({}));
    let (_, described) = call(&e, "DescribeKey", &json!({ "KeyId": key }).to_string());
    let m = &described["KeyMetadata"];
    assert_eq!(m["CustomerMasterKeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(m["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
    let material = m["CurrentKeyMaterialId"].as_str().unwrap();
    assert!(material.len() == 64 && material.bytes().all(|b| b.is_ascii_hexdigit()));
    let (_, sealed) = call(
        &e,
        "GenerateDataKey",
        &json!({"KeyId": key, "KeySpec": "AES_256"}).to_string(),
    );
    assert_eq!(sealed["KeyMaterialId"], material);
    call(
        &e,
        "RotateKeyOnDemand",
        &json!({ "KeyId": key }).to_string(),
    );
    let (_, opened) = call(
        &e,
        "Decrypt",
        &json!({ "CiphertextBlob": sealed["CiphertextBlob"] }).to_string(),
    );
    assert_eq!(
        opened["KeyMaterialId"], material,
        "the old material opened it"
    );
    let (_, rotations) = call(&e, "ListKeyRotations", &json!({ "KeyId": key }).to_string());
    let (_, now) = call(&e, "DescribeKey", &json!({ "KeyId": key }).to_string());
    assert_eq!(rotations["Rotations"][0]["KeyMaterialState"], "CURRENT");
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);
    let (_, all) = call(
        &e,
        "ListKeyRotations",
        &json!({"KeyId": key, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}).to_string(),
    );
    let first = &all["Rotations"][0];
    assert_eq!(
        (&first["KeyMaterialId"], first["KeyMaterialState"].as_str()),
        (&json!(material), Some("NON_CURRENT"))
    );
    assert!(first.get("RotationDate").is_none() && first.get("RotationType").is_none());
    assert_eq!(all["Rotations"].as_array().unwrap().len(), 2);
    assert_eq!(
        rotations["Rotations"][0]["KeyMaterialId"],
        now["KeyMetadata"]["CurrentKeyMaterialId"]
    );
    let (_, rsa) = call(
        &e,
        "CreateKey",
        r#"{"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}"#,
    );
    assert!(rsa["KeyMetadata"].get("EncryptionAlgorithms").is_none());
    assert_eq!(
        rsa["KeyMetadata"]["SigningAlgorithms"][0],
        "RSASSA_PSS_SHA_256"
    );

    call(
        &e,
        "CreateAlias",
        &json!({"AliasName": "alias/dated", "TargetKeyId": key}).to_string(),
    );
    let (_, aliases) = call(&e, "ListAliases", "{}");
    let created = aliases["Aliases"][0]["CreationDate"].as_f64().unwrap();
    assert_eq!(created, 1_700_000_000.0);
    assert_eq!(aliases["Aliases"][0]["LastUpdatedDate"], created);

    let (_, policy) = call(&e, "GetKeyPolicy", &json!({ "KeyId": key }).to_string());
    let document: Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(document["Id"], "key-default-1");
    assert_eq!(
        document["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::111122223333:root"
    );
    // A policy put is returned as written, not rewritten.
    let mine = r#"{"Id":"mine","Statement":{"Sid":"s","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}"#;
    let (status, _) = call(
        &e,
        "PutKeyPolicy",
        &json!({"KeyId": key, "Policy": mine}).to_string(),
    );
    assert_eq!(status, 200);
    let (_, policy) = call(&e, "GetKeyPolicy", &json!({ "KeyId": key }).to_string());
    assert_eq!(policy["Policy"], mine);
}

#[test]
fn validation_errors_are_in_aws_words() {
    let e = endpoint();
    let message = |op: &str, body: serde_json::Value| {
        let (status, answer) = call(&e, op, &body.to_string());
        assert_ne!(status, 200, "{op}: {answer}");
        format!(
            "{}: {}",
            answer["__type"].as_str().unwrap(),
            answer["message"].as_str().unwrap()
        )
    };
    assert_eq!(
        message("DescribeKey", json!({"KeyId": "x"})),
        "NotFoundException: Invalid keyId 'x'"
    );
    assert_eq!(
        message("DescribeKey", json!({})),
        "ValidationException: 1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"
    );
    let key = new_key(&e, json!({}));
    assert_eq!(
        message("Encrypt", json!({"KeyId": key, "Plaintext": ""})),
        "ValidationException: 1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
    assert!(message("CreateKey", json!({"KeySpec": "SM2"})).starts_with(
        "UnsupportedOperationException: SM2 is available only in the AWS China Regions"
    ));
    assert!(message("CreateKey", json!({"KeySpec": "RSA_3072"}))
        .starts_with("ValidationException: KeyUsage is required for KeySpec RSA_3072: one of ENCRYPT_DECRYPT, SIGN_VERIFY"));
    assert!(message("CreateKey", json!({"KeySpec": "AES_999"})).starts_with(
        "ValidationException: 1 validation error detected: Value 'AES_999' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048,"
    ));
    assert!(message("CreateKey", json!({"KeyUsage": "KEY_AGREEMENT"}))
        .contains("KeyUsage KEY_AGREEMENT is not compatible with KeySpec SYMMETRIC_DEFAULT"));
    assert!(message(
        "CreateKey",
        json!({"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "KEY_AGREEMENT"})
    )
    .contains("it allows SIGN_VERIFY"));
    assert_eq!(
        message(
            "CreateAlias",
            json!({"AliasName": "orders", "TargetKeyId": key})
        ),
        r#"ValidationException: Alias must start with the prefix "alias/"."#
    );
    assert_eq!(
        message("EnableKeyRotation", json!({"KeyId": key, "RotationPeriodInDays": 30})),
        "ValidationException: 1 validation error detected: Value '30' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value greater than or equal to 90"
    );
    assert!(message("CreateKey", json!({"KeyUsage": "SIGN_VERIFY"}))
        .contains("KeyUsage SIGN_VERIFY is not compatible with KeySpec SYMMETRIC_DEFAULT"));
}

#[test]
fn the_lockout_check_can_be_bypassed_as_aws_allows() {
    let e = endpoint();
    let key = new_key(&e, json!({}));
    let locked = json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    assert_eq!(
        error_of(&e, "PutKeyPolicy", json!({"KeyId": key, "Policy": locked})),
        "MalformedPolicyDocumentException"
    );
    let (status, _) = call(
        &e,
        "PutKeyPolicy",
        &json!({"KeyId": key, "Policy": locked, "BypassPolicyLockoutSafetyCheck": true})
            .to_string(),
    );
    assert_eq!(status, 200);
    // Locked out indeed: the caller can no longer change (or even read) the policy.
    assert_eq!(
        error_of(&e, "GetKeyPolicy", json!({ "KeyId": key })),
        "AccessDeniedException"
    );
    let (status, _) = call(
        &e,
        "CreateKey",
        &json!({"Policy": locked, "BypassPolicyLockoutSafetyCheck": true}).to_string(),
    );
    assert_eq!(status, 200);
}
