//! Implementation of the `outpost:plugin/host` interface: what plugins get
//! from the agent beyond WASI — logging into the agent's tracing, and the
//! TLS certificate of a server (for expiry checks), under the same network
//! policy as everything else.
//!
//! Log calls are charged to the run's meter (lines and bytes, like
//! stdout): past the limit lines are dropped and the run ends as an
//! `error` naming the limit.

use super::bindings::{host_api, wit};
use super::sandbox::Sandbox;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

impl wit::Host for Sandbox {}

impl host_api::Host for Sandbox {
    fn log(&mut self, level: host_api::LogLevel, message: String) {
        if !self.meter.log(message.len()) {
            return;
        }
        // Keep one plugin line one log line, and bounded.
        let mut message = message.replace(['\n', '\r'], " ");
        if message.len() > 4096 {
            let mut cut = 4096;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let who = &*self.label;
        match level {
            host_api::LogLevel::Trace => {
                tracing::trace!(target: "plugin", plugin = who, "{message}")
            }
            host_api::LogLevel::Debug => {
                tracing::debug!(target: "plugin", plugin = who, "{message}")
            }
            host_api::LogLevel::Info => tracing::info!(target: "plugin", plugin = who, "{message}"),
            host_api::LogLevel::Warn => tracing::warn!(target: "plugin", plugin = who, "{message}"),
            host_api::LogLevel::Error => {
                tracing::error!(target: "plugin", plugin = who, "{message}")
            }
        }
    }

    async fn tls_peer_certificate(
        &mut self,
        host: String,
        port: u16,
        server_name: Option<String>,
        timeout_ms: u32,
    ) -> Result<host_api::Certificate, String> {
        if !self.policy.allows_name(&host, port) {
            return Err(format!(
                "host {host}:{port} is not in this plugin's network allow-list"
            ));
        }
        if !self.meter.connect() {
            return Err(format!(
                "{}",
                self.meter
                    .exceeded()
                    .expect("the meter records the limit it refused")
            ));
        }
        let timeout = Duration::from_millis(timeout_ms.clamp(1, 60_000).into());
        match tokio::time::timeout(
            timeout,
            fetch_certificate(&host, port, server_name.as_deref().unwrap_or(&host)),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(format!(
                "TLS handshake with {host}:{port} timed out after {} ms",
                timeout.as_millis()
            )),
        }
    }
}

/// Connects, handshakes without verifying, and describes the leaf.
async fn fetch_certificate(
    host: &str,
    port: u16,
    sni: &str,
) -> Result<host_api::Certificate, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(
        sni.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|e| format!("invalid server name `{sni}`: {e}"))?;
    let tcp =
        tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("{host}:{port} presented no certificate"))?;
    describe(leaf.as_ref())
}

fn describe(der: &[u8]) -> Result<host_api::Certificate, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                dns_names.push(d.to_string());
            }
        }
    }
    Ok(host_api::Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    })
}

/// Accepts any certificate: the point is to read it, not to trust it
/// (the HTTP request itself is verified normally by `wasi:http`).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
