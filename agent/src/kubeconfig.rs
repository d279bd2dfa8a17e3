//! Reading a kubeconfig for the `kubernetes` provider: the API server, the
//! bearer token and the cluster's CA of one context, so an operator can
//! write `kubeconfig = "~/.kube/config"` instead of copying them out.
//!
//! The agent reads the file (plugins have no filesystem) when the config
//! is loaded; the plugin gets `api_url` and `token` in its config, and the
//! CA becomes a trust root of that provider's HTTPS requests only. Token
//! authentication is what a monitoring service account uses; client
//! certificates and exec/auth-provider plugins are refused with a message
//! that says so.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What one context resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The API server URL.
    pub server: String,
    /// The bearer token, when the user has one.
    pub token: Option<String>,
    /// The cluster's CA certificates (PEM), when the kubeconfig names them.
    pub ca_pem: Option<String>,
}

#[derive(Deserialize)]
struct KubeConfig {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "cluster", alias = "user")]
    value: Option<T>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    user: Option<String>,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    ca_file: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure: bool,
}

#[derive(Deserialize)]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(rename = "client-certificate")]
    cert_file: Option<String>,
    exec: Option<serde_json::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_json::Value>,
}

/// Reads `path` (relative to `base`, `~/` expanded) and resolves
/// `context` (default: the file's `current-context`).
pub fn resolve(path: &str, base: &Path, context: Option<&str>) -> Result<Resolved, String> {
    let file = expand(path, base);
    let shown = file.display();
    let meta = std::fs::metadata(&file).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() || meta.len() > 4 << 20 {
        return Err(format!(
            "{shown} is not a kubeconfig file (a regular file under 4 MiB)"
        ));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: {e}"))?;
    let dir = file.parent().unwrap_or(base).to_path_buf();
    parse(&text, &dir, context).map_err(|e| format!("{shown}: {e}"))
}

fn expand(path: &str, base: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| base.to_path_buf())
            .join(rest),
        None => base.join(path),
    }
}

/// Resolves a context of a kubeconfig's text; relative file names in it
/// are relative to `dir`.
pub fn parse(text: &str, dir: &Path, context: Option<&str>) -> Result<Resolved, String> {
    let k: KubeConfig = yaml_serde::from_str(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
    let name = match context.or(k.current_context.as_deref()) {
        Some(n) if !n.is_empty() => n,
        _ => return Err("no context given and no current-context; set `context`".into()),
    };
    let ctx = find(&k.contexts, name, "context")?;
    let cluster = find(&k.clusters, &ctx.cluster, "cluster")?;
    if cluster.insecure {
        return Err(format!(
            "cluster `{}` has insecure-skip-tls-verify; give its CA instead (certificate-authority-data)",
            ctx.cluster
        ));
    }
    let ca_pem =
        match (&cluster.ca_data, &cluster.ca_file) {
            (Some(b64), _) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        format!(
                            "cluster `{}`: certificate-authority-data is not base64: {e}",
                            ctx.cluster
                        )
                    })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    format!(
                        "cluster `{}`: certificate-authority-data is not PEM text",
                        ctx.cluster
                    )
                })?)
            }
            (None, Some(f)) => Some(std::fs::read_to_string(dir.join(f)).map_err(|e| {
                format!("cluster `{}`: certificate-authority {f}: {e}", ctx.cluster)
            })?),
            (None, None) => None,
        };
    let token = match &ctx.user {
        None => None,
        Some(u) => {
            let user = find(&k.users, u, "user")?;
            if user.exec.is_some() || user.auth_provider.is_some() {
                return Err(format!(
                    "user `{u}` authenticates with an exec or auth-provider plugin, which the agent does not run; use a service account token (token or tokenFile)"
                ));
            }
            match (&user.token, &user.token_file) {
                (Some(t), _) => Some(t.trim().to_string()),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(dir.join(f))
                        .map_err(|e| format!("user `{u}`: tokenFile {f}: {e}"))?
                        .trim()
                        .to_string(),
                ),
                (None, None) if user.cert_data.is_some() || user.cert_file.is_some() => {
                    return Err(format!(
                        "user `{u}` authenticates with a client certificate; the provider uses a bearer token (a service account's token or tokenFile)"
                    ));
                }
                (None, None) => None,
            }
        }
    };
    Ok(Resolved {
        server: cluster.server.trim_end_matches('/').to_string(),
        token,
        ca_pem,
    })
}

fn find<'a, T>(list: &'a [Named<T>], name: &str, what: &str) -> Result<&'a T, String> {
    list.iter()
        .find(|n| n.name == name)
        .and_then(|n| n.value.as_ref())
        .ok_or_else(|| {
            let known: Vec<&str> = list.iter().map(|n| n.name.as_str()).collect();
            format!("no {what} `{name}` (it has: {})", known.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn kubeconfig(user: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(CA);
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context:\n    cluster: c1\n    user: mon\n- name: other\n  context:\n    cluster: missing\nclusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n    certificate-authority-data: {ca}\nusers:\n- name: mon\n  user:\n{user}\n"
        )
    }

    #[test]
    fn the_current_context_gives_server_token_and_ca() {
        let r = parse(&kubeconfig("    token: abc"), Path::new("/"), None).unwrap();
        assert_eq!(r.server, "https://10.0.0.1:6443");
        assert_eq!(r.token.as_deref(), Some("abc"));
        assert_eq!(r.ca_pem.as_deref(), Some(CA));
    }

    #[test]
    fn what_cannot_work_says_why() {
        let e = parse(&kubeconfig("    token: abc"), Path::new("/"), Some("other")).unwrap_err();
        assert!(e.contains("no cluster `missing`"), "{e}");
        let e = parse(&kubeconfig("    token: abc"), Path::new("/"), Some("nope")).unwrap_err();
        assert!(e.contains("no context `nope`") && e.contains("prod"), "{e}");
        let e = parse(
            &kubeconfig("    exec:\n      command: aws"),
            Path::new("/"),
            None,
        )
        .unwrap_err();
        assert!(e.contains("exec"), "{e}");
        let e = parse(
            &kubeconfig("    client-certificate-data: eA=="),
            Path::new("/"),
            None,
        )
        .unwrap_err();
        assert!(e.contains("client certificate"), "{e}");
        let e = parse("[1, 2", Path::new("/"), None).unwrap_err();
        assert!(e.starts_with("not a kubeconfig"), "{e}");
    }

    #[test]
    fn token_files_are_read_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        let r = parse(&kubeconfig("    tokenFile: tok"), dir.path(), None).unwrap();
        assert_eq!(r.token.as_deref(), Some("from-file"));
    }
}
