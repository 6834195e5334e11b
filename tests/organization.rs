//! An organization of projects: projects created beside the home root share its KMS and
//! clock (from another process too), clusters and projects are deleted without losing
//! what should stay. Through the public API and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "common/cli.rs"]
mod cli;

use std::time::Duration;

use atrest::control::project::{Backup, ClusterSpec, DEFAULT_OWNER};
use atrest::control::{AccessRequest, ControlError, InitOptions, Root};
use atrest::crash;
use atrest::kms::CreateKeyRequest;
use atrest::store::KeyRange;
use cli::json;

fn home() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    root.init(&InitOptions {
        nodes: 2,
        ..InitOptions::default()
    })
    .unwrap();
    (dir, root)
}

fn cluster(name: &str) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        tier: "M10".into(),
        nodes: 2,
        backup: Backup::Cloud,
        serverless: false,
        encrypt: true,
    }
}

#[test]
fn a_created_project_shares_the_home_kms_and_clock_from_any_process() {
    let (dir, home) = home();
    let project = home.create_project(DEFAULT_OWNER, "second", true).unwrap();
    let id = project.require_settings().unwrap().project.id;
    assert!(project.require_settings().unwrap().cmk.is_empty());
    assert!(matches!(
        home.create_project(DEFAULT_OWNER, "second", true),
        Err(ControlError::ProjectExists { .. })
    ));
    assert!(matches!(
        project.create_project(DEFAULT_OWNER, "third", true),
        Err(ControlError::NotOrganizationHome { .. })
    ));

    // A key made through the project (in another process) is the home's KMS's key.
    let made = json(
        project.dir(),
        &["kms", "create-key", "--description", "second"],
    );
    let arn = made["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let listed = home.kms_client(None, None).unwrap().list_keys().unwrap();
    assert!(listed.iter().any(|k| k.key_arn == arn), "{listed:?}");

    // Encryption at rest and an encrypted cluster in the project, with that key.
    let role = project
        .authorize_role(DEFAULT_OWNER, "arn:aws:iam::111122223333:role/second", None)
        .unwrap();
    project
        .configure_encryption(
            DEFAULT_OWNER,
            &arn,
            AccessRequest::Role(role.role_id),
            false,
        )
        .unwrap();
    project
        .create_cluster(DEFAULT_OWNER, cluster("Data"))
        .unwrap();
    project
        .cluster(Some("Data"))
        .unwrap()
        .put("db", b"k", b"v")
        .unwrap();

    // The clock moved through the project (another process) is the home's.
    cli::ok(project.dir(), &["clock", "advance", "3d"]);
    let reopened = Root::open(dir.path()).unwrap();
    assert!(reopened.clock_offset() >= Duration::from_secs(3 * 86_400));
    let ticked = json(dir.path(), &["tick", "--all-projects"]);
    assert_eq!(ticked.as_array().unwrap().len(), 2, "{ticked}");
    assert_eq!(ticked[1]["id"], id.as_str());
    let listed = json(dir.path(), &["org", "projects"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[1]["id"], id.as_str());
    // The same project, opened by its directory.
    let again = Root::open(project.dir()).unwrap();
    let records = again.cluster(Some("Data")).unwrap();
    assert!(records.verify().unwrap().consistent, "every node");
    assert_eq!(records.records("db", KeyRange::All).unwrap().len(), 1);
}

#[test]
fn deleting_a_cluster_or_a_project_loses_only_what_was_asked() {
    let (_dir, home) = home();
    home.create_cluster(DEFAULT_OWNER, cluster("Gone")).unwrap();
    let gone = home.cluster(Some("Gone")).unwrap();
    gone.put("db", b"k", b"old").unwrap();
    drop(gone);
    let snapshot = home.create_snapshot(Some("Gone"), &mut |_| {}).unwrap();
    home.delete_cluster(DEFAULT_OWNER, "Gone", true).unwrap();
    assert!(home.cluster(Some("Gone")).is_err());
    // Kept: it restores into another cluster, every node.
    home.restore_snapshot(&snapshot.id, None, None).unwrap();
    let restored = home.cluster(None).unwrap();
    assert!(restored.verify().unwrap().consistent);
    assert_eq!(
        restored.get("db", b"k").unwrap().as_deref(),
        Some(&b"old"[..])
    );
    drop(restored);
    // A cluster of the same name starts empty on every node.
    home.create_cluster(DEFAULT_OWNER, cluster("Gone")).unwrap();
    let fresh = home.cluster(Some("Gone")).unwrap();
    assert!(fresh.verify().unwrap().consistent);
    assert!(fresh.records("db", KeyRange::All).unwrap().is_empty());
    drop(fresh);
    home.delete_cluster(DEFAULT_OWNER, "Gone", false).unwrap();
    assert!(
        home.snapshots().unwrap().snapshots.is_empty(),
        "deleted with it"
    );

    // A project goes only once it holds nothing.
    let project = home
        .create_project(DEFAULT_OWNER, "short-lived", true)
        .unwrap();
    let id = project.require_settings().unwrap().project.id;
    let key = project
        .kms_client(None, None)
        .unwrap()
        .create_key(CreateKeyRequest::default())
        .unwrap();
    let role = project
        .authorize_role(DEFAULT_OWNER, "arn:aws:iam::111122223333:role/short", None)
        .unwrap();
    project
        .configure_encryption(
            DEFAULT_OWNER,
            &key.arn,
            AccessRequest::Role(role.role_id),
            false,
        )
        .unwrap();
    project
        .create_cluster(DEFAULT_OWNER, cluster("Busy"))
        .unwrap();
    assert!(matches!(
        home.delete_project(DEFAULT_OWNER, &id),
        Err(ControlError::ProjectInUse { .. })
    ));
    project
        .delete_cluster(DEFAULT_OWNER, "Busy", false)
        .unwrap();
    home.delete_project(DEFAULT_OWNER, &id).unwrap();
    assert!(matches!(
        home.member_project(&id),
        Err(ControlError::UnknownProject { .. })
    ));
    assert!(home.member_projects().unwrap().is_empty());
    let home_id = home.require_settings().unwrap().project.id;
    assert!(matches!(
        home.delete_project(DEFAULT_OWNER, &home_id),
        Err(ControlError::OrganizationHomeKept { .. })
    ));
}

/// Runs `command` on an organization `setup` made, once whole to learn its crash points,
/// then once per crash point, stopping there as a SIGKILL would; each time a new root is
/// opened on what the disk holds, `check`ed, and the command run again must leave what the
/// whole run left (`check` again, finished).
fn walk(
    setup: fn(&Root),
    command: fn(&Root) -> Result<(), ControlError>,
    check: fn(&Root, bool),
) -> usize {
    let scratch = || match std::path::Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    };
    let points = {
        let (_dir, root) = home();
        setup(&root);
        let armed = crash::arm(None);
        command(&root).unwrap();
        let points = armed.reached().len() as u64;
        drop(armed);
        check(&root, true);
        points
    };
    for step in 1..=points {
        let dir = scratch();
        {
            let root = Root::open(dir.path()).unwrap();
            root.init(&InitOptions {
                nodes: 2,
                ..InitOptions::default()
            })
            .unwrap();
            setup(&root);
            let armed = crash::arm(Some(step));
            assert!(command(&root).is_err(), "step {step}: said it succeeded");
            assert_eq!(armed.crashed().map(|c| c.step), Some(step));
        }
        let root = Root::open(dir.path()).unwrap();
        check(&root, false);
        // Again: done now, or found done by the crashed run.
        match command(&root) {
            Ok(())
            | Err(ControlError::ProjectExists { .. })
            | Err(ControlError::UnknownProject { .. })
            | Err(ControlError::UnknownCluster { .. }) => {}
            Err(e) => panic!("step {step}: again: {e}"),
        }
        check(&root, true);
    }
    usize::try_from(points).unwrap()
}

fn create(root: &Root) -> Result<(), ControlError> {
    root.create_project(DEFAULT_OWNER, "p", true).map(|_| ())
}

fn one_project(root: &Root) -> Option<String> {
    let projects = root.member_projects().unwrap();
    assert!(projects.len() <= 1, "{projects:?}");
    projects.first().map(|m| {
        let project = root.member_project(&m.id).unwrap();
        assert_eq!(project.require_settings().unwrap().project.name, "p");
        m.id.clone()
    })
}

#[test]
fn every_crash_point_of_creating_and_deleting_a_project() {
    let created = walk(
        |_| {},
        create,
        |root, finished| {
            let found = one_project(root);
            assert!(!finished || found.is_some(), "created once finished");
        },
    );
    let deleted = walk(
        |root| create(root).unwrap(),
        |root| match root.member_projects()?.first() {
            Some(m) => root.delete_project(DEFAULT_OWNER, &m.id),
            None => Err(ControlError::UnknownProject { id: "p".into() }),
        },
        |root, finished| {
            let found = one_project(root);
            assert!(!finished || found.is_none(), "deleted once finished");
        },
    );
    assert!(created >= 3 && deleted >= 2, "{created} {deleted}");
}

#[test]
fn every_crash_point_of_deleting_a_cluster() {
    fn setup(root: &Root) {
        root.create_cluster(DEFAULT_OWNER, cluster("Gone")).unwrap();
        root.cluster(Some("Gone"))
            .unwrap()
            .put("db", b"k", b"v")
            .unwrap();
    }
    let points = walk(
        setup,
        |root| root.delete_cluster(DEFAULT_OWNER, "Gone", false),
        |root, finished| match root.cluster(Some("Gone")) {
            // Not deleted: whole, on every node.
            Ok(cluster) => {
                assert!(!finished, "deleted once finished");
                assert!(cluster.verify().unwrap().consistent);
                assert_eq!(cluster.get("db", b"k").unwrap().as_deref(), Some(&b"v"[..]));
            }
            Err(ControlError::UnknownCluster { .. }) => {
                // Deleted: the name is free, and a new cluster of it starts empty.
                root.create_cluster(DEFAULT_OWNER, cluster("Gone")).unwrap();
                let fresh = root.cluster(Some("Gone")).unwrap();
                assert!(fresh.verify().unwrap().consistent);
                assert!(fresh.records("db", KeyRange::All).unwrap().is_empty());
                drop(fresh);
                root.delete_cluster(DEFAULT_OWNER, "Gone", false).unwrap();
            }
            Err(e) => panic!("{e}"),
        },
    );
    assert!(points >= 2, "{points}");
}
