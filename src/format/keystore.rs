//! The keystore's encoding: a node's keys as one stored value, and its authenticator.

use super::*;

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

#[cfg(test)]
pub(crate) mod tests {
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

    proptest! {
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
