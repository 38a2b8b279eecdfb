//! [`Sealer`]: the shared token as Redis holds it, sealed with ChaCha20-Poly1305 under a
//! key derived (HKDF-SHA256) from the OAuth client secret, so reading Redis alone reveals
//! no token. Every replica of one OAuth client derives the same key; a sealed value is
//! bound to its Redis key name (the AEAD's associated data), so it cannot be moved to
//! another slot. A value sealed under another secret, or altered, does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Format version of a sealed value (its first byte).
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Seals and opens the shared token.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// A token and its lifetime when it was issued, as sealed.
#[derive(Debug)]
pub struct Opened {
    pub token: SecretString,
    /// `expires_in` of the token response, in seconds.
    pub issued_for_secs: u64,
}

impl Sealer {
    /// A sealer whose key is derived from `secret` (the OAuth client secret) and
    /// `client_id`.
    #[must_use]
    pub fn new(secret: &SecretString, client_id: &str) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(
            Some(b"genesys-proxy shared token v1"),
            secret.expose_secret().as_bytes(),
        );
        let mut key = [0u8; 32];
        hkdf.expand(client_id.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = ChaCha20Poly1305::new(&Key::from(key));
        key.fill(0);
        Self { cipher }
    }

    /// `token` (issued for `issued_for_secs`) sealed for the Redis key `slot`.
    ///
    /// # Errors
    /// When the system's random source fails (no nonce).
    pub fn seal(
        &self,
        slot: &str,
        token: &SecretString,
        issued_for_secs: u64,
    ) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
        let mut plain = Vec::with_capacity(8 + token.expose_secret().len());
        plain.extend_from_slice(&issued_for_secs.to_be_bytes());
        plain.extend_from_slice(token.expose_secret().as_bytes());
        let sealed = self.cipher.encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: slot.as_bytes(),
            },
        );
        plain.fill(0);
        let sealed = sealed.map_err(|_| "sealing failed".to_owned())?;
        let mut value = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        value.push(VERSION);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// Opens a value sealed for `slot`; `None` when it does not open (another secret,
    /// another slot, altered, another format).
    #[must_use]
    pub fn open(&self, slot: &str, value: &[u8]) -> Option<Opened> {
        let (&version, rest) = value.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let mut plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: slot.as_bytes(),
                },
            )
            .ok()?;
        let opened = if plain.len() > 8 {
            let issued_for_secs = u64::from_be_bytes(plain[..8].try_into().ok()?);
            std::str::from_utf8(&plain[8..]).ok().map(|token| Opened {
                token: SecretString::from(token.to_owned()),
                issued_for_secs,
            })
        } else {
            None
        };
        plain.fill(0);
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_the_same_secret_and_slot() {
        let secret = SecretString::from("s3cret");
        let sealer = Sealer::new(&secret, "client");
        let token = SecretString::from("the-access-token");
        let sealed = sealer.seal("p:token", &token, 86_400).expect("sealed");
        assert!(
            !sealed
                .windows(token.expose_secret().len())
                .any(|w| w == b"the-access-token"),
            "the token is not in clear"
        );
        let opened = sealer.open("p:token", &sealed).expect("opens");
        assert_eq!(opened.token.expose_secret(), "the-access-token");
        assert_eq!(opened.issued_for_secs, 86_400);
        assert!(sealer.open("q:token", &sealed).is_none(), "another slot");
        let other = Sealer::new(&SecretString::from("other"), "client");
        assert!(other.open("p:token", &sealed).is_none(), "another secret");
        let mut altered = sealed.clone();
        *altered.last_mut().expect("bytes") ^= 1;
        assert!(sealer.open("p:token", &altered).is_none(), "altered");
        assert!(sealer.open("p:token", b"").is_none());
        // Two seals of one token differ (a fresh nonce each time).
        assert_ne!(sealer.seal("p:token", &token, 1).expect("sealed"), sealed);
    }
}
