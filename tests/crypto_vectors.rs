//! Both AES-256-GCM backends against known-answer vectors, and against each other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use atrest::crypto::{Aead, Backend, Nonce, SecretKey, TAG_LEN};
use proptest::prelude::*;

struct Vector {
    key: Vec<u8>,
    iv: Vec<u8>,
    aad: Vec<u8>,
    pt: Vec<u8>,
    ct: Vec<u8>,
    tag: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/aes256gcm_vectors.txt"
    ))
    .unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.trim_start().strip_prefix('='))
                })
                .map(|v| hex(v.trim()))
        };
        if let (Some(key), Some(iv), Some(aad), Some(pt), Some(ct), Some(tag)) = (
            field("Key"),
            field("IV"),
            field("AAD"),
            field("PT"),
            field("CT"),
            field("Tag"),
        ) {
            out.push(Vector {
                key,
                iv,
                aad,
                pt,
                ct,
                tag,
            });
        }
    }
    out
}

#[test]
fn every_backend_matches_the_known_answers() {
    let vectors = vectors();
    assert_eq!(
        vectors.len(),
        4,
        "testdata/aes256gcm_vectors.txt should hold 4 vectors"
    );
    for &backend in Backend::available() {
        for (i, v) in vectors.iter().enumerate() {
            let aead = Aead::new(&SecretKey::from_slice(&v.key).unwrap(), backend).unwrap();
            let nonce = Nonce(v.iv.clone().try_into().unwrap());
            let sealed = aead.seal(&nonce, &v.aad, &v.pt).unwrap();
            assert_eq!(
                &sealed[..v.pt.len()],
                &v.ct[..],
                "{backend} vector {i}: ciphertext"
            );
            assert_eq!(
                &sealed[v.pt.len()..],
                &v.tag[..],
                "{backend} vector {i}: tag"
            );
            assert_eq!(&aead.open(&nonce, &v.aad, &sealed).unwrap()[..], &v.pt[..]);
            let mut bad = sealed.clone();
            bad[sealed.len() - TAG_LEN] ^= 1;
            assert!(
                aead.open(&nonce, &v.aad, &bad).is_err(),
                "{backend} vector {i}: forged tag accepted"
            );
        }
    }
}

#[test]
#[cfg(all(feature = "aws-lc", feature = "rustcrypto"))]
fn both_backends_are_compared() {
    assert_eq!(
        Backend::available().len(),
        2,
        "build with both backends (the default features) to compare them"
    );
}

proptest! {
    #[test]
    fn backends_produce_identical_bytes(
        key in proptest::array::uniform32(any::<u8>()),
        nonce in proptest::array::uniform12(any::<u8>()),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let key = SecretKey::from_slice(&key).unwrap();
        let nonce = Nonce(nonce);
        let outputs: Vec<Vec<u8>> = Backend::available()
            .iter()
            .map(|&b| Aead::new(&key, b).unwrap().seal(&nonce, &aad, &plaintext).unwrap())
            .collect();
        prop_assert!(outputs.windows(2).all(|w| w[0] == w[1]));
        for &b in Backend::available() {
            let opened = Aead::new(&key, b).unwrap().open(&nonce, &aad, &outputs[0]).unwrap();
            prop_assert_eq!(&opened[..], &plaintext[..]);
        }
    }
}
