//! The protocol end to end, without sockets.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::Value;

use super::*;
use crate::clock::{ManualClock, Timestamp};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

pub(super) fn endpoint() -> Endpoint {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    Endpoint::new(
        LocalKms::in_memory(clock),
        Identities::new("arn:aws:iam::111122223333:root").unwrap(),
    )
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

pub(super) fn call(endpoint: &Endpoint, op: &str, body: &str) -> (u16, Value) {
    let target = format!("TrentService.{op}");
    let headers = headers(&[
        ("X-Amz-Target", &target),
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Authorization", AUTH),
    ]);
    let r = endpoint.handle(&Request {
        headers: &headers,
        body: body.as_bytes(),
        ..Request::default()
    });
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn authorization_headers_parse() {
    let auth = parse_authorization(AUTH).unwrap();
    assert_eq!(
        (auth.access_key_id, auth.date, auth.region, auth.service),
        ("AKIDEXAMPLE", "20261128", "us-east-1", "kms")
    );
    assert_eq!(
        (auth.signed_headers, auth.signature),
        ("host;x-amz-date", "00")
    );
    assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=A/B/C").is_none());
    assert!(parse_authorization("Basic abc").is_none());
}

#[test]
fn a_round_trip_and_aws_shaped_errors() {
    let e = endpoint();
    let (status, created) = call(&e, "CreateKey", r#"{"Description":"wire"}"#);
    assert_eq!(status, 200);
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, enc) = call(
        &e,
        "Encrypt",
        &json!({"KeyId": key, "Plaintext": "aGVsbG8=", "EncryptionContext": {"a": "b"}})
            .to_string(),
    );
    assert_eq!(status, 200);
    let (status, dec) = call(
        &e,
        "Decrypt",
        &json!({"KeyId": key, "CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": {"a": "b"}})
            .to_string(),
    );
    assert_eq!((status, dec["Plaintext"].as_str()), (200, Some("aGVsbG8=")));
    call(&e, "DisableKey", &json!({ "KeyId": key }).to_string());
    let (status, err) = call(
        &e,
        "Encrypt",
        &json!({"KeyId": key, "Plaintext": "aGVsbG8="}).to_string(),
    );
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("DisabledException"))
    );
    for (op, body, expected) in [
        ("Encrypt", "{not json", "SerializationException"),
        ("Encrypt", "[1]", "SerializationException"),
        (
            "Encrypt",
            r#"{"KeyId": 7, "Plaintext": "eA=="}"#,
            "SerializationException",
        ),
        ("DescribeKey", "{}", "ValidationException"),
        ("Nope", "{", "UnknownOperationException"),
    ] {
        assert_eq!(
            call(&e, op, body).1["__type"].as_str(),
            Some(expected),
            "{op} {body}"
        );
    }
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let signed = headers(&[
        ("X-Amz-Target", "TrentService.ListKeys"),
        ("Authorization", AUTH),
    ]);
    let r = e.handle(&Request {
        headers: &signed,
        body: &big,
        ..Request::default()
    });
    assert_eq!(r.status, 413);
    let unsigned = headers(&[("X-Amz-Target", "TrentService.ListKeys")]);
    let unsigned = e.handle(&Request {
        headers: &unsigned,
        ..Request::default()
    });
    assert_eq!(
        unsigned.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
}

/// STS AssumeRole as the default principal (unsigned mode), with `external_id`.
fn assume(e: &Endpoint, role: &str, external_id: &str) -> Response {
    let form = headers(&[
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("Authorization", AUTH),
    ]);
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s1&ExternalId={external_id}",
        role.replace(':', "%3A").replace('/', "%2F")
    );
    e.handle(&Request {
        headers: &form,
        body: body.as_bytes(),
        ..Request::default()
    })
}

fn xml_field<'a>(xml: &'a str, name: &str) -> &'a str {
    xml.split(&format!("<{name}>"))
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
}

#[test]
fn only_registered_roles_are_assumed_with_their_external_id() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let mut ids = Identities::new("arn:aws:iam::111122223333:root").unwrap();
    ids.add_role("arn:aws:iam::111122223333:role/atlas", Some("x1"))
        .unwrap();
    ids.add_role("arn:aws:iam::444455556666:role/elsewhere", None)
        .unwrap();
    let e = Endpoint::new(LocalKms::in_memory(clock), ids);
    let atlas = "arn:aws:iam::111122223333:role/atlas";
    for (role, external_id) in [
        ("arn:aws:iam::111122223333:role/unregistered", "x1"),
        (atlas, "wrong"),
        (atlas, ""),
        // Trusted by its own account only.
        ("arn:aws:iam::444455556666:role/elsewhere", ""),
    ] {
        let r = assume(&e, role, external_id);
        assert_eq!(
            (r.status, r.header("x-amzn-ErrorType")),
            (403, Some("AccessDenied")),
            "{role} {external_id}"
        );
    }
    let r = assume(&e, atlas, "x1");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let xml = String::from_utf8(r.body.to_vec()).unwrap();
    let key = xml_field(&xml, "AccessKeyId");
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_ne!(xml_field(&xml, "SecretAccessKey"), "");
    // The issued key with a made-up signature: refused, as is a key never issued.
    for key in [key, "ASIA00000000000000000"] {
        let auth = AUTH.replace("AKIDEXAMPLE", key);
        let signed = headers(&[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Authorization", &auth),
            ("X-Amz-Security-Token", xml_field(&xml, "SessionToken")),
            ("X-Amz-Date", "20261128T000000Z"),
            ("Host", "localhost"),
        ]);
        let r = e.handle(&Request {
            headers: &signed,
            body: b"{}",
            ..Request::default()
        });
        assert_eq!(r.status, 400, "{key}");
        assert!(
            matches!(
                r.header("x-amzn-ErrorType"),
                Some("InvalidSignatureException" | "UnrecognizedClientException")
            ),
            "{key}: {:?}",
            r.header("x-amzn-ErrorType")
        );
    }
}

