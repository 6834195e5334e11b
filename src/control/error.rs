//! The control plane's one error type: what went wrong, in terms of the project, its
//! clusters, keys and snapshots, and what the caller can do about it.

use std::path::PathBuf;

use crate::kms::KmsError;
use crate::store::{SnapshotError, StoreError};

#[derive(Debug, thiserror::Error)]
/// Errors of the atrest root: each says what is wrong and what to do.
// Each variant is documented; its fields are named for what they hold.
#[allow(missing_docs)]
pub enum ControlError {
    #[error(transparent)]
    /// A KMS call failed.
    Kms(#[from] KmsError),
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
    #[error("{path} is not initialised: it holds no project yet (Root::init creates one)")]
    /// The root has no settings yet.
    NotInitialised { path: PathBuf },
    #[error(
        "{path} is already initialised (its project and clusters exist); use it, or initialise another directory"
    )]
    /// `init` was run on a root that already has a project.
    AlreadyInitialised { path: PathBuf },
    #[error("{clusters} exists but {path}/atrest.json does not: an earlier init was interrupted; remove {clusters} and run init again")]
    /// Clusters without settings: an `init` that stopped halfway.
    InterruptedInit { path: PathBuf, clusters: PathBuf },
    #[error("{path} was written by another version of atrest (settings format {found}; this one reads {expected}): open it with that version, or initialise a new root")]
    /// Settings of another format.
    SettingsFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(transparent)]
    /// A snapshot operation failed.
    Snapshot(#[from] SnapshotError),
    #[error("{key} still protects data: snapshots {snapshots:?}, stores {stores:?}; deleting it would make them unreadable for good (deleting it anyway needs force)")]
    /// A CMK is still needed by snapshots or stores.
    KeyInUse {
        key: String,
        snapshots: Vec<String>,
        stores: Vec<String>,
    },
    #[error("the secret of access key {access_key_id}, the project's credentials, is not kept in this root: configure the project's credentials again")]
    /// The project uses legacy credentials whose secret is missing.
    MissingSecret { access_key_id: String },
    #[error("a retention policy that keeps no snapshot would delete every snapshot now and at every tick; keep at least one, or ask for it explicitly (force)")]
    /// A retention policy of keep 0 or a maximum age of 0 days, not forced.
    RetentionKeepsNothing,
    #[error("a CMK rotation to {to} is in progress; finish it first by rotating to {to} again")]
    /// Another CMK rotation must finish first.
    RotationInProgress { to: String },
    #[error("this root's CMK is in AWS KMS ({endpoint}), not in the embedded KMS; manage the key with AWS's tools there")]
    /// A LocalKms call on a root whose project uses AwsKms.
    NotLocalKms { endpoint: String },
    #[error(
        "a project whose CMK is in AWS KMS needs the CMK named (a key id, alias or ARN in the region)"
    )]
    /// `init --kms aws` without a CMK.
    CmkRequired,
    #[error("{what} was changed by another process meanwhile; try again")]
    /// Another process changed the same setting while this one worked.
    ConcurrentChange { what: String },
    #[error("this atrest was built without the `aws` feature; rebuild with it to use AWS KMS or snapshots in S3")]
    /// The root's settings need a backend this build lacks.
    AwsNotBuilt,
    #[error("{path}: {source}")]
    /// A file or directory of the root cannot be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds settings atrest cannot use: {reason}")]
    /// Settings that parse but break a limit (a cluster of 0 nodes, say).
    InvalidSettings { path: PathBuf, reason: String },
    #[error("{path} does not hold valid settings: {source}")]
    /// A settings file that does not parse.
    SettingsCorrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("user {user:?} is not in the project (users: {users:?}); a Project Owner must add them first")]
    /// The acting user is not a member.
    UnknownUser { user: String, users: Vec<String> },
    #[error("{action} needs the Project Owner role; {user} is {role}")]
    /// A Project Owner action by someone else.
    NotProjectOwner {
        user: String,
        role: &'static str,
        action: String,
    },
    #[error("{action} is refused: {user} has the Project Read Only role")]
    /// A change asked for by a read-only member or API key.
    ReadOnlyRole { user: String, action: String },
    #[error("access role {role_id} is in use by the project's encryption at rest: point it at another role first")]
    /// Deauthorizing the role the project's encryption at rest assumes.
    AccessRoleInUse { role_id: String },
    #[error("private endpoints to the KMS need the project to require private networking: turn requirePrivateNetworking on first")]
    /// A private endpoint while private networking is off.
    PrivateNetworkingOff,
    #[error(
        "a private endpoint to the project's KMS must be in its region, {region}, not {given}"
    )]
    /// A private endpoint in another region than the KMS's.
    WrongEndpointRegion { given: String, region: String },
    #[error("no private endpoint {id}")]
    /// An unknown private endpoint.
    UnknownPrivateEndpoint { id: String },
    #[error("no snapshot {id} of cluster {cluster}")]
    /// A snapshot id that names no snapshot of the cluster.
    UnknownSnapshot { id: String, cluster: String },
    #[error("cluster {cluster} has {nodes} node(s); atrest does not change a replica set's size ({asked} asked)")]
    /// A change of a cluster's node count.
    NodeCountFixed {
        cluster: String,
        nodes: u32,
        asked: u32,
    },
    #[error("no API key {public_key} in the project")]
    /// An unknown API key.
    UnknownApiKey { public_key: String },
    #[error("{user} may not create projects: that takes an organization API key with the ORG_OWNER or ORG_GROUP_CREATOR role, or a Project Owner of the organization's home project")]
    /// Creating a project without an organization role that allows it.
    NotProjectCreator { user: String },
    #[error("{path} is a project of the organization at {home}: projects are created and organization roles given there")]
    /// An organization-wide change asked of a project that is not the organization's home.
    NotOrganizationHome { path: PathBuf, home: PathBuf },
    #[error("the organization already has a project named {name:?}: choose another name")]
    /// A second project of the same name.
    ProjectExists { name: String },
    #[error("{name:?} is not a project name Atlas takes: 1 to 64 letters, digits and -_.(),:&@+'")]
    /// A project name outside Atlas's pattern.
    BadProjectName { name: String },
    #[error("no project {id} in this organization")]
    /// An unknown project id.
    UnknownProject { id: String },
    #[error("atrest raises no {event} alert: its alert configurations are for AWS_ENCRYPTION_KEY_NEEDS_ROTATION and AWS_ENCRYPTION_KEY_INVALID")]
    /// An alert configuration for an event atrest does not raise.
    UnsupportedAlertEvent { event: String },
    #[error("{event}: AWS_ENCRYPTION_KEY_NEEDS_ROTATION needs a threshold of one or more days, and AWS_ENCRYPTION_KEY_INVALID takes none")]
    /// An alert configuration's threshold missing, zero, or where none belongs.
    AlertThreshold { event: String },
    #[error("no alert configuration {id} in the project")]
    /// An unknown alert configuration.
    UnknownAlertConfig { id: String },
    #[error("{path} is the organization's home: it holds the organization's KMS and clock, and is not deleted through the organization")]
    /// Deleting the organization's home project.
    OrganizationHomeKept { path: PathBuf },
    #[error("project {id} still has clusters {clusters:?} and {snapshots} snapshots: delete them first, so that nothing is lost")]
    /// Deleting a project that still holds data.
    ProjectInUse {
        id: String,
        clusters: Vec<String>,
        snapshots: usize,
    },
    #[error("the project has no alert number {index}")]
    /// An unknown alert.
    UnknownAlert { index: usize },
    #[error("API key {public_key} already exists")]
    /// A second API key with the same public half.
    ApiKeyExists { public_key: String },
    #[error("no cloud provider access role {role_id}: authorize the IAM role for Atlas first")]
    /// The encryption config names an unknown access role.
    UnknownAccessRole { role_id: String },
    #[error("no cluster {name:?} (clusters: {clusters:?})")]
    /// No such cluster.
    UnknownCluster { name: String, clusters: Vec<String> },
    #[error("cluster {name:?} exists already")]
    /// The cluster name is taken.
    ClusterExists { name: String },
    #[error(
        "{name:?} is not a cluster name: 1 to 64 letters, digits and '-', not starting with '-'"
    )]
    /// A cluster name Atlas would refuse.
    BadClusterName { name: String },
    #[error("{name:?} is not a user name: 1 to 256 printable characters without spaces")]
    /// A user name Atlas would refuse.
    BadUserName { name: String },
    #[error("{tier:?} is not an Atlas instance size like M10, M30 or M700")]
    /// A tier that is not `M<n>`.
    BadTier { tier: String },
    #[error("a data key may seal 1 to {max} records (random 96-bit nonces), not {uses}")]
    /// A data-key use limit past the nonce bound.
    DataKeyUsesOutOfRange { uses: u64, max: u64 },
    #[error("emulator time cannot move past {latest}")]
    /// An advance of the emulator clock beyond the last instant it can show.
    ClockOutOfRange { latest: crate::clock::Timestamp },
    #[error("values of {size} bytes are too large to load: at most {max}")]
    /// A bulk-load value size beyond what the loader holds in memory.
    ValueTooLarge { size: usize, max: usize },
    #[error("a cluster has 1 to 50 nodes, not {nodes}")]
    /// A node count out of range.
    BadNodeCount { nodes: u32 },
    #[error("cluster {cluster} is {tier}: encryption at rest with customer key management needs M10 or larger")]
    /// M0, M2, M5.
    TierTooSmall { cluster: String, tier: String },
    #[error("cluster {cluster} is a serverless instance: they do not support encryption at rest with customer key management")]
    /// Serverless.
    ServerlessUnsupported { cluster: String },
    #[error("cluster {cluster} uses legacy backups: encryption at rest with customer key management needs Cloud Backups")]
    /// Legacy backups.
    LegacyBackup { cluster: String },
    #[error("the project's encryption at rest is not configured: configure it with a CMK and an access role first")]
    /// A cluster asked for encryption before the project has it.
    ProjectNotConfigured,
    #[error("{key} is {spec}/{usage}: encryption at rest needs a symmetric key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)")]
    /// An asymmetric or HMAC key.
    NotSymmetric {
        key: String,
        spec: String,
        usage: String,
    },
    #[error("{principal} may not call {action} on {key}: grant it kms:DescribeKey, kms:Encrypt and kms:Decrypt in the key policy ({source})")]
    /// The role lacks one of the three permissions Atlas needs.
    MissingPermission {
        principal: String,
        key: String,
        action: &'static str,
        source: KmsError,
    },
    #[error("key {key} is not in account {account}: a key in another account must be given by its full key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) ({source})")]
    /// A bare key id or alias that does not resolve in the role's account.
    NeedsFullArn {
        key: String,
        account: String,
        source: KmsError,
    },
    #[error("every cluster of a project uses the project's key and role ({expected}); {given} is not it")]
    /// A cluster asked for another key or role than the project's.
    NotProjectKey { expected: String, given: String },
    #[error("the project uses role-based access; switching back to credentials (access key id and secret) cannot be done")]
    /// Credentials after a role.
    CredentialsAfterRole,
    #[error("credentials need both an access key id and a secret access key")]
    /// An access key without its secret.
    IncompleteCredentials,
    #[error("clusters {clusters:?} still use the project's encryption at rest: disable it on them first")]
    /// The project's encryption cannot be turned off under its clusters.
    EncryptionInUse { clusters: Vec<String> },
    #[error("cluster {cluster} is shut down: the project's key {key} failed its validity check ({reason}). Nothing is lost; fix the key, then run the validity check again (Atlas's Try Again)")]
    /// The project's encrypted clusters are shut down.
    ShutDown {
        cluster: String,
        key: String,
        reason: String,
    },
    #[error("cluster {cluster} is not encrypted: atrest snapshots (Cloud Backups) are taken of encrypted clusters")]
    /// A snapshot of a plain cluster.
    NotEncrypted { cluster: String },
}

impl ControlError {
    /// The KMS error underneath, if any: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            ControlError::Kms(e) => Some(e),
            ControlError::Store(e) => e.kms_error(),
            ControlError::Snapshot(e) => e.kms_error(),
            ControlError::MissingPermission { source, .. }
            | ControlError::NeedsFullArn { source, .. } => Some(source),
            _ => None,
        }
    }
}
