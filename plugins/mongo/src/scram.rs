//! The client side of SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677),
//! as MongoDB uses it inside `saslStart` / `saslContinue`.
//!
//! The exchange is three messages from the client's side:
//! `client-first` (user name and a random nonce), then, from the server's
//! salt and iteration count, `client-final` carrying the proof, and finally
//! the check of the server's signature, which proves the server knows the
//! password too. No channel binding (`n,,` GS2 header), as MongoDB does.
//!
//! The nonce is a parameter, so the published test vectors can be
//! reproduced exactly; [`random_nonce`] makes a real one.
//!
//! Password preparation ([`saslprep`]) is "SASLprep-light": it maps the
//! characters RFC 4013 maps (non-ASCII spaces to U+0020, "commonly mapped to
//! nothing" removed) and refuses the prohibited ones (control, private use,
//! non-characters, ...), but does **not** apply Unicode NFKC normalisation or
//! the bidirectional-text rule. A password that is already in NFKC form
//! (every ASCII password, and nearly every typed one) prepares exactly as a
//! full implementation would; one with compatibility characters (e.g.
//! U+2168 "Ⅸ" or full-width letters) does not, and its authentication fails.
//!
//! This module does no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};

/// The fewest PBKDF2 iterations accepted from a server (RFC 7677 §4 and the
/// MongoDB authentication spec: fewer would weaken the stored key).
pub const MIN_ITERATIONS: u32 = 4096;
/// The most PBKDF2 iterations computed: key derivation runs inside the
/// sandbox's CPU deadline, and one million HMAC-SHA-256 rounds already take
/// about a second in WebAssembly. MongoDB's defaults are 10 000 (SHA-1) and
/// 15 000 (SHA-256).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `SCRAM-SHA-1`.
    Sha1,
    /// `SCRAM-SHA-256`.
    Sha256,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha256 => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Mechanism::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi()` of RFC 5802: PBKDF2 with this mechanism's HMAC.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A SCRAM exchange that cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server's message does not follow RFC 5802.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(String),
    /// The server sent `e=...`.
    #[error("the server rejected the SCRAM exchange: {0}")]
    Server(String),
    /// The server's nonce does not extend ours (a replayed or forged reply).
    #[error("the server's nonce does not start with the client nonce")]
    NonceMismatch,
    /// The iteration count is outside what is accepted.
    #[error("the server asks for {0} PBKDF2 iterations; accepted are {min}..={max}", min = MIN_ITERATIONS, max = MAX_ITERATIONS)]
    Iterations(u32),
    /// The server's signature is wrong: it does not know the password.
    #[error("the server's signature does not match: it does not hold this user's key")]
    BadServerSignature,
    /// The password cannot be prepared.
    #[error("the password {0}")]
    Password(String),
}

/// The client's state between its first and final message.
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    nonce: String,
    first_bare: String,
}

/// The client-final message and what the server must answer.
pub struct ClientFinal {
    /// `c=biws,r=...,p=...`.
    pub message: String,
    mechanism: Mechanism,
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange. `password` is used as given (already prepared:
    /// [`saslprep`]ed for SHA-256, MongoDB's MD5 digest for SHA-1).
    pub fn new(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Self {
        let user = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_string(),
            nonce: nonce.to_string(),
            first_bare: format!("n={user},r={nonce}"),
        }
    }

    /// `client-first-message`.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// Answers `server-first-message` with `client-final-message`.
    pub fn client_final(&self, server_first: &str) -> Result<ClientFinal, ScramError> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| ScramError::Malformed(format!("attribute `{attr}` has no `=`")))?;
            match k {
                "r" => nonce = Some(v),
                "s" => salt = Some(v),
                "i" => iterations = Some(v),
                "e" => return Err(ScramError::Server(v.to_string())),
                "m" => {
                    return Err(ScramError::Malformed(
                        "unsupported mandatory extension `m`".into(),
                    ));
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| ScramError::Malformed("no nonce (`r=`)".into()))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = B64
            .decode(salt.ok_or_else(|| ScramError::Malformed("no salt (`s=`)".into()))?)
            .map_err(|_| ScramError::Malformed("the salt is not base64".into()))?;
        let iterations: u32 = iterations
            .ok_or_else(|| ScramError::Malformed("no iteration count (`i=`)".into()))?
            .parse()
            .map_err(|_| ScramError::Malformed("the iteration count is not a number".into()))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }

        let m = self.mechanism;
        let salted = m.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        // "biws" is base64("n,,"): the GS2 header without channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{},{}", self.first_bare, server_first, without_proof);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        Ok(ClientFinal {
            message: format!("{without_proof},p={}", B64.encode(proof)),
            mechanism: m,
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        })
    }
}

impl ClientFinal {
    /// Checks `server-final-message` (`v=...`).
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let _ = self.mechanism;
        for attr in server_final.split(',') {
            if let Some(e) = attr.strip_prefix("e=") {
                return Err(ScramError::Server(e.to_string()));
            }
            if let Some(v) = attr.strip_prefix("v=") {
                let got = B64.decode(v).map_err(|_| {
                    ScramError::Malformed("the server signature is not base64".into())
                })?;
                return if got == self.server_signature {
                    Ok(())
                } else {
                    Err(ScramError::BadServerSignature)
                };
            }
        }
        Err(ScramError::Malformed("no server signature (`v=`)".into()))
    }
}

/// 24 random bytes, base64: the client nonce.
pub fn random_nonce() -> Result<String, String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the SCRAM nonce: {e}"))?;
    Ok(B64.encode(b))
}

/// Prepares a SCRAM-SHA-256 password (see the module doc for the limits).
pub fn saslprep(password: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(password.len());
    for c in password.chars() {
        let u = c as u32;
        // RFC 3454 B.1: commonly mapped to nothing.
        if matches!(u, 0x00AD | 0x034F | 0x1806 | 0x180B..=0x180D | 0x200B..=0x200D | 0x2060 | 0xFE00..=0xFE0F | 0xFEFF)
        {
            continue;
        }
        // C.1.2: non-ASCII spaces map to SPACE.
        if matches!(
            u,
            0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000
        ) {
            out.push(' ');
            continue;
        }
        let prohibited = matches!(u,
            0x0000..=0x001F | 0x007F // C.2.1
            | 0x0080..=0x009F | 0x06DD | 0x070F | 0x180E | 0x2028 | 0x2029 | 0x2061..=0x2063
            | 0x206A..=0x206F | 0xFFF9..=0xFFFC | 0x1D173..=0x1D17A // C.2.2
            | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD // C.3
            | 0xFDD0..=0xFDEF | 0xFFFE | 0xFFFF // C.4 (BMP part)
            | 0xFFFD | 0x2FF0..=0x2FFB // C.6, C.7
            | 0x0340 | 0x0341 | 0x200E | 0x200F | 0x202A..=0x202E // C.8
            | 0xE0001 | 0xE0020..=0xE007F // C.9
        ) || (u & 0xFFFE) == 0xFFFE; // C.4: U+nFFFE and U+nFFFF of every plane
        if prohibited {
            return Err(ScramError::Password(format!(
                "contains the prohibited character U+{u:04X} (RFC 4013)"
            )));
        }
        out.push(c);
    }
    if out.is_empty() && !password.is_empty() {
        return Err(ScramError::Password("is empty after SASLprep".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3, the SCRAM-SHA-256 example, byte for byte.
    #[test]
    fn rfc7677_sha256_vector() {
        let c = ScramClient::new(
            Mechanism::Sha256,
            "user",
            &saslprep("pencil").unwrap(),
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let f = c
            .client_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            f.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        f.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            f.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::BadServerSignature)
        );
    }

    /// RFC 5802 §5, the SCRAM-SHA-1 example.
    #[test]
    fn rfc5802_sha1_vector() {
        let c = ScramClient::new(
            Mechanism::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let f = c
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            f.message,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        f.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
    }

    #[test]
    fn hostile_server_messages() {
        let c = ScramClient::new(Mechanism::Sha256, "u", "p", "abc");
        let err = |m: &str| c.client_final(m).err().unwrap();
        assert_eq!(err("r=zzz123,s=AAAA,i=4096"), ScramError::NonceMismatch);
        assert_eq!(err("r=abc,s=AAAA,i=4096"), ScramError::NonceMismatch);
        assert_eq!(err("r=abcd,s=AAAA,i=1"), ScramError::Iterations(1));
        assert_eq!(
            err("r=abcd,s=AAAA,i=4000000000"),
            ScramError::Iterations(4_000_000_000)
        );
        assert!(matches!(
            err("r=abcd,s=!!,i=4096"),
            ScramError::Malformed(_)
        ));
        assert!(matches!(err("r=abcd,i=4096"), ScramError::Malformed(_)));
        assert!(matches!(err("garbage"), ScramError::Malformed(_)));
        assert_eq!(
            err("e=unknown-user"),
            ScramError::Server("unknown-user".into())
        );
        let f = c.client_final("r=abcd,s=AAAA,i=4096").unwrap();
        assert!(matches!(f.verify("x=1"), Err(ScramError::Malformed(_))));
        assert_eq!(
            f.verify("e=invalid-proof"),
            Err(ScramError::Server("invalid-proof".into()))
        );
    }

    #[test]
    fn user_names_are_escaped() {
        let c = ScramClient::new(Mechanism::Sha256, "a=b,c", "p", "n");
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn saslprep_light() {
        assert_eq!(saslprep("pencil").unwrap(), "pencil");
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX"); // RFC 4013 §3 example 1
        assert_eq!(saslprep("a\u{00A0}b\u{3000}c").unwrap(), "a b c");
        assert_eq!(saslprep("\u{00AA}").unwrap(), "\u{00AA}"); // not NFKC-normalised (documented)
        assert!(
            saslprep("a\u{0007}")
                .unwrap_err()
                .to_string()
                .contains("U+0007")
        ); // example 5
        assert!(saslprep("\u{E000}").is_err());
        assert!(saslprep("\u{1FFFF}").is_err());
        assert!(saslprep("\u{00AD}").is_err());
    }

    #[test]
    fn nonces_are_random() {
        let (a, b) = (random_nonce().unwrap(), random_nonce().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
