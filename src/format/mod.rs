//! Versioned binary encodings of everything atrest writes to disk.
//!
//! Owns the byte layouts of the record envelope, the wrapped master key and wrapped data
//! keys (here), the keystore (`keystore`) and the snapshot header (`snapshot`). Each starts with a version byte; a decoder returns a
//! [`FormatError`] on any input it cannot read and never panics. Integers are big-endian;
//! `str16` is a u16 length then UTF-8, `bytes32` a u32 length then bytes.

mod keystore;
mod snapshot;

pub use keystore::{KeystoreAuthenticator, KeystoreRecord, KEYSTORE_AUTHENTICATOR_LEN};
pub use snapshot::{SnapshotHeader, SNAPSHOT_MAGIC, SNAPSHOT_PREFIX_LEN};

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }
}
