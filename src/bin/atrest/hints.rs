//! What to type next: the command-line hint for each error the library can return. The
//! library says what failed in its own terms; only the shell knows its commands.

use atrest::control::ControlError;
use atrest::kms::KmsError;
use atrest::store::{S3Failure, SnapshotError};

/// The hint for a control-plane error, or for the KMS error underneath it.
pub fn for_control(e: &ControlError) -> Option<String> {
    let hint = match e {
        ControlError::NotInitialised { path } => {
            format!("run `atrest --root {} init` first", path.display())
        }
        ControlError::AlreadyInitialised { .. } => "choose another --root".into(),
        ControlError::InterruptedInit { clusters, .. } => {
            format!("remove {} and run `atrest init` again", clusters.display())
        }
        ControlError::KeyInUse { .. } => {
            "pass --force to delete it anyway (what depends on it becomes unreadable)".into()
        }
        ControlError::RetentionKeepsNothing => {
            "give --keep 1 or more, or add --force to delete every snapshot at every tick".into()
        }
        ControlError::RotationInProgress { to } => {
            format!("finish it with `atrest project set-key --key {to}`")
        }
        ControlError::NotLocalKms { .. } => {
            "`atrest kms` calls only the embedded KMS; use the AWS CLI or SDK for this key".into()
        }
        ControlError::CmkRequired => {
            "with --kms aws, name the project's CMK with --cmk (a key id, alias or ARN)".into()
        }
        ControlError::UnknownUser { .. } => "add them with `atrest project add-user`".into(),
        ControlError::UnknownAccessRole { .. } => {
            "authorize one with `atrest project authorize-role --iam-role-arn ARN`".into()
        }
        ControlError::LegacyBackup { .. } => "create the cluster with --backup cloud".into(),
        ControlError::ProjectNotConfigured => {
            "run `atrest project encryption enable --cmk KEY --role-id ID` first".into()
        }
        ControlError::IncompleteCredentials => {
            "give both --access-key-id and --secret-access-key".into()
        }
        ControlError::NotProjectKey { .. } => {
            "rotate the project's CMK with `atrest project set-key --key KEY`".into()
        }
        ControlError::EncryptionInUse { .. } => {
            "run `atrest cluster disable-encryption NAME` on each of them first".into()
        }
        ControlError::ShutDown { .. } => {
            "fix the key, then run `atrest check` (Atlas's Try Again)".into()
        }
        ControlError::Snapshot(SnapshotError::Io { source, .. })
            if source.get_ref().is_some_and(|e| e.is::<S3Failure>()) =>
        {
            "check the bucket, its region (--region) and the AWS credentials the chain finds (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...); with an S3-compatible store, its --s3-endpoint".into()
        }
        ControlError::ConcurrentChange { .. } => "run the command again".into(),
        ControlError::NotProjectCreator { .. } => {
            "act as the home project's owner (--user owner), or create a key with `atrest project api-key create --role GROUP_OWNER --org-role ORG_GROUP_CREATOR`".into()
        }
        ControlError::NotOrganizationHome { home, .. } => {
            format!("run it with --root {}", home.display())
        }
        ControlError::UnknownProject { .. } => "list them with `atrest org projects`".into(),
        ControlError::UnknownApiKey { .. } => "list them with `atrest project api-key list`".into(),
        ControlError::ReadOnlyRole { .. } => {
            "act as a Project Owner or Cluster Manager (--user NAME)".into()
        }
        ControlError::AccessRoleInUse { .. } => {
            "point encryption at rest at another role first (`atrest project encryption enable --cmk KEY --role-id ID`)".into()
        }
        ControlError::PrivateNetworkingOff => {
            "turn it on with `atrest project encryption enable --cmk KEY --role-id ID --require-private-networking`".into()
        }
        ControlError::Snapshot(SnapshotError::CmkDisabled { cmk, .. }) => {
            format!("re-enable it (atrest kms enable-key --key-id {cmk}) to restore this snapshot")
        }
        other => return other.kms_error().map(|k| for_kms(k).to_string()),
    };
    Some(hint)
}

/// What a user can do about a KMS error, in one sentence.
pub fn for_kms(e: &KmsError) -> &'static str {
    match e {
        KmsError::NotFound(_) => "check the key id, alias or ARN, and that the caller's account and region are the key's",
        KmsError::Disabled(_) => "enable the key (kms enable-key) and try again",
        KmsError::InvalidState(_) => "a key pending deletion can be used again only after cancel-key-deletion and enable-key",
        KmsError::InvalidCiphertext(_) => "the ciphertext or its encryption context is not the one the key produced",
        KmsError::IncorrectKey(_) => "pass the key that encrypted this ciphertext as --key-id",
        KmsError::AccessDenied(_) => "grant the caller this action in the key policy (kms put-key-policy); with AWS KMS, check the credentials or role atrest calls as",
        KmsError::InvalidKeyUsage(_) => "use a key whose KeySpec and KeyUsage allow this operation and algorithm (kms describe-key lists them); atrest's own keys are SYMMETRIC_DEFAULT for ENCRYPT_DECRYPT",
        KmsError::InvalidSignature(_) => "the signature was not made by this key over this message with this algorithm; check the MessageType (RAW or DIGEST) it was signed with",
        KmsError::IncorrectKeyMaterial(_) => "import the key's own material: the spec's kind and length, and for a key that had material, that same material",
        KmsError::InvalidImportToken(_) => "use the import token GetParametersForImport returned for this key, with its wrapping key",
        KmsError::ExpiredImportToken(_) => "import tokens last 24 hours: call get-parameters-for-import again and wrap the material under the new wrapping key",
        KmsError::InvalidMac(_) => "the MAC was not made by this key over this message with this algorithm",
        KmsError::Validation(_) => "correct the request's parameters",
        KmsError::AlreadyExists(_) => "choose another name or delete the existing one",
        KmsError::LimitExceeded(_) => "wait for the limit to reset or use another key",
        KmsError::Tag(_) => "tag keys are 1-128 characters and cannot start with aws:",
        KmsError::InvalidGrantToken(_) => "pass a grant token CreateGrant returned",
        KmsError::InvalidGrantId(_) => "grant ids are the 64 hex digits CreateGrant and ListGrants return",
        KmsError::InvalidArn(_) => "principals are IAM ARNs like arn:aws:iam::111122223333:role/NAME",
        KmsError::UnsupportedOperation(_) => "this operation is not available for this kind of key, or not emulated by LocalKms; the message says which",
        KmsError::MalformedPolicyDocument(_) => "fix the policy document; it must keep allowing you kms:PutKeyPolicy",
        KmsError::Internal(_) => "restore the KMS state file from a backup; atrest never resets it",
        KmsError::Unavailable(_) => "check that the KMS is reachable; the call can be retried",
        KmsError::Throttled(_) => "slow down; the call can be retried",
        KmsError::Unrecognized(e) if e.retryable => "the KMS failed on its side; the call can be retried",
        KmsError::Unrecognized(_) => "check the KMS endpoint, the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the configuration",
    }
}
