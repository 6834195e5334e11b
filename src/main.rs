//! The `atrest` command: a thin shell over the library. Each command parses its flags,
//! makes one or two library calls and prints the result as text or, with `--json`, with
//! AWS's field names.

mod demo;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use atrest::control::project::{
    Backup, ClusterSpec, ProjectRole, DEFAULT_CLUSTER, DEFAULT_NODES, DEFAULT_OWNER,
};
use atrest::control::{
    AccessRequest, Applied, AwsSettings, CheckOutcome, ControlError, InitOptions, KmsSettings,
    ProjectStatus, Retention, Root, RotationSettings, DEFAULT_ACCOUNT, DEFAULT_REGION,
};
use atrest::kms::wire::{Endpoint, Identities};
use atrest::kms::{
    CreateKeyRequest, EncryptionContext, KeySpec, KeyUsage, KmsError, KmsServer, LocalKmsClient,
};
use atrest::store::{KeyRange, WriteBatch};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "atrest",
    version,
    about = "Encryption at rest with customer-managed keys: a RocksDB store under a strict AWS KMS emulator"
)]
struct Cli {
    /// The atrest root directory.
    #[arg(
        long,
        env = "ATREST_ROOT",
        default_value = "./atrest-data",
        global = true
    )]
    root: PathBuf,
    /// Print machine-readable JSON (AWS's field names for KMS calls).
    #[arg(long, global = true)]
    json: bool,
    /// Call the KMS as this IAM principal (arn:aws:iam::ACCOUNT:role/NAME); default: the root's.
    #[arg(long, env = "ATREST_CALLER", global = true)]
    caller: Option<String>,
    /// The KMS region to call; default: the root's (us-east-1).
    #[arg(long, env = "ATREST_REGION", global = true)]
    region: Option<String>,
    /// The cluster data and rotation commands act on.
    #[arg(long, env = "ATREST_CLUSTER", global = true, default_value = DEFAULT_CLUSTER)]
    cluster: String,
    /// The project user making control-plane changes (Project Owner actions need one).
    #[arg(long, env = "ATREST_USER", global = true, default_value = DEFAULT_OWNER)]
    user: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Store VALUE under KEY in database DB.
    Put {
        db: String,
        key: String,
        value: String,
    },
    /// Print the value under KEY in database DB.
    Get { db: String, key: String },
    /// Delete KEY from database DB.
    Delete { db: String, key: String },
    /// Print the records of DB in key order.
    Scan {
        db: String,
        #[arg(long)]
        prefix: Option<String>,
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
        #[arg(long, default_value_t = 1024)]
        value_size: usize,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Scratch directory (removed afterwards); default: a new one under the system temp dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Emulator time: real time plus an offset kept in the root.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Apply what emulator time has made due (KMS key deletions and rotations).
    Tick,
}

#[derive(Subcommand)]
enum RotateCommand {
    /// A new master key wrapped by the CMK; every data key re-wrapped; no record rewritten.
    Master,
    /// A new data key for new writes to DB; the old one keeps decrypting.
    DataKey { db: String },
}

#[derive(Subcommand)]
enum SnapshotCommand {
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
enum KeysCommand {
    /// Which snapshots and stores depend on KEY, and whether it is safe to delete.
    Usage { key: String },
}

#[derive(Subcommand)]
enum ClusterCommand {
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
    /// Turn encryption at rest on: every node rewritten, node by node (Project Owner).
    EnableEncryption { name: String },
    /// Turn it off: every node rewritten in the clear, node by node (Project Owner).
    DisableEncryption { name: String },
    /// Each node's store and key hierarchy.
    Status { name: Option<String> },
}

#[derive(Subcommand)]
enum EncryptionCommand {
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
enum BackupArg {
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
enum RoleArg {
    /// Project Owner.
    Owner,
    /// Project Cluster Manager.
    ClusterManager,
}

impl From<RoleArg> for ProjectRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Owner => ProjectRole::Owner,
            RoleArg::ClusterManager => ProjectRole::ClusterManager,
        }
    }
}

#[derive(Subcommand)]
enum ProjectCommand {
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
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Print emulator time and its offset from real time.
    Show,
    /// Move emulator time forward, e.g. `91d`, `12h`, `30m`.
    Advance { by: String },
}

