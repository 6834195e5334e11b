//! An outage drill: the KMS goes unreachable (an alert, nothing shut down), then the CMK is
//! disabled (the validity check shuts the cluster down; every call says why), then enabled
//! again (the next check brings the cluster back, nothing lost).
//!
//! Run: `cargo run --release --example outage_drill`

use atrest::control::CheckOutcome;
use atrest::kms::Fault;
use atrest::World;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = World::new()?;
    world.cluster()?.put("orders", b"1", b"paid")?;

    world.faults().fail_next(1, Fault::Unavailable);
    let outcome = world.root().check()?;
    println!("KMS unreachable: {outcome}");
    assert!(matches!(outcome, CheckOutcome::Inconclusive { .. }));
    assert!(
        world.cluster()?.get("orders", b"1")?.is_some(),
        "nothing shut down"
    );

    let cmk = world.cmk()?;
    world.kms()?.disable_key(&cmk)?;
    let outcome = world.root().check()?;
    println!("CMK disabled: {outcome}");
    let refused = world
        .cluster()
        .err()
        .ok_or("the cluster must be shut down")?;
    println!("a read now: {refused}");

    world.kms()?.enable_key(&cmk)?;
    println!("CMK enabled again: {}", world.root().check()?);
    let value = world.cluster()?.get("orders", b"1")?;
    assert_eq!(value.as_deref(), Some(&b"paid"[..]), "nothing lost");
    println!("alerts:");
    for alert in world.root().alerts()? {
        println!("  {} {}", alert.event_type_name, alert.text);
    }
    Ok(())
}
