//! Snapshots: one file per snapshot, encrypted under the CMK that was current when it was
//! taken, never re-encrypted afterwards.
//!
//! Owns the snapshot file (a header naming the CMK and holding a random snapshot key
//! wrapped by it, then a chunked AEAD stream of a consistent RocksDB checkpoint packed as
//! a flat list of files), taking one, and restore: unpack into a fresh directory, then give the node a
//! new master key under the target's CMK and every database a fresh data key, so a
//! restored clone never shares a data key's nonce space with its source. How a checkpoint
//! is packed is `archive`; where the files live, `storage` (a directory) or `s3` (a
//! bucket); what their headers say, `listing`.

mod archive;
mod listing;
#[cfg(feature = "aws")]
mod s3;
mod storage;

pub use listing::{
    list_snapshots, snapshot_header, snapshot_info, DamagedSnapshot, SnapshotInfo, SnapshotListing,
};
#[cfg(feature = "aws")]
pub use s3::{S3Failure, S3Storage};
pub use storage::{
    valid_snapshot_id, BadS3Location, LocalDirStorage, PendingSnapshot, S3Location,
    SnapshotStorage, CREATES_LOCK,
};

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use archive::{pack_dir, unpack};
use listing::info;

use crate::crash::{reach, CrashPoint};
use crate::crypto::stream::{Opener, Sealer, StreamKey, PREFIX_LEN};
use crate::crypto::{Aead, SecretKey};
use crate::durable::DirReplacement;
use crate::format::{FormatError, SnapshotHeader, SNAPSHOT_PREFIX_LEN};
use crate::keys::{KeysError, NodeIdentity, StoreId};
use crate::kms::{EncryptionContext, Kms, KmsError};

use super::{Store, StoreError, StoreOptions};

