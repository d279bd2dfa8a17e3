//! # The `kubernetes` provider
//!
//! Lists the Ingresses of a cluster through the Kubernetes API
//! (`GET /apis/networking.k8s.io/v1/ingresses`, or per namespace, with
//! `limit`/`continue` pagination and an optional `labelSelector`) and
//! produces one `kubernetes.io/Ingress` object per rule and path, with its
//! `url`. Include/exclude regular expressions filter the URLs; header
//! rules attach request headers to matching URLs (an API key for a Kong
//! route), as the `headers` attribute (a JSON object: use it in a sensor
//! template as `headers = "{headers|json}"`).
//!
//! Object ids are `<namespace>/<ingress>/<host><path>`: stable while the
//! ingress keeps that rule, so a sensor's history survives rediscovery.
//! Every object has the labels of its ingress plus `namespace` and
//! `ingress`, and the attributes `url`, `host`, `path`, `namespace`,
//! `ingress`, `scheme`; its parent is `namespace/<namespace>`.
//!
//! Pure functions (parsing a list page, building objects) are unit-tested
//! natively; only [`discover`] does I/O.

use outpost_plugin_sdk::http::{self, Request};
use outpost_plugin_sdk::prelude::*;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The kind of object produced.
pub const INGRESS: &str = "kubernetes.io/Ingress";

/// One per-URL header rule.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// Regular expression on the URL.
    #[serde(rename = "match")]
    pub match_: String,
    /// Headers to send to matching URLs.
    pub headers: BTreeMap<String, String>,
}

/// What the operator writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the API server.
    pub api_url: String,
    /// Bearer token (a service account token).
    #[serde(default)]
    pub token: Option<String>,
    /// Namespaces to list; empty lists the whole cluster.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// A Kubernetes label selector (`app=shop,tier!=batch`).
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Keep only URLs matching one of these.
    #[serde(default)]
    pub include: Vec<String>,
    /// Drop URLs matching one of these.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Per-URL headers.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
    /// Items per page (`limit`).
    #[serde(default = "default_page")]
    pub page_size: u32,
}

fn default_page() -> u32 {
    500
}

fn regexes(list: &[String], field: &str) -> Result<Vec<Regex>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            Regex::new(r).map_err(|e| ConfigError::new(format!("{field}[{i}]"), e.to_string()))
        })
        .collect()
}

/// The compiled filters.
pub struct Filters {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    headers: Vec<(Regex, BTreeMap<String, String>)>,
}

impl Filters {
    /// Compiles the configuration's regular expressions.
    pub fn new(c: &Config) -> Result<Filters, ConfigError> {
        let headers = c
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                Regex::new(&h.match_)
                    .map(|r| (r, h.headers.clone()))
                    .map_err(|e| ConfigError::new(format!("headers[{i}].match"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Filters {
            include: regexes(&c.include, "include")?,
            exclude: regexes(&c.exclude, "exclude")?,
            headers,
        })
    }

    fn keep(&self, url: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(url)))
            && !self.exclude.iter().any(|r| r.is_match(url))
    }

