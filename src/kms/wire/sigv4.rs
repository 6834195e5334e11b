//! AWS Signature Version 4, checked as AWS checks it: the canonical request rebuilt from
//! what arrived, the string to sign under the request's credential scope, and the
//! signature recomputed from the secret the access key id names.

use super::Request;
#[cfg(feature = "aws-lc")]
use crate::kms::hex::encode as encode_hex;

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The scope's date (`YYYYMMDD`).
    pub date: &'a str,
    /// The region the request was signed for.
    pub region: &'a str,
    /// The service it was signed for (`kms`, `sts`).
    pub service: &'a str,
    /// The signed headers, lowercase, `;`-separated.
    pub signed_headers: &'a str,
    /// The signature, hex.
    pub signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=..., Signature=...`.
pub fn parse_authorization(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?;
    let part = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(name))
    };
    let credential = part("Credential=")?;
    let mut scope = credential.split('/');
    let (access_key_id, date, region, service, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    let complete = scope.next().is_none() && terminator == "aws4_request";
    (complete && !access_key_id.is_empty()).then_some(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: part("SignedHeaders=").unwrap_or_default(),
        signature: part("Signature=").unwrap_or_default(),
    })
}

/// Why a signature does not check out, in words a client can act on.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureMismatch(pub String);

/// Checks `request`'s signature against `secret`, the secret access key of the access key
/// id its `authorization` names.
#[cfg(feature = "aws-lc")]
pub fn verify(
    request: &Request<'_>,
    authorization: &Authorization<'_>,
    secret: &str,
) -> Result<(), SignatureMismatch> {
    use aws_lc_rs::{constant_time, digest, hmac};
    let mismatch = |why: &str| SignatureMismatch(why.to_string());
    let signed: Vec<&str> = authorization.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(mismatch("the signature must cover the host header"));
    }
    let amz_date = request
        .header("x-amz-date")
        .ok_or_else(|| mismatch("the request has no X-Amz-Date header"))?;
    if !amz_date.starts_with(authorization.date) {
        return Err(mismatch(
            "the X-Amz-Date header is not of the credential scope's date",
        ));
    }
    let payload_hash = encode_hex(digest::digest(&digest::SHA256, request.body).as_ref());
    if let Some(claimed) = request.header("x-amz-content-sha256") {
        if claimed != payload_hash && claimed != "UNSIGNED-PAYLOAD" {
            return Err(mismatch("the body does not match X-Amz-Content-Sha256"));
        }
    }
    let mut canonical = String::new();
    canonical.push_str(request.method);
    canonical.push('\n');
    let (path, query) = request.uri.split_once('?').unwrap_or((request.uri, ""));
    canonical.push_str(if path.is_empty() { "/" } else { path });
    canonical.push('\n');
    canonical.push_str(&canonical_query(query));
    canonical.push('\n');
    for name in &signed {
        let value = request
            .header(name)
            .ok_or_else(|| mismatch("a signed header is missing from the request"))?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&value.split_whitespace().collect::<Vec<_>>().join(" "));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(authorization.signed_headers);
    canonical.push('\n');
    canonical.push_str(
        request
            .header("x-amz-content-sha256")
            .filter(|_| signed.contains(&"x-amz-content-sha256"))
            .unwrap_or(&payload_hash),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        authorization.date, authorization.region, authorization.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        encode_hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let sign = |key: &[u8], data: &[u8]| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
            .as_ref()
            .to_vec()
    };
    let mut key = sign(
        zeroize::Zeroizing::new(format!("AWS4{secret}")).as_bytes(),
        authorization.date.as_bytes(),
    );
    for part in [authorization.region, authorization.service, "aws4_request"] {
        key = sign(&key, part.as_bytes());
    }
    let expected = encode_hex(&sign(&key, string_to_sign.as_bytes()));
    constant_time::verify_slices_are_equal(expected.as_bytes(), authorization.signature.as_bytes())
        .map_err(|_| mismatch("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."))
}

/// Without aws-lc-rs there is no HMAC to check a signature with: every signature fails.
#[cfg(not(feature = "aws-lc"))]
pub fn verify(
    _request: &Request<'_>,
    _authorization: &Authorization<'_>,
    _secret: &str,
) -> Result<(), SignatureMismatch> {
    Err(SignatureMismatch(
        "this build of atrest has no HMAC (the aws-lc feature) to check signatures with".into(),
    ))
}

/// The query's parameters sorted by name, then value, as they arrived (encoded).
#[cfg(feature = "aws-lc")]
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::*;

    /// AWS's published SigV4 example (IAM ListUsers, "get-vanilla" style), signed with
    /// the documentation's example secret.
    #[test]
    fn the_documented_example_verifies_and_any_change_does_not() {
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("host".to_string(), "iam.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let request = Request {
            method: "GET",
            uri: "/?Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let auth = parse_authorization(header).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify(&request, &auth, secret), Ok(()));
        assert!(verify(&request, &auth, "another secret").is_err());
        let tampered = Request {
            uri: "/?Action=ListUsers&Version=2010-05-09",
            ..request
        };
        assert!(verify(&tampered, &auth, secret).is_err());
        let with_body = Request {
            body: b"x",
            ..request
        };
        assert!(verify(&with_body, &auth, secret).is_err());
    }
}
