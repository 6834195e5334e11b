//! AES-256-GCM and the secret types that hold key bytes.
//!
//! Owns: [`SecretKey`] (32 zeroizing bytes that never print), [`Nonce`] (96 random bits
//! from the thread-local CSPRNG), and [`Aead`], a cipher built once per key over one of two
//! backends that produce byte-identical output: aws-lc-rs (fast, the default) and
//! RustCrypto's aes-gcm (pure Rust). Everything above seals and opens through [`Aead`];
//! snapshot files through the chunked stream built on it in [`stream`].

use std::fmt;

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::{Zeroize, Zeroizing};

/// Bytes in an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Bytes in a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes in a GCM authentication tag.
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Errors of sealing and opening.
pub enum CryptoError {
    #[error(
        "authentication failed: the key, the associated data or the bytes are not the ones sealed"
    )]
    /// The tag did not verify.
    Authentication,
    #[error("a key must be {KEY_LEN} bytes, got {0}")]
    /// Key bytes of the wrong length.
    KeyLength(usize),
    #[error("sealed data is {0} bytes, shorter than the {TAG_LEN}-byte tag")]
    /// Sealed bytes too short to hold a tag.
    TooShort(usize),
    #[error("the {0} backend is not compiled into this build (enable its cargo feature)")]
    /// The chosen backend was not compiled in.
    BackendMissing(Backend),
}

thread_local! {
    /// Set by [`seed_thread`]: this thread's random bytes come from it.
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Fills `out` with random bytes: from the thread-local CSPRNG, or, on a thread
/// [`seed_thread`] seeded, from its seeded stream. Every key, nonce and identifier atrest
/// makes (and LocalKms's, unless it was given its own seed) comes through here.
pub fn fill_random(out: &mut [u8]) {
    SEEDED.with_borrow_mut(|seeded| match seeded {
        Some(rng) => rng.fill_bytes(out),
        None => rand::rng().fill_bytes(out),
    });
}

/// Makes this thread's random bytes (see [`fill_random`]) a ChaCha stream from `seed` until
/// the guard drops, when the thread's previous source comes back: a run replays byte for
/// byte (keys, nonces, ids, hence every ciphertext). For tests and fuzzing only: the keys
/// are as predictable as the seed. Work atrest hands to another thread is kept on this one
/// while it is seeded.
pub fn seed_thread(seed: u64) -> SeededThread {
    let previous = SEEDED.with_borrow_mut(|s| s.replace(StdRng::seed_from_u64(seed)));
    SeededThread {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// Whether [`seed_thread`] seeded this thread.
pub fn is_thread_seeded() -> bool {
    SEEDED.with_borrow(Option::is_some)
}

/// What [`seed_thread`] returns: dropping it gives the thread back its previous source.
#[must_use = "the thread is seeded only while the guard lives"]
pub struct SeededThread {
    previous: Option<StdRng>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SeededThread {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SEEDED.with_borrow_mut(|s| *s = previous);
    }
}

impl fmt::Debug for SeededThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededThread")
    }
}

/// 32 secret bytes: zeroized on drop, never shown by Debug.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// Fresh random key material (see [`fill_random`]).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut());
        SecretKey(key)
    }

    /// A key that takes these bytes (already zeroizing) as they are.
    pub fn from(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        SecretKey(bytes)
    }

    /// A key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        Ok(SecretKey(Zeroizing::new(array)))
    }

    /// The raw bytes, for wrapping under another key. Keep the borrow short.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A 96-bit GCM nonce. Random nonces are safe for about 2^32 seals under one key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    /// A fresh random nonce (see [`fill_random`]; no syscall).
    pub fn random() -> Self {
        let mut n = [0u8; NONCE_LEN];
        fill_random(&mut n);
        Nonce(n)
    }
}

/// Which AES-GCM implementation does the work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// aws-lc-rs: AES-NI and CLMUL assembly; the fast default.
    AwsLc,
    /// RustCrypto's aes-gcm: pure Rust.
    RustCrypto,
}