#[derive(Subcommand)]
enum KmsCommand {
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
    PutKeyPolicy {
        #[arg(long)]
        key_id: String,
        /// The policy document, or file://PATH.
        #[arg(long)]
        policy: String,
        #[arg(long, default_value = "default", hide = true)]
        policy_name: String,
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
    GenerateDataKey {
        #[arg(long)]
        key_id: String,
        #[arg(long, default_value_t = 32)]
        number_of_bytes: usize,
        #[arg(long)]
        encryption_context: Option<String>,
    },
    /// Serve the embedded KMS over AWS's KMS protocol (JSON 1.1) and STS AssumeRole, for
    /// any AWS SDK or the AWS CLI (`--endpoint-url http://ADDR`). Plain HTTP, signatures
    /// not verified: for tests on 127.0.0.1.
    Serve {
        /// Address to listen on; port 0 picks a free one (the first line printed names it).
        #[arg(long, default_value = "127.0.0.1:4599")]
        listen: String,
        /// Requests signed with access key AKID call as PRINCIPAL (an IAM ARN); repeatable.
        /// Other keys call as --caller, or the root's principal.
        #[arg(long = "access-key", value_name = "AKID=PRINCIPAL")]
        access_keys: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KmsKind {
    /// The root's embedded LocalKms.
    Local,
    /// AWS KMS, or any endpoint of its protocol, through the AWS SDK.
    Aws,
}

/// An error for the user: what failed, and what to do about it.
struct Failure {
    message: String,
    hint: Option<&'static str>,
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        Failure {
            hint: e.kms_error().map(KmsError::hint),
            message: e.to_string(),
        }
    }
}

impl From<KmsError> for Failure {
    fn from(e: KmsError) -> Self {
        Failure {
            hint: Some(e.hint()),
            message: e.to_string(),
        }
    }
}

impl From<atrest::store::StoreError> for Failure {
    fn from(e: atrest::store::StoreError) -> Self {
        ControlError::from(e).into()
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            hint: None,
        }
    }
}

type CliResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(hint) = failure.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Demo { keep } => demo::run(keep),
        Command::Init {
            account,
            kms,
            cmk,
            endpoint,
            role_arn,
            external_id,
            nodes,
            master_key_rotation_days,
            data_key_max_uses,
            data_key_max_age_days,
        } => {
            let kms = match kms {
                KmsKind::Local if endpoint.is_some() => {
                    return Err("--endpoint needs --kms aws".to_string().into())
                }
                KmsKind::Local => KmsSettings::Local,
                KmsKind::Aws => KmsSettings::Aws(AwsSettings { endpoint }),
            };
            let root = Root::open(&cli.root)?;
            let options = InitOptions {
                account,
                region: cli.region.unwrap_or_else(|| DEFAULT_REGION.to_string()),
                rotation: RotationSettings {
                    master_key_rotation_days,
                    data_key_max_uses,
                    data_key_max_age_days,
                },
                kms,
                cmk,
                role: role_arn.map(|arn| (arn, external_id)),
                nodes,
            };
            let settings = root.init(&options)?;
            out.print(&settings, || {
                format!(
                    "initialised {}\nCMK: {} ({} KMS)\nproject {} with encryption at rest; cluster {DEFAULT_CLUSTER} (M10, {nodes} nodes, encrypted)",
                    root.dir().display(),
                    settings.cmk,
                    if settings.kms == KmsSettings::Local {
                        "embedded"
                    } else {
                        "AWS"
                    },
                    settings.project.id,
                )
            });
            Ok(())
        }
        Command::Kms(command) => {
            let root = Root::open(&cli.root)?;
            let client = root.kms_client(cli.caller.as_deref(), cli.region.as_deref())?;
            kms_command(&root, &client, command, out)
        }
        Command::Snapshot(command) => {
            snapshot_command(&Root::open(&cli.root)?, &cli.cluster, command, out)
        }
        Command::Keys(KeysCommand::Usage { key }) => {
            let usage = Root::open(&cli.root)?.key_usage(&key)?;
            out.print(&usage, || {
                let mut lines = vec![format!("{}", usage.key_arn)];
                for s in &usage.snapshots {
                    lines.push(format!("  snapshot {} taken {}", s.id, s.created));
                }
                for store in &usage.stores {
                    lines.push(format!("  store {store}"));
                }
                if usage.rotation_in_progress {
                    lines.push("  a CMK rotation in progress still needs it".into());
                }
                lines.push(if usage.safe_to_delete {
                    "safe to delete: nothing depends on it".into()
                } else {
                    "NOT safe to delete: the above would become unreadable".into()
                });
                lines.join("\n")
            });
            Ok(())
        }
        Command::Put { db, key, value } => Ok(Root::open(&cli.root)?
            .cluster(Some(&cli.cluster))?
            .put(&db, key.as_bytes(), value.as_bytes())?),
        Command::Get { db, key } => {
            let value = Root::open(&cli.root)?
                .cluster(Some(&cli.cluster))?
                .get(&db, key.as_bytes())?;
            match value {
                Some(v) => {
                    out.print(
                        &json!({ "key": key, "value": String::from_utf8_lossy(&v) }),
                        || String::from_utf8_lossy(&v).into_owned(),
                    );
                    Ok(())
                }
                None => Err(format!("no key {key:?} in database {db:?}").into()),
            }
        }
        Command::Delete { db, key } => Ok(Root::open(&cli.root)?
            .cluster(Some(&cli.cluster))?
            .delete(&db, key.as_bytes())?),
        Command::Scan { db, prefix } => {
            let cluster = Root::open(&cli.root)?.cluster(Some(&cli.cluster))?;
            let range = prefix.map_or(KeyRange::All, |p| KeyRange::Prefix(p.into_bytes()));
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            for (k, v) in cluster.scan(&db, range)? {
                let (k, v) = (String::from_utf8_lossy(&k), String::from_utf8_lossy(&v));
                let line = if out.json {
                    json!({ "key": k, "value": v }).to_string()
                } else {
                    format!("{k}\t{v}")
                };
                if writeln!(lock, "{line}").is_err() {
                    break; // stdout closed (e.g. piped into head)
                }
            }
            Ok(())
        }
        Command::Load {
            db,
            count,
            value_size,
        } => load(
            &Root::open(&cli.root)?,
            &cli.cluster,
            &db,
            count,
            value_size,
            out,
        ),
        Command::Status => status(&Root::open(&cli.root)?, &cli.cluster, out),
        Command::Bench {
            value_size,
            count,
            dir,
        } => bench(value_size, count, dir, out),
        Command::Clock(ClockCommand::Show) => {
            let root = Root::open(&cli.root)?;
            let now = root.clock().now();
            let offset = root.clock_offset();
            out.print(
                &json!({ "now": now.to_string(), "offset_seconds": offset.as_secs() }),
                || format!("{now} (real time + {})", humantime::format_duration(offset)),
            );
            Ok(())
        }
        Command::Clock(ClockCommand::Advance { by }) => {
            let by = humantime::parse_duration(&by)
                .map_err(|e| format!("cannot read duration {by:?}: {e} (try 91d, 12h, 30m)"))?;
            let mut root = Root::open(&cli.root)?;
            root.advance_clock(by)?;
            let now = root.clock().now();
            out.print(&json!({ "now": now.to_string() }), || {
                format!("emulator time is now {now}")
            });
            Ok(())
        }
        Command::Tick => {
            let report = Root::open(&cli.root)?.tick()?;
            out.print(&report, || {
                let mut lines = vec![format!(
                    "KMS: applied {} due event(s) (deletions, material rotations)",
                    report.kms_events
                )];
                if let Some(check) = &report.check {
                    lines.push(format!("validity check: {}", describe_check(check)));
                }
                for (cluster, node, v) in &report.master_keys_rotated {
                    lines.push(format!(
                        "{cluster} {node}: master key rotated to version {v}"
                    ));
                }
                for (cluster, node, db) in &report.data_keys_rolled {
                    lines.push(format!(
                        "{cluster} {node}: database {db:?} rolled over to a new data key"
                    ));
                }
                for alert in &report.alerts {
                    lines.push(format!("ALERT {}: {}", alert.event_type_name, alert.text));
                }
                for down in &report.clusters_down {
                    lines.push(format!("down: {down}"));
                }
                for id in &report.snapshots_deleted {
                    lines.push(format!("retention: deleted snapshot {id}"));
                }
                lines.join("\n")
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::Master) => {
            let applied = Root::open(&cli.root)?.rotate_master_key(Some(&cli.cluster))?;
            out.print(&applied, || match &applied {
                Applied::Done(versions) => format!(
                    "{}: master keys rotated node by node to versions {versions:?}; no record was rewritten",
                    cli.cluster
                ),
                Applied::Queued => QUEUED.to_string(),
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::DataKey { db }) => {
            let ids = Root::open(&cli.root)?
                .cluster(Some(&cli.cluster))?
                .each_store(|store| store.roll_data_key(&db))?;
            out.print(&json!({ "database": db, "active_data_keys": ids }), || {
                format!("database {db:?} now writes with data keys {ids:?} (one per node)")
            });
            Ok(())
        }
        Command::Check => {
            let outcome = Root::open(&cli.root)?.check()?;
            out.print(&outcome, || describe_check(&outcome));
            Ok(())
        }
        Command::Alerts => {
            let alerts = Root::open(&cli.root)?.alerts()?;
            out.print(&alerts, || {
                if alerts.is_empty() {
                    return "no alerts".into();
                }
                alerts
                    .iter()
                    .map(|a| format!("{}  {}  {}", a.created, a.event_type_name, a.text))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Cluster(command) => {
            cluster_command(&Root::open(&cli.root)?, &cli.user, command, out)
        }
        Command::Project(ProjectCommand::Status) => {
            let status = Root::open(&cli.root)?.project_status()?;
            out.print(&status, || project_text(&status));
            Ok(())
        }
        Command::Project(ProjectCommand::AddUser { name, role }) => {
            Root::open(&cli.root)?.add_user(&cli.user, &name, role.into())?;
            out.print(&json!({ "username": name }), || format!("added {name}"));
            Ok(())
        }
        Command::Project(ProjectCommand::AuthorizeRole {
            iam_role_arn,
            external_id,
        }) => {
            let role =
                Root::open(&cli.root)?.authorize_role(&cli.user, &iam_role_arn, external_id)?;
            out.print(&role, || {
                format!(
                    "authorized {} as role id {} (external id {})",
                    role.iam_assumed_role_arn, role.role_id, role.atlas_assumed_role_external_id
                )
            });
            Ok(())
        }
        Command::Project(ProjectCommand::Encryption(EncryptionCommand::Enable {
            cmk,
            role_id,
            access_key_id,
            secret_access_key,
            require_private_networking,
        })) => {
            let access = match (role_id, access_key_id, secret_access_key) {
                (Some(role), None, None) => AccessRequest::Role(role),
                (None, Some(id), secret) => AccessRequest::Credentials {
                    access_key_id: id,
                    secret_access_key: zeroize::Zeroizing::new(secret.unwrap_or_default()),
                },
                _ => {
                    return Err(
                        "give --role-id, or --access-key-id with --secret-access-key"
                            .to_string()
                            .into(),
                    )
                }
            };
            let root = Root::open(&cli.root)?;
            root.configure_encryption(&cli.user, &cmk, access, require_private_networking)?;
            let status = root.project_status()?;
            out.print(&status.encryption_at_rest, || project_text(&status));
            Ok(())
        }
        Command::Project(ProjectCommand::Encryption(EncryptionCommand::Disable)) => {
            Root::open(&cli.root)?.disable_project_encryption(&cli.user)?;
            out.print(&json!({ "enabled": false }), || {
                "the project's encryption at rest is disabled".into()
            });
            Ok(())
        }
        Command::Project(ProjectCommand::Schedules {
            check_interval_minutes,
            rotation_reminder_days,
        }) => {
            Root::open(&cli.root)?.set_schedules(check_interval_minutes, rotation_reminder_days)?;
            Ok(())
        }
        Command::Project(ProjectCommand::SetKey { key }) => {
            let settings = Root::open(&cli.root)?.set_key(&key)?;
            out.print(&settings, || {
                format!(
                    "the project's CMK is now {}; every node's master key is re-wrapped under it",
                    settings.cmk
                )
            });
            Ok(())
        }
    }
}

#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn print<T: Serialize>(self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", text());
        }
    }
}

fn read_document(arg: &str) -> Result<String, Failure> {
    match arg.strip_prefix("file://") {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}").into())
        }
        None => Ok(arg.to_string()),
    }
}

fn read_blob(arg: &str, flag: &str) -> Result<Vec<u8>, Failure> {
    match arg.strip_prefix("fileb://") {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}").into()),
        None => BASE64
            .decode(arg.trim())
            .map_err(|e| format!("{flag} must be base64 (or fileb://PATH): {e}").into()),
    }
}

