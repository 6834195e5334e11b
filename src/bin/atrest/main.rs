//! The `atrest` command: a thin shell over the library. Each command parses its flags,
//! makes one library call and prints the result as text or, with `--json`, with AWS's and
//! Atlas's field names. What to type next (hints) is the shell's to say, not the library's.

mod args;
mod cluster;
mod demo;
mod hints;
mod kms;
mod records;
mod render;

use std::process::ExitCode;

use atrest::atlas::{create_api_key, AtlasApi};
use atrest::clock::SystemClock;
use atrest::control::{
    AccessRequest, Applied, AwsSettings, ControlError, InitOptions, KmsSettings, Root,
    RotationSettings, DEFAULT_REGION,
};
use atrest::kms::KmsError;
use atrest::store::KeyRange;
use clap::Parser;
use serde_json::json;

use args::{
    ApiKeyCommand, AtlasCommand, Cli, ClockCommand, Command, EncryptionCommand, KeysCommand,
    KmsKind, OrgCommand, ProjectCommand, RotateCommand,
};
use render::{progress_bar, Output};

/// An error for the user: what failed, and what to do about it.
pub(crate) struct Failure {
    message: String,
    hint: Option<String>,
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        Failure {
            hint: hints::for_control(&e),
            message: e.to_string(),
        }
    }
}

