//! Configuration of the email notifier (the `[notifier.config]` table).

use outpost_plugin_sdk::prelude::*;

/// Default `helo_name`: what a client without a configured name commonly
/// sends; servers that check the EHLO name want the real FQDN, which only
/// the operator knows.
pub const DEFAULT_HELO: &str = "localhost";

/// Default subject prefix, so mail filters can sort alerts.
pub const DEFAULT_SUBJECT_PREFIX: &str = "[Outpost]";

/// What the operator writes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server as a URL: `smtp://host[:port]` (port 25 by default) or
    /// `submission://host[:port]` (587). Written as a URL so the agent's
    /// network allow-list picks the host up.
    pub smtp: String,
    /// Sender, `alerts@example.com` or `Outpost <alerts@example.com>`.
    pub from: String,
    /// Recipients, each `a@example.com` or `Name <a@example.com>`.
    pub to: Vec<String>,
    /// AUTH user name; AUTH is only attempted when it is set.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password.
    #[serde(default)]
    pub password: Option<String>,
    /// The name sent with EHLO/HELO.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// Ask for STARTTLS. Not supported inside the component; `true` is
    /// refused so a mail meant to be encrypted never goes out in clear.
    #[serde(default)]
    pub starttls: bool,
    /// Put before every subject.
    #[serde(default)]
    pub subject_prefix: Option<String>,
}

/// Where to connect, from `smtp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Name, version and configuration keys.
pub fn info() -> PluginInfo {
    PluginInfo::notifier(
        "email",
        env!("CARGO_PKG_VERSION"),
        "Sends incident notifications by email over SMTP (text + HTML with the ack link; AUTH PLAIN/LOGIN; no TLS)",
    )
    .field(ConfigField::required(
        "smtp",
        "url",
        "server URL: smtp://host[:port] (25) or submission://host[:port] (587)",
    ))
    .field(ConfigField::required(
        "from",
        "string",
        "sender: alerts@example.com or \"Outpost <alerts@example.com>\"",
    ))
    .field(ConfigField::required("to", "list<string>", "recipients"))
    .field(ConfigField::optional("username", "string", None, "AUTH user name (AUTH only when set)"))
    .field(ConfigField::optional("password", "string", None, "AUTH password"))
    .field(ConfigField::optional(
        "helo_name",
        "string",
        Some("\"localhost\""),
        "name sent with EHLO/HELO (use this host's FQDN)",
    ))
    .field(ConfigField::optional(
        "starttls",
        "bool",
        Some("false"),
        "true is refused: TLS is not available inside the component",
    ))
    .field(ConfigField::optional(
        "subject_prefix",
        "string",
        Some("\"[Outpost]\""),
        "put before every subject",
    ))
}

impl Config {
    /// The EHLO name.
    pub fn helo(&self) -> &str {
        self.helo_name.as_deref().unwrap_or(DEFAULT_HELO)
    }

    /// The subject prefix ("" allowed).
    pub fn subject_prefix(&self) -> &str {
        self.subject_prefix
            .as_deref()
            .unwrap_or(DEFAULT_SUBJECT_PREFIX)
    }

    /// Semantic checks; returns the server to connect to. No network.
    pub fn check(&self) -> Result<Server, ConfigError> {
        if self.starttls {
            return Err(ConfigError::new(
                "starttls",
                "STARTTLS is not supported by the email plugin (no TLS stack inside the WebAssembly component); \
                 use a relay on a trusted network without TLS, or the webhook notifier towards a mail API over HTTPS",
            ));
        }
        let server = parse_server(&self.smtp).map_err(|m| ConfigError::new("smtp", m))?;
        address(&self.from).map_err(|m| ConfigError::new("from", m))?;
        if self.to.is_empty() {
            return Err(ConfigError::new(
                "to",
                "no recipients; write to = [\"oncall@example.com\"]",
            ));
        }
        for (i, t) in self.to.iter().enumerate() {
            address(t).map_err(|m| ConfigError::new(format!("to[{i}]"), m))?;
        }
        match (&self.username, &self.password) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "password",
                    "`username` is set but `password` is missing",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "username",
                    "`password` is set but `username` is missing",
                ));
            }
            _ => {}
        }
        let helo = self.helo();
        if helo.is_empty() || helo.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new(
                "helo_name",
                format!("`{helo}` is not a host name"),
            ));
        }
        if self.subject_prefix().contains(['\r', '\n']) {
            return Err(ConfigError::new("subject_prefix", "contains a line break"));
        }
        Ok(server)
    }
}

