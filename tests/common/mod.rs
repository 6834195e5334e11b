//! Helpers shared by the integration tests: AWS KMS's state table, run against any
//! client, and the peers (moto, boto3) the wire tests talk to.
#![allow(dead_code)]

pub mod peers;
pub mod s3_proxy;

use atrest::kms::{EncryptionContext, KeyState, KmsError};

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// An encryption context from pairs.
pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Key material wrapped for ImportKeyMaterial as an importer does it: RSA-OAEP with
/// SHA-256 under the wrapping key GetParametersForImport returned (DER
/// SubjectPublicKeyInfo), by aws-lc-rs rather than anything of atrest's.
pub fn wrap_for_import(wrapping_key: &[u8], material: &[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    let key =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(wrapping_key).unwrap()).unwrap();
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
        .unwrap()
        .len();
    out.truncate(len);
    out
}

/// "ok", or the AWS name of the error.
pub fn code<T>(r: Result<T, KmsError>) -> String {
    r.map_or_else(|e| e.aws_name().to_string(), |_| "ok".into())
}

/// The operations of the state table, named as AWS names them.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    DescribeKey,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    EnableKeyRotation,
    DisableKeyRotation,
    RotateKeyOnDemand,
    GetKeyRotationStatus,
    ListKeyRotations,
    CreateAlias,
    PutKeyPolicy,
    GetKeyPolicy,
    GenerateDataKeyWithoutPlaintext,
    ReEncrypt,
    UpdateKeyDescription,
    TagResource,
    UntagResource,
    ListResourceTags,
    ListKeyPolicies,
    CreateGrant,
    ListGrants,
}

pub const OK: &str = "ok";
const DISABLED: &str = "DisabledException";
const INVALID: &str = "KMSInvalidStateException";
/// AWS's answer to the rotation schedule operations on a key of imported material.
const EXTERNAL: &str = "UnsupportedOperationException";

/// (operation, outcome when Enabled, Disabled, PendingDeletion, PendingImport), as AWS
/// documents them (PendingImport: a key of imported material whose material was deleted).
pub const STATE_TABLE: [(Op, &str, &str, &str, &str); 25] = {
    use Op::*;
    [
        (Encrypt, OK, DISABLED, INVALID, INVALID),
        (Decrypt, OK, DISABLED, INVALID, INVALID),
        (GenerateDataKey, OK, DISABLED, INVALID, INVALID),
        (DescribeKey, OK, OK, OK, OK),
        (EnableKey, OK, OK, INVALID, INVALID),
        (DisableKey, OK, OK, INVALID, INVALID),
        (ScheduleKeyDeletion, OK, OK, INVALID, OK),
        (CancelKeyDeletion, INVALID, INVALID, OK, INVALID),
        (EnableKeyRotation, OK, DISABLED, INVALID, EXTERNAL),
        (DisableKeyRotation, OK, DISABLED, INVALID, EXTERNAL),
        (RotateKeyOnDemand, OK, DISABLED, INVALID, INVALID),
        (GetKeyRotationStatus, OK, OK, INVALID, EXTERNAL),
        (ListKeyRotations, OK, OK, OK, OK),
        (CreateAlias, OK, OK, INVALID, OK),
        (PutKeyPolicy, OK, OK, OK, OK),
        (GetKeyPolicy, OK, OK, OK, OK),
        (
            GenerateDataKeyWithoutPlaintext,
            OK,
            DISABLED,
            INVALID,
            INVALID,
        ),
        (ReEncrypt, OK, DISABLED, INVALID, INVALID),
        (UpdateKeyDescription, OK, OK, INVALID, OK),
        (TagResource, OK, OK, INVALID, OK),
        (UntagResource, OK, OK, INVALID, OK),
        (ListResourceTags, OK, OK, OK, OK),
        (ListKeyPolicies, OK, OK, OK, OK),
        (CreateGrant, OK, DISABLED, INVALID, INVALID),
        (ListGrants, OK, OK, OK, OK),
    ]
};

/// A KMS the state table can drive: it makes a key in a given state (with a ciphertext
/// made while it was enabled) and runs one operation on it, answering "ok" or AWS's
/// exception name.
pub trait TableSubject {
    fn key_in_state(&mut self, state: KeyState) -> (String, Vec<u8>);
    fn run(&mut self, op: Op, key: &str, blob: &[u8]) -> String;
}

/// Every operation on a key in every state gives AWS's documented outcome.
pub fn check_state_table(subject: &mut impl TableSubject) {
    for (op, enabled, disabled, pending, pending_import) in STATE_TABLE {
        for (state, expected) in [
            (KeyState::Enabled, enabled),
            (KeyState::Disabled, disabled),
            (KeyState::PendingDeletion, pending),
            (KeyState::PendingImport, pending_import),
        ] {
            let (key, blob) = subject.key_in_state(state);
            let got = subject.run(op, &key, &blob);
            assert_eq!(got, expected, "{op:?} on a {state} key");
        }
    }
}
