//! How Atlas spells what it names: 24-hex-digit ids, UUIDs, regions.

/// A 24-hex-digit id, as Atlas gives projects and roles.
pub fn atlas_id() -> String {
    let mut bytes = [0u8; 12];
    crate::crypto::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` spelled as a UUID, `8-4-4-4-12` lowercase hex digits: external ids, private
/// API keys. Written straight into the one string returned, which a caller holding a
/// secret can zeroize.
pub fn uuid_string(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        for nibble in [b >> 4, b & 0xf] {
            out.extend(char::from_digit(u32::from(nibble), 16));
        }
    }
    out
}

/// `us-east-1` as Atlas writes it: `US_EAST_1`.
pub fn atlas_region(region: &str) -> String {
    region.replace('-', "_").to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_spelled_8_4_4_4_12() {
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid_string(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn regions_and_ids_look_like_atlas() {
        assert_eq!(atlas_region("us-east-1"), "US_EAST_1");
        let id = atlas_id();
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
