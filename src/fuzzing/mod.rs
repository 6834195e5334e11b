//! Entry points shared by the fuzz targets under `fuzz/` and the test that replays their
//! corpora (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and panics only on a bug:
//! a decoder that panics, or one whose accepted input does not re-encode to itself.
//! [`ops`] holds the operation language that drives the whole engine against a model.

#[cfg(feature = "aws-lc")]
mod key_material;
#[cfg(feature = "store")]
pub mod ops;

#[cfg(feature = "aws-lc")]
pub use key_material::key_material;

use crate::format::{
    KeystoreAuthenticator, KeystoreRecord, Record, WrappedDataKey, WrappedMasterKey,
};
use crate::kms::{CiphertextBlob, KeyPolicy, KeyRef, LocalKms};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("record_envelope", record_envelope),
    ("keystore", keystore),
    ("kms_blob", kms_blob),
    ("kms_state", kms_state),
    ("key_reference", key_reference),
    ("key_policy", key_policy),
    ("snapshot", snapshot),
    ("kms_wire", kms_wire),
    #[cfg(feature = "aws-lc")]
    ("key_material", key_material),
    #[cfg(feature = "store")]
    ("operations", operations),
    #[cfg(feature = "store")]
    ("control", control),
];

/// Operation sequences against the model ([`ops`]): panics on the first divergence.
#[cfg(feature = "store")]
pub fn operations(data: &[u8]) {
    let sequence = ops::decode(data, 64);
    if let Err(divergence) = ops::run(&sequence) {
        panic!(
            "{divergence}\nreplay: atrest::fuzzing::ops::run(&{})",
            ops::to_rust(&sequence)
        );
    }
}

/// Operation sequences against the control plane's model ([`ops::run_control`]).
#[cfg(feature = "store")]
pub fn control(data: &[u8]) {
    let sequence = ops::decode(data, 48);
    if let Err(divergence) = ops::run_control(&sequence) {
        panic!(
            "{divergence}\nreplay: atrest::fuzzing::ops::run_control(&{})",
            ops::to_rust(&sequence)
        );
    }
}

pub fn record_envelope(data: &[u8]) {
    if let Ok(record) = Record::decode(data) {
        assert!(record.sealed.len() >= crate::crypto::TAG_LEN);
    }
}

/// The keystore and the key encodings inside it are canonical: what decodes, re-encodes
/// to the same bytes.
pub fn keystore(data: &[u8]) {
    if let Ok((k, authenticator)) = KeystoreRecord::decode(data) {
        let mut encoded = k.encode();
        match authenticator {
            KeystoreAuthenticator::Tagged { covered, .. } => assert_eq!(encoded, covered),
            KeystoreAuthenticator::Legacy => {
                if let Some(version) = encoded.first_mut() {
                    *version = 1;
                }
                assert_eq!(encoded, data);
            }
        }
    }
    if let Ok(k) = WrappedMasterKey::decode(data) {
        assert_eq!(k.encode(), data);
    }
    if let Ok(k) = WrappedDataKey::decode(data) {
        assert_eq!(k.encode(), data);
    }
}

pub fn kms_blob(data: &[u8]) {
    let _ = CiphertextBlob::decode(data);
}

pub fn kms_state(data: &[u8]) {
    let _ = LocalKms::decode_state_file(data);
}

/// A snapshot file: its header decoder, then the chunk stream's opener over the rest,
/// under a fixed key. Both must refuse what they cannot read, never panic; the opener
/// must never yield bytes from a chunk that did not authenticate (here: none can).
pub fn snapshot(data: &[u8]) {
    use std::io::Read;

    use crate::crypto::stream::{Opener, StreamKey};
    use crate::crypto::{Aead, Backend, SecretKey};
    use crate::format::{SnapshotHeader, SNAPSHOT_PREFIX_LEN};

    let _ = SnapshotHeader::decode(data);
    let (Ok(key), Some(first)) = (SecretKey::from_slice(&[7; 32]), data.first()) else {
        return;
    };
    let Ok(aead) = Aead::new(&key, Backend::default()) else {
        return;
    };
    let aad = &data[..data.len().min(SNAPSHOT_PREFIX_LEN)];
    let stream_key = StreamKey {
        aead: &aead,
        aad,
        prefix: [*first; 7],
        chunk_size: 64,
    };
    let mut opener = Opener::new(data, stream_key);
    let mut out = Vec::new();
    if opener.read_to_end(&mut out).is_ok() {
        assert!(out.is_empty(), "unauthenticated bytes came out of a stream");
    }
}

/// A parsed key reference prints as a string that parses to the same reference.
pub fn key_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = KeyRef::parse(text) {
        assert_eq!(KeyRef::parse(&reference.to_string()).ok(), Some(reference));
    }
}

/// A parsed policy survives its own serialization.
pub fn key_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = KeyPolicy::parse(text) {
        assert_eq!(KeyPolicy::parse(&policy.to_json()).ok(), Some(policy));
    }
}

/// A request to `atrest kms serve`: the first byte picks the operation (or STS, or an
/// unknown one), the second whether it is signed; the rest is the body, with `@key`
/// standing for a real key's ARN so the fuzzer reaches past key lookup. Every answer is
/// AWS-shaped: a JSON object, with `__type` on errors.
pub fn kms_wire(data: &[u8]) {
    use std::sync::Arc;

    use crate::clock::{ManualClock, Timestamp};
    use crate::kms::wire::{Endpoint, Identities, Operation, Request};
    use crate::kms::{Caller, CreateKeyRequest};

    let [selector, signed, body @ ..] = data else {
        return;
    };
    let kms = LocalKms::in_memory(Arc::new(ManualClock::new(Timestamp::from_millis(1 << 40))));
    let root = "arn:aws:iam::111122223333:root";
    let Ok(caller) = Caller::new(root, "us-east-1") else {
        return;
    };
    let Ok(key) = kms.client(caller).create_key(CreateKeyRequest::default()) else {
        return;
    };
    let body = String::from_utf8_lossy(body).replace("@key", &key.arn);
    let Ok(identities) = Identities::new(root) else {
        return;
    };
    let endpoint = Endpoint::new(kms, identities);
    let operation = Operation::ALL.get(usize::from(*selector));
    let sts = usize::from(*selector) == Operation::ALL.len();
    let target = operation.map_or("TrentService.Unknown".to_string(), |op| {
        format!("TrentService.{}", op.name())
    });
    let mut headers = vec![(
        "Content-Type".to_string(),
        if sts {
            "application/x-www-form-urlencoded"
        } else {
            "application/x-amz-json-1.1"
        }
        .to_string(),
    )];
    if !sts {
        headers.push(("X-Amz-Target".into(), target));
    }
    if signed & 1 == 1 {
        headers.push((
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=AKIAFUZZ/20261128/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0".into(),
        ));
    }
    let response = endpoint.handle(&Request {
        headers: &headers,
        body: body.as_bytes(),
        ..Request::default()
    });
    if sts {
        assert!(response.body.starts_with(b"<"), "STS answers XML");
        return;
    }
    let value: serde_json::Value =
        serde_json::from_slice(&response.body).expect("KMS answers are JSON");
    assert!(value.is_object());
    assert_eq!(response.status == 200, value.get("__type").is_none());
}
