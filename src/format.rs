//! Versioned binary encodings of everything atrest writes to disk.
//!
//! Owns the byte layouts of the record envelope, the wrapped master key, wrapped data
//! keys and the keystore. Each starts with a version byte; a decoder returns a
//! [`FormatError`] on any input it cannot read and never panics. Integers are big-endian;
//! `str16` is a u16 length then UTF-8, `bytes32` a u32 length then bytes.

use crate::crypto::{Nonce, NONCE_LEN, TAG_LEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
/// A decoder's refusal: what it was decoding and why it stopped.
pub struct FormatError {
    /// What was being decoded.
    pub what: &'static str,
    /// Why it could not be.
    pub reason: String,
}

fn err(what: &'static str, reason: impl Into<String>) -> FormatError {
    FormatError {
        what,
        reason: reason.into(),
    }
}

/// A cursor over bytes that fails, instead of panicking, when they run out.
struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { what, buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.buf.len() < n {
            return Err(err(
                self.what,
                format!("truncated: needed {n} more bytes, {} left", self.buf.len()),
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn str16(&mut self) -> Result<String, FormatError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| err(self.what, "a name is not UTF-8"))
    }

    fn bytes32(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn version(&mut self, expected: u8) -> Result<(), FormatError> {
        match self.u8()? {
            v if v == expected => Ok(()),
            v => Err(err(
                self.what,
                format!("unknown version {v} (this atrest reads version {expected})"),
            )),
        }
    }

    fn finish(self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(err(
                self.what,
                format!("{} unexpected trailing bytes", self.buf.len()),
            ))
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Names are validated short before they get here; a longer one is cut, never wrapped.
    fn str16(&mut self, s: &str) -> &mut Self {
        let bytes = s.as_bytes();
        let bytes = bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes);
        self.0
            .extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        self.raw(bytes)
    }
    fn bytes32(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).raw(v)
    }
}

// ---------------------------------------------------------------------------------------
// Record envelope
//
//  0         1                   5           17           n-16       n
//  | version | data key id (u32) | nonce (12) | ciphertext | tag (16) |
//
// Associated data (not stored): version | store id (16) | data key id (u32) |
//                               database (str16) | record key (rest)
// ---------------------------------------------------------------------------------------

/// The record envelope's version.
pub const RECORD_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, data key id, nonce.
pub const RECORD_HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes a sealed record adds to its plaintext.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;

/// A decoded record envelope; `sealed` (ciphertext then tag) borrows the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The data key that sealed the value.
    pub data_key_id: u32,
    /// The value's nonce.
    pub nonce: Nonce,
    /// Ciphertext followed by the tag.
    pub sealed: &'a [u8],
}

impl<'a> Record<'a> {
    /// Decodes a stored value; any input gives a record or an error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new("record envelope", bytes);
        r.version(RECORD_VERSION)?;
        let data_key_id = r.u32()?;
        let nonce = Nonce(r.array()?);
        if r.buf.len() < TAG_LEN {
            return Err(err(
                "record envelope",
                "shorter than its authentication tag",
            ));
        }
        Ok(Record {
            data_key_id,
            nonce,
            sealed: r.buf,
        })
    }

    /// Writes the header into the first [`RECORD_HEADER_LEN`] bytes of `out`.
    pub fn write_header(out: &mut [u8; RECORD_HEADER_LEN], data_key_id: u32, nonce: &Nonce) {
        out[0] = RECORD_VERSION;
        out[1..5].copy_from_slice(&data_key_id.to_be_bytes());
        out[5..].copy_from_slice(&nonce.0);
    }
}

/// The associated data that binds a record to its store, database, key and data key.
pub fn record_aad(
    out: &mut Vec<u8>,
    store_id: &[u8; 16],
    data_key_id: u32,
    database: &str,
    key: &[u8],
) {
    out.clear();
    out.push(RECORD_VERSION);
    out.extend_from_slice(store_id);
    out.extend_from_slice(&data_key_id.to_be_bytes());
    out.extend_from_slice(&(database.len() as u16).to_be_bytes());
    out.extend_from_slice(database.as_bytes());
    out.extend_from_slice(key);
}

