//! HTTP Digest authentication as Atlas answers it (RFC 7616 with `qop=auth`, MD5, realm
//! "MMS Public API"): the challenge, the nonces (minted and checked without server state
//! but for the replay counters) and the check of a client's answer against a key's
//! verifier, MD5(public:realm:private), which is all the server keeps of a private key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use zeroize::Zeroizing;

use crate::clock::SharedClock;

/// The realm Atlas names in its challenges.
pub const REALM: &str = "MMS Public API";
/// How long a nonce is good for; after it, the client is told `stale=true` and retries.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// MD5, the digest Atlas's challenges name, from the aws-lc that aws-lc-rs links (which
/// does not expose it). Used for nothing but this legacy protocol.
#[allow(unsafe_code)]
fn md5(data: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SAFETY: MD5 reads `data` for its length and writes exactly 16 bytes to `out`.
    unsafe {
        aws_lc_sys::MD5(data.as_ptr(), data.len(), out.as_mut_ptr());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `hex(MD5(data))`, digest authentication's H().
fn h(data: &str) -> String {
    hex(&md5(data.as_bytes()))
}

/// What the server keeps of an API key: MD5(public:realm:private), digest's HA1.
pub fn verifier(public_key: &str, private_key: &str) -> Zeroizing<String> {
    let secret = Zeroizing::new(format!("{public_key}:{REALM}:{private_key}"));
    Zeroizing::new(h(&secret))
}

/// The `Authorization` header answering `challenge` (a `WWW-Authenticate` value of
/// `atlas serve`) for API key `public`/`private`, on `method` and `uri` (path and query),
/// with nonce count `nc` (1, 2, ... per nonce) and client nonce `cnonce`: for Rust callers
/// of the server. `None` when the challenge is not a digest challenge with a nonce.
pub fn authorization(
    challenge: &str,
    public: &str,
    private: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> Option<String> {
    let (scheme, rest) = challenge.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let fields = parameters(rest)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let (realm, nonce) = (field("realm")?, field("nonce")?);
    let ha1 = Zeroizing::new(h(&Zeroizing::new(format!("{public}:{realm}:{private}"))));
    let ha2 = h(&format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = h(&format!(
        "{}:{nonce}:{nc}:{cnonce}:auth:{ha2}",
        ha1.as_str()
    ));
    let (public, uri, cnonce) = (quoted(public), quoted(uri), quoted(cnonce));
    Some(format!(
        "Digest username=\"{public}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\", algorithm=MD5"
    ))
}

/// `value` as the inside of a quoted string: `\` and `"` escaped.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The fields of an `Authorization: Digest ...` header.
#[derive(Debug, Default)]
pub struct Credentials {
    /// The API key's public half.
    pub username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
    algorithm: Option<String>,
}

impl Credentials {
    /// Parses an Authorization header; `None` unless it is a complete Digest answer.
    pub fn parse(header: &str) -> Option<Credentials> {
        let (scheme, rest) = header.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut c = Credentials::default();
        for (name, value) in parameters(rest)? {
            let slot = match name.to_ascii_lowercase().as_str() {
                "username" => &mut c.username,
                "realm" => &mut c.realm,
                "nonce" => &mut c.nonce,
                "uri" => &mut c.uri,
                "response" => &mut c.response,
                "qop" => c.qop.insert(String::new()),
                "nc" => c.nc.insert(String::new()),
                "cnonce" => c.cnonce.insert(String::new()),
                "algorithm" => c.algorithm.insert(String::new()),
                _ => continue,
            };
            *slot = value;
        }
        let complete = [&c.username, &c.nonce, &c.uri, &c.response]
            .iter()
            .all(|f| !f.is_empty());
        complete.then_some(c)
    }
}

/// `name=value, name="quoted, value"` pairs; `None` when a quote is left open.
fn parameters(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        // A quoted value is taken as it is; a token loses the spaces around it.
        if !quoted {
            value = value.trim().to_string();
        }
        out.push((name.trim().to_string(), value));
    }
}

/// Why a request was not authenticated.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No digest answer, a wrong one, or an unknown key.
    Unauthenticated,
    /// A right answer to an expired nonce: the client should answer a new challenge.
    Stale,
}

/// Mints and checks nonces with a key of its own; remembers the highest nonce count seen
/// per nonce, so an answer cannot be replayed.
pub struct Digest {
    key: hmac::Key,
    clock: SharedClock,
    counts: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest")
    }
}

impl Digest {
    /// A new nonce key, reading nonce ages off `clock`.
    pub fn new(clock: SharedClock) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        crate::crypto::fill_random(key.as_mut());
        Digest {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            clock,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, minted: &str) -> String {
        let tag = hmac::sign(&self.key, minted.as_bytes());
        hex(tag.as_ref().get(..16).unwrap_or_default())
    }

    /// The `WWW-Authenticate` header of a 401.
    pub fn challenge(&self, stale: bool) -> String {
        // When (16 hex digits) and 8 random bytes, so that two challenges of the same
        // millisecond differ: each nonce's counts are its own client's.
        let mut unique = [0u8; 8];
        crate::crypto::fill_random(&mut unique);
        let minted = format!("{:016x}{}", self.clock.now().as_millis(), hex(&unique));
        let nonce = format!("{minted}{}", self.mac(&minted));
        format!(
            "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
        )
    }

    /// Checks `credentials`, sent with `method` on `uri`, against `verifier` (None: no
    /// such key, answered like a wrong answer).
    pub fn check(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        verifier: Option<&str>,
    ) -> Result<(), Refusal> {
        let c = credentials;
        let algorithm_ok = c
            .algorithm
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
        if c.realm != REALM || c.uri != uri || !algorithm_ok {
            return Err(Refusal::Unauthenticated);
        }
        let minted_at = self.minted_at(&c.nonce).ok_or(Refusal::Unauthenticated)?;
        let verifier = verifier.ok_or(Refusal::Unauthenticated)?;
        let ha2 = h(&format!("{method}:{uri}"));
        let expected = match (c.qop.as_deref(), &c.nc, &c.cnonce) {
            (Some("auth"), Some(nc), Some(cnonce)) => {
                h(&format!("{verifier}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce))
            }
            // RFC 2069 answers carry no replay protection: refused.
            _ => return Err(Refusal::Unauthenticated),
        };
        let right = constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        )
        .is_ok();
        if !right {
            return Err(Refusal::Unauthenticated);
        }
        let now = self.clock.now().as_millis();
        let lifetime = u64::try_from(NONCE_LIFETIME.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(minted_at) > lifetime {
            return Err(Refusal::Stale);
        }
        self.count(&c.nonce, c.nc.as_deref().unwrap_or_default(), now, lifetime)
    }

    /// When `nonce` was minted, if this server minted it.
    fn minted_at(&self, nonce: &str) -> Option<u64> {
        let split = nonce.len().checked_sub(32)?;
        let (minted, tag) = (nonce.get(..split)?, nonce.get(split..)?);
        let expected = self.mac(minted);
        constant_time::verify_slices_are_equal(expected.as_bytes(), tag.as_bytes()).ok()?;
        u64::from_str_radix(minted.get(..16)?, 16).ok()
    }

    /// Accepts nonce count `nc` for `nonce` only if higher than any seen with it.
    fn count(&self, nonce: &str, nc: &str, now: u64, lifetime: u64) -> Result<(), Refusal> {
        let nc = u64::from_str_radix(nc, 16).map_err(|_| Refusal::Unauthenticated)?;
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // Forget nonces past their lifetime: they are refused as stale before this.
        counts.retain(|n, _| {
            self.minted_at(n)
                .is_some_and(|t| now.saturating_sub(t) <= lifetime)
        });
        let seen = counts.entry(nonce.to_string()).or_insert(0);
        if nc <= *seen {
            return Err(Refusal::Unauthenticated);
        }
        *seen = nc;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{ManualClock, Timestamp};

    #[test]
    fn md5_matches_rfc_1321() {
        assert_eq!(h(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(h("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    fn answer(challenge: &str, private: &str, method: &str, uri: &str, nc: u32) -> String {
        authorization(challenge, "pub", private, method, uri, nc, "abc").unwrap()
    }

    #[test]
    fn a_right_answer_passes_once_and_wrong_or_stale_ones_do_not() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000_000)));
        let digest = Digest::new(clock.clone());
        let v = verifier("pub", "secret");
        let challenge = digest.challenge(false);
        let uri = "/api/atlas/v2/groups";
        let ok = Credentials::parse(&answer(&challenge, "secret", "GET", uri, 1)).unwrap();
        assert_eq!(digest.check(&ok, "GET", uri, Some(&v)), Ok(()));
        // The same count again is a replay.
        assert_eq!(
            digest.check(&ok, "GET", uri, Some(&v)),
            Err(Refusal::Unauthenticated)
        );
        let next = Credentials::parse(&answer(&challenge, "secret", "GET", uri, 2)).unwrap();
        assert_eq!(digest.check(&next, "GET", uri, Some(&v)), Ok(()));
        // Another method, another URI, another key's verifier, an unknown key.
        let post = Credentials::parse(&answer(&challenge, "secret", "POST", uri, 3)).unwrap();
        assert!(digest.check(&post, "GET", uri, Some(&v)).is_err());
        assert!(digest.check(&post, "POST", "/other", Some(&v)).is_err());
        let wrong = verifier("pub", "guess");
        assert!(digest.check(&post, "POST", uri, Some(&wrong)).is_err());
        assert!(digest.check(&post, "POST", uri, None).is_err());
        // Two challenges never share a nonce, even in the same millisecond.
        assert_ne!(digest.challenge(false), digest.challenge(false));
        // A nonce this server did not mint.
        let forged = answer(
            &challenge.replace("nonce=\"", "nonce=\"0"),
            "secret",
            "GET",
            uri,
            1,
        );
        let forged = Credentials::parse(&forged).unwrap();
        assert!(digest.check(&forged, "GET", uri, Some(&v)).is_err());
        // Past its lifetime the right answer is stale.
        clock.advance(NONCE_LIFETIME + Duration::from_secs(1));
        let late = Credentials::parse(&answer(&challenge, "secret", "GET", uri, 9)).unwrap();
        assert_eq!(
            digest.check(&late, "GET", uri, Some(&v)),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn headers_that_are_not_digest_answers_parse_to_nothing() {
        for header in [
            "",
            "Basic cHViOnNlY3JldA==",
            "Digest username=\"pub\"",
            "Digest username=\"pub, nonce=\"x",
            "Digest ,,,,",
        ] {
            assert!(Credentials::parse(header).is_none(), "{header}");
        }
        let quoted = Credentials::parse(
            "Digest username=\"a\\\"b\", nonce=\"n\", uri=\"/x?a=1,b=2\", response=\"r\"",
        )
        .unwrap();
        assert_eq!(quoted.username, "a\"b");
        assert_eq!(quoted.uri, "/x?a=1,b=2");
    }
}