/// `k=v,k2=v2` or a JSON object of strings, as the AWS CLI accepts.
fn parse_context(arg: Option<&str>) -> Result<EncryptionContext, Failure> {
    let Some(arg) = arg else {
        return Ok(EncryptionContext::new());
    };
    if arg.trim_start().starts_with('{') {
        return serde_json::from_str(arg).map_err(|e| {
            format!("--encryption-context is not a JSON object of strings: {e}").into()
        });
    }
    arg.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    format!("--encryption-context pair {pair:?} is not key=value").into()
                })
        })
        .collect()
}

fn kms_command(
    root: &Root,
    client: &LocalKmsClient,
    command: KmsCommand,
    out: Output,
) -> CliResult {
    match command {
        KmsCommand::CreateKey {
            description,
            key_spec,
            key_usage,
            policy,
        } => {
            let request = CreateKeyRequest {
                description,
                key_spec: KeySpec::parse(&key_spec)?,
                key_usage: key_usage.as_deref().map(KeyUsage::parse).transpose()?,
                policy: policy.as_deref().map(read_document).transpose()?,
            };
            let meta = client.create_key(request)?;
            out.print(&json!({ "KeyMetadata": meta }), || {
                format!("{}\t{}", meta.key_id, meta.arn)
            });
        }
        KmsCommand::DescribeKey { key_id } => {
            let m = client.describe_key(&key_id)?;
            out.print(&json!({ "KeyMetadata": m }), || {
                let mut lines = vec![
                    format!("KeyId:        {}", m.key_id),
                    format!("Arn:          {}", m.arn),
                    format!("KeyState:     {}", m.key_state),
                    format!("KeySpec:      {}", m.key_spec),
                    format!("Description:  {}", m.description),
                    format!("CreationDate: {}", m.creation_date),
                ];
                if let Some(d) = m.deletion_date {
                    lines.push(format!("DeletionDate: {d}"));
                }
                if let Some(v) = &m.current_key_material_id {
                    lines.push(format!("KeyMaterial:  version {v}"));
                }
                lines.join("\n")
            });
        }
        KmsCommand::ListKeys => {
            let keys = client.list_keys()?;
            out.print(&json!({ "Keys": keys }), || {
                keys.iter()
                    .map(|k| format!("{}\t{}", k.key_id, k.key_arn))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::EnableKey { key_id } => client.enable_key(&key_id)?,
        KmsCommand::DisableKey { key_id } => client.disable_key(&key_id)?,
        KmsCommand::ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
            force,
        } => {
            // Through the root, which knows which snapshots and stores depend on the key.
            let date =
                root.schedule_key_deletion(client, &key_id, pending_window_in_days, force)?;
            let meta = client.describe_key(&key_id)?;
            out.print(
                &json!({ "KeyId": meta.arn, "DeletionDate": date.as_secs(), "KeyState": meta.key_state, "PendingWindowInDays": meta.pending_deletion_window_in_days }),
                || format!("{} will be deleted on {date}", meta.arn),
            );
        }
        KmsCommand::CancelKeyDeletion { key_id } => {
            client.cancel_key_deletion(&key_id)?;
            let meta = client.describe_key(&key_id)?;
            out.print(&json!({ "KeyId": meta.arn }), || {
                format!(
                    "{} is no longer scheduled for deletion; it is Disabled (enable-key to use it)",
                    meta.arn
                )
            });
        }
        KmsCommand::EnableKeyRotation {
            key_id,
            rotation_period_in_days,
        } => client.enable_key_rotation(&key_id, rotation_period_in_days)?,
        KmsCommand::DisableKeyRotation { key_id } => client.disable_key_rotation(&key_id)?,
        KmsCommand::RotateKeyOnDemand { key_id } => {
            let id = client.rotate_key_on_demand(&key_id)?;
            out.print(&json!({ "KeyId": id }), || id.clone());
        }
        KmsCommand::GetKeyRotationStatus { key_id } => {
            let s = client.get_key_rotation_status(&key_id)?;
            out.print(&s, || {
                match (s.rotation_period_in_days, s.next_rotation_date) {
                    (Some(p), Some(n)) => format!("rotation enabled every {p} days; next on {n}"),
                    _ => "rotation disabled".into(),
                }
            });
        }
        KmsCommand::ListKeyRotations { key_id } => {
            let rotations = client.list_key_rotations(&key_id)?;
            out.print(&json!({ "Rotations": rotations }), || {
                rotations
                    .iter()
                    .map(|r| format!("{}\t{:?}", r.rotation_date, r.rotation_type))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::CreateAlias {
            alias_name,
            target_key_id,
        } => client.create_alias(&alias_name, &target_key_id)?,
        KmsCommand::DeleteAlias { alias_name } => client.delete_alias(&alias_name)?,
        KmsCommand::ListAliases => {
            let aliases = client.list_aliases()?;
            out.print(&json!({ "Aliases": aliases }), || {
                aliases
                    .iter()
                    .map(|a| format!("{}\t{}", a.alias_name, a.target_key_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KmsCommand::PutKeyPolicy { key_id, policy, .. } => {
            client.put_key_policy(&key_id, &read_document(&policy)?)?
        }
        KmsCommand::GetKeyPolicy { key_id, .. } => {
            let policy = client.get_key_policy(&key_id)?;
            out.print(
                &json!({ "Policy": policy, "PolicyName": "default" }),
                || policy.clone(),
            );
        }
        KmsCommand::Encrypt {
            key_id,
            plaintext,
            encryption_context,
        } => {
            let plaintext = zeroize::Zeroizing::new(read_blob(&plaintext, "--plaintext")?);
            let e = client.encrypt(
                &key_id,
                &plaintext,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let blob = BASE64.encode(&e.ciphertext_blob);
            out.print(&json!({ "CiphertextBlob": blob, "KeyId": e.key_arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }), || blob.clone());
        }
        KmsCommand::Decrypt {
            ciphertext_blob,
            key_id,
            encryption_context,
        } => {
            let blob = read_blob(&ciphertext_blob, "--ciphertext-blob")?;
            let d = client.decrypt(
                key_id.as_deref(),
                &blob,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let plaintext = zeroize::Zeroizing::new(BASE64.encode(&d.plaintext));
            out.print(&json!({ "Plaintext": *plaintext, "KeyId": d.key_arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }), || plaintext.to_string());
        }
        KmsCommand::Serve {
            listen,
            access_keys,
        } => {
            let mut identities = Identities::new(client.caller().principal())?;
            for mapping in &access_keys {
                let (akid, principal) = mapping
                    .split_once('=')
                    .ok_or_else(|| format!("--access-key {mapping:?} is not AKID=PRINCIPAL_ARN"))?;
                identities.map(akid, principal)?;
            }
            let endpoint = Endpoint::new(root.local_kms().clone(), identities);
            let server = KmsServer::start(&listen, endpoint).map_err(|e| e.to_string())?;
            println!("listening on {}", server.url());
            let _ = std::io::stdout().flush();
            server.wait();
        }
        KmsCommand::GenerateDataKey {
            key_id,
            number_of_bytes,
            encryption_context,
        } => {
            let k = client.generate_data_key(
                &key_id,
                number_of_bytes,
                &parse_context(encryption_context.as_deref())?,
            )?;
            let plaintext = zeroize::Zeroizing::new(BASE64.encode(&k.plaintext));
            let blob = BASE64.encode(&k.ciphertext_blob);
            out.print(
                &json!({ "Plaintext": *plaintext, "CiphertextBlob": blob, "KeyId": k.key_arn }),
                || format!("{}\t{}", *plaintext, blob),
            );
        }
    }
    Ok(())
}

fn snapshot_command(
    root: &Root,
    cluster: &str,
    command: SnapshotCommand,
    out: Output,
) -> CliResult {
    match command {
        SnapshotCommand::Create => {
            let bar = progress_bar(0, out);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} packing {bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let info = root.create_snapshot(Some(cluster), &mut |done| bar.set_position(done))?;
            bar.finish_and_clear();
            out.print(&info, || {
                format!(
                    "snapshot {} ({} bytes) under CMK {}",
                    info.id, info.size, info.cmk_arn
                )
            });
        }
        SnapshotCommand::List => {
            let all = root.snapshots()?;
            out.print(&all, || {
                all.iter()
                    .map(|s| format!("{}\t{}\t{} B\t{}", s.id, s.created, s.size, s.cmk_arn))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SnapshotCommand::Delete { id } => root.delete_snapshot(&id)?,
        SnapshotCommand::Verify { id } => {
            let info = root.verify_snapshot(&id)?;
            out.print(&info, || {
                format!(
                    "snapshot {} is whole: every chunk authenticates under CMK {}",
                    info.id, info.cmk_arn
                )
            });
        }
        SnapshotCommand::Retention { keep, max_age } => {
            let max_age_days = max_age
                .map(|a| humantime::parse_duration(&a).map(|d| d.as_secs().div_ceil(86_400)))
                .transpose()
                .map_err(|e| format!("cannot read --max-age: {e} (try 30d)"))?;
            let deleted = root.set_retention(Retention { keep, max_age_days })?;
            out.print(&json!({ "deleted": deleted }), || {
                format!("retention applied: {} snapshot(s) deleted", deleted.len())
            });
        }
        SnapshotCommand::Restore { id, to } => {
            let info = root.restore_snapshot(&id, to.as_deref(), Some(cluster))?;
            let target = to.unwrap_or_else(|| root.dir().to_path_buf());
            out.print(&info, || format!("restored snapshot {} into every node of {cluster} in {}; each node's master key is new, under the target's CMK, and every database writes with a fresh data key", info.id, target.display()));
        }
    }
    Ok(())
}

fn bench(value_size: usize, count: u64, dir: Option<PathBuf>, out: Output) -> CliResult {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("atrest-bench-{}", std::process::id()))
    });
    let options = atrest::bench::BenchOptions {
        count,
        value_size,
        dir,
    };
    let report = atrest::bench::run(&options, &mut |step| {
        if !out.json {
            eprintln!("running {step}");
        }
    })
    .map_err(|e| e.to_string())?;
    out.print(&report, || {
        let mut lines = vec![
            format!(
                "{count} records of {value_size} B, AES-256-GCM on {}",
                report.backend
            ),
            format!(
                "{:<16} {:>14} {:>10} {:>14} {:>10} {:>7}",
                "workload", "plain ops/s", "MB/s", "encrypted ops/s", "MB/s", "ratio"
            ),
        ];
        for w in &report.workloads {
            lines.push(format!(
                "{:<16} {:>14.0} {:>10.1} {:>14.0} {:>10.1} {:>7.3}",
                w.name,
                w.plaintext.ops_per_sec,
                w.plaintext.mb_per_sec,
                w.encrypted.ops_per_sec,
                w.encrypted.mb_per_sec,
                w.ratio
            ));
        }
        lines.push(format!(
            "master-key rotation: {:.1} ms with {count} records stored",
            report.master_key_rotation_ms
        ));
        lines.push(format!(
            "snapshot: {:.1} MB, created at {:.0} MB/s, restored at {:.0} MB/s",
            report.snapshot_mb,
            report.snapshot_create_mb_per_sec,
            report.snapshot_restore_mb_per_sec
        ));
        lines.push(format!("peak memory (RSS): {:.0} MB", report.peak_rss_mb));
        lines.join("\n")
    });
    Ok(())
}

fn progress_bar(len: u64, out: Output) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if out.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

fn load(
    root: &Root,
    cluster: &str,
    db: &str,
    count: u64,
    value_size: usize,
    out: Output,
) -> CliResult {
    use rand::RngCore;
    let store = root.cluster(Some(cluster))?;
    let bar = progress_bar(count, out);
    let started = std::time::Instant::now();
    let mut value = vec![0u8; value_size];
    let mut written = 0;
    while written < count {
        let n = (count - written).min(1000);
        let mut batch = WriteBatch::new();
        for i in written..written + n {
            rand::rng().fill_bytes(&mut value);
            batch.put(db, format!("key{i:012}"), value.clone());
        }
        store.write(&batch)?;
        written += n;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let rate = count as f64 / secs.max(1e-9);
    out.print(&json!({ "records": count, "value_size": value_size, "seconds": secs, "records_per_second": rate }), || {
        format!("loaded {count} records of {value_size} B into {db:?} in {secs:.2}s ({rate:.0} records/s)")
    });
    Ok(())
}

fn status(root: &Root, cluster: &str, out: Output) -> CliResult {
    let nodes = root.cluster(Some(cluster))?.status()?;
    let settings = root.settings()?;
    let rotation = settings.as_ref().and_then(|s| s.cmk_rotation.clone());
    let cmk = match settings.as_ref() {
        Some(s) if nodes.iter().any(|n| n.encrypted) => Some(root.kms()?.describe_key(&s.cmk)?),
        _ => None,
    };
    out.print(&json!({ "cluster": cluster, "nodes": nodes, "cmk": cmk, "cmk_rotation": rotation }), || {
        let mut lines = vec![format!("cluster     {cluster}, {} node(s)", nodes.len())];
        if let Some(cmk) = &cmk {
            lines.push(format!("CMK         {}  [{}]", cmk.arn, cmk.key_state));
        }
        if let Some(r) = &rotation {
            lines.push(format!(
                "            CMK rotation in progress since {} from {} to {}: keep both keys enabled; `atrest project set-key --key {}` finishes it",
                r.started, r.from, r.to, r.to
            ));
        }
        for node in &nodes {
            let Some(status) = &node.keys else {
                lines.push(format!("{:<11} not encrypted ({})", node.node, node.path.display()));
                continue;
            };
            let next = status.master_key_next_rotation.map_or("automatic rotation off".to_string(), |t| format!("next rotation due {t}"));
            lines.push(format!("{:<11} store {}, master key version {}, created {}, {next}", node.node, status.store_id, status.master_key_version, status.master_key_created));
            for db in &status.databases {
                lines.push(format!(
                    "            database {:<16} data key {} active since {} ({} days, {} uses); {} key(s), oldest from {}",
                    db.database, db.active_data_key, db.active_since, db.active_age_days, db.active_uses, db.data_keys, db.oldest_data_key_created
                ));
            }
        }
        lines.join("\n")
    });
    Ok(())
}

const QUEUED: &str = "queued: the project's encrypted clusters are shut down (key invalid); the change is applied by the next good validity check (`atrest check`)";

pub(crate) fn describe_check(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::NotConfigured => "encryption at rest is not configured; nothing to check".into(),
        CheckOutcome::Valid { restored, applied } if restored.is_empty() => {
            format!("valid: DescribeKey, Encrypt and Decrypt succeeded ({applied} queued change(s) applied)")
        }
        CheckOutcome::Valid { restored, applied } => format!(
            "valid again: clusters {restored:?} are back (every node's master key unwrapped again); {applied} queued change(s) applied"
        ),
        CheckOutcome::Invalid { reason, shut_down } => {
            format!("INVALID: {reason}; clusters {shut_down:?} are shut down, nothing is lost")
        }
        CheckOutcome::Unreachable { reason } => {
            format!("KMS unreachable: {reason}; alert raised, nothing shut down")
        }
    }
}

fn project_text(status: &ProjectStatus) -> String {
    let kms = &status.encryption_at_rest.aws_kms;
    let mut lines = vec![
        format!(
            "project     {} ({}), region {}, owner {}",
            status.name, status.id, status.region, status.owner
        ),
        format!(
            "encryption  enabled {}, valid {}, CMK {}, {}",
            kms.enabled,
            kms.valid,
            kms.customer_master_key_id,
            match (&kms.role_id, &kms.access_key_id) {
                (Some(role), _) => format!("role {role}"),
                (_, Some(key)) => format!("credentials {key}"),
                _ => "no access configured".into(),
            }
        ),
    ];
    for user in &status.users {
        lines.push(format!(
            "user        {} ({})",
            user.username,
            user.role.atlas_name()
        ));
    }
    for role in &status.cloud_provider_access_roles {
        lines.push(format!(
            "IAM role    {} {} (external id {})",
            role.role_id, role.iam_assumed_role_arn, role.atlas_assumed_role_external_id
        ));
    }
    for c in &status.clusters {
        lines.push(format!(
            "cluster     {} {} {} node(s), backup {:?}{}, {}",
            c.spec.name,
            c.spec.tier,
            c.spec.nodes,
            c.spec.backup,
            if c.spec.serverless {
                ", serverless"
            } else {
                ""
            },
            if c.spec.encrypt {
                "encrypted"
            } else {
                "not encrypted"
            }
        ));
    }
    if let Some(reason) = &status.shut_down {
        lines.push(format!("SHUT DOWN   {reason}"));
    }
    for change in &status.queued_changes {
        lines.push(format!("queued      {change:?}"));
    }
    lines.join("\n")
}

fn cluster_command(root: &Root, user: &str, command: ClusterCommand, out: Output) -> CliResult {
    match command {
        ClusterCommand::Create {
            name,
            tier,
            nodes,
            backup,
            serverless,
            encrypt,
        } => {
            let spec = ClusterSpec {
                name: name.clone(),
                tier,
                nodes,
                backup: backup.into(),
                serverless,
                encrypt,
            };
            let applied = root.create_cluster(user, spec)?;
            out.print(&applied, || match applied {
                Applied::Done(()) => format!("created cluster {name} ({nodes} node(s))"),
                Applied::Queued => QUEUED.to_string(),
            });
        }
        ClusterCommand::EnableEncryption { name } => rewrite(root, user, &name, true, out)?,
        ClusterCommand::DisableEncryption { name } => rewrite(root, user, &name, false, out)?,
        ClusterCommand::Status { name } => {
            status(root, &name.unwrap_or_else(|| DEFAULT_CLUSTER.into()), out)?
        }
    }
    Ok(())
}

fn rewrite(root: &Root, user: &str, name: &str, encrypt: bool, out: Output) -> CliResult {
    let bar = progress_bar(0, out);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {pos} records")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let applied = root.set_cluster_encryption(user, name, encrypt, &mut |node, records| {
        bar.set_message(format!("rewriting node-{node}"));
        bar.set_position(records);
    })?;
    bar.finish_and_clear();
    let what = if encrypt { "encrypted" } else { "decrypted" };
    out.print(&applied, || match applied {
        Applied::Done(()) => {
            format!("cluster {name}: every node rewritten ({what}), node by node; nothing lost")
        }
        Applied::Queued => QUEUED.to_string(),
    });
    Ok(())
}