impl Backend {
    /// Every backend compiled into this build.
    pub fn available() -> &'static [Backend] {
        &[
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc,
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto,
        ]
    }
}

impl Default for Backend {
    fn default() -> Self {
        if cfg!(feature = "aws-lc") {
            Backend::AwsLc
        } else {
            Backend::RustCrypto
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::AwsLc => "aws-lc-rs",
            Backend::RustCrypto => "aes-gcm (RustCrypto)",
        })
    }
}

/// An AES-256-GCM key schedule, built once and reused for every seal and open.
pub struct Aead {
    inner: AeadInner,
}

enum AeadInner {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    #[cfg(feature = "rustcrypto")]
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl fmt::Debug for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aead({})", self.backend())
    }
}

impl Aead {
    /// Builds the key schedule of `key` for `backend`.
    pub fn new(key: &SecretKey, backend: Backend) -> Result<Self, CryptoError> {
        let inner = match backend {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
                let unbound = UnboundKey::new(&AES_256_GCM, key.expose())
                    .map_err(|_| CryptoError::KeyLength(KEY_LEN))?;
                AeadInner::AwsLc(LessSafeKey::new(unbound))
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use aes_gcm::KeyInit;
                let cipher = aes_gcm::Aes256Gcm::new_from_slice(key.expose())
                    .map_err(|_| CryptoError::KeyLength(KEY_LEN))?;
                AeadInner::RustCrypto(Box::new(cipher))
            }
            #[allow(unreachable_patterns)]
            other => return Err(CryptoError::BackendMissing(other)),
        };
        Ok(Aead { inner })
    }

    /// The backend doing the work.
    pub fn backend(&self) -> Backend {
        match self.inner {
            #[cfg(feature = "aws-lc")]
            AeadInner::AwsLc(_) => Backend::AwsLc,
            #[cfg(feature = "rustcrypto")]
            AeadInner::RustCrypto(_) => Backend::RustCrypto,
        }
    }

    /// Encrypts `buf[..len - TAG_LEN]` in place and writes the tag into the last
    /// `TAG_LEN` bytes, which the caller reserves.
    pub fn seal_in_place(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        let split = buf
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::TooShort(buf.len()))?;
        let (data, tag_out) = buf.split_at_mut(split);
        match &self.inner {
            #[cfg(feature = "aws-lc")]
            AeadInner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce as AwsNonce};
                let tag = key
                    .seal_in_place_separate_tag(
                        AwsNonce::assume_unique_for_key(nonce.0),
                        Aad::from(aad),
                        data,
                    )
                    .map_err(|_| CryptoError::Authentication)?;
                tag_out.copy_from_slice(tag.as_ref());
            }
            #[cfg(feature = "rustcrypto")]
            AeadInner::RustCrypto(cipher) => {
                use aes_gcm::aead::AeadInPlace;
                let tag = cipher
                    .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce.0), aad, data)
                    .map_err(|_| CryptoError::Authentication)?;
                tag_out.copy_from_slice(&tag);
            }
        }
        Ok(())
    }

    /// Decrypts ciphertext-then-tag in place; on success the plaintext is
    /// `buf[..buf.len() - TAG_LEN]`. On failure the buffer holds no plaintext.
    pub fn open_in_place(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::TooShort(buf.len()));
        }
        match &self.inner {
            #[cfg(feature = "aws-lc")]
            AeadInner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce as AwsNonce};
                key.open_in_place(
                    AwsNonce::assume_unique_for_key(nonce.0),
                    Aad::from(aad),
                    buf,
                )
                .map(|_| ())
                .map_err(|_| CryptoError::Authentication)
            }
            #[cfg(feature = "rustcrypto")]
            AeadInner::RustCrypto(cipher) => {
                use aes_gcm::aead::AeadInPlace;
                let (data, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
                let result = cipher.decrypt_in_place_detached(
                    aes_gcm::Nonce::from_slice(&nonce.0),
                    aad,
                    data,
                    aes_gcm::Tag::from_slice(tag),
                );
                result.map_err(|_| {
                    data.zeroize();
                    CryptoError::Authentication
                })
            }
        }
    }

    /// Decrypts ciphertext-then-tag from `sealed` into a new buffer (see
    /// [`Aead::open_into`]).
    pub fn open_to_vec(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut plain = Vec::new();
        self.open_into(nonce, aad, sealed, &mut plain)?;
        Ok(plain)
    }

    /// Decrypts ciphertext-then-tag from `sealed`, appending the plaintext to `plain`
    /// (whose allocation a caller may reuse), reading the input once (no copy to decrypt
    /// in place where the backend allows). Nothing is appended unless the tag verifies.
    pub fn open_into(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        sealed: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let split = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::TooShort(sealed.len()))?;
        let (ciphertext, tag) = sealed.split_at(split);
        let start = plain.len();
        plain.resize(start + split, 0);
        let out = plain.get_mut(start..).unwrap_or_default();
        let opened = match &self.inner {
            #[cfg(feature = "aws-lc")]
            AeadInner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce as AwsNonce};
                key.open_separate_gather(
                    AwsNonce::assume_unique_for_key(nonce.0),
                    Aad::from(aad),
                    ciphertext,
                    tag,
                    out,
                )
                .is_ok()
            }
            #[cfg(feature = "rustcrypto")]
            AeadInner::RustCrypto(cipher) => {
                use aes_gcm::aead::AeadInPlace;
                out.copy_from_slice(ciphertext);
                cipher
                    .decrypt_in_place_detached(
                        aes_gcm::Nonce::from_slice(&nonce.0),
                        aad,
                        out,
                        aes_gcm::Tag::from_slice(tag),
                    )
                    .is_ok()
            }
        };
        if !opened {
            out.zeroize();
            plain.truncate(start);
            return Err(CryptoError::Authentication);
        }
        Ok(())
    }

    /// Convenience for small values (keys, headers): returns ciphertext || tag.
    pub fn seal(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        buf.resize(plaintext.len() + TAG_LEN, 0);
        self.seal_in_place(nonce, aad, &mut buf)?;
        Ok(buf)
    }

    /// Convenience for small values: returns the plaintext in a zeroizing buffer.
    pub fn open(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut buf = Zeroizing::new(sealed.to_vec());
        self.open_in_place(nonce, aad, &mut buf)?;
        let len = buf.len() - TAG_LEN;
        buf.truncate(len);
        Ok(buf)
    }
}

pub mod stream;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_debug_shows_no_bytes() {
        let key = SecretKey::from_slice(&[0xAB; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn every_backend_round_trips_and_rejects_tampering() {
        let key = SecretKey::generate();
        for &backend in Backend::available() {
            let aead = Aead::new(&key, backend).unwrap();
            let nonce = Nonce::random();
            let sealed = aead.seal(&nonce, b"aad", b"hello").unwrap();
            assert_eq!(&aead.open(&nonce, b"aad", &sealed).unwrap()[..], b"hello");
            assert_eq!(
                aead.open(&nonce, b"other", &sealed),
                Err(CryptoError::Authentication)
            );
            let mut bad = sealed.clone();
            bad[0] ^= 1;
            assert_eq!(
                aead.open(&nonce, b"aad", &bad),
                Err(CryptoError::Authentication)
            );
            assert_eq!(
                aead.open(&nonce, b"aad", &sealed[..3]),
                Err(CryptoError::TooShort(3))
            );
        }
    }

    #[test]
    fn wrong_key_length_is_an_error() {
        assert!(matches!(
            SecretKey::from_slice(&[1; 31]),
            Err(CryptoError::KeyLength(31))
        ));
    }
}
