//! `atrest atlas serve` as Atlas's API users meet it: the whole encryption-at-rest runbook
//! over HTTP from Python (`requests` with digest authentication), every response checked
//! against Atlas's OpenAPI document (`tests/peers/atlas_runbook.py`); `curl --digest`, as
//! the README shows it; and random authenticated requests, none of which may panic or
//! fail as an internal error.
//!
//! The OpenAPI document is the one `shared/reference/` holds beside the checkout (or
//! `ATREST_ATLAS_OPENAPI`); a missing one fails the test, saying where it was looked for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "common/cli.rs"]
mod cli;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;

use atrest::atlas::{authorization, create_api_key, AtlasApi};
use atrest::clock::SystemClock;
use atrest::control::project::ProjectRole;
use atrest::control::{InitOptions, Root};
use atrest::http::{Handler, Request};
use cli::{atrest, json, ok};
use common::peers::{venv_program, Served};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// A new API key of `role`: (public, private).
fn api_key(root: &Path, role: &str) -> (String, String) {
    let out = json(root, &["project", "api-key", "create", "--role", role]);
    (
        out["publicKey"].as_str().unwrap().to_string(),
        out["privateKey"].as_str().unwrap().to_string(),
    )
}

/// A new project with an owner's and a reader's API key, served by `atlas serve`.
struct ServedProject {
    _dir: tempfile::TempDir,
    root: PathBuf,
    owner: (String, String),
    reader: (String, String),
    served: Served,
}

fn served_project() -> ServedProject {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    ok(&root, &["init"]);
    let owner = api_key(&root, "GROUP_OWNER");
    let reader = api_key(&root, "read-only");
    let served = Served::start_atlas(&root);
    ServedProject {
        _dir: dir,
        root,
        owner,
        reader,
        served,
    }
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
    let ServedProject {
        _dir: dir,
        root,
        owner: (owner, owner_secret),
        reader: (reader, reader_secret),
        served,
    } = served_project();
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
    let ServedProject {
        _dir,
        root,
        owner: (owner, owner_secret),
        reader: (reader, reader_secret),
        served,
    } = served_project();
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
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["errorCode"],
        "USER_UNAUTHORIZED"
    );
    let (status, body) = curl(&ear, Some((&owner, &owner_secret)), &patch);
    assert_eq!(status, 200, "{body}");
    let ear: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ear["awsKms"]["requirePrivateNetworking"], true);
    assert_eq!(ear["awsKms"]["valid"], true);
    // The CLI sees what the API changed.
    let status = json(&root, &["project", "status"]);
    assert_eq!(
        status["encryptionAtRest"]["awsKms"]["requirePrivateNetworking"],
        true
    );
    // A deleted key authenticates nothing.
    let listed = ok(&root, &["project", "api-key", "list"]);
    assert!(
        listed.contains(&reader) && listed.contains("GROUP_READ_ONLY"),
        "{listed}"
    );
    ok(&root, &["project", "api-key", "delete", &reader]);
    assert!(!ok(&root, &["project", "api-key", "list"]).contains(&reader));
    let (status, _) = curl(&groups, Some((&reader, &reader_secret)), &[]);
    assert_eq!(status, 401);

    // Emulator time another process moves is the server's at its next request: 91 days
    // on, the server's tick raises the CMK rotation reminder.
    ok(&root, &["clock", "advance", "91d"]);
    let tick = format!("{}/atrest/v1/tick", served.url);
    let (status, body) = curl(&tick, Some((&owner, &owner_secret)), &["-X", "POST"]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("AWS_ENCRYPTION_KEY_NEEDS_ROTATION"), "{body}");
}

