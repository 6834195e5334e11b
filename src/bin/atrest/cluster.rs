//! `atrest cluster ...`, `status` and `snapshot ...`: a project's clusters and their backups.

use atrest::control::project::{ClusterSpec, DEFAULT_CLUSTER};
use std::time::Instant;

use atrest::control::{Applied, Retention, Root};
use atrest::store::SnapshotInfo;
use serde::Serialize;
use serde_json::json;

use crate::args::{ClusterCommand, SnapshotCommand};
use crate::render::{self, spinner, Output};
use crate::{CliResult, QUEUED};

/// A snapshot written or read, and how long it took: what `--json` prints.
#[derive(Serialize)]
struct Transferred<'a> {
    #[serde(flatten)]
    info: &'a SnapshotInfo,
    seconds: f64,
}

impl<'a> Transferred<'a> {
    fn new(info: &'a SnapshotInfo, started: Instant) -> Self {
        Transferred {
            info,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

pub fn snapshot_command(
    root: &Root,
    cluster: &str,
    command: SnapshotCommand,
    out: Output,
) -> CliResult {
    match command {
        SnapshotCommand::Create => {
            let bar = spinner(
                "{spinner} sealing and writing {bytes} ({bytes_per_sec})",
                out,
            );
            let started = Instant::now();
            let info = root.create_snapshot(Some(cluster), &mut |done| bar.set_position(done))?;
            bar.finish_and_clear();
            out.print(&Transferred::new(&info, started), || {
                format!(
                    "snapshot {} ({} bytes) under CMK {}, at {}",
                    info.id, info.size, info.cmk_arn, info.location
                )
            });
        }
        SnapshotCommand::List => {
            let listing = root.snapshots()?;
            out.print(&listing, || render::snapshots(&listing));
        }
        SnapshotCommand::Delete { id } => root.delete_snapshot(&id)?,
        SnapshotCommand::Verify { id } => {
            let bar = spinner("{spinner} reading {bytes} ({bytes_per_sec})", out);
            let started = Instant::now();
            let info =
                root.verify_snapshot_with_progress(&id, &mut |done| bar.set_position(done))?;
            bar.finish_and_clear();
            out.print(&Transferred::new(&info, started), || {
                format!(
                    "snapshot {} is whole: every chunk authenticates under CMK {}",
                    info.id, info.cmk_arn
                )
            });
        }
        SnapshotCommand::Retention {
            keep,
            max_age,
            force,
        } => {
            let max_age_days = max_age
                .map(|a| humantime::parse_duration(&a).map(|d| d.as_secs().div_ceil(86_400)))
                .transpose()
                .map_err(|e| format!("cannot read --max-age: {e} (try 30d)"))?;
            let deleted = root.set_retention(Retention { keep, max_age_days }, force)?;
            out.print(&json!({ "deleted": deleted }), || {
                format!("retention applied: {} snapshot(s) deleted", deleted.len())
            });
        }
        SnapshotCommand::Restore { id, to } => {
            let bar = spinner("{spinner} reading {bytes} ({bytes_per_sec})", out);
            let started = Instant::now();
            let info = root.restore_snapshot_with_progress(
                &id,
                to.as_deref(),
                Some(cluster),
                &mut |done| bar.set_position(done),
            )?;
            bar.finish_and_clear();
            let target = to.unwrap_or_else(|| root.dir().to_path_buf());
            out.print(&Transferred::new(&info, started), || format!("restored snapshot {} into every node of {cluster} in {}; each node's master key is new, under the target's CMK, and every database writes with a fresh data key", info.id, target.display()));
        }
    }
    Ok(())
}

pub fn status(root: &Root, cluster: &str, out: Output) -> CliResult {
    let status = root.cluster_status(Some(cluster))?;
    out.print(&status, || {
        let mut text = status.to_string();
        if let Some(r) = &status.cmk_rotation {
            text.push_str(&format!(
                "\n            finish the CMK rotation with `atrest project set-key --key {}`",
                r.to
            ));
        }
        text
    });
    Ok(())
}

pub fn cluster_command(root: &Root, user: &str, command: ClusterCommand, out: Output) -> CliResult {
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
        ClusterCommand::Delete {
            name,
            retain_snapshots,
        } => {
            root.delete_cluster(user, &name, retain_snapshots)?;
            out.print(&json!({ "deleted": name }), || {
                format!("deleted cluster {name}")
            });
        }
        ClusterCommand::EnableEncryption { name } => rewrite(root, user, &name, true, out)?,
        ClusterCommand::DisableEncryption { name } => rewrite(root, user, &name, false, out)?,
        ClusterCommand::Status { name } => {
            status(root, name.as_deref().unwrap_or(DEFAULT_CLUSTER), out)?
        }
        ClusterCommand::Verify { name } => {
            let cluster = root.cluster(Some(name.as_deref().unwrap_or(DEFAULT_CLUSTER)))?;
            let verification = cluster.verify()?;
            out.print(&verification, || verification.to_string());
            if !verification.consistent {
                return Err(
                    format!("the nodes of {} differ (see above)", verification.cluster).into(),
                );
            }
        }
    }
    Ok(())
}

fn rewrite(root: &Root, user: &str, name: &str, encrypt: bool, out: Output) -> CliResult {
    let bar = spinner("{msg} {pos} records", out);
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
