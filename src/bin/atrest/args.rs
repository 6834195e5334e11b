//! The command line: every command, flag and argument, as clap parses them.

use std::path::PathBuf;

use atrest::control::project::{
    Backup, ProjectRole, DEFAULT_CLUSTER, DEFAULT_NODES, DEFAULT_OWNER,
};
use atrest::control::{OrgRole, RotationSettings, S3Settings, SnapshotSettings, DEFAULT_ACCOUNT};
use atrest::store::{BadS3Location, S3Location};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "atrest",
    version,
    about = "Encryption at rest with customer-managed keys: a RocksDB store under a strict AWS KMS emulator"
)]
pub struct Cli {
    /// The atrest root directory.
    #[arg(
        long,
        env = "ATREST_ROOT",
        default_value = "./atrest-data",
        global = true
    )]
    pub root: PathBuf,
    /// Print machine-readable JSON (AWS's field names for KMS calls).
    #[arg(long, global = true)]
    pub json: bool,
    /// Call the KMS as this IAM principal (arn:aws:iam::ACCOUNT:role/NAME); default: the root's.
    #[arg(long, env = "ATREST_CALLER", global = true)]
    pub caller: Option<String>,
    /// The KMS region to call; default: the root's (us-east-1).
    #[arg(long, env = "ATREST_REGION", global = true)]
    pub region: Option<String>,
    /// The cluster data and rotation commands act on.
    #[arg(long, env = "ATREST_CLUSTER", global = true, default_value = DEFAULT_CLUSTER)]
    pub cluster: String,
    /// When a cluster is open in another process, wait for it instead of failing.
    #[arg(long, env = "ATREST_WAIT", global = true)]
    pub wait: bool,
    /// The project user making control-plane changes (Project Owner actions need one).
    #[arg(long, env = "ATREST_USER", global = true, default_value = DEFAULT_OWNER)]
    pub user: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Walk through the key hierarchy in a fresh temporary root.
    Demo {
        /// Keep the demo's root directory afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Create the root: the project's CMK (by default a new one in the embedded KMS, alias
    /// alias/atrest-default) and one store.
    Init {
        /// The AWS account the project's keys belong to (embedded KMS; with AWS, the CMK's).
        #[arg(long, default_value = DEFAULT_ACCOUNT)]
        account: String,
        /// Where the CMK lives: the embedded LocalKms, or AWS KMS through the AWS SDK
        /// (credentials from the usual chain: AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).
        #[arg(long, value_enum, default_value = "local")]
        kms: KmsKind,
        /// The project's CMK: key id, alias or ARN. Required with --kms aws.
        #[arg(long)]
        cmk: Option<String>,
        /// With --kms aws: an endpoint URL instead of AWS's (atrest kms serve, moto, ...).
        #[arg(long)]
        endpoint: Option<String>,
        /// The IAM role Atlas assumes to call the KMS (with AWS, through STS AssumeRole);
        /// default with the embedded KMS: arn:aws:iam::ACCOUNT:role/atlas-kms.
        #[arg(long)]
        role_arn: Option<String>,
        /// With --role-arn: the external id the role's trust policy requires.
        #[arg(long, requires = "role_arn")]
        external_id: Option<String>,
        /// Nodes of the default cluster, Cluster0.
        #[arg(long, default_value_t = DEFAULT_NODES)]
        nodes: u32,
        /// Rotate the master key automatically at this age (days); 0 turns it off.
        #[arg(long, default_value_t = RotationSettings::default().master_key_rotation_days)]
        master_key_rotation_days: u64,
        /// Replace a database's data key after this many encryptions.
        #[arg(long, default_value_t = RotationSettings::default().data_key_max_uses)]
        data_key_max_uses: u64,
        /// Replace a database's data key at this age (days).
        #[arg(long)]
        data_key_max_age_days: Option<u64>,
        /// Where snapshots live: `local` (ROOT/snapshots) or s3://BUCKET/PREFIX (a bucket
        /// in the project's region; credentials from the usual AWS chain).
        #[arg(long, default_value = "local")]
        snapshots: String,
        /// With s3://: an endpoint URL instead of AWS's (moto, MinIO, ...).
        #[arg(long)]
        s3_endpoint: Option<String>,
    },
    /// Rotate keys below the CMK now.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Clusters: N nodes each, every node its own store and master key.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run the validity check now (Atlas's "Try Again"): DescribeKey, Encrypt, Decrypt as
    /// the project's role; shuts the encrypted clusters down or brings them back.
    Check,
    /// The project's alerts, oldest first.
    Alerts,
    /// The project's settings.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Calls on the embedded KMS, named and flagged as the AWS CLI names them.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Atlas's Administration API over this root.
    #[command(subcommand)]
    Atlas(AtlasCommand),
    /// The organization this root is the home of: its other projects, each a root under
    /// ROOT/projects/ID sharing this root's KMS and clock.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Store VALUE (or the bytes of --value-file) under KEY in database DB.
    Put {
        db: String,
        key: String,
        #[arg(required_unless_present = "value_file", conflicts_with = "value_file")]
        value: Option<String>,
        /// Store this file's bytes (`-`: standard input) as the value.
        #[arg(long)]
        value_file: Option<PathBuf>,
    },
    /// Print the value under KEY in database DB (a value that is not UTF-8 text needs
    /// --base64 or --output).
    Get {
        db: String,
        key: String,
        /// Write the value's bytes to this file instead of printing them.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print the value as base64.
        #[arg(long)]
        base64: bool,
    },
    /// Delete KEY from database DB.
    Delete { db: String, key: String },
    /// Print the records of DB in key order.
    Scan {
        db: String,
        #[arg(long)]
        prefix: Option<String>,
        /// Print keys and values as base64 (needed when any is not UTF-8 text).
        #[arg(long)]
        base64: bool,
    },
    /// Bulk-load COUNT records of VALUE_SIZE random bytes into DB.
    Load {
        db: String,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 1024)]
        value_size: usize,
    },
    /// The store's key hierarchy: CMK, master key, data keys per database.
    Status,
    /// Snapshots of the node, each encrypted under the CMK current when it was taken.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Which snapshots and stores depend on a CMK.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// db_bench-style workloads: the encrypted store beside plain RocksDB, in one run.
    Bench {
        /// Bytes per value; a list (`100,1024,16384`) runs every workload at each size.
        #[arg(long, value_delimiter = ',', default_value = "1024")]
        value_size: Vec<usize>,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Scratch directory (removed afterwards); default: a new one under the system temp dir.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also write an HTML report (bars of each ratio, latency percentiles) to DIR/index.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Emulator time: real time plus an offset kept in the root.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Apply what emulator time has made due (KMS key deletions and rotations, validity
    /// checks, master-key rotations, the rotation reminder, snapshot retention).
    Tick {
        /// Every project of this root's organization, not this project alone (each checks
        /// its own key; they share the KMS and the clock).
        #[arg(long)]
        all_projects: bool,
    },
}

#[derive(Subcommand)]
pub enum RotateCommand {
    /// A new master key wrapped by the CMK; every data key re-wrapped; no record rewritten.
    Master,
    /// A new data key for new writes to DB; the old one keeps decrypting.
    DataKey { db: String },
}

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot: a consistent checkpoint, encrypted under the current CMK.
    Create,
    /// Every snapshot: id, time, size, CMK.
    List,
    Delete {
        id: String,
    },
    /// Decrypt and check a snapshot without restoring it.
    Verify {
        id: String,
    },
    /// Set the retention policy and apply it (tick applies it too).
    Retention {
        #[arg(long)]
        keep: Option<usize>,
        /// e.g. 30d
        #[arg(long)]
        max_age: Option<String>,
        /// Accept a policy that keeps no snapshot (--keep 0 or --max-age 0d).
        #[arg(long)]
        force: bool,
    },
    /// Restore into this root's store, or into the store of the root at --to (another
    /// project in the same region, or a new directory, initialised like this root).
    Restore {
        id: String,
        #[arg(long)]
        to: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Which snapshots and stores depend on KEY, and whether it is safe to delete.
    Usage { key: String },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// A new cluster.
    Create {
        name: String,
        /// Atlas's instance size; encryption at rest needs M10 or larger.
        #[arg(long, default_value = "M10")]
        tier: String,
        /// Nodes (replica set members).
        #[arg(long, default_value_t = DEFAULT_NODES)]
        nodes: u32,
        #[arg(long, value_enum, default_value = "cloud")]
        backup: BackupArg,
        /// A serverless instance (no customer key management).
        #[arg(long)]
        serverless: bool,
        /// Encryption at rest with the project's CMK.
        #[arg(long)]
        encrypt: bool,
    },
    /// Delete a cluster and its nodes (Project Owner); its snapshots too unless
    /// --retain-snapshots.
    Delete {
        name: String,
        /// Keep the cluster's snapshots (they restore into other clusters).
        #[arg(long)]
        retain_snapshots: bool,
    },
    /// Turn encryption at rest on: every node rewritten, node by node (Project Owner).
    EnableEncryption { name: String },
    /// Turn it off: every node rewritten in the clear, node by node (Project Owner).
    DisableEncryption { name: String },
    /// Each node's store and key hierarchy.
    Status { name: Option<String> },
    /// Compare every node: records and a digest per database; fails when they differ.
    Verify { name: Option<String> },
}

#[derive(Subcommand)]
pub enum EncryptionCommand {
    /// Configure the project's encryption at rest with CMK, reached through an authorized
    /// IAM role (or legacy credentials); checked as Atlas checks it (Project Owner).
    Enable {
        /// Key id, alias or ARN (another account's key: the full ARN).
        #[arg(long)]
        cmk: String,
        /// An authorized role's id (`project authorize-role`).
        #[arg(long)]
        role_id: Option<String>,
        /// Legacy credentials instead of a role; not possible after a role was used.
        #[arg(long)]
        access_key_id: Option<String>,
        #[arg(long, env = "ATREST_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: Option<String>,
        #[arg(long)]
        require_private_networking: bool,
    },
    /// Turn the project's encryption at rest off; refused while a cluster uses it.
    Disable,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackupArg {
    /// Cloud Backups (snapshots).
    Cloud,
    /// Legacy backups: refused with encryption at rest.
    Legacy,
    /// No backups.
    None,
}

impl From<BackupArg> for Backup {
    fn from(backup: BackupArg) -> Self {
        match backup {
            BackupArg::Cloud => Backup::Cloud,
            BackupArg::Legacy => Backup::Legacy,
            BackupArg::None => Backup::None,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Project Owner.
    #[value(alias = "GROUP_OWNER")]
    Owner,
    /// Project Cluster Manager.
    #[value(alias = "GROUP_CLUSTER_MANAGER")]
    ClusterManager,
    /// Project Read Only.
    #[value(alias = "GROUP_READ_ONLY")]
    ReadOnly,
}

impl From<RoleArg> for ProjectRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Owner => ProjectRole::Owner,
            RoleArg::ClusterManager => ProjectRole::ClusterManager,
            RoleArg::ReadOnly => ProjectRole::ReadOnly,
        }
    }
}

/// An organization role, by Atlas's name or atrest's.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OrgRoleArg {
    /// Organization Owner.
    #[value(alias = "ORG_OWNER")]
    OrgOwner,
    /// Organization Project Creator.
    #[value(alias = "ORG_GROUP_CREATOR")]
    ProjectCreator,
    /// Organization Member.
    #[value(alias = "ORG_MEMBER")]
    Member,
}

