//! Key policy conditions in LocalKms, evaluated as IAM evaluates them: each test fails if
//! the conditions are ignored, in either direction (a call let through, or one refused).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use atrest::clock::{ManualClock, Timestamp};
use atrest::kms::{
    Caller, CreateGrantRequest, CreateKeyRequest, GrantOperation, LocalKms, LocalKmsClient,
};
use common::{code, ctx};
use serde_json::json;

const REGION: &str = "us-east-1";
const OWNER: &str = "arn:aws:iam::111122223333:root";
/// A role of another account: the owner statement (the account root) does not cover it.
const APP: &str = "arn:aws:iam::444455556666:role/app";

/// A key whose policy gives the owner everything and adds `statements`; clients for the
/// owner and for `principal`.
fn key_with(
    statements: serde_json::Value,
    principal: &str,
) -> (String, LocalKmsClient, LocalKmsClient) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let kms = LocalKms::in_memory(clock);
    let owner = kms.client(Caller::new(OWNER, REGION).unwrap());
    let mut all = vec![
        json!({"Sid": "owner", "Effect": "Allow", "Principal": {"AWS": OWNER},
        "Action": "kms:*", "Resource": "*"}),
    ];
    all.extend(statements.as_array().unwrap().iter().cloned());
    let policy = json!({"Version": "2012-10-17", "Statement": all}).to_string();
    let key = owner
        .create_key(CreateKeyRequest {
            policy: Some(policy),
            ..Default::default()
        })
        .unwrap()
        .arn;
    let other = kms.client(Caller::new(principal, REGION).unwrap());
    (key, owner, other)
}

#[test]
fn an_allow_holds_only_under_its_encryption_context_condition() {
    let app_role = "arn:aws:iam::444455556666:role/app";
    let (key, owner, app) = key_with(
        json!([{"Effect": "Allow", "Principal": {"AWS": app_role},
            "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "7"}}}]),
        app_role,
    );
    let seven = ctx(&[("tenant", "7"), ("table", "orders")]);
    let sealed = app.encrypt(&key, b"x", &seven).unwrap();
    assert_eq!(
        code(app.decrypt(Some(&key), &sealed.ciphertext_blob, &seven)),
        "ok"
    );
    assert_eq!(
        code(app.encrypt(&key, b"x", &ctx(&[("tenant", "8")]))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(app.encrypt(&key, b"x", &ctx(&[]))),
        "AccessDeniedException"
    );
    // The condition is on the app's statement only.
    assert_eq!(code(owner.encrypt(&key, b"x", &ctx(&[]))), "ok");
}

#[test]
fn a_conditional_deny_requires_an_encryption_context_of_everyone() {
    let (key, owner, _) = key_with(
        json!([{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
            "Resource": "*", "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}}}]),
        APP,
    );
    let bare = owner.encrypt(&key, b"x", &ctx(&[])).unwrap();
    assert_eq!(
        code(owner.decrypt(Some(&key), &bare.ciphertext_blob, &ctx(&[]))),
        "AccessDeniedException"
    );
    let bound = owner.encrypt(&key, b"x", &ctx(&[("app", "a")])).unwrap();
    assert_eq!(
        code(owner.decrypt(Some(&key), &bound.ciphertext_blob, &ctx(&[("app", "a")]))),
        "ok"
    );
}

#[test]
fn create_grant_is_held_to_the_grant_operations_condition() {
    let (key, _, app) = key_with(
        json!([{"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:CreateGrant",
            "Resource": "*", "Condition": {
                "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey"]},
                "Bool": {"kms:GrantIsForAWSResource": "false"}}}]),
        APP,
    );
    let grant = |operations: &[GrantOperation]| {
        code(app.create_grant(
            &key,
            CreateGrantRequest {
                grantee_principal: "arn:aws:iam::111122223333:role/worker".into(),
                operations: operations.to_vec(),
                ..Default::default()
            },
        ))
    };
    assert_eq!(grant(&[GrantOperation::Decrypt]), "ok");
    assert_eq!(
        grant(&[GrantOperation::Decrypt, GrantOperation::Encrypt]),
        "AccessDeniedException"
    );
}

#[test]
fn caller_conditions_and_what_cannot_be_evaluated() {
    let partner_role = "arn:aws:iam::444455556666:role/partner";
    let (key, owner, partner) = key_with(
        json!([{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt",
            "Resource": "*", "Condition": {
                "StringEquals": {"kms:CallerAccount": "444455556666"},
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::444455556666:role/part*"}}}]),
        partner_role,
    );
    assert_eq!(code(partner.encrypt(&key, b"x", &ctx(&[]))), "ok");
    for condition in [
        json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}}),
        json!({"StringEquals": {"kms:ResourceAliases": "alias/x"}}),
        json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
    ] {
        let policy = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": OWNER},
            "Action": "kms:*", "Resource": "*", "Condition": condition}]});
        assert_eq!(
            code(owner.put_key_policy(&key, &policy.to_string())),
            "MalformedPolicyDocumentException",
            "{condition}"
        );
    }
}

#[test]
fn alias_conditions_see_the_alias_used_and_the_keys_aliases() {
    let (key, owner, app) = key_with(
        json!([
            {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"StringEquals": {"kms:RequestAlias": "alias/orders"}}},
            {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": "kms:DescribeKey", "Resource": "*",
             "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/ord*"}}}
        ]),
        APP,
    );
    owner.create_alias("alias/orders", &key).unwrap();
    let by_alias = "arn:aws:kms:us-east-1:111122223333:alias/orders";
    assert_eq!(code(app.encrypt(by_alias, b"x", &ctx(&[]))), "ok");
    assert_eq!(
        code(app.encrypt(&key, b"x", &ctx(&[]))),
        "AccessDeniedException",
        "named by its ARN, not the alias"
    );
    assert_eq!(code(app.describe_key(&key)), "ok");
    owner.delete_alias("alias/orders").unwrap();
    assert_eq!(
        code(app.describe_key(&key)),
        "AccessDeniedException",
        "the key has no alias any more"
    );
}
