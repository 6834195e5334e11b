//! Helpers shared by the integration tests: AWS KMS's state table, run against any
//! client, and the peers (moto, boto3) the wire tests talk to.
#![allow(dead_code)]

pub mod peers;
pub mod s3_proxy;

use atrest::kms::{EncryptionContext, KeyState, KmsError};

/// An encryption context from pairs.
pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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

/// (operation, outcome when Enabled, Disabled, PendingDeletion), as AWS documents them.
pub const STATE_TABLE: [(Op, &str, &str, &str); 25] = {
    use Op::*;
    [
        (Encrypt, OK, DISABLED, INVALID),
        (Decrypt, OK, DISABLED, INVALID),
        (GenerateDataKey, OK, DISABLED, INVALID),
        (DescribeKey, OK, OK, OK),
        (EnableKey, OK, OK, INVALID),
        (DisableKey, OK, OK, INVALID),
        (ScheduleKeyDeletion, OK, OK, INVALID),
        (CancelKeyDeletion, INVALID, INVALID, OK),
        (EnableKeyRotation, OK, DISABLED, INVALID),
        (DisableKeyRotation, OK, DISABLED, INVALID),
        (RotateKeyOnDemand, OK, DISABLED, INVALID),
        (GetKeyRotationStatus, OK, OK, INVALID),
        (ListKeyRotations, OK, OK, OK),
        (CreateAlias, OK, OK, INVALID),
        (PutKeyPolicy, OK, OK, OK),
        (GetKeyPolicy, OK, OK, OK),
        (GenerateDataKeyWithoutPlaintext, OK, DISABLED, INVALID),
        (ReEncrypt, OK, DISABLED, INVALID),
        (UpdateKeyDescription, OK, OK, INVALID),
        (TagResource, OK, OK, INVALID),
        (UntagResource, OK, OK, INVALID),
        (ListResourceTags, OK, OK, OK),
        (ListKeyPolicies, OK, OK, OK),
        (CreateGrant, OK, DISABLED, INVALID),
        (ListGrants, OK, OK, OK),
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
    for (op, enabled, disabled, pending) in STATE_TABLE {
        for (state, expected) in [
            (KeyState::Enabled, enabled),
            (KeyState::Disabled, disabled),
            (KeyState::PendingDeletion, pending),
        ] {
            let (key, blob) = subject.key_in_state(state);
            let got = subject.run(op, &key, &blob);
            assert_eq!(got, expected, "{op:?} on a {state} key");
        }
    }
}
