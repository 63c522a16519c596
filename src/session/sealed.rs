//! Refresh tokens at rest: sealed with AES-256-GCM under a key derived
//! (HKDF-SHA256) from the master secret every replica shares, a fresh
//! random nonce each time, and the session's row as associated data, so a
//! sealed token copied to another row does not open.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// What the key is derived for; a new purpose would get another key.
const PURPOSE: &[u8] = b"idgate refresh tokens v1";

pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

/// The HKDF output length for an AES-256 key.
struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        AES_256_GCM.key_len()
    }
}

impl Sealer {
    /// A sealer keyed from `master` (the stored master secret).
    pub fn new(master: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"idgate").extract(master);
        let mut key = [0u8; 32];
        prk.expand(&[PURPOSE], KeyLen)
            .and_then(|okm| okm.fill(&mut key))
            .expect("32 bytes is a valid HKDF-SHA256 output");
        let key = UnboundKey::new(&AES_256_GCM, &key).expect("an AES-256 key is 32 bytes");
        Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `plain` sealed for the row `row`, as text.
    pub fn seal(&self, plain: &str, row: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a short token cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// What `sealed` holds, when it was sealed by this key for `row`.
    pub fn open(&self, sealed: &str, row: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(row.as_bytes()), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_for_its_row_and_key() {
        let sealer = Sealer::new(&[7u8; 64]);
        let sealed = sealer.seal("0.AAAA-refresh", "row-a");
        assert!(!sealed.contains("refresh"));
        assert_eq!(
            sealer.open(&sealed, "row-a").as_deref(),
            Some("0.AAAA-refresh")
        );
        assert_eq!(sealer.open(&sealed, "row-b"), None);
        assert_eq!(Sealer::new(&[8u8; 64]).open(&sealed, "row-a"), None);
        assert_ne!(
            sealer.seal("0.AAAA-refresh", "row-a"),
            sealed,
            "a fresh nonce each time"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            sealer.open(&String::from_utf8(tampered).unwrap(), "row-a"),
            None
        );
    }
}
