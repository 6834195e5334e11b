//! A key's secret bytes of any length (a key pair's PKCS #8, an HMAC key): zeroized when
//! dropped, base64 in the state file, never printed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A key's secret material, zeroized when dropped, base64 in the state file.
pub(crate) struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(BASE64.encode(&self.0)))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        BASE64
            .decode(encoded.as_bytes())
            .map(|b| SecretBytes(Zeroizing::new(b)))
            .map_err(D::Error::custom)
    }
}
