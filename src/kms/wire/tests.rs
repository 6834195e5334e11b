//! The protocol end to end, without sockets.

use std::sync::Arc;

use serde_json::Value;

use super::*;
use crate::clock::{ManualClock, Timestamp};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

fn endpoint() -> Endpoint {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    Endpoint::new(
        LocalKms::in_memory(clock),
        Identities::new("arn:aws:iam::111122223333:root").unwrap(),
    )
}

fn call(endpoint: &Endpoint, op: &str, body: &str) -> (u16, Value) {
    let target = format!("TrentService.{op}");
    let r = endpoint.handle(&Request {
        target: Some(&target),
        content_type: Some(JSON_CONTENT_TYPE),
        authorization: Some(AUTH),
        body: body.as_bytes(),
    });
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn credential_scopes_parse() {
    let scope = credential_scope(AUTH).unwrap();
    assert_eq!(
        (scope.access_key_id, scope.region, scope.service),
        ("AKIDEXAMPLE", "us-east-1", "kms")
    );
    assert!(credential_scope("AWS4-HMAC-SHA256 Credential=A/B/C").is_none());
    assert!(credential_scope("Basic abc").is_none());
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
    let r = e.handle(&Request {
        target: Some("TrentService.ListKeys"),
        authorization: Some(AUTH),
        body: &big,
        ..Request::default()
    });
    assert_eq!(r.status, 413);
    let unsigned = e.handle(&Request {
        target: Some("TrentService.ListKeys"),
        ..Request::default()
    });
    assert_eq!(
        unsigned.error_type.as_deref(),
        Some("MissingAuthenticationTokenException")
    );
}

#[test]
fn assumed_roles_call_as_the_role() {
    let e = endpoint();
    let r = e.handle(&Request {
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        authorization: Some(AUTH),
        body: b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fatlas&RoleSessionName=s1&ExternalId=x",
        ..Request::default()
    });
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let xml = String::from_utf8(r.body.to_vec()).unwrap();
    let key = xml
        .split("<AccessKeyId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap();
    let ids = Identities::new("arn:aws:iam::111122223333:root").unwrap();
    assert_eq!(ids.principal(key), "arn:aws:iam::111122223333:role/atlas");
    assert_eq!(ids.principal("ASIAzz"), "arn:aws:iam::111122223333:root");
}
