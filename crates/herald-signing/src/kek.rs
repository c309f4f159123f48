//! Sealing secrets at rest under key-encryption keys (KEKs): XChaCha20-Poly1305 (RustCrypto)
//! with a random 192-bit nonce per sealing, and the id of the KEK stored beside each
//! ciphertext, so KEKs can be rotated: a [`Keyring`] seals with its current KEK and opens with
//! any KEK it holds, and whatever was sealed under an older one is sealed again when next
//! written.
//!
//! The caller binds each ciphertext to where it is stored (`context`, authenticated but not
//! encrypted): a sealed secret copied into another record does not open there.
//!
//! No I/O except the operating system's random source for nonces.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};

/// The one algorithm sealed values use, stored beside them.
pub const ALGORITHM: &str = "xchacha20poly1305";

const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;
const MAX_KEY_ID_LEN: usize = 64;

/// Why a keyring could not be built or a value could not be sealed or opened. Messages never
/// contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("a key-encryption key must be written `ID:BASE64` (32 bytes of key)")]
    Format,
    #[error("key-encryption key id `{0}` must be 1 to 64 letters, digits, `-`, `_` or `.`")]
    KeyId(String),
    #[error("key-encryption key `{0}` must be 32 bytes of standard base64")]
    KeyLength(String),
    #[error("key-encryption key id `{0}` is given twice")]
    DuplicateId(String),
    #[error("no key-encryption key is configured")]
    Empty,
    #[error("sealed with key-encryption key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("sealed with algorithm `{0}`, which Herald does not know")]
    UnknownAlgorithm(String),
    #[error("sealed value is not valid base64")]
    Encoding,
    #[error("sealed value does not open: wrong key, wrong record or tampered")]
    Open,
    #[error("sealing failed")]
    Seal,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// One key-encryption key: an id and 32 bytes; the bytes are never printed.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; KEY_BYTES],
}

impl Kek {
    /// Builds a KEK from its id and key bytes.
    pub fn new(id: &str, key: [u8; KEY_BYTES]) -> Result<Kek, Error> {
        let valid_id = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_id {
            return Err(Error::KeyId(id.to_owned()));
        }
        Ok(Kek {
            id: id.to_owned(),
            key,
        })
    }

    /// Parses `ID:BASE64`, the form of `secrets.keys` entries.
    pub fn parse(text: &str) -> Result<Kek, Error> {
        let (id, encoded) = text.split_once(':').ok_or(Error::Format)?;
        let id = id.trim();
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| Error::KeyLength(id.to_owned()))?;
        let key: [u8; KEY_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::KeyLength(id.to_owned()))?;
        Kek::new(id, key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({}, <redacted>)", self.id)
    }
}

/// A sealed value as it is stored: the algorithm and KEK id in clear, nonce and ciphertext
/// (with its tag) in standard base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub algorithm: String,
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The KEKs a process holds: the current one seals, every one opens.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Kek,
    older: Vec<Kek>,
}

impl Keyring {
    /// Builds a keyring; the first KEK is the current one, the others only open.
    pub fn new(keys: Vec<Kek>) -> Result<Keyring, Error> {
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(Error::Empty)?;
        let older: Vec<Kek> = keys.collect();
        let mut ids = vec![current.id.as_str()];
        for kek in &older {
            if ids.contains(&kek.id.as_str()) {
                return Err(Error::DuplicateId(kek.id.clone()));
            }
            ids.push(&kek.id);
        }
        Ok(Keyring { current, older })
    }

    /// Parses `ID:BASE64` entries, the current KEK first.
    pub fn parse(entries: &[String]) -> Result<Keyring, Error> {
        let keys = entries
            .iter()
            .map(|entry| Kek::parse(entry))
            .collect::<Result<Vec<Kek>, Error>>()?;
        Keyring::new(keys)
    }

    /// Returns the id of the KEK that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` under the current KEK, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, Error> {
        let mut nonce = [0_u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|err| Error::Random(err.to_string()))?;
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| Error::Seal)?;
        Ok(Sealed {
            algorithm: ALGORITHM.to_owned(),
            key_id: self.current.id.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(ciphertext),
        })
    }

    /// Opens a sealed value bound to `context`, with whichever KEK sealed it.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.algorithm != ALGORITHM {
            return Err(Error::UnknownAlgorithm(sealed.algorithm.clone()));
        }
        let kek = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|kek| kek.id == sealed.key_id)
            .ok_or_else(|| Error::UnknownKey(sealed.key_id.clone()))?;
        let nonce = BASE64.decode(&sealed.nonce).map_err(|_| Error::Encoding)?;
        let nonce: [u8; NONCE_BYTES] = nonce.as_slice().try_into().map_err(|_| Error::Encoding)?;
        let ciphertext = BASE64
            .decode(&sealed.ciphertext)
            .map_err(|_| Error::Encoding)?;
        kek.cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| Error::Open)
    }

    /// Returns true when `sealed` should be sealed again: it is not under the current KEK.
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current.id || sealed.algorithm != ALGORITHM
    }
}
