//! The snapshot file's header.

use super::*;

// ---------------------------------------------------------------------------------------
// Snapshot file header. The whole header, magic included, is the associated data of
// every chunk of the stream that follows it.
//
//  | magic "ATRSNAP\0" (8) | version=1 | body length (u32) | body |
//  body: | snapshot id (16) | store id (16) | cluster (str16) | node (str16) | created ms (u64) |
//        | CMK ARN (str16) | CMK region (str16) | key material (str16) |
//        | wrapped snapshot key (bytes32) | nonce prefix (7) | chunk size (u32) |
// ---------------------------------------------------------------------------------------

/// The first bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"ATRSNAP\0";
const SNAPSHOT_VERSION: u8 = 1;
/// Magic, version and body length: what must be read to know the header's size.
pub const SNAPSHOT_PREFIX_LEN: usize = 8 + 1 + 4;
const MAX_SNAPSHOT_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
/// The header of a snapshot file.
pub struct SnapshotHeader {
    /// The snapshot's random id.
    pub snapshot_id: [u8; 16],
    /// The id of the store it was taken of.
    pub store_id: [u8; 16],
    /// The store's cluster.
    pub cluster: String,
    /// The store's node.
    pub node: String,
    /// When it was taken, in ms since the epoch.
    pub created_ms: u64,
    /// The CMK that wraps the snapshot key: the one current when it was taken.
    pub cmk_arn: String,
    /// The CMK's region.
    pub cmk_region: String,
    /// The CMK's key material version when the snapshot was taken: a hint, not a secret.
    pub key_material: String,
    /// The snapshot key, wrapped by the CMK.
    pub wrapped_key: Vec<u8>,
    /// The nonce prefix of the chunk stream.
    pub nonce_prefix: [u8; 7],
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
}

impl SnapshotHeader {
    /// The versioned encoding, magic first.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Writer(Vec::new());
        body.raw(&self.snapshot_id)
            .raw(&self.store_id)
            .str16(&self.cluster)
            .str16(&self.node)
            .u64(self.created_ms)
            .str16(&self.cmk_arn)
            .str16(&self.cmk_region)
            .str16(&self.key_material)
            .bytes32(&self.wrapped_key)
            .raw(&self.nonce_prefix)
            .u32(self.chunk_size);
        let mut w = Writer(Vec::with_capacity(SNAPSHOT_PREFIX_LEN + body.0.len()));
        w.raw(SNAPSHOT_MAGIC).u8(SNAPSHOT_VERSION).bytes32(&body.0);
        w.0
    }

    /// The body length announced by the first [`SNAPSHOT_PREFIX_LEN`] bytes.
    pub fn body_len(prefix: &[u8]) -> Result<usize, FormatError> {
        let mut r = Reader::new("snapshot header", prefix);
        if r.take(8)? != SNAPSHOT_MAGIC {
            return Err(err("snapshot header", "not an atrest snapshot (bad magic)"));
        }
        r.version(SNAPSHOT_VERSION)?;
        let len = r.u32()? as usize;
        if len > MAX_SNAPSHOT_BODY {
            return Err(err(
                "snapshot header",
                format!("header body of {len} bytes is larger than any atrest writes"),
            ));
        }
        Ok(len)
    }

    /// Decodes a whole header: prefix then body.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let len = Self::body_len(bytes.get(..SNAPSHOT_PREFIX_LEN).unwrap_or(bytes))?;
        let mut r = Reader::new(
            "snapshot header",
            bytes.get(SNAPSHOT_PREFIX_LEN..).unwrap_or_default(),
        );
        let body = r.take(len)?;
        r.finish()?;
        let mut r = Reader::new("snapshot header", body);
        let header = SnapshotHeader {
            snapshot_id: r.array()?,
            store_id: r.array()?,
            cluster: r.str16()?,
            node: r.str16()?,
            created_ms: r.u64()?,
            cmk_arn: r.str16()?,
            cmk_region: r.str16()?,
            key_material: r.str16()?,
            wrapped_key: r.bytes32()?.to_vec(),
            nonce_prefix: r.array()?,
            chunk_size: r.u32()?,
        };
        r.finish()?;
        if header.chunk_size == 0 || header.chunk_size as usize > 16 * 1024 * 1024 {
            return Err(err(
                "snapshot header",
                format!("chunk size {} is out of range", header.chunk_size),
            ));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_header_round_trips_and_rejects_every_truncation() {
        let h = SnapshotHeader {
            snapshot_id: [1; 16],
            store_id: [2; 16],
            cluster: "c".into(),
            node: "n".into(),
            created_ms: 5,
            cmk_arn: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
            cmk_region: "us-east-1".into(),
            key_material: "3".into(),
            wrapped_key: vec![9; 57],
            nonce_prefix: [3; 7],
            chunk_size: 65536,
        };
        let bytes = h.encode();
        assert_eq!(SnapshotHeader::decode(&bytes).unwrap(), h);
        for len in 0..bytes.len() {
            assert!(SnapshotHeader::decode(&bytes[..len]).is_err());
        }
    }
}
