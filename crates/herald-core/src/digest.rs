//! SHA-256 digests as lowercase hex, the form Herald stores and shows them in (token hashes,
//! sink digests, certificate fingerprints). Pure.

use sha2::{Digest as _, Sha256};

/// The SHA-256 of `bytes`, 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(64);
    push_hex(&mut text, &Sha256::digest(bytes));
    text
}

/// Appends `bytes` to `text` as lowercase hex, two digits a byte.
pub(crate) fn push_hex(text: &mut String, bytes: &[u8]) {
    for byte in bytes {
        text.push(hex_digit(byte >> 4));
        text.push(hex_digit(byte & 0xf));
    }
}

/// The lower-case hexadecimal digit of the low four bits of `nibble`.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble & 0xf), 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::sha256_hex;

    #[test]
    fn digests_are_lowercase_hex_of_sha256() {
        for (input, expected) in [
            (
                "",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ] {
            assert_eq!(sha256_hex(input.as_bytes()), expected, "{input:?}");
        }
    }
}