#[test]
fn api_keys_need_a_project_owner_and_keep_no_private_half() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    ok(&root, &["init"]);
    ok(
        &root,
        &["project", "add-user", "carol", "--role", "cluster-manager"],
    );
    let out = atrest(
        &root,
        &[
            "--user", "carol", "project", "api-key", "create", "--role", "owner",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Project Owner"), "{stderr}");
    let text = ok(
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

/// The operations the random requests call (method and path shape, `{}` filled from
/// [`segment`], the group's place first); another method on them now and then.
const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/atlas/v2/groups"),
    ("POST", "/api/atlas/v2/groups"),
    ("GET", "/api/atlas/v2/groups/{}"),
    ("GET", "/api/atlas/v2/groups/{}/apiKeys"),
    ("POST", "/api/atlas/v2/groups/{}/apiKeys"),
    ("PATCH", "/api/atlas/v2/groups/{}/apiKeys/{}"),
    ("DELETE", "/api/atlas/v2/groups/{}/apiKeys/{}"),
    ("GET", "/api/atlas/v2/groups/{}/cloudProviderAccess"),
    ("POST", "/api/atlas/v2/groups/{}/cloudProviderAccess"),
    ("GET", "/api/atlas/v2/groups/{}/cloudProviderAccess/{}"),
    ("PATCH", "/api/atlas/v2/groups/{}/cloudProviderAccess/{}"),
    (
        "DELETE",
        "/api/atlas/v2/groups/{}/cloudProviderAccess/{}/{}",
    ),
    ("GET", "/api/atlas/v2/groups/{}/encryptionAtRest"),
    ("PATCH", "/api/atlas/v2/groups/{}/encryptionAtRest"),
    (
        "GET",
        "/api/atlas/v2/groups/{}/encryptionAtRest/{}/privateEndpoints",
    ),
    (
        "POST",
        "/api/atlas/v2/groups/{}/encryptionAtRest/{}/privateEndpoints",
    ),
    (
        "GET",
        "/api/atlas/v2/groups/{}/encryptionAtRest/{}/privateEndpoints/{}",
    ),
    (
        "DELETE",
        "/api/atlas/v2/groups/{}/encryptionAtRest/{}/privateEndpoints/{}",
    ),
    ("GET", "/api/atlas/v2/groups/{}/clusters"),
    ("POST", "/api/atlas/v2/groups/{}/clusters"),
    ("GET", "/api/atlas/v2/groups/{}/clusters/{}"),
    ("PATCH", "/api/atlas/v2/groups/{}/clusters/{}"),
    (
        "GET",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/snapshots",
    ),
    (
        "POST",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/snapshots",
    ),
    (
        "GET",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/snapshots/{}",
    ),
    (
        "DELETE",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/snapshots/{}",
    ),
    (
        "GET",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/restoreJobs",
    ),
    (
        "POST",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/restoreJobs",
    ),
    (
        "GET",
        "/api/atlas/v2/groups/{}/clusters/{}/backup/restoreJobs/{}",
    ),
    ("GET", "/api/atlas/v2/groups/{}/alerts"),
    ("GET", "/api/atlas/v2/groups/{}/alerts/{}"),
    ("PATCH", "/api/atlas/v2/groups/{}/alerts/{}"),
    ("GET", "/api/atlas/v2/groups/{}/alerts/{}/alertConfigs"),
    ("GET", "/api/atlas/v2/groups/{}/alertConfigs"),
    ("POST", "/api/atlas/v2/groups/{}/alertConfigs"),
    ("GET", "/api/atlas/v2/groups/{}/alertConfigs/{}"),
    ("PUT", "/api/atlas/v2/groups/{}/alertConfigs/{}"),
    ("PATCH", "/api/atlas/v2/groups/{}/alertConfigs/{}"),
    ("DELETE", "/api/atlas/v2/groups/{}/alertConfigs/{}"),
    ("GET", "/api/atlas/v2/groups/{}/alertConfigs/{}/alerts"),
    ("GET", "/api/atlas/v2/groups/{}/events"),
    ("GET", "/api/atlas/v2/groups/{}/events/{}"),
    ("GET", "/atrest/v1/status"),
    ("GET", "/atrest/v1/alerts"),
    ("POST", "/atrest/v1/clock"),
    ("POST", "/atrest/v1/tick"),
    ("POST", "/atrest/v1/check"),
    ("PUT", "/atrest/v1/kmsFaults"),
    ("DELETE", "/atrest/v1/kmsFaults"),
    ("GET", "/api/atlas/v2/{}"),
    ("GET", "/{}"),
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Cluster0".to_string()),
        Just("AWS".to_string()),
        Just("AZURE".to_string()),
        Just("status".to_string()),
        Just("tick".to_string()),
        Just("kmsFaults".to_string()),
        "[0-9a-f]{24}",
        "[ -~]{0,12}",
    ]
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "awsKms",
        "enabled",
        "customerMasterKeyID",
        "region",
        "roleId",
        "accessKeyID",
        "secretAccessKey",
        "requirePrivateNetworking",
        "valid",
        "azureKeyVault",
        "name",
        "providerName",
        "iamAssumedRoleArn",
        "regionName",
        "encryptionAtRestProvider",
        "backupEnabled",
        "replicationSpecs",
        "clusterType",
        "paused",
        "snapshotId",
        "deliveryType",
        "targetClusterName",
        "targetGroupId",
        "description",
        "advance",
        "fault",
        "failNext",
        "probability",
        "orgId",
        "eventTypeName",
        "threshold",
        "notifications",
        "matchers",
        "acknowledgedUntil",
        "desc",
        "roles",
        "unacknowledgeAlert",
    ]);
    let value = prop::sample::select(vec![
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1e300),
        json!("AWS"),
        json!("US_EAST_1"),
        json!("M10"),
        json!("M0"),
        json!("NONE"),
        json!("automated"),
        json!("15m"),
        json!("AWS_ENCRYPTION_KEY_NEEDS_ROTATION"),
        json!({"operator": "GREATER_THAN", "threshold": 3, "units": "DAYS"}),
        json!([{"typeName": "GROUP", "intervalMin": 5}]),
        json!([{}]),
        json!(null),
        json!([]),
        json!({}),
        json!([{"regionConfigs": [{"providerName": "AWS", "regionName": "US_EAST_1",
            "electableSpecs": {"instanceSize": "M10", "nodeCount": 3}}]}]),
        json!({"enabled": true, "roleId": "0123456789abcdef01234567"}),
    ]);
    prop::collection::btree_map(key, value, 0..4).prop_map(|fields| {
        let object: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        serde_json::to_vec(&object).unwrap()
    })
}

