//! Where LocalKms's random bytes come from: the operating system's CSPRNG, or, in the
//! deterministic mode tests and fuzzers ask for, a ChaCha stream from a seed, so that key
//! ids, key material, nonces, grant ids, access keys and random bytes replay byte for
//! byte. Everything random in LocalKms comes through here.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::Zeroizing;

use super::{keyref, LocalKms};
use crate::crypto::{Nonce, SecretKey};

/// The source of a LocalKms's random bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Entropy {
    /// The operating system's CSPRNG: what a KMS must use (a thread a test seeded with
    /// [`seed_thread`](crate::crypto::seed_thread) draws from its seed instead).
    #[default]
    System,
    /// A ChaCha stream from this seed, for runs that must replay byte for byte. Its key
    /// material is predictable: for tests and fuzzing only, and only while one process
    /// uses the state (two would draw the same ids).
    Seeded(u64),
}

/// The generator behind an [`Entropy`].
pub(super) struct Source(Option<Mutex<StdRng>>);

impl Source {
    pub(super) fn new(entropy: Entropy) -> Self {
        match entropy {
            Entropy::System => Source(None),
            Entropy::Seeded(seed) => Source(Some(Mutex::new(StdRng::seed_from_u64(seed)))),
        }
    }

    fn fill(&self, buf: &mut [u8]) {
        match &self.0 {
            None => crate::crypto::fill_random(buf),
            Some(rng) => rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .fill_bytes(buf),
        }
    }
}

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl LocalKms {
    /// `buf` filled with random bytes.
    pub(super) fn fill(&self, buf: &mut [u8]) {
        self.entropy.fill(buf);
    }

    /// A random (version 4) UUID, as AWS gives new keys.
    pub(super) fn new_key_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        keyref::uuid_v4(bytes)
    }

    /// A random multi-Region key id (`mrk-` and 32 hex digits).
    pub(super) fn new_multi_region_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        keyref::multi_region_id(&bytes)
    }

    /// Fresh key material.
    pub(super) fn new_secret_key(&self) -> SecretKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        self.fill(bytes.as_mut());
        SecretKey::from(bytes)
    }

    /// A fresh GCM nonce.
    pub(super) fn new_nonce(&self) -> Nonce {
        let mut nonce = Nonce([0; 12]);
        self.fill(&mut nonce.0);
        nonce
    }

    /// `n` random letters and digits, each of the 62 equally likely.
    pub(super) fn random_alphanumeric(&self, n: usize) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(n));
        let mut byte = [0u8; 1];
        while out.len() < n {
            self.fill(&mut byte);
            // 248 = 4 × 62: bytes above it are drawn again, so no letter is favoured.
            if let Some(c) = ALPHANUMERIC
                .get(usize::from(byte[0] % 62))
                .filter(|_| byte[0] < 248)
            {
                out.push(char::from(*c));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::clock::{ManualClock, Timestamp};
    use crate::kms::{Caller, CreateKeyRequest, EncryptionContext, Entropy, LocalKms};

    /// Key ids, ciphertexts and random bytes of one scripted run.
    fn run(entropy: Entropy) -> (String, Vec<u8>, Vec<u8>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
        let kms = LocalKms::in_memory_with(clock, entropy);
        let client = kms.client(Caller::account_root("111122223333", "us-east-1").unwrap());
        let key = client
            .create_key(CreateKeyRequest::default())
            .unwrap()
            .key_id;
        let sealed = client
            .encrypt(&key, b"replay", &EncryptionContext::new())
            .unwrap()
            .ciphertext_blob;
        let random = client.generate_random(16).unwrap().to_vec();
        (key, sealed, random)
    }

    #[test]
    fn a_seeded_kms_replays_byte_for_byte_and_the_system_one_does_not() {
        assert_eq!(run(Entropy::Seeded(7)), run(Entropy::Seeded(7)));
        assert_ne!(run(Entropy::Seeded(7)), run(Entropy::Seeded(8)));
        assert_ne!(run(Entropy::System), run(Entropy::System));
    }
}
