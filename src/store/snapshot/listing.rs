//! What the snapshots in a storage say of themselves: each readable header, and each file
//! that cannot be read, listed as damaged rather than failing the whole listing.
//!
//! A header is authenticated only by decrypting the snapshot (its bytes are the associated
//! data of every chunk), which takes the CMK; a listing says which it shows.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::format::SnapshotHeader;
use crate::keys::StoreId;

use super::{io_error, read_header, SnapshotError, SnapshotStorage};

/// What a snapshot's header says, and its size: safe to print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// The snapshot's id.
    pub id: String,
    /// The id of the store it was taken of.
    pub store_id: StoreId,
    /// The store's cluster.
    pub cluster: String,
    /// The store's node.
    pub node: String,
    /// When it was taken.
    pub created: Timestamp,
    /// The CMK it depends on.
    pub cmk_arn: String,
    /// That CMK's region.
    pub cmk_region: String,
    /// That CMK's key material version when it was taken.
    pub key_material: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Where it is: a path, or an `s3://` URL.
    pub location: String,
    /// Whether the fields above were checked against the snapshot's key (a verify or a
    /// restore), or are only what its header claims.
    pub authenticated: bool,
}

/// A snapshot file whose header cannot be read: it can be deleted, never restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedSnapshot {
    /// The file's snapshot id.
    pub id: String,
    /// The file's size in bytes, when it can be read.
    pub size: Option<u64>,
    /// What is wrong with it.
    pub reason: String,
}

/// Every snapshot in a storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotListing {
    /// The readable ones, oldest first (by what their headers claim).
    pub snapshots: Vec<SnapshotInfo>,
    /// The ones whose header cannot be read, by id.
    pub damaged: Vec<DamagedSnapshot>,
}

/// What `header` says of snapshot `id`, with the size of its file in `storage`.
pub(super) fn info(
    storage: &dyn SnapshotStorage,
    id: &str,
    header: &SnapshotHeader,
    authenticated: bool,
) -> Result<SnapshotInfo, SnapshotError> {
    let size = storage
        .size(id)
        .map_err(io_error(format!("cannot stat snapshot {id}")))?;
    Ok(SnapshotInfo {
        id: id.to_string(),
        store_id: StoreId(header.store_id),
        cluster: header.cluster.clone(),
        node: header.node.clone(),
        created: Timestamp::from_millis(header.created_ms),
        cmk_arn: header.cmk_arn.clone(),
        cmk_region: header.cmk_region.clone(),
        key_material: header.key_material.clone(),
        size,
        location: storage.location(id),
        authenticated,
    })
}

/// The header of snapshot `id`, unauthenticated: what it claims.
pub fn snapshot_header(
    storage: &dyn SnapshotStorage,
    id: &str,
) -> Result<SnapshotHeader, SnapshotError> {
    Ok(read_header(storage, id)?.header)
}

/// What the header of snapshot `id` claims, and its size, without decrypting it.
pub fn snapshot_info(
    storage: &dyn SnapshotStorage,
    id: &str,
) -> Result<SnapshotInfo, SnapshotError> {
    info(storage, id, &snapshot_header(storage, id)?, false)
}

/// Every snapshot in `storage`: a file that cannot be read is listed as damaged, so one
/// bad file never hides the others.
pub fn list_snapshots(storage: &dyn SnapshotStorage) -> Result<SnapshotListing, SnapshotError> {
    let ids = storage.list().map_err(io_error("cannot list snapshots"))?;
    let mut listing = SnapshotListing::default();
    for id in ids {
        match snapshot_info(storage, &id) {
            Ok(info) => listing.snapshots.push(info),
            // Deleted since the directory was read.
            Err(SnapshotError::NotFound { .. }) => {}
            Err(e) => listing.damaged.push(DamagedSnapshot {
                size: storage.size(&id).ok(),
                reason: e.to_string(),
                id,
            }),
        }
    }
    listing
        .snapshots
        .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(listing)
}