/// Parses `smtp://host[:port]` / `submission://host[:port]`.
pub fn parse_server(url: &str) -> Result<Server, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` is not a URL; write smtp://host:port so the agent's network allow-list includes the server"
        ));
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => 25,
        "submission" => 587,
        "smtps" => {
            return Err(
                "smtps (implicit TLS) is not supported: there is no TLS stack inside the component"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "scheme `{other}` is not supported; use smtp:// or submission://"
            ));
        }
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not supported; use `username` and `password`".into(),
        );
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "`{url}`: write only smtp://host[:port], without a path"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unterminated IPv6 literal"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
            None => default_port,
        };
        (h.to_string(), port)
    } else if let Some((h, p)) = authority.rsplit_once(':') {
        (
            h.to_string(),
            p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
        )
    } else {
        (authority.to_string(), default_port)
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if port == 0 {
        return Err(format!("`{url}`: port 0 is not a port"));
    }
    Ok(Server {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// The bare address of `Name <addr>` or `addr`, checked for the characters
/// SMTP commands and headers cannot carry.
pub fn address(text: &str) -> Result<&str, String> {
    let t = text.trim();
    let addr = match (t.rfind('<'), t.ends_with('>')) {
        (Some(i), true) => &t[i + 1..t.len() - 1],
        (None, false) => t,
        _ => {
            return Err(format!(
                "`{text}`: write addr@example.com or Name <addr@example.com>"
            ));
        }
    };
    if t.contains(['\r', '\n']) {
        return Err(format!("`{}` contains a line break", text.escape_debug()));
    }
    let ok = match addr.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !addr
                    .contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
                && domain.contains(|c: char| c.is_ascii_alphanumeric() || c == '[')
        }
        None => false,
    };
    if ok {
        Ok(addr)
    } else {
        Err(format!("`{addr}` is not an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(extra: serde_json::Value) -> Result<Server, ConfigError> {
        let mut v = json!({"smtp": "smtp://mail.example.com", "from": "Outpost <o@example.com>", "to": ["a@example.com"]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let c: Config = outpost_plugin_sdk::parse_config(&v.to_string())?;
        c.check()
    }

    #[test]
    fn servers() {
        assert_eq!(
            cfg(json!({})).unwrap(),
            Server {
                host: "mail.example.com".into(),
                port: 25
            }
        );
        assert_eq!(parse_server("submission://m").unwrap().port, 587);
        assert_eq!(parse_server("smtp://127.0.0.1:2525/").unwrap().port, 2525);
        assert_eq!(parse_server("smtp://[::1]:26").unwrap().host, "::1");
        assert!(
            parse_server("mail.example.com:25")
                .unwrap_err()
                .contains("smtp://")
        );
        assert!(parse_server("smtps://m").unwrap_err().contains("TLS"));
        assert!(
            parse_server("smtp://u:p@m")
                .unwrap_err()
                .contains("username")
        );
        assert!(parse_server("http://m").is_err());
    }

    #[test]
    fn starttls_is_refused_with_a_reason() {
        let e = cfg(json!({"starttls": true})).unwrap_err();
        assert_eq!(e.field, "starttls");
        assert!(e.message.contains("not supported"), "{}", e.message);
        assert!(cfg(json!({"starttls": false})).is_ok());
    }

    #[test]
    fn addresses_and_credentials() {
        assert_eq!(address("Ops <ops@example.com>").unwrap(), "ops@example.com");
        assert_eq!(address("ops@example.com").unwrap(), "ops@example.com");
        assert!(address("ops").is_err());
        assert!(address("a b@example.com").is_err());
        assert!(address("Ops <ops@example.com").is_err());
        assert_eq!(cfg(json!({"to": []})).unwrap_err().field, "to");
        assert_eq!(
            cfg(json!({"to": ["ok@x.org", "bad"]})).unwrap_err().field,
            "to[1]"
        );
        assert_eq!(cfg(json!({"username": "u"})).unwrap_err().field, "password");
        assert_eq!(cfg(json!({"password": "p"})).unwrap_err().field, "username");
        assert_eq!(
            cfg(json!({"helo_name": "a b"})).unwrap_err().field,
            "helo_name"
        );
        assert!(cfg(json!({"username": "u", "password": "p"})).is_ok());
    }
}