#[test]
fn data_keys_without_plaintext_random_bytes_descriptions_aliases_and_policy_names() {
    let e = endpoint();
    let create = |description: &str| {
        call(
            &e,
            "CreateKey",
            &json!({ "Description": description }).to_string(),
        )
        .1["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (create("a"), create("b"));
    // A data key whose plaintext only Decrypt gives out.
    let (status, wrapped) = call(
        &e,
        "GenerateDataKeyWithoutPlaintext",
        &json!({"KeyId": a, "KeySpec": "AES_256", "EncryptionContext": {"p": "q"}}).to_string(),
    );
    assert_eq!(status, 200, "{wrapped}");
    assert!(wrapped.get("Plaintext").is_none());
    let (_, opened) = call(
        &e,
        "Decrypt",
        &json!({"KeyId": a, "CiphertextBlob": wrapped["CiphertextBlob"], "EncryptionContext": {"p": "q"}})
            .to_string(),
    );
    assert_eq!(
        BASE64
            .decode(opened["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    // Random bytes, with AWS's bounds.
    let (_, random) = call(&e, "GenerateRandom", r#"{"NumberOfBytes": 24}"#);
    assert_eq!(
        BASE64
            .decode(random["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        24
    );
    for bad in [0, 1025] {
        let (status, err) = call(
            &e,
            "GenerateRandom",
            &json!({ "NumberOfBytes": bad }).to_string(),
        );
        assert_eq!(
            (status, err["__type"].as_str()),
            (400, Some("ValidationException"))
        );
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("at 'numberOfBytes'"),
            "{err}"
        );
    }
    // Descriptions, and the state rule: not while pending deletion.
    call(
        &e,
        "UpdateKeyDescription",
        &json!({"KeyId": a, "Description": "renamed"}).to_string(),
    );
    assert_eq!(
        call(&e, "DescribeKey", &json!({ "KeyId": a }).to_string()).1["KeyMetadata"]["Description"],
        "renamed"
    );
    // An alias moves between keys of the same type only.
    call(
        &e,
        "CreateAlias",
        &json!({"AliasName": "alias/moving", "TargetKeyId": a}).to_string(),
    );
    let (status, _) = call(
        &e,
        "UpdateAlias",
        &json!({"AliasName": "alias/moving", "TargetKeyId": b}).to_string(),
    );
    assert_eq!(status, 200);
    let (_, listed) = call(&e, "ListAliases", &json!({ "KeyId": b }).to_string());
    assert_eq!(listed["Aliases"][0]["AliasName"], "alias/moving");
    let (_, hmac) = call(
        &e,
        "CreateKey",
        r#"{"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}"#,
    );
    let hmac = hmac["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let (status, err) = call(
        &e,
        "UpdateAlias",
        &json!({"AliasName": "alias/moving", "TargetKeyId": hmac}).to_string(),
    );
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("ValidationException")),
        "{err}"
    );
    let (_, err) = call(
        &e,
        "UpdateAlias",
        &json!({"AliasName": "alias/none", "TargetKeyId": a}).to_string(),
    );
    assert_eq!(err["__type"], "NotFoundException");
    // One policy per key, by name.
    let (_, names) = call(&e, "ListKeyPolicies", &json!({ "KeyId": a }).to_string());
    assert_eq!(names["PolicyNames"], json!(["default"]));
    assert_eq!(names["Truncated"], false);
    call(
        &e,
        "ScheduleKeyDeletion",
        &json!({ "KeyId": a }).to_string(),
    );
    let (_, err) = call(
        &e,
        "UpdateKeyDescription",
        &json!({"KeyId": a, "Description": "x"}).to_string(),
    );
    assert_eq!(err["__type"], "KMSInvalidStateException");
    let (_, err) = call(
        &e,
        "GenerateDataKeyWithoutPlaintext",
        &json!({"KeyId": a, "NumberOfBytes": 16}).to_string(),
    );
    assert_eq!(err["__type"], "KMSInvalidStateException");
}

#[test]
fn dry_runs_check_everything_and_return_nothing() {
    let e = endpoint();
    let (_, created) = call(&e, "CreateKey", "{}");
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, sealed) = call(
        &e,
        "Encrypt",
        &json!({"KeyId": key, "Plaintext": "aGVsbG8="}).to_string(),
    );
    for (op, body) in [
        (
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "aGVsbG8=", "DryRun": true}),
        ),
        (
            "Decrypt",
            json!({"KeyId": key, "CiphertextBlob": sealed["CiphertextBlob"], "DryRun": true}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": key, "NumberOfBytes": 32, "DryRun": true}),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": key, "NumberOfBytes": 32, "DryRun": true}),
        ),
    ] {
        let (status, answer) = call(&e, op, &body.to_string());
        assert_eq!(
            (status, answer["__type"].as_str()),
            (412, Some("DryRunOperationException")),
            "{op}: {answer}"
        );
        assert!(answer.get("CiphertextBlob").is_none() && answer.get("Plaintext").is_none());
    }
    // A dry run that would fail fails as the call would.
    call(&e, "DisableKey", &json!({ "KeyId": key }).to_string());
    let (_, answer) = call(
        &e,
        "Encrypt",
        &json!({"KeyId": key, "Plaintext": "aGVsbG8=", "DryRun": true}).to_string(),
    );
    assert_eq!(answer["__type"], "DisabledException");
}
