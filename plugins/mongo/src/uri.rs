//! The `mongodb://` connection string, parsed once into a [`ConnString`]
//! that can only hold values this sensor can act on.
//!
//! Follows the MongoDB connection-string format: `mongodb://[user[:password]@]host[:port][,host[:port]...][/[authdb]][?options]`.
//! User, password and database are percent-decoded; `:`, `@` and `/` in them
//! must be percent-encoded. `mongodb+srv://` is refused: it needs DNS SRV and
//! TXT lookups, which `wasi:sockets` does not offer to plugins. Options that
//! only steer a driver's operations (`retryWrites`, `w`, ...) are accepted
//! and ignored so an application's string can be pasted; options that would
//! change what is checked and are not implemented (`tls`, `loadBalanced`,
//! other auth mechanisms) are errors.
//!
//! This module does no I/O.

use std::fmt;

/// The port a host without one gets.
pub const DEFAULT_PORT: u16 = 27017;

/// One `host:port` of the connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Lower-case host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host`, `host:port` or `[v6]:port`, as written in a
    /// connection string or in a server's `hello` reply.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let t = text.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("host `{t}`: missing `]` after the IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("host `{t}`: expected `:port` after `]`"))?,
                ),
            };
            (h, port)
        } else if t.matches(':').count() > 1 {
            return Err(format!(
                "host `{t}`: write IPv6 addresses in brackets, e.g. `[::1]:27017`"
            ));
        } else {
            match t.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        if host.is_empty() {
            return Err(format!("host `{t}`: the host name is empty"));
        }
        if host.ends_with(".sock") || host.contains('/') {
            return Err(format!(
                "host `{t}`: Unix domain sockets are not supported; use host:port"
            ));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(format!("host `{t}`: `{p}` is not a port number (1-65535)"));
                }
                Ok(n) => n,
            },
        };
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which SCRAM variant the connection string asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// Chosen from the server's `saslSupportedMechs` (the default).
    Negotiate,
    /// `authMechanism=SCRAM-SHA-1`.
    ScramSha1,
    /// `authMechanism=SCRAM-SHA-256`.
    ScramSha256,
}

/// User name and password from the connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Decoded user name.
    pub username: String,
    /// Decoded password.
    pub password: String,
    /// Database holding the user (`authSource`, else the path, else `admin`).
    pub source: String,
    /// Requested mechanism.
    pub mechanism: AuthMechanism,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password, not even in test output.
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("source", &self.source)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// A valid connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnString {
    /// The seed list, in the order written, without duplicates.
    pub hosts: Vec<HostPort>,
    /// `replicaSet`: the set every host must belong to.
    pub replica_set: Option<String>,
    /// `directConnection`.
    pub direct_connection: Option<bool>,
    /// Credentials, when a user is given.
    pub credential: Option<Credential>,
    /// `appName`, sent in the `hello` client metadata.
    pub app_name: Option<String>,
    /// `connectTimeoutMS`, when given.
    pub connect_timeout_ms: Option<u64>,
}

/// Options that only steer a driver's reads and writes or its pool; the
/// sensor sends no such operations, so they are accepted and ignored.
const IGNORED_OPTIONS: &[&str] = &[
    "retrywrites",
    "retryreads",
    "w",
    "wtimeoutms",
    "journal",
    "readpreference",
    "readpreferencetags",
    "maxstalenessseconds",
    "readconcernlevel",
    "maxpoolsize",
    "minpoolsize",
    "maxconnecting",
    "maxidletimems",
    "waitqueuetimeoutms",
    "heartbeatfrequencyms",
    "localthresholdms",
    "serverselectiontimeoutms",
    "serverselectiontryonce",
    "sockettimeoutms",
    "compressors",
    "zlibcompressionlevel",
    "uuidrepresentation",
    "timeoutms",
    "servermonitoringmode",
];

