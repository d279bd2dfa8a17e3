//! Secrets: acknowledgement tokens and the admin token.
//!
//! An acknowledgement token is `base64url(nonce ‖ mac)`: a 128-bit nonce
//! from the OS random source and the first 128 bits of
//! HMAC-SHA256(agent key, nonce). The database keeps only the nonce and the
//! SHA-256 of the token, so a copy of the database alone cannot produce a
//! working link, while the agent (which holds the key file) can put the same
//! link into every notification of an incident. Tokens are compared by
//! their hashes in constant time.
//!
//! This module owns token formats and the key/token files; it knows nothing
//! about incidents.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Length of an acknowledgement token in characters (32 bytes, base64url).
pub const ACK_TOKEN_LEN: usize = 43;

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random source is available");
}

/// A random 256-bit token, base64url (43 characters).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    random_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The agent's HMAC key for acknowledgement tokens.
#[derive(Clone)]
pub struct AckKey([u8; 32]);

impl std::fmt::Debug for AckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckKey(..)")
    }
}

impl AckKey {
    /// A key from fixed bytes (tests).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        AckKey(b)
    }

    /// Reads the key file, creating it (mode 0600) with a random key if it
    /// does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<AckKey> {
        let text = read_or_create_secret(path)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "{} does not hold a key; delete it to have a new one made (links already sent stop working)",
                    path.display()
                ))
            })?;
        Ok(AckKey(bytes))
    }

    /// A new nonce (base64url of 16 random bytes).
    pub fn new_nonce() -> String {
        let mut n = [0u8; 16];
        random_bytes(&mut n);
        URL_SAFE_NO_PAD.encode(n)
    }

    /// The token of a nonce, or `None` if the nonce is malformed.
    pub fn token(&self, nonce: &str) -> Option<String> {
        let n = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let tag = hmac_sha256(&self.0, &[b"outpost-ack-v1\0", &n]);
        let mut raw = n;
        raw.extend_from_slice(&tag[..16]);
        Some(URL_SAFE_NO_PAD.encode(raw))
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of a token, hex: what the database stores and looks up.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two secrets.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `token` has the shape of an acknowledgement token (checked
/// before any lookup, so junk never reaches the database).
pub fn well_formed(token: &str) -> bool {
    token.len() == ACK_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads a secret file, creating it with a random token (mode 0600) if it
/// does not exist.
pub fn read_or_create_secret(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = random_token();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok(token)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_string())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2_shape() {
        // RFC 4231 test case 2 uses a 4-byte key "Jefe"; our key is always
        // 32 bytes, so check against the same key zero-padded (HMAC pads
        // short keys with zeros, so the result is identical).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_long_random_and_keyed() {
        let k = AckKey::from_bytes([7; 32]);
        let n = AckKey::new_nonce();
        let t = k.token(&n).unwrap();
        assert_eq!(t.len(), ACK_TOKEN_LEN);
        assert!(well_formed(&t));
        assert_eq!(k.token(&n).unwrap(), t, "same nonce, same token");
        assert_ne!(AckKey::from_bytes([8; 32]).token(&n).unwrap(), t, "keyed");
        assert_ne!(k.token(&AckKey::new_nonce()).unwrap(), t);
        assert!(!well_formed(&t[..42]));
        assert!(!well_formed(&format!("{}!", &t[..42])));
        assert_eq!(hash(&t).len(), 64);
        assert!(ct_eq(&hash(&t), &hash(&t)));
        assert!(!ct_eq(&hash(&t), &hash(&t[..42])));
    }

    #[test]
    fn secret_files_are_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/admin.token");
        let a = read_or_create_secret(&p).unwrap();
        let b = read_or_create_secret(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let k1 = AckKey::load_or_create(&dir.path().join("ack.key")).unwrap();
        let k2 = AckKey::load_or_create(&dir.path().join("ack.key")).unwrap();
        let n = AckKey::new_nonce();
        assert_eq!(k1.token(&n), k2.token(&n));
    }
}