const CHUNK_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
/// Errors of snapshots: each names the snapshot, and the CMK where it matters.
// Each variant is documented; its fields are named for what they hold.
#[allow(missing_docs)]
pub enum SnapshotError {
    #[error("no snapshot {id}")]
    /// No snapshot with that id.
    NotFound { id: String },
    #[error("snapshot {id} is corrupt: {reason}")]
    /// The stream does not authenticate or is cut short.
    Corrupt { id: String, reason: String },
    #[error("snapshot {id} cannot be read: {source}")]
    /// The header does not decode.
    Format { id: String, source: FormatError },
    #[error("snapshot {id} is encrypted under CMK {cmk}, which is disabled: enable it (KMS EnableKey) to restore this snapshot")]
    /// The snapshot's CMK is disabled.
    CmkDisabled { id: String, cmk: String },
    #[error("encryption credentials for this snapshot are not present: snapshot {id} was encrypted under CMK {cmk}, which no longer exists")]
    /// The snapshot's CMK has been deleted.
    CredentialsNotPresent { id: String, cmk: String },
    #[error("cannot unwrap the key of snapshot {id} with CMK {cmk}: {source}")]
    /// Another KMS failure on the snapshot's CMK.
    Kms {
        id: String,
        cmk: String,
        source: KmsError,
    },
    #[error("snapshot {id} was taken in region {snapshot}; it can be restored only in that region, not {target}")]
    /// A restore into a project of another region.
    WrongRegion {
        id: String,
        snapshot: String,
        target: String,
    },
    #[error("{0}")]
    /// The store failed.
    Store(#[from] StoreError),
    #[error("{0}")]
    /// The keys failed.
    Keys(#[from] KeysError),
    #[error("{what}: {source}")]
    /// Reading or writing a file failed.
    Io { what: String, source: io::Error },
}

impl SnapshotError {
    /// The KMS error underneath, if any: its hint says what to do.
    pub fn kms_error(&self) -> Option<&KmsError> {
        match self {
            SnapshotError::Kms { source, .. } => Some(source),
            SnapshotError::Store(e) => e.kms_error(),
            SnapshotError::Keys(e) => e.kms_error(),
            _ => None,
        }
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let what = what.into();
    move |source| SnapshotError::Io { what, source }
}

fn snapshot_context(id: &str, store: StoreId) -> EncryptionContext {
    [
        ("atrest:snapshot", id.to_string()),
        ("atrest:store", store.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The region of a key ARN (`arn:aws:kms:REGION:...`).
fn arn_region(arn: &str) -> String {
    arn.split(':').nth(3).unwrap_or_default().to_string()
}

/// A snapshot file opened past its header.
struct OpenedSnapshot {
    header: SnapshotHeader,
    /// The header as stored: the associated data of every chunk.
    header_bytes: Vec<u8>,
    /// Positioned at the first chunk.
    stream: Box<dyn Read + Send>,
}

/// Reads the header of snapshot `id`.
fn read_header(storage: &dyn SnapshotStorage, id: &str) -> Result<OpenedSnapshot, SnapshotError> {
    let mut input = storage.open(id).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SnapshotError::NotFound { id: id.to_string() },
        _ => SnapshotError::Io {
            what: format!("cannot open snapshot {id}"),
            source: e,
        },
    })?;
    let format = |source| SnapshotError::Format {
        id: id.to_string(),
        source,
    };
    let mut bytes = vec![0u8; SNAPSHOT_PREFIX_LEN];
    input
        .read_exact(&mut bytes)
        .map_err(|_| SnapshotError::Corrupt {
            id: id.to_string(),
            reason: "it is shorter than a header".into(),
        })?;
    let body = SnapshotHeader::body_len(&bytes).map_err(format)?;
    bytes.resize(SNAPSHOT_PREFIX_LEN + body, 0);
    input
        .read_exact(bytes.get_mut(SNAPSHOT_PREFIX_LEN..).unwrap_or_default())
        .map_err(|_| SnapshotError::Corrupt {
            id: id.to_string(),
            reason: "its header is truncated".into(),
        })?;
    let header = SnapshotHeader::decode(&bytes).map_err(format)?;
    Ok(OpenedSnapshot {
        header,
        header_bytes: bytes,
        stream: input,
    })
}

/// The stream parameters a header names: the chunks are bound to the header's bytes.
fn stream_key<'a>(
    header: &SnapshotHeader,
    header_bytes: &'a [u8],
    aead: &'a Aead,
) -> StreamKey<'a> {
    StreamKey {
        aead,
        aad: header_bytes,
        prefix: header.nonce_prefix,
        chunk_size: header.chunk_size as usize,
    }
}

/// Unwraps the snapshot key through the KMS, naming what to do when the CMK is gone.
/// Checks that snapshot `id` can be opened through `kms` (its CMK enabled, the caller
/// allowed to decrypt with it) without reading more than its header: one KMS call.
pub fn check_snapshot_key(
    storage: &dyn SnapshotStorage,
    id: &str,
    kms: &dyn Kms,
) -> Result<(), SnapshotError> {
    let opened = read_header(storage, id)?;
    unwrap_snapshot_key(id, &opened.header, kms).map(drop)
}

fn unwrap_snapshot_key(
    id: &str,
    header: &SnapshotHeader,
    kms: &dyn Kms,
) -> Result<Aead, SnapshotError> {
    let context = snapshot_context(id, StoreId(header.store_id));
    let cmk = header.cmk_arn.clone();
    let plain = reach(CrashPoint::KmsDecrypt)
        .map_err(KmsError::from)
        .and_then(|()| kms.decrypt(&cmk, &header.wrapped_key, &context))
        .map_err(|source| match source {
            KmsError::Disabled(_) => SnapshotError::CmkDisabled {
                id: id.to_string(),
                cmk: cmk.clone(),
            },
            KmsError::NotFound(_) => SnapshotError::CredentialsNotPresent {
                id: id.to_string(),
                cmk: cmk.clone(),
            },
            source => SnapshotError::Kms {
                id: id.to_string(),
                cmk: cmk.clone(),
                source,
            },
        })?;
    let key = SecretKey::from_slice(&plain.plaintext).map_err(|e| SnapshotError::Corrupt {
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    Aead::new(&key, crate::crypto::Backend::default()).map_err(|e| SnapshotError::Corrupt {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// A snapshot's bytes as they are read, told to `progress` (bytes so far, the header
/// included).
struct Counted<'p, R> {
    inner: R,
    done: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}

/// The chunks after a snapshot's header, decrypted with `aead`; `progress` hears the
/// bytes read.
fn decrypted<'a>(
    header: &'a SnapshotHeader,
    header_bytes: &'a [u8],
    input: Box<dyn Read + Send>,
    aead: &'a Aead,
    progress: &'a mut dyn FnMut(u64),
) -> Opener<'a, impl Read + 'a> {
    let counted = Counted {
        inner: input,
        done: header_bytes.len() as u64,
        progress,
    };
    Opener::new(
        BufReader::with_capacity(CHUNK_SIZE, counted),
        stream_key(header, header_bytes, aead),
    )
}

/// Decrypts and checks all of snapshot `id` without restoring it; `progress` hears the
/// bytes read.
pub fn verify_snapshot(
    storage: &dyn SnapshotStorage,
    id: &str,
    kms: &dyn Kms,
    progress: &mut dyn FnMut(u64),
) -> Result<SnapshotInfo, SnapshotError> {
    let OpenedSnapshot {
        header,
        header_bytes,
        stream: input,
    } = read_header(storage, id)?;
    let aead = unwrap_snapshot_key(id, &header, kms)?;
    let mut stream = decrypted(&header, &header_bytes, input, &aead, progress);
    unpack(id, &mut stream, |_, file, _| {
        io::copy(file, &mut io::sink()).map(|_| ())
    })?;
    info(storage, id, &header, true)
}

/// A new snapshot's id: 16 random bytes, and their hex spelling used as its name.
fn random_id() -> ([u8; 16], String) {
    let mut id = [0u8; 16];
    crate::crypto::fill_random(&mut id);
    (id, id.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// Takes a snapshot: a consistent checkpoint of this node, encrypted under the CMK
    /// that wraps the node's master key now. `progress` hears the bytes packed so far.
    pub fn create_snapshot(
        &self,
        storage: &dyn SnapshotStorage,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, SnapshotError> {
        let (id_bytes, id) = random_id();
        let checkpoint_dir = self
            .path
            .with_file_name(format!("{}{id}", checkpoint_prefix(&self.path)));
        // Under the keystore writer, the checkpoint and the CMK named in the header are
        // the same moment's: no rotation can fall between them.
        let keystore = {
            let _writer = self.lock_keystore_writer();
            self.db.crash_point(CrashPoint::DirCreate)?;
            rocksdb::checkpoint::Checkpoint::new(&self.db)
                .and_then(|c| c.create_checkpoint(&checkpoint_dir))
                .map_err(|e| self.rocks_error(e))?;
            self.keystore()
        };
        let result = self.pack_snapshot(
            storage,
            (id_bytes, &id),
            &keystore,
            &checkpoint_dir,
            progress,
        );
        if !crate::crash::has_crashed() {
            let _ = fs::remove_dir_all(&checkpoint_dir);
        }
        result
    }

    fn pack_snapshot(
        &self,
        storage: &dyn SnapshotStorage,
        (id_bytes, id): ([u8; 16], &str),
        keystore: &crate::keys::Keystore,
        checkpoint: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, SnapshotError> {
        let cmk = keystore.cmk_arn().to_string();
        let kms_error = |source| SnapshotError::Kms {
            id: id.to_string(),
            cmk: cmk.clone(),
            source,
        };
        let key = SecretKey::generate();
        let wrapped = reach(CrashPoint::KmsEncrypt)
            .map_err(KmsError::from)
            .and_then(|()| {
                self.kms.encrypt(
                    &cmk,
                    key.expose(),
                    &snapshot_context(id, keystore.store_id()),
                )
            })
            .map_err(kms_error)?;
        let material = self
            .kms
            .describe_key(&cmk)
            .map_err(kms_error)?
            .current_key_material_id
            .unwrap_or_default();
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        crate::crypto::fill_random(&mut nonce_prefix);
        let identity = keystore.identity();
        let header = SnapshotHeader {
            snapshot_id: id_bytes,
            store_id: keystore.store_id().0,
            cluster: identity.cluster.clone(),
            node: identity.node.clone(),
            created_ms: self.now().as_millis(),
            cmk_arn: wrapped.key_arn.clone(),
            cmk_region: arn_region(&wrapped.key_arn),
            key_material: material,
            wrapped_key: wrapped.ciphertext_blob,
            nonce_prefix,
            chunk_size: CHUNK_SIZE as u32,
        };
        let header_bytes = header.encode();
        let aead = Aead::new(&key, crate::crypto::Backend::default()).map_err(|e| {
            SnapshotError::Corrupt {
                id: id.to_string(),
                reason: e.to_string(),
            }
        })?;
        let write_error = io_error(format!("cannot write snapshot {id}"));
        let mut out = storage
            .create(id, &header)
            .map_err(io_error(format!("cannot create snapshot {id}")))?;
        out.write_all(&header_bytes)
            .map_err(io_error(format!("cannot write snapshot {id}")))?;
        let mut sealer = Sealer::new(out, stream_key(&header, &header_bytes, &aead));
        let packed = pack_dir(checkpoint, &mut sealer, progress);
        let out = packed.and_then(|()| sealer.finish()).map_err(write_error)?;
        out.commit()
            .map_err(io_error(format!("cannot commit snapshot {id}")))?;
        info(storage, id, &header, true)
    }
}

/// The start of the name of a checkpoint taken of the store at `store` (beside it).
fn checkpoint_prefix(store: &Path) -> String {
    format!(
        ".{}.snapshot-",
        store.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Removes the checkpoints of the store at `store` that a snapshot create left when it was
/// killed. Only the process holding the store open takes checkpoints of it, so the caller,
/// which has just opened it, knows that none is in progress.
pub(super) fn remove_abandoned_checkpoints(store: &Path) -> io::Result<()> {
    let prefix = checkpoint_prefix(store);
    let Some(parent) = store.parent() else {
        return Ok(());
    };
    for entry in fs::read_dir(parent)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Where a snapshot is restored to, and as what.
pub struct RestoreTarget<'a> {
    /// The store directory: an existing store there is replaced once the restore is
    /// complete, never before.
    pub path: &'a Path,
    /// The target's KMS.
    pub kms: Arc<dyn Kms>,
    /// The target's current CMK: the restored node's new master key is wrapped by it.
    pub cmk: &'a str,
    /// The region of the target project; must be the snapshot's.
    pub region: &'a str,
    /// How the restored store is opened; its cluster and node become the node's identity.
    pub options: StoreOptions,
}

/// Restores snapshot `id`, unwrapping its key through `snapshot_kms` (the caller must be
/// allowed to use the snapshot's CMK, which must be enabled), and returns the open store.
/// An existing store at the target is replaced only once the restore is complete.
pub fn restore_snapshot(
    storage: &dyn SnapshotStorage,
    id: &str,
    snapshot_kms: Arc<dyn Kms>,
    target: RestoreTarget<'_>,
) -> Result<Store, SnapshotError> {
    let replacement = stage_restore(storage, id, snapshot_kms, &target, &mut |_| {})?;
    // From here on a crash is rolled forward at the next open (the old store goes aside
    // only now, and is removed only once the new one is in place).
    replacement.swap_in().map_err(io_error(format!(
        "cannot move the restored store to {}",
        target.path.display()
    )))?;
    Ok(Store::open(
        target.path,
        target.kms,
        target.cmk,
        target.options,
    )?)
}

/// Restores snapshot `id` into a directory beside `target.path`, made into the target
/// node (a new master key under the target's CMK, fresh data keys) and marked ready; the
/// target is untouched. The returned replacement swaps it in, or abandons it. `progress`
/// hears the bytes read.
pub fn stage_restore(
    storage: &dyn SnapshotStorage,
    id: &str,
    snapshot_kms: Arc<dyn Kms>,
    target: &RestoreTarget<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<DirReplacement, SnapshotError> {
    let OpenedSnapshot {
        header,
        header_bytes,
        stream: input,
    } = read_header(storage, id)?;
    if header.cmk_region != target.region {
        return Err(SnapshotError::WrongRegion {
            id: id.to_string(),
            snapshot: header.cmk_region.clone(),
            target: target.region.to_string(),
        });
    }
    let aead = unwrap_snapshot_key(id, &header, snapshot_kms.as_ref())?;
    let replacement = DirReplacement::new(target.path, id);
    replacement.begin().map_err(io_error(format!(
        "cannot create {}",
        replacement.staging().display()
    )))?;
    let staging = replacement.staging();
    let result = (|| {
        let mut stream = decrypted(&header, &header_bytes, input, &aead, progress);
        unpack(id, &mut stream, |name, file, _| {
            reach(CrashPoint::FileWrite)?;
            let mut out = File::create(staging.join(name))?;
            io::copy(file, &mut out)?;
            out.sync_all()
        })?;
        // Open as the snapshot was (its master key is wrapped by the snapshot's CMK), then
        // become the target: a new master key under the target's CMK, fresh data keys.
        let restored = Store::open(
            staging,
            snapshot_kms.clone(),
            &header.cmk_arn,
            target.options.clone(),
        )?;
        {
            let _writer = restored.lock_keystore_writer();
            let identity = NodeIdentity {
                cluster: target.options.cluster.clone(),
                node: target.options.node.clone(),
            };
            let next = restored.keystore().rekeyed(
                target.kms.as_ref(),
                target.cmk,
                identity,
                restored.now(),
            )?;
            restored.install_keystore(next)?;
        }
        for database in restored.databases() {
            restored.roll_data_key(&database)?;
        }
        Ok::<(), SnapshotError>(())
    })();
    if let Err(e) = result {
        let _ = replacement.abandon();
        return Err(e);
    }
    replacement
        .mark_ready()
        .map_err(io_error(format!("cannot mark {} ready", staging.display())))?;
    Ok(replacement)
}