impl ConnString {
    /// Parses and checks a connection string. The error says what to
    /// change; it never contains the password.
    pub fn parse(uri: &str) -> Result<ConnString, String> {
        let uri = uri.trim();
        let rest = if let Some(r) = strip_prefix_ci(uri, "mongodb://") {
            r
        } else if strip_prefix_ci(uri, "mongodb+srv://").is_some() {
            return Err("`mongodb+srv://` needs DNS SRV/TXT lookups, which plugins cannot \
                        make; list the hosts instead: `mongodb://host1:27017,host2:27017/?replicaSet=NAME`"
                .into());
        } else {
            return Err("must start with `mongodb://`".into());
        };
        // The authority ends at the first `/` or `?`; `@` and `:` inside the
        // user info must be percent-encoded, so the last `@` splits it.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostlist.is_empty() {
            return Err("no host given; write `mongodb://host:27017`".into());
        }
        let mut hosts = Vec::new();
        for part in hostlist.split(',') {
            if part.is_empty() {
                return Err("empty host in the host list (two commas?)".into());
            }
            let h = HostPort::parse(&percent_decode(part, "host")?)?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }

        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, q),
            None => (tail, ""),
        };
        let database = match path.strip_prefix('/') {
            Some("") | None => None,
            Some(db) => {
                let db = percent_decode(db, "database")?;
                if db.contains(['/', '\\', ' ', '"', '$', '.']) {
                    return Err(format!(
                        "database name `{db}` contains a character MongoDB does not allow (/\\. \"$)"
                    ));
                }
                Some(db)
            }
        };
        if !path.is_empty() && !path.starts_with('/') {
            return Err("expected `/` after the host list".into());
        }

        let mut replica_set = None;
        let mut auth_source = None;
        let mut direct_connection = None;
        let mut mechanism = AuthMechanism::Negotiate;
        let mut app_name = None;
        let mut connect_timeout_ms = None;
        for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("option `{pair}` has no value; write `{pair}=...`"))?;
            let value = percent_decode(value, key)?;
            match key.to_ascii_lowercase().as_str() {
                "replicaset" => replica_set = Some(non_empty(key, value)?),
                "authsource" => auth_source = Some(non_empty(key, value)?),
                "directconnection" => direct_connection = Some(parse_bool(key, &value)?),
                "appname" => app_name = Some(value),
                "connecttimeoutms" => {
                    connect_timeout_ms = Some(value.parse::<u64>().map_err(|_| {
                        format!("option `{key}`: `{value}` is not a number of milliseconds")
                    })?)
                }
                "authmechanism" => {
                    mechanism = match value.to_ascii_uppercase().as_str() {
                        "SCRAM-SHA-256" => AuthMechanism::ScramSha256,
                        "SCRAM-SHA-1" => AuthMechanism::ScramSha1,
                        "DEFAULT" => AuthMechanism::Negotiate,
                        _ => {
                            return Err(format!(
                                "authMechanism `{value}` is not supported; use SCRAM-SHA-256 or SCRAM-SHA-1"
                            ));
                        }
                    }
                }
                "authmechanismproperties" => {
                    return Err("authMechanismProperties is not supported (only SCRAM)".into());
                }
                "tls" | "ssl" => {
                    if parse_bool(key, &value)? {
                        return Err(format!(
                            "`{key}=true`: TLS is not supported by this sensor; it speaks plain TCP"
                        ));
                    }
                }
                "loadbalanced" => {
                    if parse_bool(key, &value)? {
                        return Err("`loadBalanced=true` is not supported".into());
                    }
                }
                k if k.starts_with("tls") || k.starts_with("ssl") => {
                    return Err(format!(
                        "option `{key}`: TLS is not supported by this sensor; it speaks plain TCP"
                    ));
                }
                k if IGNORED_OPTIONS.contains(&k) => {}
                _ => {
                    return Err(format!(
                        "unknown option `{key}` (this sensor understands replicaSet, authSource, \
                         authMechanism, directConnection, appName, connectTimeoutMS)"
                    ));
                }
            }
        }

        if direct_connection == Some(true) && hosts.len() > 1 {
            return Err("`directConnection=true` allows exactly one host".into());
        }

        let credential = match userinfo {
            None => {
                if auth_source.is_some() || mechanism != AuthMechanism::Negotiate {
                    return Err("authSource/authMechanism given but no user name; write \
                                `mongodb://user:password@host/...`"
                        .into());
                }
                None
            }
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if password.is_some_and(|p| p.contains(':')) {
                    return Err("the password contains `:`; percent-encode it as %3A".into());
                }
                if info.contains('/') {
                    return Err("the user info contains `/`; percent-encode it as %2F".into());
                }
                let username = percent_decode(user, "user name")?;
                if username.is_empty() {
                    return Err("the user name is empty".into());
                }
                let password = match password {
                    Some(p) => percent_decode(p, "password")?,
                    None => {
                        return Err(format!(
                            "user `{username}` has no password; write `user:password@` (SCRAM needs one)"
                        ));
                    }
                };
                Some(Credential {
                    username,
                    password,
                    source: auth_source
                        .or(database)
                        .unwrap_or_else(|| "admin".to_string()),
                    mechanism,
                })
            }
        };

        Ok(ConnString {
            hosts,
            replica_set,
            direct_connection,
            credential,
            app_name,
            connect_timeout_ms,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn non_empty(key: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("option `{key}` is empty"))
    } else {
        Ok(value)
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "option `{key}`: `{value}` is not `true` or `false`"
        )),
    }
}

