//! `[agent.tls]`, `[agent.http]` and the `tls` table of `[[peer]]` and
//! `[[push]]`: raw and checked. Owns only parsing and validation (files
//! readable, the pair matching, the pin well-formed); the listener lives in
//! [`crate::server`], certificates in [`crate::tls`].
//!
//! ```toml
//! [agent.tls]
//! cert_file = "tls/edge-1.pem"       # chain, leaf first
//! key_file = "tls/edge-1.key"
//! min_version = "1.2"                # or "1.3"
//! client_ca_file = "tls/ca.pem"      # mutual TLS (optional)
//! client_auth = "required"           # or "optional": reads without a certificate
//!
//! [agent.http]
//! header_timeout = "10s"
//! body_timeout = "30s"
//! idle_timeout = "60s"
//! max_connections = 512
//!
//! [[peer]]
//! name = "edge-2"
//! url = "https://edge-2.example.net:9090"
//! tls = { ca_file = "tls/ca.pem", cert_file = "tls/edge-1.pem", key_file = "tls/edge-1.key" }
//! ```

use super::raw::Dur;
use super::{ConfigError, Source};
use crate::tls::{ClientSettings, MinVersion, ServerSettings};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// Default time for a TLS handshake plus a request head. A client on a
/// LAN or the internet sends a head in milliseconds; 10 s tolerates a slow
/// link and still frees a slowloris' slot quickly.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole request body: pushes are at most 4 MiB, which
/// takes under a second on any link a fleet runs on.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time of a kept-alive connection: longer than the usual
/// poll interval (5 s), so pollers and dashboards keep their connection,
/// short enough that abandoned ones go.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default connection cap: a fleet of a few hundred peers and pushers
/// plus dashboards and Prometheus, each holding one connection.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// `[agent.tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
    pub min_version: Option<Spanned<String>>,
    pub client_ca_file: Option<Spanned<String>>,
    pub client_auth: Option<Spanned<String>>,
}

/// `[agent.http]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub header_timeout: Option<Spanned<Dur>>,
    pub body_timeout: Option<Spanned<Dur>>,
    pub idle_timeout: Option<Spanned<Dur>>,
    pub max_connections: Option<Spanned<u32>>,
}

/// The `tls` table of a `[[peer]]` or `[[push]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientTls {
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub pin_sha256: Option<Spanned<String>>,
}

/// The HTTP server's limits, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// TLS handshake plus a request head.
    pub header_timeout: Duration,
    /// A whole request body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in flight.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Checks `[agent.tls]`: the pair loads and matches, the client CA reads.
pub(super) fn check_server(
    src: &Source,
    raw: &RawTls,
    base: &Path,
) -> Result<ServerSettings, ConfigError> {
    let min_version = match &raw.min_version {
        Some(v) => MinVersion::parse(v.get_ref())
            .map_err(|m| src.err(v.span().start, "agent.tls.min_version", m))?,
        None => MinVersion::default(),
    };
    let client_cert_optional = match &raw.client_auth {
        None => false,
        Some(a) => match a.get_ref().as_str() {
            "required" => false,
            "optional" => true,
            other => {
                return Err(src.err(
                    a.span().start,
                    "agent.tls.client_auth",
                    format!("`{other}` is not a mode; write \"required\" or \"optional\""),
                ));
            }
        },
    };
    let s = ServerSettings {
        cert_file: base.join(raw.cert_file.get_ref()),
        key_file: base.join(raw.key_file.get_ref()),
        min_version,
        client_ca_file: raw.client_ca_file.as_ref().map(|f| base.join(f.get_ref())),
        client_cert_optional,
    };
    if let Some(f) = &raw.client_ca_file
        && let Err(e) = crate::tls::read_roots(&base.join(f.get_ref()))
    {
        return Err(src.err(f.span().start, "agent.tls.client_ca_file", e.0));
    }
    if let Err(e) = crate::tls::certified_key(&s.cert_file, &s.key_file) {
        return Err(src.err(raw.cert_file.span().start, "agent.tls.cert_file", e.0));
    }
    Ok(s)
}

/// Checks `[agent.http]`.
pub(super) fn check_http(src: &Source, raw: &RawHttp) -> Result<HttpLimits, ConfigError> {
    let d = HttpLimits::default();
    let dur = |v: &Option<Spanned<Dur>>, key: &str, default: Duration| match v {
        Some(v) if v.get_ref().0.is_zero() => Err(src.err(
            v.span().start,
            format!("agent.http.{key}"),
            "must be more than 0",
        )),
        Some(v) => Ok(v.get_ref().0),
        None => Ok(default),
    };
    let max_connections = match &raw.max_connections {
        Some(m) if *m.get_ref() == 0 => {
            return Err(src.err(
                m.span().start,
                "agent.http.max_connections",
                "must be at least 1",
            ));
        }
        Some(m) => *m.get_ref() as usize,
        None => d.max_connections,
    };
    Ok(HttpLimits {
        header_timeout: dur(&raw.header_timeout, "header_timeout", d.header_timeout)?,
        body_timeout: dur(&raw.body_timeout, "body_timeout", d.body_timeout)?,
        idle_timeout: dur(&raw.idle_timeout, "idle_timeout", d.idle_timeout)?,
        max_connections,
    })
}

/// Checks the `tls` table of a peer or push target (`key` is e.g.
/// `peer[0]`); `https` says whether its URL is `https://`.
pub(super) fn check_client(
    src: &Source,
    raw: Option<&Spanned<RawClientTls>>,
    base: &Path,
    key: &str,
    https: bool,
) -> Result<Option<ClientSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(https.then(ClientSettings::default));
    };
    if !https {
        return Err(src.err(
            raw.span().start,
            format!("{key}.tls"),
            "TLS options need an https:// url",
        ));
    }
    let r = raw.get_ref();
    let path = |f: &Option<Spanned<String>>| f.as_ref().map(|f| base.join(f.get_ref()));
    let s = ClientSettings {
        ca_file: path(&r.ca_file),
        cert_file: path(&r.cert_file),
        key_file: path(&r.key_file),
        pin_sha256: match &r.pin_sha256 {
            Some(p) => Some(
                crate::tls::parse_pin(p.get_ref())
                    .map_err(|m| src.err(p.span().start, format!("{key}.tls.pin_sha256"), m))?,
            ),
            None => None,
        },
        pin_only: false,
    };
    if let Err(e) = crate::tls::client_config(&s) {
        let at = r
            .ca_file
            .as_ref()
            .or(r.cert_file.as_ref())
            .map(|f| f.span().start)
            .unwrap_or(raw.span().start);
        return Err(src.err(at, format!("{key}.tls"), e.0));
    }
    Ok(Some(s))
}
