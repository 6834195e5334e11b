//! `atrest atlas serve` as Atlas's API users meet it: the whole encryption-at-rest runbook
//! over HTTP from Python (`requests` with digest authentication), every response checked
//! against Atlas's OpenAPI document (`tests/peers/atlas_runbook.py`); and `curl --digest`,
//! as the README shows it.
//!
//! The OpenAPI document is the one `shared/reference/` holds beside the checkout (or
//! `ATREST_ATLAS_OPENAPI`); a missing one fails the test, saying where it was looked for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::peers::{venv_program, Served};
use serde_json::Value;

fn atrest(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ATREST_ROOT")
        .env_remove("ATREST_USER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "atrest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new API key of `role`: (public, private).
fn api_key(root: &Path, role: &str) -> (String, String) {
    let out: Value = serde_json::from_str(&atrest(
        root,
        &["project", "api-key", "create", "--role", role, "--json"],
    ))
    .unwrap();
    (
        out["publicKey"].as_str().unwrap().to_string(),
        out["privateKey"].as_str().unwrap().to_string(),
    )
}

fn openapi_document() -> PathBuf {
    let path = std::env::var_os("ATREST_ATLAS_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/reference/atlas-admin-api-v2.openapi.yml")
        });
    assert!(
        path.exists(),
        "Atlas's OpenAPI document is not at {}: set ATREST_ATLAS_OPENAPI to a copy of the Administration API v2 document",
        path.display()
    );
    path
}

#[test]
fn the_runbook_passes_over_http_and_every_response_matches_atlas_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    atrest(&root, &["init"]);
    let (owner, owner_secret) = api_key(&root, "GROUP_OWNER");
    let (reader, reader_secret) = api_key(&root, "GROUP_READ_ONLY");
    let served = Served::start_atlas(&root);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/atlas_runbook.py");
    let out = Command::new(venv_program("python"))
        .arg(script)
        .arg(&served.url)
        .arg(&root)
        .arg(env!("CARGO_BIN_EXE_atrest"))
        .arg(openapi_document())
        .args([&owner, &owner_secret, &reader, &reader_secret])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("runbook ok"), "{stdout}");
    println!("{stdout}");
    // The private halves are nowhere in the root: only their digest verifiers are.
    for file in common::files_under(&root) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&owner_secret) && !text.contains(&reader_secret),
            "{} holds a private key",
            file.display()
        );
    }
}

/// `curl --digest` as the README runs it: status code and body.
fn curl(url: &str, key: Option<(&str, &str)>, extra: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}"]);
    if let Some((public, private)) = key {
        command.args(["--digest", "--user", &format!("{public}:{private}")]);
    }
    let out = command
        .args(["--header", "Accept: application/vnd.atlas.2023-01-01+json"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn curl_digest_reads_and_a_read_only_key_cannot_patch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    atrest(&root, &["init"]);
    let (owner, owner_secret) = api_key(&root, "owner");
    let (reader, reader_secret) = api_key(&root, "read-only");
    let served = Served::start_atlas(&root);
    let groups = format!("{}/api/atlas/v2/groups", served.url);

    let (status, body) = curl(&groups, None, &[]);
    assert_eq!(status, 401, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], 401);
    let (status, _) = curl(&groups, Some((&owner, "wrong")), &[]);
    assert_eq!(status, 401);

    let (status, body) = curl(&groups, Some((&reader, &reader_secret)), &[]);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let group = listed["results"][0]["id"].as_str().unwrap().to_string();

    let ear = format!(
        "{}/api/atlas/v2/groups/{group}/encryptionAtRest",
        served.url
    );
    let patch = [
        "-X",
        "PATCH",
        "--header",
        "Content-Type: application/vnd.atlas.2023-01-01+json",
        "--data",
        r#"{"awsKms":{"requirePrivateNetworking":true}}"#,
    ];
    let (status, body) = curl(&ear, Some((&reader, &reader_secret)), &patch);
    assert_eq!(status, 403, "{body}");
    let (status, body) = curl(&ear, Some((&owner, &owner_secret)), &patch);
    assert_eq!(status, 200, "{body}");
    let ear: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ear["awsKms"]["requirePrivateNetworking"], true);
    assert_eq!(ear["awsKms"]["valid"], true);
    // The CLI sees what the API changed.
    let status: Value =
        serde_json::from_str(&atrest(&root, &["project", "status", "--json"])).unwrap();
    assert_eq!(
        status["encryptionAtRest"]["awsKms"]["requirePrivateNetworking"],
        true
    );
}

#[test]
fn api_keys_need_a_project_owner_and_keep_no_private_half() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    atrest(&root, &["init"]);
    atrest(
        &root,
        &["project", "add-user", "carol", "--role", "cluster-manager"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(&root)
        .args([
            "--user", "carol", "project", "api-key", "create", "--role", "owner",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Project Owner"), "{stderr}");
    let text = atrest(
        &root,
        &[
            "project",
            "api-key",
            "create",
            "--role",
            "GROUP_CLUSTER_MANAGER",
        ],
    );
    assert!(
        text.contains("private key") && text.contains("GROUP_CLUSTER_MANAGER"),
        "{text}"
    );
}
