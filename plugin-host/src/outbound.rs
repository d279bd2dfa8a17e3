//! HTTPS for plugins: one TLS client configuration per process, with
//! operator-added trust roots.
//!
//! wasmtime-wasi-http's default sender builds a TLS client configuration
//! for every request and trusts exactly the Mozilla roots (webpki-roots).
//! Here the configuration is built once ([`client_tls`]), and services
//! behind a private CA — internal APIs, and the end-to-end tests with
//! certificates made on the fly — are reachable too: when the environment
//! variable [`CA_FILE_ENV`] names a PEM file, its certificates are trusted
//! in addition. Every HTTPS request of a plugin is sent by [`send`]; plain
//! HTTP stays on the default sender. The network allow-list is applied
//! before either (in `sandbox`); this module only sends.

use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Environment variable naming a PEM file of extra trusted root
/// certificates for plugins' HTTPS requests.
pub const CA_FILE_ENV: &str = "OUTPOST_CA_FILE";

/// Timeout for a phase the guest set none for. Matches wasmtime's default
/// sender; the run's own deadline stops the plugin long before.
const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The client configuration: the Mozilla roots, plus those of the file
/// [`CA_FILE_ENV`] names. Built once per process; a file that cannot be
/// used is logged and ignored (the default roots stay in force).
pub fn client_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            if let Some(path) = std::env::var_os(CA_FILE_ENV)
                && let Err(e) = add_roots(&mut roots, std::path::Path::new(&path))
            {
                tracing::error!(
                    "{CA_FILE_ENV}={}: {e}; using the default roots only",
                    path.to_string_lossy()
                );
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// The client configuration of a plugin that also trusts `extra` (its
/// own CA, see `NetPolicy::trusting`): [`client_tls`] when there is none;
/// otherwise built once per distinct set and kept (a handful per agent).
pub fn client_tls_for(extra: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    if extra.is_empty() {
        return client_tls();
    }
    static BY_ROOTS: OnceLock<
        Mutex<HashMap<Vec<CertificateDer<'static>>, Arc<rustls::ClientConfig>>>,
    > = OnceLock::new();
    let map = BY_ROOTS.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = map.get(extra) {
        return c.clone();
    }
    let base = client_tls();
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    if let Some(path) = std::env::var_os(CA_FILE_ENV) {
        let _ = add_roots(&mut roots, std::path::Path::new(&path));
    }
    for c in extra {
        let _ = roots.add(c.clone());
    }
    let provider = base.crypto_provider().clone();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    map.insert(extra.to_vec(), config.clone());
    config
}

/// Adds the certificates of a PEM file to `roots`, all or none.
fn add_roots(roots: &mut rustls::RootCertStore, path: &std::path::Path) -> Result<(), String> {
    let mut extra = rustls::RootCertStore::empty();
    let mut added = 0;
    for cert in
        CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read PEM file: {e}"))?
    {
        let cert = cert.map_err(|e| format!("bad PEM: {e}"))?;
        extra
            .add(cert)
            .map_err(|e| format!("unusable certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("the file holds no certificate".into());
    }
    roots.roots.extend(extra.roots);
    Ok(())
}

/// The I/O future wasmtime-wasi-http expects next to a response.
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Sends one HTTPS request over HTTP/1.1 with `tls` (connect and TLS
/// bounded by the connect timeout, the response head by the first-byte
/// timeout; the body is bounded by the guest's own deadline).
pub async fn send(
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let opts = options.unwrap_or_default();
    let connect_timeout = opts.connect_timeout.unwrap_or(DEFAULT_PHASE_TIMEOUT);
    let first_byte_timeout = opts.first_byte_timeout.unwrap_or(DEFAULT_PHASE_TIMEOUT);
    let uri = req.uri().clone();
    let host = uri
        .host()
        .ok_or(Error::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => ServerName::try_from(host.clone())?,
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(Error::Connect)?;
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(Error::Tls)
    };
    let stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    // Origin form on the wire (scheme and authority travel in Host).
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let io: IoFuture = Box::new(async move {
        match conn.await {
            Ok(r) => r.map_err(Error::from),
            Err(e) => Err(Error::InternalError(Some(format!(
                "HTTPS connection task: {e}"
            )))),
        }
    });
    Ok((res.map(|b| b.map_err(Error::from).boxed_unsync()), io))
}
