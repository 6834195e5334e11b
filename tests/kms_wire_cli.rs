//! The `atrest` CLI on a project whose KMS is AWS KMS's protocol (`init --kms aws`) served
//! by `atrest kms serve`: puts, rotations, snapshots and restores through the wire; an
//! unreachable KMS; legacy access keys and an assumed role with its external id, as the
//! key policy sees them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::peers::Served;

const ROOT: &str = "arn:aws:iam::111122223333:root";

fn atrest(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("AWS_PROFILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    out
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIATESTROOT"),
    ("AWS_SECRET_ACCESS_KEY", "not-checked"),
];

#[test]
fn the_cli_runs_a_project_on_aws_kms_through_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let (kms_root, project, restored) = (
        dir.path().join("kms"),
        dir.path().join("project"),
        dir.path().join("restored"),
    );
    let created = ok(atrest(&kms_root, &[], &["--json", "kms", "create-key"]));
    let cmk: serde_json::Value = serde_json::from_str(&created).unwrap();
    let cmk = cmk["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let served = Served::start(&kms_root, &[]);
    let url = served.url.as_str();
    ok(atrest(
        &project,
        &CREDENTIALS,
        &["init", "--kms", "aws", "--endpoint", url, "--cmk", &cmk],
    ));
    let settings = std::fs::read_to_string(project.join("atrest.json")).unwrap();
    assert!(settings.contains("\"type\": \"aws\"") && !settings.contains("not-checked"));
    ok(atrest(&project, &CREDENTIALS, &["put", "db", "k", "v"]));
    ok(atrest(&project, &CREDENTIALS, &["rotate", "master"]));
    let snapshot: serde_json::Value = serde_json::from_str(&ok(atrest(
        &project,
        &CREDENTIALS,
        &["--json", "snapshot", "create"],
    )))
    .unwrap();
    let id = snapshot["id"].as_str().unwrap();
    ok(atrest(
        &project,
        &CREDENTIALS,
        &["put", "db", "k", "changed"],
    ));
    ok(atrest(
        &project,
        &CREDENTIALS,
        &[
            "snapshot",
            "restore",
            id,
            "--to",
            restored.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        ok(atrest(&restored, &CREDENTIALS, &["get", "db", "k"])).trim(),
        "v"
    );
    assert_eq!(
        ok(atrest(&project, &CREDENTIALS, &["get", "db", "k"])).trim(),
        "changed"
    );
    // The embedded KMS of an AWS project is not the project's: `atrest kms` says so.
    let refused = atrest(&project, &CREDENTIALS, &["kms", "list-keys"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("AWS KMS"));
    // A disabled CMK comes back through the wire as DisabledException, with its hint.
    ok(atrest(
        &kms_root,
        &[],
        &["kms", "disable-key", "--key-id", &cmk],
    ));
    let failed = atrest(&project, &CREDENTIALS, &["put", "db", "k2", "v"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && stderr.contains("DisabledException"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_kms_raises_an_alert_and_shuts_nothing_down() {
    let dir = tempfile::tempdir().unwrap();
    let (kms_root, project) = (dir.path().join("kms"), dir.path().join("project"));
    let created = ok(atrest(&kms_root, &[], &["--json", "kms", "create-key"]));
    let cmk: serde_json::Value = serde_json::from_str(&created).unwrap();
    let cmk = cmk["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let listen = format!("127.0.0.1:{}", common::peers::free_port());
    let role = ["--role", "arn:aws:iam::111122223333:role/atlas=ext-1"];
    let served = Served::start_on(&kms_root, &listen, &role);
    let url = served.url.clone();
    let run = |args: &[&str]| atrest(&project, &CREDENTIALS, args);
    ok(run(&[
        "init",
        "--kms",
        "aws",
        "--endpoint",
        &url,
        "--cmk",
        &cmk,
        "--nodes",
        "2",
    ]));
    ok(run(&["put", "db", "k", "v"]));
    // Credentials-based access may be re-set; once a role is used there is no way back.
    let enable = ["project", "encryption", "enable", "--cmk", cmk.as_str()];
    let credentials = [
        "--access-key-id",
        "AKIAOTHER",
        "--secret-access-key",
        "s3cret",
    ];
    ok(run(&[&enable[..], &credentials[..]].concat()));
    let authorized: serde_json::Value = serde_json::from_str(&ok(run(&[
        "--json",
        "project",
        "authorize-role",
        "--iam-role-arn",
        "arn:aws:iam::111122223333:role/atlas",
        "--external-id",
        "ext-1",
    ])))
    .unwrap();
    let role_id = authorized["roleId"].as_str().unwrap();
    ok(run(&[&enable[..], &["--role-id", role_id][..]].concat()));
    let back = run(&[&enable[..], &credentials[..]].concat());
    assert!(String::from_utf8_lossy(&back.stderr).contains("cannot be done"));
    let status: serde_json::Value =
        serde_json::from_str(&ok(run(&["--json", "project", "status"]))).unwrap();
    assert_eq!(status["encryptionAtRest"]["awsKms"]["roleId"], role_id);
    assert!(!ok(run(&["--json", "project", "status"])).contains("s3cret"));

    drop(served);
    let check = ok(run(&["check"]));
    assert!(check.contains("no verdict on the key"), "{check}");
    assert!(ok(run(&["alerts"])).contains("AWS_KMS_UNREACHABLE"));
    let status: serde_json::Value =
        serde_json::from_str(&ok(run(&["--json", "project", "status"]))).unwrap();
    assert_eq!(status["shutDown"], serde_json::Value::Null);
    assert_eq!(status["encryptionAtRest"]["awsKms"]["valid"], true);
    // A node (re)started while the KMS is unreachable cannot unwrap its master key.
    let down = run(&["get", "db", "k"]);
    assert!(String::from_utf8_lossy(&down.stderr).contains("ServiceUnavailable"));
    let _served = Served::start_on(&kms_root, &listen, &role);
    assert!(ok(run(&["check"])).contains("valid"));
    assert_eq!(ok(run(&["get", "db", "k"])).trim(), "v");
}

/// Gives `cmk` (in the root at `kms_root`) a policy that trusts the account and denies
/// `principal` the `action`.
fn deny_through_the_cli(kms_root: &Path, cmk: &str, principal: &str, action: &str) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": principal}, "Action": action, "Resource": "*"}
        ]
    })
    .to_string();
    ok(atrest(
        kms_root,
        &[],
        &[
            "kms",
            "put-key-policy",
            "--key-id",
            cmk,
            "--policy",
            &policy,
        ],
    ));
}

#[test]
fn legacy_credentials_are_what_the_kms_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (kms_root, project) = (dir.path().join("kms"), dir.path().join("project"));
    let json = |out: Output| -> serde_json::Value { serde_json::from_str(&ok(out)).unwrap() };
    let cmk = json(atrest(&kms_root, &[], &["--json", "kms", "create-key"]))["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let access_key = |user: &str| {
        let key = json(atrest(
            &kms_root,
            &[],
            &["--json", "kms", "create-access-key", "--user-name", user],
        ));
        let field = |name: &str| key["AccessKey"][name].as_str().unwrap().to_string();
        (field("AccessKeyId"), field("SecretAccessKey"))
    };
    let (operator_id, operator_secret) = access_key("operator");
    let (legacy_id, legacy_secret) = access_key("legacy");
    // The embedded account has access keys: the server verifies every request.
    let served = Served::start(&kms_root, &[]);
    let url = served.url.as_str();
    let operator = [
        ("AWS_ACCESS_KEY_ID", operator_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", operator_secret.as_str()),
    ];
    let run = |args: &[&str]| atrest(&project, &operator, args);
    ok(run(&[
        "init",
        "--kms",
        "aws",
        "--endpoint",
        url,
        "--cmk",
        &cmk,
    ]));
    ok(run(&["put", "db", "k", "v"]));
    let enable = |secret: &str| {
        run(&[
            "project",
            "encryption",
            "enable",
            "--cmk",
            &cmk,
            "--access-key-id",
            &legacy_id,
            "--secret-access-key",
            secret,
        ])
    };
    let refused = enable("not-the-secret");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("InvalidSignature"),
        "{stderr}"
    );
    ok(enable(&legacy_secret));
    // The secret is kept apart, owner-only, and never shown.
    let kept = project.join("credentials.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    for shown in [
        std::fs::read_to_string(project.join("atrest.json")).unwrap(),
        ok(run(&["--json", "project", "status"])),
    ] {
        assert!(!shown.contains(&legacy_secret));
    }
    assert!(ok(run(&["check"])).starts_with("valid"));
    // The KMS sees the legacy user, not the operator: denying that user is a verdict.
    deny_through_the_cli(
        &kms_root,
        &cmk,
        "arn:aws:iam::111122223333:user/legacy",
        "kms:Decrypt",
    );
    let check = ok(run(&["check"]));
    assert!(
        check.contains("INVALID") && check.contains("user/legacy"),
        "{check}"
    );
}

#[test]
fn the_cli_assumes_a_role_with_an_external_id() {
    let dir = tempfile::tempdir().unwrap();
    let (kms_root, project) = (dir.path().join("kms"), dir.path().join("project"));
    let created = ok(atrest(&kms_root, &[], &["--json", "kms", "create-key"]));
    let cmk: serde_json::Value = serde_json::from_str(&created).unwrap();
    let cmk = cmk["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    deny_through_the_cli(
        &kms_root,
        &cmk,
        "arn:aws:iam::111122223333:user/nobody",
        "kms:*",
    );
    let served = Served::start(
        &kms_root,
        &[
            "--access-key",
            "AKIANOBODY0000000:nobody-secret=arn:aws:iam::111122223333:user/nobody",
            "--role",
            "arn:aws:iam::111122223333:role/atlas=x1",
        ],
    );
    let url = served.url.as_str();
    let role = [
        "--role-arn",
        "arn:aws:iam::111122223333:role/atlas",
        "--external-id",
        "x1",
    ];
    let nobody = [
        ("AWS_ACCESS_KEY_ID", "AKIANOBODY0000000"),
        ("AWS_SECRET_ACCESS_KEY", "nobody-secret"),
    ];
    let mut args = vec!["init", "--kms", "aws", "--endpoint", url, "--cmk", &cmk];
    args.extend(role);
    ok(atrest(&project, &nobody, &args));
    ok(atrest(&project, &nobody, &["put", "db", "k", "v"]));
    assert_eq!(
        ok(atrest(&project, &nobody, &["get", "db", "k"])).trim(),
        "v"
    );
    // Without the role, the user's own identity is what the policy sees: denied.
    let direct = dir.path().join("direct");
    let refused = atrest(
        &direct,
        &nobody,
        &["init", "--kms", "aws", "--endpoint", url, "--cmk", &cmk],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("AccessDenied"),
        "{stderr}"
    );
}
