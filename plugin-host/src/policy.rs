//! Network allow-list of one configured plugin.
//!
//! The grant ([`NetPolicy::granted`]) is either the operator's explicit
//! `allow = ["host:port", ...]` list, or else the endpoints named in the
//! config fields the plugin's `info` declares as *targets*: fields whose
//! `type` is `url`, `list<url>`, `host:port` or `list<host:port>`
//! ([`is_target_type`]). A URL contributes its host(s) and port (the
//! scheme's default port when none is written; a `mongodb://a,b:27018`
//! list contributes each host); a target field left out of the config
//! contributes its declared default. A URL-shaped string anywhere else in
//! the config (an unknown key, a header value, a message template) grants
//! nothing. Everything else is denied: for `wasi:http` the request fails
//! with `HTTP-request-denied`, for `wasi:sockets` the connect fails with
//! `access-denied`, a name lookup fails with `access-denied` (`sockets`),
//! and the `tls-peer-certificate` host call returns an error.
//!
//! This module only decides; it performs no I/O except name resolution of
//! allowed host names when a socket connect must be matched by address.

use std::net::{IpAddr, SocketAddr};

/// One allowed `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Lower-case host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Parses `host:port` (`[v6]:port` for IPv6).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let t = text.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("`{t}`: write [v6-address]:port"))?;
            (h, p)
        } else {
            t.rsplit_once(':')
                .ok_or_else(|| format!("`{t}`: write host:port"))?
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{t}`: `{port}` is not a port number"))?;
        if host.is_empty() {
            return Err(format!("`{t}`: the host is empty"));
        }
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// Default ports of URL schemes plugins commonly use.
fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        "mongodb" => 27017,
        "smtp" => 25,
        "smtps" => 465,
        "submission" => 587,
        "redis" => 6379,
        "postgres" | "postgresql" => 5432,
        "mysql" => 3306,
        "tcp" => return None,
        _ => return None,
    })
}

/// The endpoints named by URLs in a plugin configuration.
pub fn endpoints_in_config(config: &serde_json::Value) -> Vec<Endpoint> {
    let mut out = Vec::new();
    collect(config, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect(v: &serde_json::Value, out: &mut Vec<Endpoint>) {
    match v {
        serde_json::Value::String(s) => out.extend(endpoints_in_url(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The endpoint(s) of one URL, or none if `text` is not a URL.
pub fn endpoints_in_url(text: &str) -> Vec<Endpoint> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return vec![];
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    {
        return vec![];
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hosts = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let mut out = Vec::new();
    for part in hosts.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let with_port = if part.starts_with('[') {
            if part.contains("]:") {
                Some(part.to_string())
            } else {
                default_port(&scheme).map(|p| format!("{part}:{p}"))
            }
        } else if part.contains(':') {
            Some(part.to_string())
        } else {
            default_port(&scheme).map(|p| format!("{part}:{p}"))
        };
        if let Some(ep) = with_port.and_then(|s| Endpoint::parse(&s).ok()) {
            out.push(ep);
        }
    }
    out
}

/// Whether a `config-field` type names a network target whose hosts the
/// plugin may reach.
pub fn is_target_type(ty: &str) -> bool {
    matches!(
        ty.trim(),
        "url" | "list<url>" | "host:port" | "list<host:port>"
    )
}

/// The endpoints one value of a target field names.
fn endpoints_in_target(ty: &str, v: &serde_json::Value, out: &mut Vec<Endpoint>) {
    let host_port = ty.contains("host:port");
    match v {
        serde_json::Value::String(s) if host_port => out.extend(Endpoint::parse(s).ok()),
        serde_json::Value::String(s) => out.extend(endpoints_in_url(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|v| endpoints_in_target(ty, v, out)),
        _ => {}
    }
}

/// The endpoints named in the target fields of `fields` (their declared
/// default when `config` leaves one out).
pub fn target_endpoints(
    config: &serde_json::Value,
    fields: &[outpost_types::abi::ConfigField],
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| is_target_type(&f.ty)) {
        match config.get(&f.name) {
            Some(v) => endpoints_in_target(&f.ty, v, &mut out),
            None => {
                if let Some(d) = f
                    .default
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                {
                    endpoints_in_target(&f.ty, &d, &mut out);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a plugin instance may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    endpoints: Vec<Endpoint>,
}

impl NetPolicy {
    /// Allows exactly these endpoints.
    pub fn new(mut endpoints: Vec<Endpoint>) -> Self {
        endpoints.sort();
        endpoints.dedup();
        Self { endpoints }
    }

    /// Denies everything.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The grant of one configured plugin: `allow` when the operator wrote
    /// one, else the endpoints its config names in the fields `info`
    /// declares as targets; plus `extra` (the CLI's `--allow`).
    pub fn granted(
        info: &outpost_types::abi::PluginInfo,
        config: &serde_json::Value,
        allow: Option<&[Endpoint]>,
        extra: &[Endpoint],
    ) -> Self {
        let mut eps = match allow {
            Some(list) => list.to_vec(),
            None => target_endpoints(config, &info.config),
        };
        eps.extend(extra.iter().cloned());
        Self::new(eps)
    }

    /// How the grant reads for people: `a:1, b:2`, or `nothing`.
    pub fn describe(&self) -> String {
        if self.endpoints.is_empty() {
            "nothing (no network access)".into()
        } else {
            self.endpoints
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Every URL-shaped string in `config`, plus `extra`. Not a grant for
    /// configured plugins (see [`NetPolicy::granted`]); kept for tools
    /// that try a plugin against the hosts a config mentions.
    pub fn from_config(config: &serde_json::Value, extra: &[Endpoint]) -> Self {
        let mut eps = endpoints_in_config(config);
        eps.extend(extra.iter().cloned());
        Self::new(eps)
    }

    /// The allowed endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether `host:port` (as written in a URL) is allowed.
    pub fn allows_name(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.endpoints
            .iter()
            .any(|e| e.port == port && e.host.eq_ignore_ascii_case(host))
    }

    /// Whether a socket connect to `addr` is allowed: an allowed endpoint
    /// with that port whose host is that IP or resolves to it.
    pub async fn allows_addr(&self, addr: SocketAddr) -> bool {
        for e in self.endpoints.iter().filter(|e| e.port == addr.port()) {
            if let Ok(ip) = e.host.parse::<IpAddr>() {
                if ip == addr.ip() {
                    return true;
                }
                continue;
            }
            if e.host == "localhost" && addr.ip().is_loopback() {
                return true;
            }
            if let Ok(addrs) = tokio::net::lookup_host((e.host.as_str(), e.port)).await
                && addrs.into_iter().any(|a| a.ip() == addr.ip())
            {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse(s).unwrap()
    }

    #[test]
    fn urls_in_config() {
        let cfg = json!({
            "url": "https://Example.com/health",
            "nested": {"other": "http://127.0.0.1:8080/x"},
            "uri": "mongodb://u:p@db1:27017,db2:27018/?replicaSet=rs",
            "plain": "not a url",
            "list": ["smtp://mail.local", "http://[::1]:9000/"]
        });
        assert_eq!(
            endpoints_in_config(&cfg),
            vec![
                ep("127.0.0.1:8080"),
                ep("[::1]:9000"),
                ep("db1:27017"),
                ep("db2:27018"),
                ep("example.com:443"),
                ep("mail.local:25")
            ]
        );
    }

    #[test]
    fn only_declared_target_fields_grant() {
        use outpost_types::abi::{ConfigField, PluginInfo};
        let info = PluginInfo::sensor("t", "1", "t")
            .field(ConfigField::required("url", "url", "target"))
            .field(ConfigField::optional(
                "peers",
                "list<host:port>",
                None,
                "peers",
            ))
            .field(ConfigField::optional(
                "api",
                "url",
                Some("\"https://api.example.com\""),
                "api",
            ))
            .field(ConfigField::optional("note", "string", None, "free text"));
        let cfg = json!({
            "url": "http://127.0.0.1:8080/x",
            "peers": ["a:1", "b:2"],
            "note": "http://smuggled.example:9999/",
            "unknown": {"deep": "http://evil.example:1/"}
        });
        let p = NetPolicy::granted(&info, &cfg, None, &[]);
        assert_eq!(
            p.endpoints(),
            [
                ep("127.0.0.1:8080"),
                ep("a:1"),
                ep("api.example.com:443"),
                ep("b:2")
            ]
        );
        assert!(!p.allows_name("smuggled.example", 9999));
        assert!(!p.allows_name("evil.example", 1));
        let explicit = [ep("only.example:25")];
        let p = NetPolicy::granted(&info, &cfg, Some(&explicit), &[]);
        assert_eq!(p.endpoints(), explicit);
        assert_eq!(
            NetPolicy::deny_all().describe(),
            "nothing (no network access)"
        );
    }

    #[test]
    fn names_must_match_exactly() {
        let p = NetPolicy::new(vec![ep("example.com:443")]);
        assert!(p.allows_name("EXAMPLE.com", 443));
        assert!(!p.allows_name("example.com", 80));
        assert!(!p.allows_name("evil.example.com", 443));
    }

    #[tokio::test]
    async fn addresses_match_ip_literals_and_localhost() {
        let p = NetPolicy::new(vec![ep("127.0.0.1:8080"), ep("localhost:9000")]);
        assert!(p.allows_addr("127.0.0.1:8080".parse().unwrap()).await);
        assert!(!p.allows_addr("127.0.0.1:8081".parse().unwrap()).await);
        assert!(p.allows_addr("127.0.0.1:9000".parse().unwrap()).await);
        assert!(!p.allows_addr("10.1.2.3:8080".parse().unwrap()).await);
    }

    #[test]
    fn parse_errors_say_what_to_write() {
        assert!(
            Endpoint::parse("example.com")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(
            Endpoint::parse("h:http")
                .unwrap_err()
                .contains("not a port")
        );
    }
}
