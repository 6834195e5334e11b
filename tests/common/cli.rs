//! Running the `atrest` binary from the CLI tests: with a root, reading its output or its
//! failure, or killing it part-way.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub fn atrest(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ATREST_ROOT")
        .env_remove("ATREST_CALLER")
        .env_remove("ATREST_REGION")
        .env_remove("ATREST_USER")
        .output()
        .unwrap()
}

pub fn ok(root: &Path, args: &[&str]) -> String {
    let out = atrest(root, args);
    assert!(
        out.status.success(),
        "atrest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(root: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(root, &args)).unwrap()
}

/// Runs `atrest args` and, if it is still running after `after_ms`, kills it with SIGKILL;
/// whether it was killed.
pub fn run_and_kill(root: &Path, args: &[&str], after_ms: u64) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atrest"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    running
}

/// How many times the kill tests kill: `ATREST_KILLS`, or `default` (what CI runs).
pub fn kills(default: u64) -> u64 {
    std::env::var("ATREST_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

pub fn fails(root: &Path, args: &[&str], expected: &str) -> String {
    let out = atrest(root, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "atrest {args:?} succeeded but should fail with {expected}"
    );
    assert!(
        stderr.contains(expected),
        "atrest {args:?}: expected {expected}, got: {stderr}"
    );
    stderr
}