fn query() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "pretty",
        "envelope",
        "itemsPerPage",
        "pageNum",
        "includeCount",
        "status",
        "eventType",
        "minDate",
        "clusterNames",
    ]);
    let value = prop::sample::select(vec![
        "true",
        "false",
        "0",
        "1",
        "500",
        "501",
        "x",
        "%zz",
        "",
        "OPEN",
        "2026-01-01T00:00:00Z",
    ]);
    prop::collection::vec((name, value), 0..3).prop_map(|pairs| {
        let joined: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        match joined.is_empty() {
            true => String::new(),
            false => format!("?{}", joined.join("&")),
        }
    })
}

#[test]
fn no_authenticated_request_panics_or_fails_unexpectedly_and_every_error_is_atlas_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path().join("root")).unwrap();
    root.init(&InitOptions::default()).unwrap();
    let (key, secret) = create_api_key(
        &root,
        "owner",
        (ProjectRole::Owner, None),
        "random requests",
    )
    .unwrap();
    let group = root.require_settings().unwrap().project.id;
    let api = AtlasApi::new(root, Arc::new(SystemClock)).unwrap();
    let challenge = challenge(&api);
    let count = std::cell::Cell::new(0u32);
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    let method = prop_oneof![
        9 => Just(None),
        1 => prop::sample::select(vec!["GET", "POST", "PATCH", "PUT", "DELETE"]).prop_map(Some),
    ];
    let group_segment = prop_oneof![9 => Just(group), 1 => segment()];
    let request = (
        (prop::sample::select(OPERATIONS.to_vec()), method),
        (group_segment, prop::collection::vec(segment(), 2)),
        query(),
        prop_oneof![
            Just(Vec::new()),
            prop::collection::vec(any::<u8>(), 0..48),
            json_body()
        ],
        prop::sample::select(vec![
            "application/json",
            "application/vnd.atlas.2023-01-01+json",
            "application/vnd.atlas.2024-08-05+json",
            "application/vnd.atlas.1999-01-01+json",
            "*/*",
            "",
        ]),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &request,
            |((operation, method), (group, segments), query, body, accept)| {
                let (usual, shape) = operation;
                let method = method.unwrap_or(usual);
                let mut path = shape.replacen("{}", &group, 1);
                for s in &segments {
                    path = path.replacen("{}", s, 1);
                }
                let uri = format!("{path}{query}");
                count.set(count.get() + 1);
                let auth = authorization(
                    &challenge,
                    &key.public_key,
                    &secret,
                    method,
                    &uri,
                    count.get(),
                    "c",
                )
                .unwrap();
                let headers = vec![
                    ("Authorization".to_string(), auth),
                    ("Accept".to_string(), accept.to_string()),
                ];
                let response = api.handle(&Request {
                    method,
                    uri: &uri,
                    headers: &headers,
                    body: &body,
                });
                *statuses.borrow_mut().entry(response.status).or_default() += 1;
                // Every request authenticates: a 401 may only refuse a role (creating a
                // project takes an organization role this key lacks), never the digest.
                let challenged = response
                    .headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"));
                prop_assert!(
                    response.status != 500 && !(response.status == 401 && challenged),
                    "{method} {uri}: {} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
                if !response.body.is_empty() {
                    let answer: Value = serde_json::from_slice(&response.body).map_err(|e| {
                        TestCaseError::fail(format!("{method} {uri}: not JSON: {e}"))
                    })?;
                    if response.status >= 400 {
                        prop_assert_eq!(&answer["error"], &json!(response.status));
                        prop_assert!(answer["errorCode"].is_string(), "{answer}");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    // Not vacuous: requests got through to the resources, and were refused there too.
    let statuses = statuses.into_inner();
    println!("statuses: {statuses:?}");
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&400) && statuses.contains_key(&404),
        "{statuses:?}"
    );
}

/// A fresh digest challenge of `api`.
fn challenge(api: &AtlasApi) -> String {
    api.handle(&Request {
        method: "GET",
        uri: "/api/atlas/v2/groups",
        ..Request::default()
    })
    .header("WWW-Authenticate")
    .unwrap()
    .to_string()
}

#[test]
fn api_requests_and_cli_commands_at_once_lose_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    let root = Root::open(&root_dir).unwrap();
    root.init(&InitOptions::default()).unwrap();
    let (key, secret) =
        create_api_key(&root, "owner", (ProjectRole::Owner, None), "writers").unwrap();
    let group = root.require_settings().unwrap().project.id;
    let api = AtlasApi::new(root, Arc::new(SystemClock)).unwrap();
    let uri = format!("/api/atlas/v2/groups/{group}/cloudProviderAccess");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let challenge = challenge(&api);
                for nc in 1..=5 {
                    let auth =
                        authorization(&challenge, &key.public_key, &secret, "POST", &uri, nc, "w")
                            .unwrap();
                    let headers = vec![("Authorization".to_string(), auth)];
                    let response = api.handle(&Request {
                        method: "POST",
                        uri: &uri,
                        headers: &headers,
                        body: br#"{"providerName":"AWS"}"#,
                    });
                    assert_eq!(
                        response.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&response.body)
                    );
                }
            });
        }
        // Another process changes the same project meanwhile.
        for n in 0..5 {
            ok(
                &root_dir,
                &[
                    "project",
                    "authorize-role",
                    "--iam-role-arn",
                    &format!("arn:aws:iam::111122223333:role/cli-{n}"),
                ],
            );
        }
    });
    let project = api.root().require_settings().unwrap().project;
    assert_eq!(project.pending_roles.len(), 20, "every role the API set up");
    let cli_roles = project
        .access_roles
        .iter()
        .filter(|r| r.iam_assumed_role_arn.contains(":role/cli-"))
        .count();
    assert_eq!(cli_roles, 5, "every role the CLI authorized");
}
