//! The vault: seals refresh tokens at rest and signs OAuth `state`, with two keys derived
//! from `oauth.secret_key`.
//!
//! Sealing is ChaCha20-Poly1305 (ring, already in the tree through rustls) with a random
//! nonce per value and the account's alias as associated data, so a sealed token moved to
//! another account's record does not open. Signing is HMAC-SHA256, verified in constant time.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;

/// Marks the sealing scheme, so another can follow.
const SEALED_PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// Not sealed by this key (another key, another alias, or altered).
    #[error("the sealed value does not open with this key")]
    Unsealable,
}

pub struct Vault {
    seal: LessSafeKey,
    sign: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(***)")
    }
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Vault {
    pub fn new(master: &Secret<[u8; 32]>) -> Vault {
        let seal = hmac(master.expose(), b"dropcache v1: seal refresh tokens");
        Vault {
            seal: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &seal).expect("a 32-byte key"),
            ),
            sign: hmac(master.expose(), b"dropcache v1: sign oauth state"),
        }
    }

    /// Seals `secret` for the account `alias`: `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`.
    pub fn seal(&self, alias: &str, secret: &Secret<String>) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut data = secret.expose().as_bytes().to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(alias.as_bytes()),
                &mut data,
            )
            .expect("sealing a short value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what `seal` made for `alias`.
    pub fn open(&self, alias: &str, sealed: &str) -> Result<Secret<String>, VaultError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or(VaultError::Unsealable)?;
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Unsealable)?;
        let mut data = data.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(alias.as_bytes()), &mut data)
            .map_err(|_| VaultError::Unsealable)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| VaultError::Unsealable)
    }

    /// The signature of `data` (base64url).
    pub fn sign(&self, data: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac(&self.sign, data.as_bytes()))
    }

    /// Whether `signature` is `data`'s (constant time).
    pub fn verify(&self, data: &str, signature: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.sign).expect("any key length");
        mac.update(data.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// A secret derived from `data` (base64url, 43 characters): PKCE verifiers are derived
    /// from their link's nonce, so none is ever stored.
    pub fn derive(&self, data: &str) -> Secret<String> {
        Secret::new(URL_SAFE_NO_PAD.encode(hmac(&self.sign, format!("derive:{data}").as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(byte: u8) -> Vault {
        Vault::new(&Secret::new([byte; 32]))
    }

    #[test]
    fn sealed_values_open_only_for_their_alias_and_key() {
        let v = vault(1);
        let token = Secret::new("refresh-token-value".to_owned());
        let sealed = v.seal("bob", &token);
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("refresh-token-value"));
        // A fresh nonce each time.
        assert_ne!(sealed, v.seal("bob", &token));
        assert_eq!(v.open("bob", &sealed).unwrap().expose(), token.expose());
        assert_eq!(v.open("eve", &sealed), Err(VaultError::Unsealable));
        assert_eq!(vault(2).open("bob", &sealed), Err(VaultError::Unsealable));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(v.open("bob", &altered), Err(VaultError::Unsealable));
        for junk in ["", "v1.", "v1.!!", "v2.abc", "plain"] {
            assert_eq!(v.open("bob", junk), Err(VaultError::Unsealable), "{junk}");
        }
    }

    #[test]
    fn signatures_verify_only_their_data_and_key() {
        let v = vault(1);
        let sig = v.sign("nonce.123");
        assert!(v.verify("nonce.123", &sig));
        assert!(!v.verify("nonce.124", &sig));
        assert!(!vault(2).verify("nonce.123", &sig));
        assert!(!v.verify("nonce.123", "not base64 !"));
        assert!(!v.verify("nonce.123", ""));
        assert_eq!(v.derive("n").expose(), v.derive("n").expose());
        assert_ne!(v.derive("n").expose(), v.derive("m").expose());
        assert_eq!(v.derive("n").expose().len(), 43);
    }
}