impl From<OrgRoleArg> for OrgRole {
    fn from(role: OrgRoleArg) -> Self {
        match role {
            OrgRoleArg::OrgOwner => OrgRole::Owner,
            OrgRoleArg::ProjectCreator => OrgRole::ProjectCreator,
            OrgRoleArg::Member => OrgRole::Member,
        }
    }
}

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// The project in Atlas's shape: users, IAM roles, encryptionAtRest.awsKms, clusters.
    Status,
    /// Add a user with a role (Project Owner).
    AddUser {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Authorize an IAM role for Atlas to assume (Project Owner); prints its role id.
    AuthorizeRole {
        #[arg(long)]
        iam_role_arn: String,
        /// The external id its trust policy requires; generated when absent.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Configure or turn off the project's encryption at rest.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
    /// How often `tick` runs the validity check, and when the rotation reminder fires.
    Schedules {
        #[arg(long)]
        check_interval_minutes: Option<u64>,
        #[arg(long)]
        rotation_reminder_days: Option<u64>,
    },
    /// Rotate the CMK: point the project at KEY and re-wrap the master key under it.
    SetKey {
        /// Key id, alias or ARN.
        #[arg(long)]
        key: String,
    },
    /// Programmatic API keys for `atlas serve` (Atlas's Administration API).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Where snapshots live from now on; the existing ones are moved there.
    Backup {
        /// `local` (ROOT/snapshots) or s3://BUCKET/PREFIX (a bucket in the project's
        /// region; credentials from the usual AWS chain).
        #[arg(long)]
        storage: String,
        /// With s3://: an endpoint URL instead of AWS's (moto, MinIO, ...).
        #[arg(long)]
        s3_endpoint: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key with a project role (Project Owner); prints its public key and,
    /// this once, its private key.
    Create {
        /// GROUP_OWNER, GROUP_CLUSTER_MANAGER or GROUP_READ_ONLY (or owner, cluster-manager,
        /// read-only).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An organization role too (the organization's home project only): ORG_OWNER or
        /// ORG_GROUP_CREATOR create projects (`POST /groups`), ORG_MEMBER does not.
        #[arg(long, value_enum)]
        org_role: Option<OrgRoleArg>,
        /// What the key is for.
        #[arg(long, default_value = "created by atrest project api-key create")]
        description: String,
    },
    /// Every API key: public key, role, description (never a private key).
    List,
    /// Delete an API key (Project Owner): it authenticates nothing from now on.
    Delete {
        /// Its public key.
        public_key: String,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Every project of the organization: id, name, directory.
    Projects,
    /// Create a project (no CMK, no cluster yet, as Atlas creates one); use it with
    /// `--root ROOT/projects/ID`.
    CreateProject {
        /// Its name: 1 to 64 letters, digits and -_.(),:&@+'.
        name: String,
    },
    /// Delete a project that has no clusters and no snapshots left (its Project Owner).
    DeleteProject {
        /// Its id.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum AtlasCommand {
    /// Serve the Atlas Administration API (v2) for this root's project: encryption at
    /// rest, cloud provider access, clusters, snapshots, restores, alerts, events, with
    /// digest authentication by API key (`project api-key create`). Plain HTTP on
    /// loopback; /atrest/v1/... holds the emulator's own controls (clock, tick, KMS faults).
    Serve {
        /// Address to listen on; port 0 picks a free one (the first line printed names it).
        #[arg(long, default_value = "127.0.0.1:4600")]
        listen: String,
        /// Allow --listen on an address other than loopback (plain HTTP: digest keeps the
        /// private key off the wire, but not the rest).
        #[arg(long)]
        allow_remote: bool,
    },
}

/// `local`, or `s3://BUCKET/PREFIX` with an optional endpoint.
pub fn snapshot_storage(
    storage: &str,
    s3_endpoint: Option<String>,
) -> Result<SnapshotSettings, String> {
    if storage == "local" {
        return match s3_endpoint {
            Some(_) => Err("--s3-endpoint needs an s3:// storage".into()),
            None => Ok(SnapshotSettings::Local),
        };
    }
    let location: S3Location = storage.parse().map_err(|e: BadS3Location| e.to_string())?;
    Ok(SnapshotSettings::S3(S3Settings {
        location,
        endpoint: s3_endpoint,
    }))
}

#[derive(Subcommand)]
pub enum ClockCommand {
    /// Print emulator time and its offset from real time.
    Show,
    /// Move emulator time forward, e.g. `91d`, `12h`, `30m`.
    Advance { by: String },
}

#[derive(Subcommand)]
pub enum KmsCommand {
    CreateKey {
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "SYMMETRIC_DEFAULT")]
        key_spec: String,
        #[arg(long)]
        key_usage: Option<String>,
        /// A key policy document, or file://PATH.
        #[arg(long)]
        policy: Option<String>,
        /// Tags, as the AWS CLI writes them: TagKey=K,TagValue=V ...
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
        /// Accept a policy that does not let the caller change it again.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
        /// EXTERNAL for a key whose material is imported (it starts PendingImport).
        #[arg(long, default_value = "AWS_KMS")]
        origin: String,
        /// A multi-Region primary key (an mrk- id); the AWS CLI's replicate-key copies it.
        #[arg(long)]
        multi_region: bool,
    },
    DescribeKey {
        #[arg(long)]
        key_id: String,
    },
    ListKeys,
    EnableKey {
        #[arg(long)]
        key_id: String,
    },
    DisableKey {
        #[arg(long)]
        key_id: String,
    },
    ScheduleKeyDeletion {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        pending_window_in_days: Option<u32>,
        /// Delete even though snapshots or stores depend on the key.
        #[arg(long)]
        force: bool,
    },
    CancelKeyDeletion {
        #[arg(long)]
        key_id: String,
    },
    EnableKeyRotation {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        rotation_period_in_days: Option<u32>,
    },
    DisableKeyRotation {
        #[arg(long)]
        key_id: String,
    },
    RotateKeyOnDemand {
        #[arg(long)]
        key_id: String,
    },
    GetKeyRotationStatus {
        #[arg(long)]
        key_id: String,
    },
    ListKeyRotations {
        #[arg(long)]
        key_id: String,
    },
    CreateAlias {
        #[arg(long)]
        alias_name: String,
        #[arg(long)]
        target_key_id: String,
    },
    DeleteAlias {
        #[arg(long)]
        alias_name: String,
    },
    ListAliases,
    /// IAM's CreateAccessKey: a long-term access key of IAM user USER_NAME in the caller's
    /// account (emulated), for a project's legacy credentials or `kms serve`'s clients.
    /// The secret is shown this once.
    CreateAccessKey {
        #[arg(long)]
        user_name: String,
    },
    PutKeyPolicy {
        #[arg(long)]
        key_id: String,
        /// The policy document, or file://PATH.
        #[arg(long)]
        policy: String,
        #[arg(long, default_value = "default", hide = true)]
        policy_name: String,
        /// Accept a policy that does not let the caller change it again.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
    },
    GetKeyPolicy {
        #[arg(long)]
        key_id: String,
        #[arg(long, default_value = "default", hide = true)]
        policy_name: String,
    },
    Encrypt {
        #[arg(long)]
        key_id: String,
        /// Base64, or fileb://PATH for raw bytes.
        #[arg(long)]
        plaintext: String,
        /// k=v,k2=v2 or a JSON object.
        #[arg(long)]
        encryption_context: Option<String>,
    },
    Decrypt {
        /// Base64, or fileb://PATH for raw bytes.
        #[arg(long)]
        ciphertext_blob: String,
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        encryption_context: Option<String>,
    },
    GenerateDataKey(DataKeyArgs),
    GenerateDataKeyWithoutPlaintext(DataKeyArgs),
    GenerateRandom {
        #[arg(long)]
        number_of_bytes: usize,
    },
    UpdateKeyDescription {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        description: String,
    },
    UpdateAlias {
        #[arg(long)]
        alias_name: String,
        #[arg(long)]
        target_key_id: String,
    },
    ListKeyPolicies {
        #[arg(long)]
        key_id: String,
    },
    /// Decrypt a ciphertext and encrypt its plaintext under another key or context, inside
    /// the KMS.
    ReEncrypt {
        /// Base64, or fileb://PATH for raw bytes.
        #[arg(long)]
        ciphertext_blob: String,
        #[arg(long)]
        source_key_id: Option<String>,
        #[arg(long)]
        source_encryption_context: Option<String>,
        #[arg(long)]
        destination_key_id: String,
        #[arg(long)]
        destination_encryption_context: Option<String>,
    },
    TagResource {
        #[arg(long)]
        key_id: String,
        /// TagKey=K,TagValue=V ...
        #[arg(long, num_args = 1.., required = true)]
        tags: Vec<String>,
    },
    UntagResource {
        #[arg(long)]
        key_id: String,
        #[arg(long, num_args = 1.., required = true)]
        tag_keys: Vec<String>,
    },
    ListResourceTags {
        #[arg(long)]
        key_id: String,
    },
    /// The key's last successful cryptographic operation: is it still used?
    GetKeyLastUsage {
        #[arg(long)]
        key_id: String,
    },
    /// Allow GRANTEE the operations on the key (Encrypt, Decrypt, GenerateDataKey,
    /// ReEncryptFrom, DescribeKey, CreateGrant, RetireGrant, ...).
    CreateGrant {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        grantee_principal: String,
        #[arg(long)]
        retiring_principal: Option<String>,
        #[arg(long, num_args = 1.., required = true)]
        operations: Vec<String>,
        /// JSON: {"EncryptionContextSubset": {...}} or {"EncryptionContextEquals": {...}}.
        #[arg(long)]
        constraints: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    ListGrants {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        grant_id: Option<String>,
        #[arg(long)]
        grantee_principal: Option<String>,
    },
    ListRetirableGrants {
        #[arg(long)]
        retiring_principal: String,
    },
    /// Retire a grant by its token, or by --key-id and --grant-id.
    RetireGrant {
        #[arg(long, conflicts_with_all = ["key_id", "grant_id"], required_unless_present = "grant_id")]
        grant_token: Option<String>,
        #[arg(long, requires = "grant_id")]
        key_id: Option<String>,
        #[arg(long, requires = "key_id")]
        grant_id: Option<String>,
    },
    RevokeGrant {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        grant_id: String,
    },
    /// Serve the embedded KMS over AWS's KMS protocol (JSON 1.1) and STS AssumeRole, for
    /// any AWS SDK or the AWS CLI (`--endpoint-url http://ADDR`). Plain HTTP on loopback.
    /// Without access keys (--access-key, or this root's `kms create-access-key`) any
    /// signed request calls as --caller (or the root's principal); with them, signatures
    /// are verified and other keys refused.
    Serve {
        /// Address to listen on; port 0 picks a free one (the first line printed names it).
        #[arg(long, default_value = "127.0.0.1:4599")]
        listen: String,
        /// Allow --listen on an address other than loopback (plain HTTP: anyone who can
        /// reach it can call the KMS).
        #[arg(long)]
        allow_remote: bool,
        /// Requests signed with access key AKID and its SECRET call as PRINCIPAL (an IAM
        /// ARN); repeatable. From the first one on, signatures are verified.
        #[arg(long = "access-key", value_name = "AKID:SECRET=PRINCIPAL")]
        access_keys: Vec<String>,
        /// A role AssumeRole may hand out to principals of its account, requiring
        /// EXTERNAL_ID when given; repeatable. The project's authorized roles are added
        /// with their external ids.
        #[arg(long = "role", value_name = "ROLE_ARN[=EXTERNAL_ID]")]
        roles: Vec<String>,
        /// Apply this seed file before serving (see `kms seed`).
        #[arg(long)]
        seed: Option<String>,
        /// Draw every random byte (key ids, material, nonces) from a generator seeded with
        /// N, so a run replays byte for byte. Predictable keys: for tests only, and only
        /// while no other process uses this root's KMS.
        #[arg(long, value_name = "N")]
        deterministic: Option<u64>,
    },
    /// Add the keys (fixed ids, key material with past versions, state, policy, tags) and
    /// aliases of a seed file (JSON) to the embedded KMS; what is there identically stays.
    Seed {
        /// The seed file.
        file: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KmsKind {
    /// The root's embedded LocalKms.
    Local,
    /// AWS KMS, or any endpoint of its protocol, through the AWS SDK.
    Aws,
}

/// The flags of `generate-data-key` and `generate-data-key-without-plaintext`.
#[derive(clap::Args)]
pub struct DataKeyArgs {
    #[arg(long)]
    pub key_id: String,
    #[arg(long, default_value_t = 32)]
    pub number_of_bytes: usize,
    #[arg(long)]
    pub encryption_context: Option<String>,
}
