//! The keystore's integrity: the authenticator every stored keystore ends in (an AES-GCM
//! tag over an empty message under the master key, the record's bytes as associated
//! data), and the master key's encryption context, which says whether the keystore it
//! belongs to is authenticated, so that no authenticated keystore can be rewritten as a
//! legacy one to escape the check. (A whole keystore put back from an older copy is not
//! detected here: that is a rollback, not an edit.)

use crate::crypto::{Aead, Nonce, TAG_LEN};
use crate::kms::EncryptionContext;

use super::{NodeIdentity, StoreId};

/// The encryption context of a master key's wrapping. Authenticated keystores add an
/// entry, so that a master key wrapped for one can never be passed off in a legacy
/// (unauthenticated) record.
pub(super) fn master_key_context(
    store: StoreId,
    identity: &NodeIdentity,
    version: u32,
    authenticated: bool,
) -> EncryptionContext {
    let mut context: EncryptionContext = [
        ("atrest:cluster", identity.cluster.clone()),
        ("atrest:node", identity.node.clone()),
        ("atrest:store", store.to_string()),
        ("atrest:master-key-version", version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if authenticated {
        context.insert("atrest:keystore".into(), "authenticated".into());
    }
    context
}

/// The associated data of a keystore's authenticator: a domain of its own under the
/// master key, then the record's bytes.
fn authenticator_aad(covered: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KEYSTORE_DOMAIN.len() + covered.len());
    aad.extend_from_slice(KEYSTORE_DOMAIN);
    aad.extend_from_slice(covered);
    aad
}

const KEYSTORE_DOMAIN: &[u8] = b"atrest keystore authenticator\0";

/// Appends the authenticator of `record` (nonce, then tag) to it.
pub(super) fn append_authenticator(master: &Aead, record: &mut Vec<u8>) {
    let nonce = Nonce::random();
    // Sealing an empty message with a valid key cannot fail; were it to, the zeroed tag
    // would fail to authenticate loudly at the next open rather than silently.
    let tag = master
        .seal(&nonce, &authenticator_aad(record), &[])
        .unwrap_or_else(|_| vec![0; TAG_LEN]);
    record.extend_from_slice(&nonce.0);
    record.extend_from_slice(&tag);
}

/// Whether `tag` authenticates `covered` under the master key.
pub(super) fn authenticates(master: &Aead, covered: &[u8], nonce: &Nonce, tag: &[u8]) -> bool {
    master.open(nonce, &authenticator_aad(covered), tag).is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::crypto::{Backend, SecretKey};
    use crate::format::{KeystoreRecord, WrappedMasterKey, KEYSTORE_AUTHENTICATOR_LEN};
    use crate::keys::{KeysError, Keystore};
    use crate::kms::{Caller, CreateKeyRequest, LocalKms, LocalKmsClient};

    fn kms() -> (LocalKmsClient, String) {
        let kms = LocalKms::in_memory(Arc::new(SystemClock));
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let cmk = client.create_key(CreateKeyRequest::default()).unwrap().arn;
        (client, cmk)
    }

    fn identity() -> NodeIdentity {
        NodeIdentity {
            cluster: "c".into(),
            node: "node-0".into(),
        }
    }

    fn stored_keystore(kms: &LocalKmsClient, cmk: &str) -> Vec<u8> {
        let now = SystemClock.now();
        Keystore::create(kms, cmk, identity(), Backend::default(), now)
            .unwrap()
            .with_new_data_key("db", 1_000_000, now)
            .unwrap()
            .encode()
    }

    #[test]
    fn an_edited_use_count_is_detected() {
        let (kms, cmk) = kms();
        let bytes = stored_keystore(&kms, &cmk);
        assert!(Keystore::unwrap(&bytes, &kms, Backend::default()).is_ok());
        let (mut record, _) = KeystoreRecord::decode(&bytes).unwrap();
        record.data_keys[0].uses_reserved = 0;
        let mut edited = record.encode();
        edited.extend_from_slice(&bytes[bytes.len() - KEYSTORE_AUTHENTICATOR_LEN..]);
        match Keystore::unwrap(&edited, &kms, Backend::default()) {
            Err(KeysError::Corrupt { reason, .. }) => {
                assert!(reason.contains("altered on disk"), "{reason}")
            }
            other => panic!("an edited keystore was accepted: {other:?}"),
        }
    }

    #[test]
    fn an_authenticated_keystore_cannot_pass_as_a_legacy_one() {
        let (kms, cmk) = kms();
        let bytes = stored_keystore(&kms, &cmk);
        let mut downgraded = bytes[..bytes.len() - KEYSTORE_AUTHENTICATOR_LEN].to_vec();
        downgraded[0] = 1;
        let err = Keystore::unwrap(&downgraded, &kms, Backend::default()).unwrap_err();
        assert!(err.kms_error().is_some(), "{err}");
    }

    #[test]
    fn a_legacy_keystore_is_read_then_upgraded() {
        let (kms, cmk) = kms();
        let store = StoreId([9; 16]);
        let key = SecretKey::generate();
        let wrapped = kms
            .encrypt(
                &cmk,
                key.expose(),
                &master_key_context(store, &identity(), 1, false),
            )
            .unwrap();
        let mut legacy = KeystoreRecord {
            store_id: store.0,
            cluster: "c".into(),
            node: "node-0".into(),
            next_data_key_id: 1,
            master_key: WrappedMasterKey {
                version: 1,
                created_ms: 0,
                cmk_arn: wrapped.key_arn,
                kms_blob: wrapped.ciphertext_blob,
            },
            data_keys: Vec::new(),
        }
        .encode();
        legacy[0] = 1;
        let read = Keystore::unwrap(&legacy, &kms, Backend::default()).unwrap();
        assert!(read.needs_upgrade());
        let upgraded = read.upgraded(&kms).unwrap();
        assert!(!upgraded.needs_upgrade());
        let again = Keystore::unwrap(&upgraded.encode(), &kms, Backend::default()).unwrap();
        assert!(!again.needs_upgrade());
        assert_eq!(again.store_id(), store);
    }
}