impl From<KmsError> for Failure {
    fn from(e: KmsError) -> Self {
        Failure {
            hint: Some(hints::for_kms(&e).to_string()),
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

pub(crate) type CliResult = Result<(), Failure>;

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

pub(crate) const QUEUED: &str = "queued: the project's encrypted clusters are shut down (key invalid); the change is applied by the next good validity check (`atrest check`)";

fn run(cli: Cli) -> CliResult {
    let out = Output { json: cli.json };
    let open = || Root::open(&cli.root).inspect(|root| root.wait_for_clusters(cli.wait));
    let cluster_name = cli.cluster.as_str();
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
            snapshots,
            s3_endpoint,
        } => {
            let snapshots = args::snapshot_storage(&snapshots, s3_endpoint)?;
            let kms = match kms {
                KmsKind::Local if endpoint.is_some() => {
                    return Err("--endpoint needs --kms aws".to_string().into())
                }
                KmsKind::Local => KmsSettings::Local,
                KmsKind::Aws => KmsSettings::Aws(AwsSettings { endpoint }),
            };
            let root = open()?;
            let settings = root.init(&InitOptions {
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
                snapshots,
            })?;
            out.print(&settings, || render::initialised(&root, &settings, nodes));
            Ok(())
        }
        Command::Kms(command) => {
            let root = open()?;
            let client = root.kms_client(cli.caller.as_deref(), cli.region.as_deref())?;
            kms::run(&root, &client, command, out)
        }
        Command::Atlas(AtlasCommand::Serve {
            listen,
            allow_remote,
        }) => serve_atlas(open()?, &listen, allow_remote),
        Command::Snapshot(command) => {
            cluster::snapshot_command(&open()?, cluster_name, command, out)
        }
        Command::Org(command) => org_command(&open()?, &cli.user, command, out),
        Command::Keys(KeysCommand::Usage { key }) => {
            let usage = open()?.key_usage(&key)?;
            out.print(&usage, || render::key_usage(&usage));
            Ok(())
        }
        Command::Put {
            db,
            key,
            value,
            value_file,
        } => {
            let value = records::value_to_put(value, value_file)?;
            Ok(open()?
                .cluster(Some(cluster_name))?
                .put(&db, key.as_bytes(), &value)?)
        }
        Command::Get {
            db,
            key,
            output,
            base64,
        } => records::get(
            &*open()?.cluster(Some(cluster_name))?,
            &db,
            &key,
            output,
            records::Printing { base64, out },
        ),
        Command::Delete { db, key } => Ok(open()?
            .cluster(Some(cluster_name))?
            .delete(&db, key.as_bytes())?),
        Command::Scan { db, prefix, base64 } => records::scan(
            &*open()?.cluster(Some(cluster_name))?,
            &db,
            prefix.map_or(KeyRange::All, |p| KeyRange::Prefix(p.into_bytes())),
            records::Printing { base64, out },
        ),
        Command::Load {
            db,
            count,
            value_size,
        } => {
            let cluster = open()?.cluster(Some(cluster_name))?;
            let bar = progress_bar(count, out);
            let report = cluster.load(&db, count, value_size, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            out.print(&report, || {
                format!(
                    "loaded {count} records of {value_size} B into {db:?} in {:.2}s ({:.0} records/s)",
                    report.seconds, report.records_per_second
                )
            });
            Ok(())
        }
        Command::Status => cluster::status(&open()?, cluster_name, out),
        Command::Bench {
            value_size,
            count,
            dir,
            report,
        } => render::bench(value_size, count, dir, report, out),
        Command::Clock(ClockCommand::Show) => {
            let root = open()?;
            let (now, offset) = (root.clock().now(), root.clock_offset());
            out.print(
                &json!({ "now": now.to_string(), "offset_seconds": offset.as_secs() }),
                || format!("{now} (real time + {})", humantime::format_duration(offset)),
            );
            Ok(())
        }
        Command::Clock(ClockCommand::Advance { by }) => {
            let by = humantime::parse_duration(&by)
                .map_err(|e| format!("cannot read duration {by:?}: {e} (try 91d, 12h, 30m)"))?;
            let root = open()?;
            root.advance_clock(by)?;
            let now = root.clock().now();
            out.print(&json!({ "now": now.to_string() }), || {
                format!("emulator time is now {now}")
            });
            Ok(())
        }
        Command::Tick {
            all_projects: false,
        } => {
            let report = open()?.tick()?;
            out.print(&report, || report.to_string());
            Ok(())
        }
        Command::Tick { all_projects: true } => {
            let home = open()?;
            let mut projects = vec![(home.require_settings()?.project, home.tick()?)];
            for listed in home.member_projects()? {
                let tick = home.member_project(&listed.id)?.tick()?;
                projects.push((listed.settings.project, tick));
            }
            let reports: Vec<_> = projects
                .iter()
                .map(|(p, tick)| json!({ "id": p.id, "name": p.name, "tick": tick }))
                .collect();
            out.print(&reports, || {
                projects
                    .iter()
                    .map(|(p, tick)| format!("project {} ({}):\n{tick}", p.name, p.id))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::Master) => {
            let applied = open()?.rotate_master_key(Some(cluster_name))?;
            out.print(&applied, || match &applied {
                Applied::Done(versions) => format!(
                    "{cluster_name}: master keys rotated node by node to versions {versions:?}; no record was rewritten"
                ),
                Applied::Queued => QUEUED.to_string(),
            });
            Ok(())
        }
        Command::Rotate(RotateCommand::DataKey { db }) => {
            let ids = open()?.roll_data_key(Some(cluster_name), &db)?;
            out.print(&json!({ "database": db, "active_data_keys": ids }), || {
                format!("database {db:?} now writes with data keys {ids:?} (one per node)")
            });
            Ok(())
        }
        Command::Check => {
            let outcome = open()?.check()?;
            out.print(&outcome, || outcome.to_string());
            Ok(())
        }
        Command::Alerts => {
            let alerts = open()?.alerts()?;
            out.print(&alerts, || render::alerts(&alerts));
            Ok(())
        }
        Command::Cluster(command) => cluster::cluster_command(&open()?, &cli.user, command, out),
        Command::Project(command) => project_command(&open()?, &cli.user, command, out),
    }
}

/// `atlas serve`: the first line printed names the address, as `kms serve` does.
fn serve_atlas(root: Root, listen: &str, allow_remote: bool) -> CliResult {
    let api = AtlasApi::new(root, std::sync::Arc::new(SystemClock))?;
    let group = api.root().require_settings()?.project.id;
    let server = api
        .serve(listen, allow_remote)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!("{e}: --allow-remote"),
            _ => e.to_string(),
        })?;
    println!("listening on {}", server.url());
    eprintln!(
        "Atlas Administration API v2 for project {group} at {}/api/atlas/v2 (digest authentication: atrest project api-key create)",
        server.url()
    );
    server.wait();
    Ok(())
}

fn org_command(root: &Root, user: &str, command: OrgCommand, out: Output) -> CliResult {
    match command {
        OrgCommand::Projects => {
            let home = root.require_settings()?;
            let mut rows = vec![json!({
                "id": home.project.id,
                "name": home.project.name,
                "dir": root.dir(),
            })];
            for m in root.member_projects()? {
                rows.push(json!({ "id": m.id, "name": m.settings.project.name, "dir": m.dir }));
            }
            out.print(&rows, || {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{}  {:<24} {}",
                            r["id"].as_str().unwrap_or_default(),
                            r["name"].as_str().unwrap_or_default(),
                            r["dir"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OrgCommand::DeleteProject { id } => {
            root.delete_project(user, &id)?;
            out.print(&json!({ "deleted": id }), || {
                format!("deleted project {id}")
            });
        }
        OrgCommand::CreateProject { name } => {
            let project = root.create_project(user, &name, true)?;
            let settings = project.require_settings()?;
            let view = json!({ "id": settings.project.id, "name": name, "dir": project.dir() });
            out.print(&view, || {
                format!(
                    "created project {name} ({}) in {}",
                    settings.project.id,
                    project.dir().display()
                )
            });
        }
    }
    Ok(())
}

fn project_command(root: &Root, user: &str, command: ProjectCommand, out: Output) -> CliResult {
    match command {
        ProjectCommand::ApiKey(ApiKeyCommand::List) => {
            let keys = root.api_keys()?;
            out.print(&keys, || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}  {:<22} {}",
                            k.public_key,
                            k.role.atlas_name(),
                            k.description
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ProjectCommand::ApiKey(ApiKeyCommand::Delete { public_key }) => {
            root.delete_api_key(user, &public_key)?;
            out.print(&json!({ "publicKey": public_key }), || {
                format!("deleted API key {public_key}")
            });
        }
        ProjectCommand::ApiKey(ApiKeyCommand::Create {
            role,
            org_role,
            description,
        }) => {
            let roles = (role.into(), org_role.map(Into::into));
            let (key, private) = create_api_key(root, user, roles, &description)?;
            out.print(
                &json!({
                    "id": key.id,
                    "publicKey": key.public_key,
                    "privateKey": private.as_str(),
                    "role": key.role,
                    "orgRole": key.org_role,
                    "desc": key.description,
                }),
                || {
                    let org = key
                        .org_role
                        .map(|r| format!(", {}", r.atlas_name()))
                        .unwrap_or_default();
                    format!(
                        "public key  {}\nprivate key {}  (shown this once)\nrole        {}{org}",
                        key.public_key,
                        private.as_str(),
                        key.role.atlas_name()
                    )
                },
            );
        }
        ProjectCommand::Status => {
            let status = root.project_status()?;
            out.print(&status, || status.to_string());
        }
        ProjectCommand::AddUser { name, role } => {
            root.add_user(user, &name, role.into())?;
            out.print(&json!({ "username": name }), || format!("added {name}"));
        }
        ProjectCommand::AuthorizeRole {
            iam_role_arn,
            external_id,
        } => {
            let role = root.authorize_role(user, &iam_role_arn, external_id)?;
            out.print(&role, || {
                format!(
                    "authorized {} as role id {} (external id {})",
                    role.iam_assumed_role_arn, role.role_id, role.atlas_assumed_role_external_id
                )
            });
        }
        ProjectCommand::Encryption(EncryptionCommand::Enable {
            cmk,
            role_id,
            access_key_id,
            secret_access_key,
            require_private_networking,
        }) => {
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
            root.configure_encryption(user, &cmk, access, require_private_networking)?;
            let status = root.project_status()?;
            out.print(&status.encryption_at_rest, || status.to_string());
        }
        ProjectCommand::Encryption(EncryptionCommand::Disable) => {
            root.disable_project_encryption(user)?;
            out.print(&json!({ "enabled": false }), || {
                "the project's encryption at rest is disabled".into()
            });
        }
        ProjectCommand::Schedules {
            check_interval_minutes,
            rotation_reminder_days,
        } => root.set_schedules(check_interval_minutes, rotation_reminder_days)?,
        ProjectCommand::Backup {
            storage,
            s3_endpoint,
        } => {
            let snapshots = args::snapshot_storage(&storage, s3_endpoint)?;
            let bar = render::spinner("{spinner} moving {msg}: {bytes} ({bytes_per_sec})", out);
            let moved = root.set_snapshot_storage(snapshots.clone(), &mut |id, done| {
                bar.set_message(id.to_string());
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            out.print(
                &json!({ "storage": snapshots.to_string(), "moved": moved }),
                || {
                    format!(
                        "snapshots now live in {snapshots}; {} moved there",
                        moved.len()
                    )
                },
            );
        }
        ProjectCommand::SetKey { key } => {
            let settings = root.set_key(&key)?;
            out.print(&settings, || {
                format!(
                    "the project's CMK is now {}; every node's master key is re-wrapped under it",
                    settings.cmk
                )
            });
        }
    }
    Ok(())
}
