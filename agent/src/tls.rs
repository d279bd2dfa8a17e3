//! TLS for the agent, on rustls with the *ring* provider (no OpenSSL):
//! the listener's certificate (loaded from PEM, swapped in place on reload
//! without dropping the listener), the client-certificate verifier of
//! mutual TLS, the client side used for `https://` peers and pushes (a
//! CA file or the Mozilla roots, an optional client certificate, an
//! optional SHA-256 pin), errors in words, and the identity a certificate
//! names (CN and SANs).
//!
//! This module only builds rustls configurations and reads certificate
//! files; it owns no socket and knows nothing of HTTP, the config loader
//! or the federation tasks.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A TLS problem, in words a user can act on (the file and what is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn err(msg: impl Into<String>) -> TlsError {
    TlsError(msg.into())
}

/// The one crypto provider of the agent.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinVersion {
    /// `"1.2"` or `"1.3"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s
            .trim()
            .trim_start_matches("TLS")
            .trim_start_matches("tls")
            .trim()
        {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            other => Err(format!(
                "`{other}` is not a TLS version this agent speaks; write \"1.2\" or \"1.3\""
            )),
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        match self {
            MinVersion::Tls12 => rustls::ALL_VERSIONS,
            MinVersion::Tls13 => TLS13_ONLY,
        }
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Reads every certificate of a PEM file (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(err(format!(
            "{}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => err(format!("cannot read {}: {e}", path.display())),
        rustls::pki_types::pem::Error::NoItemsFound => err(format!(
            "{}: no private key in it (expected -----BEGIN PRIVATE KEY-----)",
            path.display()
        )),
        e => err(format!("{}: not a PEM private key: {e}", path.display())),
    })
}

/// A certificate chain and its key, checked to belong together.
pub fn certified_key(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| err(format!("{}: unusable private key: {e}", key_file.display())))?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match().map_err(|_| {
        err(format!(
            "the key in {} does not belong to the certificate in {}",
            key_file.display(),
            cert_file.display()
        ))
    })?;
    x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).map_err(|e| {
        err(format!(
            "{}: the certificate does not parse: {e}",
            cert_file.display()
        ))
    })?;
    Ok(Arc::new(ck))
}

/// Reads a CA bundle into a root store.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|e| {
            err(format!(
                "{}: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The listener's certificate, swappable while connections are served:
/// every new handshake reads the current pair.
#[derive(Debug)]
struct SwapResolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for SwapResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// `[agent.tls]` as the listener uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// Lowest protocol version.
    pub min_version: MinVersion,
    /// CA whose client certificates are accepted (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: whether clients without a certificate may
    /// still read (pushes always need one).
    pub client_cert_optional: bool,
}

/// The listener's TLS: a fixed rustls configuration whose certificate is
/// swapped by [`ServerTls::reload`].
pub struct ServerTls {
    settings: ServerSettings,
    resolver: Arc<SwapResolver>,
    config: Arc<rustls::ServerConfig>,
    /// Modification times and sizes of the pair last loaded (or last
    /// rejected), so a file watcher reloads each change once.
    seen: Mutex<FileStamp>,
}

type FileStamp = Vec<(u128, u64)>;

fn stamp(paths: &[&Path]) -> FileStamp {
    paths
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                m.len(),
            ),
            Err(_) => (0, 0),
        })
        .collect()
}

impl ServerTls {
    /// Loads the pair (and the client CA) and builds the configuration.
    pub fn new(settings: ServerSettings) -> Result<Self, TlsError> {
        let seen = stamp(&[&settings.cert_file, &settings.key_file]);
        let ck = certified_key(&settings.cert_file, &settings.key_file)?;
        let resolver = Arc::new(SwapResolver(RwLock::new(ck)));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(settings.min_version.versions())
            .map_err(|e| err(format!("TLS versions: {e}")))?;
        let builder = match &settings.client_ca_file {
            Some(ca) => {
                let roots = Arc::new(read_roots(ca)?);
                let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let v = if settings.client_cert_optional {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(
                    v.build()
                        .map_err(|e| err(format!("{}: {e}", ca.display())))?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            settings,
            resolver,
            config: Arc::new(config),
            seen: Mutex::new(seen),
        })
    }

    /// The rustls configuration for the acceptor.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// Whether client certificates are checked (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.settings.client_ca_file.is_some()
    }

    /// Reads the pair again and serves it from the next handshake on. An
    /// invalid pair is rejected and the old one kept (the error says why).
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) =
            stamp(&[&self.settings.cert_file, &self.settings.key_file]);
        let ck = certified_key(&self.settings.cert_file, &self.settings.key_file)?;
        *self.resolver.0.write().unwrap_or_else(|p| p.into_inner()) = ck;
        Ok(())
    }

    /// Whether the files changed since the last load (or rejected load).
    pub fn changed_on_disk(&self) -> bool {
        let now = stamp(&[&self.settings.cert_file, &self.settings.key_file]);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reloads and logs the outcome (SIGHUP, file watcher).
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.settings.cert_file.display(),
                "TLS certificate reloaded ({why})"
            ),
            Err(e) => tracing::error!(
                "TLS certificate reload rejected ({why}), the old certificate stays: {e}"
            ),
        }
    }
}

