//! `atrest demo`: the key hierarchy end to end, in a fresh temporary root. Every step
//! that should be refused is checked to be refused, so the demo fails loudly if atrest
//! ever turns lax.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use atrest::clock::days;
use atrest::control::{InitOptions, Root, DEFAULT_CMK_ALIAS};
use atrest::kms::{CreateKeyRequest, EncryptionContext};
use atrest::store::KeyRange;

use crate::{CliResult, Failure};

fn step(title: &str) {
    println!("\n== {title}");
}

fn refused<T>(what: &str, result: Result<T, impl std::fmt::Display>, expected: &str) -> CliResult {
    match result {
        Err(e) if e.to_string().contains(expected) => {
            println!("   {what}: refused, as it must be: {e}");
            Ok(())
        }
        Err(e) => Err(format!("demo: {what} failed with {e}, expected {expected}").into()),
        Ok(_) => {
            Err(format!("demo: {what} succeeded, but atrest must refuse it with {expected}").into())
        }
    }
}

fn demo_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("atrest-demo-{}-{nanos}", std::process::id()))
}

/// Counts the files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> std::io::Result<(usize, usize)> {
    let (mut searched, mut found) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let (s, f) = files_containing(&path, needle)?;
            searched += s;
            found += f;
        } else {
            searched += 1;
            let bytes = std::fs::read(&path)?;
            found += usize::from(bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    Ok((searched, found))
}

pub fn run(keep: bool) -> CliResult {
    let dir = demo_dir();
    println!("atrest demo in {}", dir.display());
    let result = walk(&dir);
    if keep {
        println!(
            "\nkept {}: try `atrest --root {} status`",
            dir.display(),
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn walk(dir: &Path) -> CliResult {
    let mut root = Root::open(dir)?;
    step("1. init: an embedded strict KMS, a customer master key, one node store");
    let settings = root.init(&InitOptions::default())?;
    println!("   CMK {} ({DEFAULT_CMK_ALIAS})", settings.cmk);
    let kms = root.kms_client(None, None)?;

    step("2. the CMK encrypts under an encryption context, and decrypts only with the same one");
    let context: EncryptionContext = [("purpose".to_string(), "demo".to_string())].into();
    let blob = kms
        .encrypt(DEFAULT_CMK_ALIAS, b"a secret", &context)?
        .ciphertext_blob;
    let plain = kms.decrypt(Some(DEFAULT_CMK_ALIAS), &blob, &context)?;
    println!(
        "   {} byte blob decrypts to {:?}",
        blob.len(),
        String::from_utf8_lossy(&plain.plaintext)
    );
    refused(
        "decrypt with another context",
        kms.decrypt(Some(DEFAULT_CMK_ALIAS), &blob, &EncryptionContext::new()),
        "InvalidCiphertextException",
    )?;

    step("3. strict where other emulators are lax");
    let scratch = kms.create_key(CreateKeyRequest {
        description: "scratch".into(),
        ..Default::default()
    })?;
    refused(
        "decrypt naming the wrong key",
        kms.decrypt(Some(&scratch.key_id), &blob, &context),
        "IncorrectKeyException",
    )?;
    kms.disable_key(&scratch.key_id)?;
    refused(
        "encrypt with a disabled key",
        kms.encrypt(&scratch.key_id, b"x", &context),
        "DisabledException",
    )?;
    kms.enable_key(&scratch.key_id)?;

    step("4. new key material on demand: old ciphertexts still decrypt");
    kms.rotate_key_on_demand(&settings.cmk)?;
    let again = kms.decrypt(Some(&settings.cmk), &blob, &context)?;
    println!(
        "   material version now {}; the old blob still gives {:?}",
        kms.describe_key(&settings.cmk)?
            .current_key_material_id
            .unwrap_or_default(),
        String::from_utf8_lossy(&again.plaintext)
    );

    step("5. deletion: a 7-day window, then the key is gone for good");
    let date = kms.schedule_key_deletion(&scratch.key_id, Some(7))?;
    println!("   scratch key pending deletion until {date}");
    refused(
        "encrypt with a key pending deletion",
        kms.encrypt(&scratch.key_id, b"x", &context),
        "KMSInvalidStateException",
    )?;
    root.advance_clock(days(8))?;
    let kms = root.kms_client(None, None)?;
    println!(
        "   emulator clock advanced 8 days to {}",
        root.clock().now()
    );
    refused(
        "describe the deleted key",
        kms.describe_key(&scratch.key_id),
        "NotFoundException",
    )?;

    step("6. the store: every value sealed under a data key, wrapped by the master key, wrapped by the CMK");
    let store = root.open_store()?;
    let marker = "demo-plaintext-marker-7f3a";
    for (key, value) in [
        ("order:1", "first"),
        ("order:2", "second"),
        ("user:1", "alice"),
    ] {
        store.put(
            "shop",
            key.as_bytes(),
            format!("{value} {marker}").as_bytes(),
        )?;
    }
    let got = store.get("shop", b"order:2")?.unwrap_or_default();
    println!("   get shop order:2 -> {:?}", String::from_utf8_lossy(&got));
    for record in store.scan("shop", KeyRange::Prefix(b"order:".to_vec()))? {
        let (k, v) = record?;
        println!(
            "   scan shop order: -> {} = {:?}",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        );
    }
    store.flush()?;
    let (searched, found) = files_containing(dir, marker.as_bytes())
        .map_err(|e| format!("demo: search failed: {e}"))?;
    if found > 0 {
        return Err(format!("demo: the plaintext marker is on disk in {found} file(s)").into());
    }
    println!("   the plaintext marker appears in none of the {searched} files under the root");
    drop(store);

    step("7. a disabled CMK shuts the store; enabling it brings the same data back");
    kms.disable_key(&settings.cmk)?;
    refused(
        "open the store under a disabled CMK",
        root.open_store()
            .map_err(Failure::from)
            .map_err(|f| f.message),
        "DisabledException",
    )?;
    kms.enable_key(&settings.cmk)?;
    let store = root.open_store()?;
    let back = store.get("shop", b"user:1")?.unwrap_or_default();
    println!(
        "   after enable-key: shop user:1 -> {:?}",
        String::from_utf8_lossy(&back)
    );

    step("8. rotation: master key on demand and every 90 days, CMK by pointing the project at a new key");
    let version = store.rotate_master_key()?;
    println!("   master key rotated to version {version}: every data key re-wrapped, no record rewritten");
    drop(store);
    let new_cmk = kms.create_key(CreateKeyRequest {
        description: "rotated CMK".into(),
        ..Default::default()
    })?;
    root.set_key(&new_cmk.key_id)?;
    println!("   project CMK is now {}", new_cmk.arn);
    kms.disable_key(&settings.cmk)?;
    let store = root.open_store()?;
    let back = store.get("shop", b"order:1")?.unwrap_or_default();
    println!(
        "   old CMK disabled; shop order:1 still reads {:?}",
        String::from_utf8_lossy(&back)
    );
    drop(store);
    root.advance_clock(days(91))?;
    let tick = root.tick()?;
    match tick.store.and_then(|s| s.master_key_rotated_to) {
        Some(v) => println!("   91 days later, tick rotated the master key to version {v}"),
        None => {
            return Err("demo: the master key was not rotated after 91 days"
                .to_string()
                .into())
        }
    }
    step("9. snapshots: encrypted under the CMK current when taken; restore needs that key");
    let snapshot = root.create_snapshot(&mut |_| {})?;
    println!(
        "   snapshot {} ({} bytes) under {}",
        snapshot.id, snapshot.size, snapshot.cmk_arn
    );
    refused(
        "delete the CMK a snapshot depends on",
        root.schedule_key_deletion(&kms, &snapshot.cmk_arn, Some(7), false),
        "still protects data",
    )?;
    root.open_store()?
        .put("shop", b"order:3", b"after the snapshot")?;
    root.restore_snapshot(&snapshot.id, None)?;
    let store = root.open_store()?;
    let after = store.get("shop", b"order:3")?;
    println!(
        "   restored: order:3 is {}, as at the snapshot; master key now version {}, fresh data keys for new writes",
        if after.is_none() { "absent" } else { "present" },
        store.status().master_key_version
    );

    step("10. the hierarchy");
    let status = store.status();
    println!("   CMK         {}", status.cmk_arn);
    println!(
        "   master key  version {} of store {} ({}/{})",
        status.master_key_version, status.store_id, status.cluster, status.node
    );
    for db in &status.databases {
        println!(
            "   data key    {} of database {:?}, active since {}",
            db.active_data_key, db.database, db.active_since
        );
    }
    println!("\ndemo finished: every check passed");
    Ok(())
}
