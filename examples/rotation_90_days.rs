//! Ninety days of key lifecycle in a second: the manual clock jumps, `tick` rotates every
//! node's master key (no record rewritten) and raises the reminder to rotate the CMK; the
//! CMK is rotated by pointing the project at a new key; every record still reads.
//!
//! Run: `cargo run --release --example rotation_90_days`

use atrest::clock::days;
use atrest::control::ALERT_NEEDS_ROTATION;
use atrest::kms::CreateKeyRequest;
use atrest::store::KeyRange;
use atrest::World;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = World::new()?;
    world.cluster()?.load("events", 10_000, 256, &mut |_| {})?;

    world.advance(days(91));
    let tick = world.root().tick()?;
    println!("{tick}");
    assert_eq!(tick.master_keys_rotated.len(), 3, "one rotation per node");
    assert!(tick
        .alerts
        .iter()
        .any(|a| a.event_type_name == ALERT_NEEDS_ROTATION));

    let new_cmk = world.kms()?.create_key(CreateKeyRequest::default())?;
    let settings = world.root().set_key(&new_cmk.arn)?;
    println!("the project's CMK is now {}", settings.cmk);

    let records = world.cluster()?.scan("events", KeyRange::All)?.count();
    assert_eq!(records, 10_000);
    println!("{records} records read back under the new keys");
    Ok(())
}
