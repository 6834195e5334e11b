//! A test database: an encrypted three-node cluster in a temporary directory, written,
//! read and scanned as an application's tests would, then removed.
//!
//! Run: `cargo run --release --example test_database`

use atrest::store::{KeyRange, WriteBatch};
use atrest::World;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = World::new()?;
    let cluster = world.cluster()?;
    cluster.put("users", b"alice", b"admin")?;
    let mut batch = WriteBatch::new();
    batch
        .put("users", "bob", "reader")
        .put("audit", "1", "bob added");
    cluster.write(&batch)?;

    assert_eq!(
        cluster.get("users", b"alice")?.as_deref(),
        Some(&b"admin"[..])
    );
    for record in cluster.scan("users", KeyRange::All)? {
        let (key, value) = record?;
        println!(
            "{} = {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }
    let status = world.root().cluster_status(None)?;
    println!("{status}");
    Ok(())
}
