//! LocalKms's speed as keys accumulate: Encrypt over the wire (`kms serve`'s server, the
//! AWS SDK for Rust as the client, a KMS state directory on disk as `atrest` keeps it) with
//! 1 key in the state and with 2,000, in the same run; prints requests per second and the
//! ratio. Run: `cargo bench --bench kms`.

// A benchmark may panic on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use atrest::clock::SystemClock;
use atrest::kms::wire::{Endpoint, Identities};
use atrest::kms::{
    AwsKms, AwsKmsConfig, Caller, CreateKeyRequest, EncryptionContext, Kms, KmsServer, LocalKms,
    StaticCredentials,
};
use zeroize::Zeroizing;

const ACCOUNT_ROOT: &str = "arn:aws:iam::111122223333:root";
const CALLS: u32 = 2_000;

/// Encrypt calls per second through the wire against a KMS holding `keys` keys.
fn encrypts_per_second(keys: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let local = kms.client(Caller::new(ACCOUNT_ROOT, "us-east-1").unwrap());
    let mut last = String::new();
    for _ in 0..keys {
        last = local.create_key(CreateKeyRequest::default()).unwrap().arn;
    }
    let server = KmsServer::start(
        "127.0.0.1:0",
        Endpoint::new(kms, Identities::new(ACCOUNT_ROOT).unwrap()),
        false,
    )
    .unwrap();
    let mut config = AwsKmsConfig::new("us-east-1");
    config.endpoint = Some(server.url());
    config.credentials = Some(StaticCredentials {
        access_key_id: "AKIABENCHMARK000".into(),
        secret_access_key: Zeroizing::new("unverified".into()),
        session_token: None,
    });
    let client = AwsKms::connect(config).unwrap();
    let context = EncryptionContext::new();
    for _ in 0..100 {
        client.encrypt(&last, b"warm up", &context).unwrap();
    }
    let started = Instant::now();
    for _ in 0..CALLS {
        client.encrypt(&last, &[7; 32], &context).unwrap();
    }
    f64::from(CALLS) / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs benchmarks with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let one = encrypts_per_second(1);
    let many = encrypts_per_second(2_000);
    println!("Encrypt over the wire, {CALLS} calls each, state on disk:");
    println!("  1 key:      {one:>9.0} req/s");
    println!("  2,000 keys: {many:>9.0} req/s");
    println!("  ratio (1 key / 2,000 keys): {:.2}", one / many);
}