/// Decodes `%XX` escapes; `what` names the part in the error.
fn percent_decode(s: &str, what: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("{what}: `%` must be followed by two hex digits (write `%25` for a literal `%`)")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what}: percent-encoding does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(h: &str, p: u16) -> HostPort {
        HostPort {
            host: h.into(),
            port: p,
        }
    }

    #[test]
    fn full_string() {
        let c = ConnString::parse(
            "mongodb://us%40er:p%3Ass%2Fw@DB1.example:27018,db2,[::1]:27019/app?replicaSet=rs0&authSource=admin&retryWrites=true&w=majority&appName=mon",
        )
        .unwrap();
        assert_eq!(
            c.hosts,
            vec![hp("db1.example", 27018), hp("db2", 27017), hp("::1", 27019)]
        );
        assert_eq!(c.replica_set.as_deref(), Some("rs0"));
        let cred = c.credential.unwrap();
        assert_eq!(cred.username, "us@er");
        assert_eq!(cred.password, "p:ss/w");
        assert_eq!(cred.source, "admin");
        assert_eq!(cred.mechanism, AuthMechanism::Negotiate);
        assert_eq!(c.app_name.as_deref(), Some("mon"));
        assert_eq!(c.hosts[2].to_string(), "[::1]:27019");
    }

    #[test]
    fn auth_source_defaults_to_path_then_admin() {
        let c = ConnString::parse("mongodb://u:p@h/shop").unwrap();
        assert_eq!(c.credential.unwrap().source, "shop");
        let c = ConnString::parse("mongodb://u:p@h").unwrap();
        assert_eq!(c.credential.unwrap().source, "admin");
        let c = ConnString::parse("mongodb://u:p@h/?authMechanism=SCRAM-SHA-1").unwrap();
        assert_eq!(c.credential.unwrap().mechanism, AuthMechanism::ScramSha1);
    }

    #[test]
    fn minimal_and_duplicates() {
        let c = ConnString::parse("mongodb://localhost").unwrap();
        assert_eq!(c.hosts, vec![hp("localhost", 27017)]);
        assert!(c.credential.is_none());
        let c = ConnString::parse("mongodb://a:1,A:1,b:2/").unwrap();
        assert_eq!(c.hosts, vec![hp("a", 1), hp("b", 2)]);
    }

    fn err(uri: &str) -> String {
        ConnString::parse(uri).unwrap_err()
    }

    #[test]
    fn errors_say_what_to_change() {
        assert!(err("mongodb+srv://cluster0.example.net").contains("SRV"));
        assert!(err("http://x").contains("must start with `mongodb://`"));
        assert!(err("mongodb://").contains("no host"));
        assert!(err("mongodb://a,,b").contains("empty host"));
        assert!(err("mongodb://a:0").contains("not a port number"));
        assert!(err("mongodb://a:99999").contains("not a port number"));
        assert!(err("mongodb://a:x").contains("not a port number"));
        assert!(err("mongodb://::1").contains("brackets"));
        assert!(err("mongodb://[::1").contains("missing `]`"));
        assert!(err("mongodb://u:p:q@h").contains("%3A"));
        assert!(err("mongodb://u@h").contains("no password"));
        assert!(err("mongodb://:p@h").contains("user name is empty"));
        assert!(err("mongodb://u:p%zz@h").contains("two hex digits"));
        assert!(err("mongodb://h/?tls=true").contains("TLS is not supported"));
        assert!(err("mongodb://h/?tlsCAFile=x").contains("TLS is not supported"));
        assert!(err("mongodb://h/?bogus=1").contains("unknown option `bogus`"));
        assert!(err("mongodb://h/?replicaSet").contains("has no value"));
        assert!(err("mongodb://h/?directConnection=yes").contains("not `true` or `false`"));
        assert!(err("mongodb://a,b/?directConnection=true").contains("exactly one host"));
        assert!(err("mongodb://h/?authSource=admin").contains("no user name"));
        assert!(err("mongodb://u:p@h/?authMechanism=GSSAPI").contains("not supported"));
        assert!(err("mongodb://%2Ftmp%2Fmongodb-27017.sock").contains("Unix domain"));
        assert!(err("mongodb://h/a.b").contains("does not allow"));
    }

    #[test]
    fn errors_never_contain_the_password() {
        for uri in ["mongodb://u:s3cret:x@h", "mongodb://u:s3cret@h/?bogus=1"] {
            assert!(!err(uri).contains("s3cret"), "{uri}");
        }
        let c = ConnString::parse("mongodb://u:s3cret@h").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn hello_host_strings() {
        assert_eq!(
            HostPort::parse("Mongo1:27018").unwrap(),
            hp("mongo1", 27018)
        );
        assert_eq!(HostPort::parse("[fe80::1]").unwrap(), hp("fe80::1", 27017));
    }
}
