//! The ciphertext blobs LocalKms returns from Encrypt and GenerateDataKey.
//!
//! ```text
//!  0         1                17                  21          33           n-16      n
//!  | version | key id (16 B)  | material version  | nonce (12) | ciphertext | tag (16) |
//!  |   = 1   | UUID bytes     | u32, big-endian   |            |            |          |
//! ```
//!
//! The AES-256-GCM associated data is the 21-byte header followed by the encryption
//! context (see [`context_aad`]), so a blob opens only with the same key, material version
//! and context; a flipped byte anywhere fails authentication.

use crate::crypto::{Nonce, NONCE_LEN, TAG_LEN};

use super::keyref::{is_multi_region_id, key_id_from_bytes, key_id_to_bytes, multi_region_id};
use super::{EncryptionContext, KmsError};

/// The blob version whose key id is a UUID.
const VERSION: u8 = 1;
/// The blob version whose key id is a multi-Region key's (`mrk-` and the 16 bytes in hex).
const VERSION_MULTI_REGION: u8 = 2;
const HEADER_LEN: usize = 1 + 16 + 4;

/// A decoded blob; borrows the sealed bytes from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiphertextBlob<'a> {
    /// The key that made the blob.
    pub key_id: String,
    /// The key material version that sealed it.
    pub material_version: u32,
    /// The nonce of the sealing.
    pub nonce: Nonce,
    header: &'a [u8],
    /// Ciphertext followed by the tag.
    pub sealed: &'a [u8],
}

impl<'a> CiphertextBlob<'a> {
    /// Decodes a blob. Any input gives a value or an InvalidCiphertext error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, KmsError> {
        let invalid = |why: &str| {
            KmsError::InvalidCiphertext(format!("the ciphertext blob is not valid: {why}"))
        };
        if bytes.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(invalid("too short"));
        }
        let multi_region = match bytes.first() {
            Some(&VERSION) => false,
            Some(&VERSION_MULTI_REGION) => true,
            other => {
                return Err(invalid(&format!(
                    "unknown blob version {}",
                    other.copied().unwrap_or_default()
                )))
            }
        };
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let id: [u8; 16] = header
            .get(1..17)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| invalid("short key id"))?;
        let version: [u8; 4] = header
            .get(17..21)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| invalid("short version"))?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        Ok(CiphertextBlob {
            key_id: if multi_region {
                multi_region_id(&id)
            } else {
                key_id_from_bytes(&id)
            },
            material_version: u32::from_be_bytes(version),
            nonce: Nonce(nonce.try_into().map_err(|_| invalid("short nonce"))?),
            header,
            sealed,
        })
    }

    /// The header of a new blob; `None` if `key_id` is not a UUID.
    pub(crate) fn header(key_id: &str, material_version: u32) -> Option<Vec<u8>> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.push(if is_multi_region_id(key_id) {
            VERSION_MULTI_REGION
        } else {
            VERSION
        });
        h.extend_from_slice(&key_id_to_bytes(key_id)?);
        h.extend_from_slice(&material_version.to_be_bytes());
        Some(h)
    }

    pub(crate) fn aad(&self, context: &EncryptionContext) -> Vec<u8> {
        context_aad(self.header, context)
    }
}

/// The header followed by the context's pairs in key order, each length-prefixed, so
/// no two different contexts give the same bytes.
pub(crate) fn context_aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&(context.len() as u32).to_be_bytes());
    for (k, v) in context {
        for part in [k, v] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contexts_that_concatenate_alike_differ() {
        let a: EncryptionContext = [("ab".to_string(), "c".to_string())].into();
        let b: EncryptionContext = [("a".to_string(), "bc".to_string())].into();
        assert_ne!(context_aad(b"", &a), context_aad(b"", &b));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = CiphertextBlob::decode(&bytes);
        }
    }
}