/// How often the certificate files are looked at for changes: a renewed
/// certificate (certbot, cert-manager) is served within seconds, at the
/// cost of two `stat`s.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads the listener's pair whenever its files change, forever.
pub async fn watch(tls: Arc<ServerTls>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tls.changed_on_disk() {
            tls.reload_logged("the certificate files changed");
        }
    }
}

// ---------------------------------------------------------------------------
// The client side (peers and pushes).
// ---------------------------------------------------------------------------

/// TLS options of one `https://` peer or push target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientSettings {
    /// CA bundle the server's certificate must chain to; the Mozilla roots
    /// when `None`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// SHA-256 of the server's end-entity certificate (DER).
    pub pin_sha256: Option<[u8; 32]>,
    /// Trust exactly the pinned certificate, with no CA chain or name
    /// check: for the CLI talking to its own agent, whose certificate file
    /// it has just read. Ignored without a pin.
    pub pin_only: bool,
}

/// Parses a pin written as 64 hex digits (colons allowed, as `openssl x509
/// -fingerprint -sha256` prints them).
pub fn parse_pin(s: &str) -> Result<[u8; 32], String> {
    let hex: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = hex::decode(&hex).map_err(|_| {
        format!("`{s}` is not a SHA-256 fingerprint; write 64 hex digits (colons allowed)")
    })?;
    bytes
        .try_into()
        .map_err(|_| format!("`{s}` is not a SHA-256 fingerprint; write 64 hex digits"))
}

/// The SHA-256 of a certificate, as pins are written.
pub fn fingerprint(cert: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(cert))
}

/// Chain and name checks by webpki, then the pin.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pin: Option<[u8; 32]>,
    /// Skip the chain and name checks (the pin alone decides).
    pin_only: bool,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = if self.pin_only && self.pin.is_some() {
            ServerCertVerified::assertion()
        } else {
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?
        };
        if let Some(pin) = &self.pin {
            use sha2::Digest;
            let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
            if &got != pin {
                return Err(rustls::Error::General(format!(
                    "pin mismatch: the server's certificate has SHA-256 {}, the pin is {}",
                    hex::encode(got),
                    hex::encode(pin)
                )));
            }
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls client configuration for a peer or push target (HTTP/1.1).
pub fn client_config(s: &ClientSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = match &s.ca_file {
        Some(ca) => read_roots(ca)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| err(format!("CA roots: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinningVerifier {
            inner,
            pin: s.pin_sha256,
            pin_only: s.pin_only,
        }));
    let mut config = match (&s.cert_file, &s.key_file) {
        (Some(c), Some(k)) => {
            let ck = certified_key(c, k)?;
            builder
                .with_client_auth_cert(ck.cert.clone(), read_key(k)?)
                .map_err(|e| err(format!("{}: {e}", c.display())))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(err("set both `cert_file` and `key_file`, or neither")),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection verifies the certificate in full (chain, name,
    // pin): a resumed session would skip the checks and hide a changed
    // or expired certificate until the session ticket ran out.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Says which check of a TLS handshake failed, from the error a TLS
/// stream returned (`None` when it is not a TLS error).
pub fn describe_io(e: &std::io::Error) -> Option<String> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(describe(tls))
}

/// A rustls error in words: expired, unknown issuer, name mismatch, pin
/// mismatch, or the other side's refusal of our certificate.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate expired ({c:?})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet (check the clocks)".into()
            }
            CertificateError::UnknownIssuer => {
                "unknown issuer: the certificate is not signed by a CA this agent trusts (set the peer's `ca_file`)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name mismatch: the certificate is not valid for the host in the URL".into()
            }
            CertificateError::Revoked => "certificate revoked".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::General(m) => m.clone(),
        rustls::Error::AlertReceived(a @ (A::CertificateRequired | A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied)) => {
            format!("the other side refused our client certificate ({a:?}); check cert_file/key_file and its client_ca_file")
        }
        rustls::Error::NoCertificatesPresented => {
            "no client certificate presented".into()
        }
        other => other.to_string(),
    }
}

/// The names a certificate is issued to: its subject CN and its DNS and
/// URI SANs.
pub fn cert_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return vec![];
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::URI(u) => names.push(u.to_string()),
                _ => {}
            }
        }
    }
    names
}

/// Whether the certificate `der` names agent `name` (or its id `id`) as
/// its CN or a SAN; the error lists what it names instead.
pub fn check_identity(der: &[u8], name: &str, id: &str) -> Result<(), String> {
    let names = cert_names(der);
    if names.iter().any(|n| n == name || n == id) {
        return Ok(());
    }
    Err(format!(
        "the certificate names {} but the document is agent `{name}`; an agent may only speak for the name its certificate carries",
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_and_without_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        assert!(parse_pin("abcd").unwrap_err().contains("SHA-256"));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(MinVersion::parse("1.3").unwrap(), MinVersion::Tls13);
        assert_eq!(MinVersion::parse("TLS1.2").unwrap(), MinVersion::Tls12);
        assert!(MinVersion::parse("1.1").is_err());
    }
}