// ---------------------------------------------------------------------------------------
// Wrapped master key: the node's master key as KMS.Encrypt(CMK) returned it.
//
//  | version=1 | master key version (u32) | created ms (u64) | CMK ARN (str16) | blob (bytes32) |
// ---------------------------------------------------------------------------------------

const MASTER_KEY_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A node's master key as stored: wrapped by the CMK.
pub struct WrappedMasterKey {
    /// The master key's version, counting rotations from 1.
    pub version: u32,
    /// When this master key was made, in ms since the epoch.
    pub created_ms: u64,
    /// The ARN of the CMK that wraps it.
    pub cmk_arn: String,
    /// The KMS ciphertext blob.
    pub kms_blob: Vec<u8>,
}

impl WrappedMasterKey {
    /// The versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        self.write(&mut w);
        w.0
    }

    fn write(&self, w: &mut Writer) {
        w.u8(MASTER_KEY_VERSION)
            .u32(self.version)
            .u64(self.created_ms)
            .str16(&self.cmk_arn)
            .bytes32(&self.kms_blob);
    }

    /// Decodes [`WrappedMasterKey::encode`]'s output; any input gives a value or an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new("wrapped master key", bytes);
        let key = Self::read(&mut r)?;
        r.finish()?;
        Ok(key)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version(MASTER_KEY_VERSION)?;
        Ok(WrappedMasterKey {
            version: r.u32()?,
            created_ms: r.u64()?,
            cmk_arn: r.str16()?,
            kms_blob: r.bytes32()?.to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Wrapped data key: a database's 32-byte key sealed by the master key.
//
//  | version=1 | id (u32) | database (str16) | master key version (u32) | created ms (u64) |
//  | status (u8: 0 active, 1 retired) | uses reserved (u64) | nonce (12) | sealed key (48) |
//
// Associated data (not stored): id (u32) | database (str16) | master key version (u32)
// ---------------------------------------------------------------------------------------

const DATA_KEY_VERSION: u8 = 1;
/// Bytes of a sealed 32-byte key: the key and its tag.
pub const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// Whether a data key writes or only reads.
pub enum DataKeyStatus {
    /// Encrypts new writes for its database.
    Active,
    /// Decrypts what it wrote; encrypts nothing new.
    Retired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// A database's data key as stored: sealed by the master key.
pub struct WrappedDataKey {
    /// The key's id, unique in its store.
    pub id: u32,
    /// The database it belongs to.
    pub database: String,
    /// The version of the master key that seals it.
    pub master_key_version: u32,
    /// When it was made, in ms since the epoch.
    pub created_ms: u64,
    /// Active or retired.
    pub status: DataKeyStatus,
    /// Seals allowed so far (the persisted ceiling of the use count).
    pub uses_reserved: u64,
    /// The nonce of the sealing.
    pub nonce: Nonce,
    /// The sealed key.
    pub sealed: [u8; WRAPPED_KEY_LEN],
}

impl WrappedDataKey {
    /// The associated data binding a sealed data key to its id, database and master key.
    pub fn aad(id: u32, database: &str, master_key_version: u32) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(10 + database.len()));
        w.u32(id).str16(database).u32(master_key_version);
        w.0
    }

    /// The versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        self.write(&mut w);
        w.0
    }

    fn write(&self, w: &mut Writer) {
        let status = match self.status {
            DataKeyStatus::Active => 0,
            DataKeyStatus::Retired => 1,
        };
        w.u8(DATA_KEY_VERSION)
            .u32(self.id)
            .str16(&self.database)
            .u32(self.master_key_version)
            .u64(self.created_ms)
            .u8(status)
            .u64(self.uses_reserved)
            .raw(&self.nonce.0)
            .raw(&self.sealed);
    }

    /// Decodes [`WrappedDataKey::encode`]'s output; any input gives a value or an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new("wrapped data key", bytes);
        let key = Self::read(&mut r)?;
        r.finish()?;
        Ok(key)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version(DATA_KEY_VERSION)?;
        let id = r.u32()?;
        let database = r.str16()?;
        let master_key_version = r.u32()?;
        let created_ms = r.u64()?;
        let status = match r.u8()? {
            0 => DataKeyStatus::Active,
            1 => DataKeyStatus::Retired,
            s => return Err(err("wrapped data key", format!("unknown status {s}"))),
        };
        Ok(WrappedDataKey {
            id,
            database,
            master_key_version,
            created_ms,
            status,
            uses_reserved: r.u64()?,
            nonce: Nonce(r.array()?),
            sealed: r.array()?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Keystore: everything needed to read a node's data, given the CMK. One value, written
// with one synced WriteBatch, so it is always wholly old or wholly new. Version 2 ends in
// an authenticator (an AES-GCM tag over an empty message under the master key, with
// everything before it as associated data), so an edit of any field (a use count, a
// status, a creation time) is detected. Version 1, without it, is read once and upgraded.
//
//  | version=2 | store id (16) | cluster (str16) | node (str16) | next data key id (u32) |
//  | wrapped master key | data key count (u32) | wrapped data key ... |
//  | authenticator nonce (12) | authenticator tag (16) |
// ---------------------------------------------------------------------------------------

const KEYSTORE_VERSION: u8 = 2;
const KEYSTORE_LEGACY_VERSION: u8 = 1;
/// The length of a keystore's authenticator: nonce, then tag.
pub const KEYSTORE_AUTHENTICATOR_LEN: usize = NONCE_LEN + TAG_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A node's whole keystore as stored, without its authenticator.
pub struct KeystoreRecord {
    /// The store's identity.
    pub store_id: [u8; 16],
    /// The node's cluster.
    pub cluster: String,
    /// The node's name.
    pub node: String,
    /// The id the next data key gets.
    pub next_data_key_id: u32,
    /// The wrapped master key.
    pub master_key: WrappedMasterKey,
    /// Every data key, active and retired.
    pub data_keys: Vec<WrappedDataKey>,
}

/// What vouches for a decoded keystore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoreAuthenticator<'a> {
    /// Version 1: nothing; the record must be upgraded.
    Legacy,
    /// Version 2: the tag over `covered` (every byte before the authenticator).
    Tagged {
        /// The bytes the tag covers.
        covered: &'a [u8],
        /// The tag's nonce.
        nonce: Nonce,
        /// The tag.
        tag: [u8; TAG_LEN],
    },
}

impl KeystoreRecord {
    /// The current encoding, to be followed by the authenticator the caller computes
    /// over exactly these bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u8(KEYSTORE_VERSION)
            .raw(&self.store_id)
            .str16(&self.cluster)
            .str16(&self.node)
            .u32(self.next_data_key_id);
        self.master_key.write(&mut w);
        w.u32(self.data_keys.len() as u32);
        for key in &self.data_keys {
            key.write(&mut w);
        }
        w.0
    }

    /// Decodes a stored keystore (either version) and what vouches for it; any input
    /// gives a value or an error. The authenticator is only read here, not checked.
    pub fn decode(bytes: &[u8]) -> Result<(Self, KeystoreAuthenticator<'_>), FormatError> {
        let (record, authenticator) = match bytes.first() {
            Some(&KEYSTORE_LEGACY_VERSION) => (bytes, KeystoreAuthenticator::Legacy),
            Some(&KEYSTORE_VERSION) => {
                let split = bytes
                    .len()
                    .checked_sub(KEYSTORE_AUTHENTICATOR_LEN)
                    .ok_or_else(|| err("keystore", "truncated: no authenticator"))?;
                let (covered, trailer) = bytes.split_at(split);
                let mut r = Reader::new("keystore", trailer);
                let authenticator = KeystoreAuthenticator::Tagged {
                    covered,
                    nonce: Nonce(r.array()?),
                    tag: r.array()?,
                };
                (covered, authenticator)
            }
            Some(v) => {
                return Err(err(
                    "keystore",
                    format!("unknown version {v} (this atrest reads versions 1 and 2)"),
                ))
            }
            None => return Err(err("keystore", "empty")),
        };
        let mut r = Reader::new("keystore", record);
        r.u8()?;
        let store_id = r.array()?;
        let cluster = r.str16()?;
        let node = r.str16()?;
        let next_data_key_id = r.u32()?;
        let master_key = WrappedMasterKey::read(&mut r)?;
        let count = r.u32()? as usize;
        // Each entry is at least 80 bytes: a count larger than the input is corrupt, and
        // must not become a huge allocation.
        let mut data_keys = Vec::with_capacity(count.min(r.buf.len() / 80));
        for _ in 0..count {
            data_keys.push(WrappedDataKey::read(&mut r)?);
        }
        r.finish()?;
        let record = KeystoreRecord {
            store_id,
            cluster,
            node,
            next_data_key_id,
            master_key,
            data_keys,
        };
        Ok((record, authenticator))
    }
}

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
    use proptest::prelude::*;

    pub(crate) fn sample_keystore() -> KeystoreRecord {
        KeystoreRecord {
            store_id: [7; 16],
            cluster: "cluster0".into(),
            node: "node-0".into(),
            next_data_key_id: 3,
            master_key: WrappedMasterKey {
                version: 2,
                created_ms: 1_700_000_000_000,
                cmk_arn:
                    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                        .into(),
                kms_blob: vec![9; 70],
            },
            data_keys: (1..3)
                .map(|id| WrappedDataKey {
                    id,
                    database: "orders".into(),
                    master_key_version: 2,
                    created_ms: 1_700_000_000_000 + u64::from(id),
                    status: if id == 2 {
                        DataKeyStatus::Active
                    } else {
                        DataKeyStatus::Retired
                    },
                    uses_reserved: 1 << 20,
                    nonce: Nonce([id as u8; 12]),
                    sealed: [id as u8; WRAPPED_KEY_LEN],
                })
                .collect(),
        }
    }

    /// A stored keystore: the record and an authenticator (not a valid one: decoding does
    /// not check it).
    fn stored(ks: &KeystoreRecord) -> Vec<u8> {
        let mut bytes = ks.encode();
        bytes.extend_from_slice(&[7; KEYSTORE_AUTHENTICATOR_LEN]);
        bytes
    }

    #[test]
    fn keystore_round_trips() {
        let ks = sample_keystore();
        let bytes = stored(&ks);
        let (decoded, authenticator) = KeystoreRecord::decode(&bytes).unwrap();
        assert_eq!(decoded, ks);
        assert_eq!(
            authenticator,
            KeystoreAuthenticator::Tagged {
                covered: &bytes[..bytes.len() - KEYSTORE_AUTHENTICATOR_LEN],
                nonce: Nonce([7; NONCE_LEN]),
                tag: [7; TAG_LEN],
            }
        );
        let mut legacy = ks.encode();
        legacy[0] = 1;
        let (decoded, authenticator) = KeystoreRecord::decode(&legacy).unwrap();
        assert_eq!(decoded, ks);
        assert_eq!(authenticator, KeystoreAuthenticator::Legacy);
        assert_eq!(
            WrappedMasterKey::decode(&ks.master_key.encode()).unwrap(),
            ks.master_key
        );
        assert_eq!(
            WrappedDataKey::decode(&ks.data_keys[0].encode()).unwrap(),
            ks.data_keys[0]
        );
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let bytes = stored(&sample_keystore());
        for len in 0..bytes.len() {
            assert!(
                KeystoreRecord::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(KeystoreRecord::decode(&long).is_err());
        let mut future = bytes;
        future[0] = 3;
        assert!(KeystoreRecord::decode(&future)
            .unwrap_err()
            .reason
            .contains("unknown version 3"));
    }

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

    #[test]
    fn record_header_round_trips() {
        let mut header = [0u8; RECORD_HEADER_LEN];
        Record::write_header(&mut header, 42, &Nonce([5; 12]));
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&[1; TAG_LEN + 3]);
        let r = Record::decode(&bytes).unwrap();
        assert_eq!(
            (r.data_key_id, r.nonce, r.sealed.len()),
            (42, Nonce([5; 12]), TAG_LEN + 3)
        );
        assert!(Record::decode(&bytes[..RECORD_OVERHEAD - 1]).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Record::decode(&bytes);
            let _ = WrappedMasterKey::decode(&bytes);
            let _ = WrappedDataKey::decode(&bytes);
            let _ = KeystoreRecord::decode(&bytes);
            let _ = SnapshotHeader::decode(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_mutated_keystores(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = stored(&sample_keystore());
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let len = cut.index(bytes.len() + 1);
            let _ = KeystoreRecord::decode(&bytes[..len]);
            let _ = KeystoreRecord::decode(&bytes);
        }
    }
}
