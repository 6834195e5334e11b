//! Independent clients against `atrest kms serve`: boto3 as a Python user drives it, and
//! every operation's raw answer checked against AWS's KMS model as botocore ships it, then
//! the AWS CLI. The scripts are in `tests/peers/`; the peers come from PyPI
//! (`.ci/bootstrap`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::peers::{venv_program, Served};

/// Runs `tests/peers/SCRIPT` with the venv's Python against a fresh `kms serve`; its
/// stdout, once it exits 0.
fn run_peer_script(script: &str) -> String {
    let python = venv_program("python");
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let out = Command::new(python)
        .arg(script)
        .arg(&served.url)
        .env("AWS_ACCESS_KEY_ID", "AKIATESTROOT")
        .env("AWS_SECRET_ACCESS_KEY", "not-checked")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("TMPDIR", dir.path())
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn boto3_sees_the_strict_kms_as_aws_would_show_it() {
    let stdout = run_peer_script("boto3_kms.py");
    assert!(
        stdout.contains("disabled key refused: DisabledException"),
        "{stdout}"
    );
}

#[test]
fn every_operation_answers_as_botocores_kms_model_says_and_the_aws_cli_runs_them() {
    let stdout = run_peer_script("kms_conformance.py");
    assert!(stdout.contains("aws cli ok"), "{stdout}");
}

#[test]
fn asymmetric_imported_and_multi_region_keys_interoperate_with_openssl_and_the_aws_cli() {
    let stdout = run_peer_script("kms_asymmetric.py");
    for line in [
        "signatures of 11 key specs verified by OpenSSL",
        "RSA-OAEP ciphertexts interoperate with OpenSSL",
        "ECDH secrets agree with OpenSSL's",
        "ML-KEM secrets agree with OpenSSL's",
        "data key pairs work in OpenSSL",
        "imported key material wrapped by OpenSSL works",
        "multi-Region replicas decrypt across regions",
        "aws cli ok",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
}