    fn headers_for(&self, url: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (r, h) in &self.headers {
            if r.is_match(url) {
                out.extend(h.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        out
    }
}

/// The parts of an `IngressList` this provider reads.
#[derive(Debug, Deserialize)]
pub struct IngressList {
    #[serde(default)]
    items: Vec<Ingress>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Debug, Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ingress {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: IngressSpec,
}

#[derive(Debug, Deserialize)]
struct ObjectMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
struct IngressSpec {
    #[serde(default)]
    tls: Vec<IngressTls>,
    #[serde(default)]
    rules: Vec<IngressRule>,
}

#[derive(Debug, Deserialize)]
struct IngressTls {
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct IngressRule {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    http: Option<HttpRule>,
}

#[derive(Debug, Deserialize)]
struct HttpRule {
    #[serde(default)]
    paths: Vec<HttpPath>,
}

#[derive(Debug, Deserialize)]
struct HttpPath {
    #[serde(default)]
    path: Option<String>,
}

/// Parses one page: its items as objects, and the `continue` token.
pub fn parse_page(
    body: &[u8],
    filters: &Filters,
    out: &mut Vec<DiscoveredObject>,
) -> Result<Option<String>, String> {
    let list: IngressList =
        serde_json::from_slice(body).map_err(|e| format!("not an IngressList: {e}"))?;
    for ing in list.items {
        let ns = &ing.metadata.namespace;
        let tls_hosts: Vec<&str> = ing
            .spec
            .tls
            .iter()
            .flat_map(|t| t.hosts.iter().map(String::as_str))
            .collect();
        for rule in &ing.spec.rules {
            // A rule without a host matches every host: nothing to check.
            let Some(host) = rule.host.as_deref().filter(|h| !h.contains('*')) else {
                continue;
            };
            let scheme = if tls_hosts.contains(&host) {
                "https"
            } else {
                "http"
            };
            let paths: Vec<&str> = match &rule.http {
                Some(h) if !h.paths.is_empty() => h
                    .paths
                    .iter()
                    .map(|p| p.path.as_deref().unwrap_or("/"))
                    .collect(),
                _ => vec!["/"],
            };
            for path in paths {
                let url = format!("{scheme}://{host}{path}");
                if !filters.keep(&url) {
                    continue;
                }
                let mut o = DiscoveredObject::new(
                    INGRESS,
                    format!("{ns}/{}/{host}{path}", ing.metadata.name),
                )
                .name(format!("{ns}/{} {url}", ing.metadata.name));
                for (k, v) in &ing.metadata.labels {
                    o = o.label(k, v);
                }
                o = o
                    .label("namespace", ns)
                    .label("ingress", &ing.metadata.name)
                    .attr("url", &url)
                    .attr("host", host)
                    .attr("path", path)
                    .attr("scheme", scheme)
                    .attr("namespace", ns)
                    .attr("ingress", &ing.metadata.name)
                    .attr(
                        "headers",
                        serde_json::to_string(&filters.headers_for(&url)).unwrap_or_default(),
                    )
                    .parent(format!("namespace/{ns}"));
                out.push(o);
            }
        }
    }
    Ok(list.metadata.continue_.filter(|c| !c.is_empty()))
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of one page.
pub fn page_url(c: &Config, namespace: Option<&str>, cont: Option<&str>) -> String {
    let base = c.api_url.trim_end_matches('/');
    let mut url = match namespace {
        Some(ns) => format!(
            "{base}/apis/networking.k8s.io/v1/namespaces/{}/ingresses",
            enc(ns)
        ),
        None => format!("{base}/apis/networking.k8s.io/v1/ingresses"),
    };
    url.push_str(&format!("?limit={}", c.page_size.max(1)));
    if let Some(sel) = &c.label_selector {
        url.push_str(&format!("&labelSelector={}", enc(sel)));
    }
    if let Some(t) = cont {
        url.push_str(&format!("&continue={}", enc(t)));
    }
    url
}

/// Pages are bounded: a cluster answering `continue` forever is stopped.
const MAX_PAGES: usize = 1000;

fn discover(c: &Config, ctx: &CheckContext) -> Result<Discovery, DiscoveryError> {
    let filters =
        Filters::new(c).map_err(|e| DiscoveryError::new(DiscoveryErrorKind::Config, e.message))?;
    let mut out = Vec::new();
    let scopes: Vec<Option<&str>> = if c.namespaces.is_empty() {
        vec![None]
    } else {
        c.namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    for ns in scopes {
        let mut cont: Option<String> = None;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(DiscoveryError::new(
                    DiscoveryErrorKind::BadAnswer,
                    format!("more than {MAX_PAGES} pages of ingresses"),
                ));
            }
            let mut req = Request::get(page_url(c, ns, cont.as_deref()));
            req.timeout = ctx.remaining();
            req.max_body_bytes = 16 << 20;
            req = req.header("accept", "application/json");
            if let Some(t) = &c.token {
                req = req.header("authorization", &format!("Bearer {}", t.trim()));
            }
            let r = http::send(&req).map_err(|e| {
                DiscoveryError::new(
                    DiscoveryErrorKind::Unavailable,
                    format!("{}: {e}", c.api_url),
                )
            })?;
            match r.status {
                200 => {}
                401 | 403 => {
                    return Err(DiscoveryError::new(
                        DiscoveryErrorKind::Denied,
                        format!(
                            "the API server answered HTTP {} (check the token and its RBAC: list ingresses)",
                            r.status
                        ),
                    ));
                }
                s => {
                    let text: String = r.text().chars().take(200).collect();
                    return Err(DiscoveryError::new(
                        DiscoveryErrorKind::Unavailable,
                        format!("the API server answered HTTP {s}: {text}"),
                    ));
                }
            }
            if r.truncated {
                return Err(DiscoveryError::new(
                    DiscoveryErrorKind::BadAnswer,
                    "a page of ingresses is larger than 16 MiB; lower page_size",
                ));
            }
            cont = parse_page(&r.body, &filters, &mut out)
                .map_err(|m| DiscoveryError::new(DiscoveryErrorKind::BadAnswer, m))?;
            if cont.is_none() {
                break;
            }
        }
    }
    Ok(Discovery {
        objects: Some(out),
        cursor: None,
    })
}

/// The provider.
pub struct Kubernetes;

impl Provider for Kubernetes {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::provider(
            "kubernetes",
            env!("CARGO_PKG_VERSION"),
            "Kubernetes ingresses: one object per rule and path, with its URL",
        )
        .produces(INGRESS)
        .field(ConfigField::required(
            "api_url",
            "url",
            "base URL of the API server",
        ))
        .field(ConfigField::optional(
            "token",
            "string",
            None,
            "bearer token (service account)",
        ))
        .field(ConfigField::optional(
            "namespaces",
            "list<string>",
            Some("[]"),
            "namespaces to list (default: all)",
        ))
        .field(ConfigField::optional(
            "label_selector",
            "string",
            None,
            "Kubernetes label selector",
        ))
        .field(ConfigField::optional(
            "include",
            "list<string>",
            Some("[]"),
            "keep only URLs matching one of these regexes",
        ))
        .field(ConfigField::optional(
            "exclude",
            "list<string>",
            Some("[]"),
            "drop URLs matching one of these regexes",
        ))
        .field(ConfigField::optional(
            "headers",
            "list",
            Some("[]"),
            "per-URL headers: { match = regex, headers = { name = value } }",
        ))
        .field(ConfigField::optional(
            "page_size",
            "integer",
            Some("500"),
            "items per API page",
        ))
    }

    fn validate(c: &Config) -> Result<(), ConfigError> {
        if !(c.api_url.starts_with("http://") || c.api_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "api_url",
                "must start with http:// or https://",
            ));
        }
        if c.page_size == 0 {
            return Err(ConfigError::new("page_size", "must be at least 1"));
        }
        Filters::new(c).map(|_| ())
    }

    fn discover(
        c: &Config,
        _cursor: Option<&str>,
        ctx: &CheckContext,
    ) -> Result<Discovery, DiscoveryError> {
        discover(c, ctx)
    }
}

outpost_plugin_sdk::export_provider!(Kubernetes);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        serde_json::from_str(&format!(r#"{{"api_url":"http://k8s:6443"{extra}}}"#)).unwrap()
    }

    const PAGE: &str = r#"{"kind":"IngressList","apiVersion":"networking.k8s.io/v1",
      "metadata":{"resourceVersion":"7","continue":"abc"},
      "items":[{"metadata":{"name":"shop","namespace":"prod","labels":{"team":"web"}},
        "spec":{"tls":[{"hosts":["shop.example"]}],
          "rules":[{"host":"shop.example","http":{"paths":[{"path":"/","pathType":"Prefix"},{"path":"/api","pathType":"Prefix"}]}},
                   {"host":"*.wild.example"},
                   {"host":"admin.example","http":{"paths":[{"path":"/internal","pathType":"Prefix"}]}}]}}]}"#;

    #[test]
    fn one_object_per_rule_and_path_with_filters_and_headers() {
        let c = cfg(
            r#","exclude":["/internal"],"headers":[{"match":"/api$","headers":{"apikey":"k"}}]"#,
        );
        let f = Filters::new(&c).unwrap();
        let mut out = vec![];
        let cont = parse_page(PAGE.as_bytes(), &f, &mut out).unwrap();
        assert_eq!(cont.as_deref(), Some("abc"));
        let urls: Vec<_> = out.iter().map(|o| o.attribute("url").unwrap()).collect();
        assert_eq!(urls, ["https://shop.example/", "https://shop.example/api"]);
        assert_eq!(out[1].id, "prod/shop/shop.example/api");
        assert_eq!(out[1].attribute("headers"), Some(r#"{"apikey":"k"}"#));
        assert_eq!(out[0].attribute("headers"), Some("{}"));
        assert_eq!(out[0].label_value("team"), Some("web"));
        assert_eq!(out[0].parents, ["namespace/prod"]);
    }

    #[test]
    fn page_urls() {
        let c = cfg(r#","label_selector":"app=shop","page_size":2"#);
        assert_eq!(
            page_url(&c, Some("prod"), Some("a b")),
            "http://k8s:6443/apis/networking.k8s.io/v1/namespaces/prod/ingresses?limit=2&labelSelector=app%3Dshop&continue=a%20b"
        );
    }
}
