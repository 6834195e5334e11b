//! The `atrest` command: a thin shell over the library. Each command parses its flags,
//! makes one or two library calls and prints the result as text or, with `--json`, with
//! AWS's field names.

mod demo;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use atrest::control::{
    AwsSettings, ControlError, InitOptions, KmsSettings, Retention, Root, RotationSettings,
    DEFAULT_ACCOUNT, DEFAULT_REGION,
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
        /// With --kms aws: assume this IAM role (STS AssumeRole) before calling KMS.
        #[arg(long)]
        role_arn: Option<String>,
        /// With --role-arn: the external id the role's trust policy requires.
        #[arg(long, requires = "role_arn")]
        external_id: Option<String>,
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
enum ProjectCommand {
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
            master_key_rotation_days,
            data_key_max_uses,
            data_key_max_age_days,
        } => {
            let kms = match kms {
                KmsKind::Local if endpoint.is_some() || role_arn.is_some() => {
                    return Err("--endpoint and --role-arn need --kms aws"
                        .to_string()
                        .into())
                }
                KmsKind::Local => KmsSettings::Local,
                KmsKind::Aws => KmsSettings::Aws(AwsSettings {
                    endpoint,
                    role_arn,
                    external_id,
                }),
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
            };
            let settings = root.init(&options)?;
            out.print(&settings, || {
                format!(
                    "initialised {}\nCMK: {} ({} KMS)",
                    root.dir().display(),
                    settings.cmk,
                    if settings.kms == KmsSettings::Local {
                        "embedded"
                    } else {
                        "AWS"
                    }
                )
            });
            Ok(())
        }
        Command::Kms(command) => {
            let root = Root::open(&cli.root)?;
            let client = root.kms_client(cli.caller.as_deref(), cli.region.as_deref())?;
            kms_command(&root, &client, command, out)
        }
        Command::Snapshot(command) => snapshot_command(&Root::open(&cli.root)?, command, out),
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
        Command::Put { db, key, value } => {
            Ok(Root::open(&cli.root)?
                .open_store()?
                .put(&db, key.as_bytes(), value.as_bytes())?)
        }
        Command::Get { db, key } => {
            let value = Root::open(&cli.root)?
                .open_store()?
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
            .open_store()?
            .delete(&db, key.as_bytes())?),
        Command::Scan { db, prefix } => {
            let store = Root::open(&cli.root)?.open_store()?;
            let range = prefix.map_or(KeyRange::All, |p| KeyRange::Prefix(p.into_bytes()));
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            for record in store.scan(&db, range)? {
                let (k, v) = record?;
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
        } => load(&Root::open(&cli.root)?, &db, count, value_size, out),
        Command::Status => status(&Root::open(&cli.root)?, out),
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
                if let Some(store) = &report.store {
                    lines.push(match store.master_key_rotated_to {
                        Some(v) => format!("store: master key rotated to version {v}"),
                        None => "store: master key not due".into(),
                    });
                    for db in &store.data_keys_rolled {
                        lines.push(format!(
                            "store: database {db:?} rolled over to a new data key"
                        ));
                    }
                }
                lines.join("\n")
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::Master) => {
            let version = Root::open(&cli.root)?.open_store()?.rotate_master_key()?;
            out.print(&json!({ "master_key_version": version }), || {
                format!("master key rotated to version {version}; no record was rewritten")
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::DataKey { db }) => {
            let id = Root::open(&cli.root)?.open_store()?.roll_data_key(&db)?;
            out.print(&json!({ "database": db, "active_data_key": id }), || {
                format!("database {db:?} now writes with data key {id}")
            });
            Ok(())
        }
        Command::Project(ProjectCommand::SetKey { key }) => {
            let settings = Root::open(&cli.root)?.set_key(&key)?;
            out.print(&settings, || {
                format!(
                    "the project's CMK is now {}; the master key is re-wrapped under it",
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

fn snapshot_command(root: &Root, command: SnapshotCommand, out: Output) -> CliResult {
    match command {
        SnapshotCommand::Create => {
            let bar = progress_bar(0, out);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} packing {bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let info = root.create_snapshot(&mut |done| bar.set_position(done))?;
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
            let info = root.restore_snapshot(&id, to.as_deref())?;
            let target = to.unwrap_or_else(|| root.dir().to_path_buf());
            out.print(&info, || format!("restored snapshot {} into {}; its master key is now under the target's CMK and every database writes with a fresh data key", info.id, target.display()));
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

fn load(root: &Root, db: &str, count: u64, value_size: usize, out: Output) -> CliResult {
    use rand::RngCore;
    let store = root.open_store()?;
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

fn status(root: &Root, out: Output) -> CliResult {
    let store = root.open_store()?;
    let status = store.status();
    let settings = root.settings()?;
    let rotation = settings.as_ref().and_then(|s| s.cmk_rotation.clone());
    let cmk = root.kms()?.describe_key(&status.cmk_arn)?;
    out.print(&json!({ "store": status, "cmk": cmk, "cmk_rotation": rotation }), || {
        let mut lines = vec![
            format!("store       {}  (cluster {}, node {})", status.store_id, status.cluster, status.node),
            format!("CMK         {}  [{}]", status.cmk_arn, cmk.key_state),
        ];
        if let Some(r) = &rotation {
            lines.push(format!(
                "            CMK rotation in progress since {} from {} to {}: keep both keys enabled; `atrest project set-key --key {}` finishes it",
                r.started, r.from, r.to, r.to
            ));
        }
        let next = status.master_key_next_rotation.map_or("automatic rotation off".to_string(), |t| format!("next rotation due {t}"));
        lines.push(format!("master key  version {}, created {}, {next}", status.master_key_version, status.master_key_created));
        if status.databases.is_empty() {
            lines.push("databases   none yet".into());
        }
        for db in &status.databases {
            lines.push(format!(
                "database    {:<16} data key {} active since {} ({} days, {} uses); {} key(s), oldest from {}",
                db.database, db.active_data_key, db.active_since, db.active_age_days, db.active_uses, db.data_keys, db.oldest_data_key_created
            ));
        }
        lines.join("\n")
    });
    Ok(())
}
