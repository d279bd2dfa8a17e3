//! `[[provider]]` and `[[kind]]`: where discovered objects come from and
//! what they become. Parsing and validation only; the runners and the
//! expansion of objects into sensors and nodes live in
//! [`crate::providers`].
//!
//! ```toml
//! [[provider]]
//! name = "k8s"
//! plugin = "kubernetes"
//! interval = "30s"
//! config = { api_url = "https://10.0.0.1:6443", token = "..." }
//!
//! [[kind]]
//! match = "kubernetes.io/Ingress"
//!   [[kind.sensor]]                  # one sensor per object and template
//!   name = "http"
//!   plugin = "http"
//!   interval = "30s"
//!   config = { url = "{url}", headers = "{headers|json}" }
//!   [[kind.system]]                  # one system per namespace
//!   by = "label:namespace"           # or "parent"
//!   name = "k8s-{value}"
//!   rule = "all"                     # "any", or quorum = 2
//!   [kind.service]                   # one service over those systems
//!   name = "k8s-ingresses"
//!   rule = "all"
//! ```

use super::raw::Dur;
use super::topology::Rule;
use super::{ConfigError, Endpoint, PluginConfig, Source, check_name};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// Default time between discoveries.
pub const DEFAULT_PROVIDER_INTERVAL: Duration = Duration::from_secs(60);
/// Default time allowed for one discovery.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

/// `[[provider]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: Spanned<String>,
    pub plugin: Spanned<String>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub allow: Option<Vec<Spanned<String>>>,
    pub max_objects: Option<Spanned<usize>>,
    pub config: Option<Spanned<toml::Table>>,
}

/// `[[kind]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKind {
    #[serde(rename = "match")]
    pub match_: Spanned<String>,
    #[serde(default)]
    pub sensor: Vec<Spanned<RawTemplate>>,
    #[serde(default)]
    pub system: Vec<Spanned<RawGroup>>,
    pub service: Option<Spanned<RawService>>,
}

/// `[[kind.sensor]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub name: Option<Spanned<String>>,
    pub plugin: Spanned<String>,
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub jitter: Option<Spanned<Dur>>,
    pub fail_after: Option<u32>,
    pub recover_after: Option<u32>,
    pub category: Option<String>,
    pub allow: Option<Vec<Spanned<String>>>,
    pub config: Option<Spanned<toml::Table>>,
}

/// `[[kind.system]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub by: Spanned<String>,
    pub name: Spanned<String>,
    pub rule: Option<Spanned<String>>,
    pub quorum: Option<u32>,
    pub category: Option<String>,
}

/// `[kind.service]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<String>,
    pub rule: Option<Spanned<String>>,
    pub quorum: Option<u32>,
    pub category: Option<String>,
}

/// One `[[provider]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Unique name; prefix of its objects' sensor names.
    pub name: String,
    /// Built-in name or path.
    pub plugin: String,
    /// Time between discoveries.
    pub interval: Duration,
    /// Time allowed per discovery.
    pub timeout: Duration,
    /// Explicit allow-list; `None`: the hosts its config names.
    pub allow: Option<Vec<Endpoint>>,
    /// Objects per discovery.
    pub max_objects: usize,
    /// The plugin configuration.
    pub config: PluginConfig,
}

/// A sensor template, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Last part of the sensor name (`<provider>.<object>.<name>`).
    pub name: String,
    /// Plugin.
    pub plugin: String,
    /// Interval (the agent default when not written).
    pub interval: Option<Duration>,
    /// Timeout.
    pub timeout: Option<Duration>,
    /// Spread of the first runs (default: the interval, at most 10 s).
    pub jitter: Option<Duration>,
    /// Failures before hard down.
    pub fail_after: Option<u32>,
    /// Successes before up.
    pub recover_after: Option<u32>,
    /// Status page grouping.
    pub category: Option<String>,
    /// Explicit allow-list.
    pub allow: Option<Vec<Endpoint>>,
    /// The config, placeholders not yet substituted.
    pub config: serde_json::Value,
}

/// What a grouping rule groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The value of this label.
    Label(String),
    /// Each parent id.
    Parent,
}

/// A `[[kind.system]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What objects are grouped by.
    pub by: GroupBy,
    /// Name pattern: `{value}` is the label value or parent id.
    pub name: String,
    /// How members combine.
    pub rule: Rule,
    /// Status page grouping.
    pub category: Option<String>,
}

/// A `[kind.service]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRule {
    /// Its name.
    pub name: String,
    /// How its dependencies combine.
    pub rule: Rule,
    /// Status page grouping.
    pub category: Option<String>,
}

/// A `[[kind]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct KindRule {
    /// The kind it applies to (any provider's).
    pub kind: String,
    /// Sensors made for every object.
    pub sensors: Vec<Template>,
    /// Systems the objects' sensors group into.
    pub systems: Vec<Group>,
    /// A service over the systems (or over the sensors when there are no
    /// system rules).
    pub service: Option<ServiceRule>,
    /// `file:line`.
    pub origin: String,
}

fn rule(
    src: &Source,
    key: &str,
    rule: Option<&Spanned<String>>,
    quorum: Option<u32>,
    at: usize,
) -> Result<Rule, ConfigError> {
    match (rule.map(|r| (r.get_ref().as_str(), r.span().start)), quorum) {
        (_, Some(0)) => Err(src.err(at, format!("{key}.quorum"), "must be at least 1")),
        (None | Some(("quorum", _)), Some(k)) => Ok(Rule::Quorum(k)),
        (None | Some(("all", _)), None) => Ok(Rule::All),
        (Some(("any", _)), None) => Ok(Rule::Any),
        (Some((other, at)), _) => Err(src.err(
            at,
            format!("{key}.rule"),
            format!("`{other}` is not a rule: write \"all\", \"any\" or quorum = k"),
        )),
    }
}

fn json_of(
    src: &Source,
    t: Option<Spanned<toml::Table>>,
) -> Result<serde_json::Value, ConfigError> {
    match t {
        Some(t) => {
            let at = t.span().start;
            serde_json::to_value(t.get_ref()).map_err(|e| src.err(at, "config", e.to_string()))
        }
        None => Ok(serde_json::Value::Object(Default::default())),
    }
}

/// Checks the `[[provider]]` entries. Returns them with the offsets of
/// their `plugin` value and `config` table (for plugin errors).
pub(super) fn check_providers(
    src: &Source,
    raw: Vec<Spanned<RawProvider>>,
) -> Result<Vec<(ProviderConfig, usize, usize)>, ConfigError> {
    let mut out: Vec<(ProviderConfig, usize, usize)> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let start = p.span().start;
        let p = p.into_inner();
        let key = format!("provider[{i}]");
        check_name(p.name.get_ref())
            .map_err(|m| src.err(p.name.span().start, format!("{key}.name"), m))?;
        if out.iter().any(|(o, _, _)| o.name == *p.name.get_ref()) {
            return Err(src.err(
                p.name.span().start,
                format!("{key}.name"),
                format!(
                    "a provider named `{}` is already defined; names must be unique",
                    p.name.get_ref()
                ),
            ));
        }
        let interval = p
            .interval
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(DEFAULT_PROVIDER_INTERVAL);
        if interval < super::MIN_INTERVAL {
            let at = p.interval.as_ref().map(|d| d.span().start).unwrap_or(start);
            return Err(src.err(
                at,
                format!("{key}.interval"),
                format!("must be at least {} ms", super::MIN_INTERVAL.as_millis()),
            ));
        }
        let timeout = p
            .timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(DEFAULT_PROVIDER_TIMEOUT.min(interval));
        if timeout.is_zero() || timeout > interval {
            let at = p.timeout.as_ref().map(|d| d.span().start).unwrap_or(start);
            return Err(src.err(
                at,
                format!("{key}.timeout"),
                "must be more than 0 and at most the interval",
            ));
        }
        let default_max = outpost_plugin_host::provider::DiscoveryLimits::default().max_objects;
        let max_objects = p
            .max_objects
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or(default_max);
        if max_objects == 0 || max_objects > 1_000_000 {
            let at = p
                .max_objects
                .as_ref()
                .map(|m| m.span().start)
                .unwrap_or(start);
            return Err(src.err(
                at,
                format!("{key}.max_objects"),
                "must be between 1 and 1000000",
            ));
        }
        let allow = super::parse_allow(src, p.allow.as_deref())?;
        let plugin_at = p.plugin.span().start;
        let (config, config_at) = PluginConfig::from_table(src, p.config, start)?;
        out.push((
            ProviderConfig {
                name: p.name.into_inner(),
                plugin: p.plugin.into_inner(),
                interval,
                timeout,
                allow,
                max_objects,
                config,
            },
            plugin_at,
            config_at,
        ));
    }
    Ok(out)
}

/// Checks the `[[kind]]` rules. Returns each with the offsets of its
/// templates' `plugin` values (to load them).
pub(super) fn check_kinds(
    src: &Source,
    raw: Vec<Spanned<RawKind>>,
) -> Result<Vec<(KindRule, Vec<usize>)>, ConfigError> {
    let mut out = Vec::new();
    for (i, k) in raw.into_iter().enumerate() {
        let start = k.span().start;
        let k = k.into_inner();
        let key = format!("kind[{i}]");
        let kind = k.match_.get_ref().clone();
        if !outpost_plugin_host::provider::valid_kind(&kind) {
            return Err(src.err(
                k.match_.span().start,
                format!("{key}.match"),
                format!("`{kind}` is not a kind: write a domain and a name, as in \"kubernetes.io/Ingress\""),
            ));
        }
        let mut sensors = Vec::new();
        let mut plugin_ats = Vec::new();
        for (j, t) in k.sensor.into_iter().enumerate() {
            let tstart = t.span().start;
            let t = t.into_inner();
            let tkey = format!("{key}.sensor[{j}]");
            let name = match &t.name {
                Some(n) => n.get_ref().clone(),
                None => t
                    .plugin
                    .get_ref()
                    .rsplit('/')
                    .next()
                    .unwrap_or("check")
                    .trim_end_matches(".wasm")
                    .to_string(),
            };
            check_name(&name).map_err(|m| {
                src.err(
                    t.name.as_ref().map(|n| n.span().start).unwrap_or(tstart),
                    format!("{tkey}.name"),
                    m,
                )
            })?;
            if sensors.iter().any(|s: &Template| s.name == name) {
                return Err(src.err(
                    tstart,
                    format!("{tkey}.name"),
                    format!("two templates of this kind are named `{name}`; give one a `name`"),
                ));
            }
            let interval = t.interval.as_ref().map(|d| d.get_ref().0);
            if let Some(iv) = interval
                && iv < super::MIN_INTERVAL
            {
                return Err(src.err(
                    t.interval.as_ref().unwrap().span().start,
                    format!("{tkey}.interval"),
                    format!("must be at least {} ms", super::MIN_INTERVAL.as_millis()),
                ));
            }
            let timeout = t.timeout.as_ref().map(|d| d.get_ref().0);
            if let (Some(to), Some(iv)) = (timeout, interval)
                && (to.is_zero() || to > iv)
            {
                return Err(src.err(
                    t.timeout.as_ref().unwrap().span().start,
                    format!("{tkey}.timeout"),
                    "must be more than 0 and at most the interval",
                ));
            }
            let jitter = t.jitter.as_ref().map(|d| d.get_ref().0);
            if let Some(j) = &t.jitter
                && j.get_ref().0 > Duration::from_secs(86_400)
            {
                return Err(src.err(
                    j.span().start,
                    format!("{tkey}.jitter"),
                    "must be at most 1 day",
                ));
            }
            plugin_ats.push(t.plugin.span().start);
            sensors.push(Template {
                name,
                plugin: t.plugin.into_inner(),
                interval,
                timeout,
                jitter,
                fail_after: t.fail_after.filter(|n| *n > 0),
                recover_after: t.recover_after.filter(|n| *n > 0),
                category: t.category,
                allow: super::parse_allow(src, t.allow.as_deref())?,
                config: json_of(src, t.config)?,
            });
        }
        let mut systems = Vec::new();
        for (j, g) in k.system.into_iter().enumerate() {
            let gstart = g.span().start;
            let g = g.into_inner();
            let gkey = format!("{key}.system[{j}]");
            let by = match g.by.get_ref().as_str() {
                "parent" => GroupBy::Parent,
                b => match b.strip_prefix("label:") {
                    Some(l) if !l.is_empty() => GroupBy::Label(l.to_string()),
                    _ => {
                        return Err(src.err(
                            g.by.span().start,
                            format!("{gkey}.by"),
                            format!("`{b}`: write \"label:<name>\" or \"parent\""),
                        ));
                    }
                },
            };
            if !g.name.get_ref().contains("{value}") {
                return Err(src.err(g.name.span().start, format!("{gkey}.name"), "the name must contain `{value}` (the label value or parent id), so each group gets its own system"));
            }
            systems.push(Group {
                by,
                name: g.name.into_inner(),
                rule: rule(src, &gkey, g.rule.as_ref(), g.quorum, gstart)?,
                category: g.category,
            });
        }
        let service = match k.service {
            Some(s) => {
                let sstart = s.span().start;
                let s = s.into_inner();
                let skey = format!("{key}.service");
                check_name(s.name.get_ref())
                    .map_err(|m| src.err(s.name.span().start, format!("{skey}.name"), m))?;
                Some(ServiceRule {
                    name: s.name.into_inner(),
                    rule: rule(src, &skey, s.rule.as_ref(), s.quorum, sstart)?,
                    category: s.category,
                })
            }
            None => None,
        };
        let (line, _) = src.locate(start);
        out.push((
            KindRule {
                kind,
                sensors,
                systems,
                service,
                origin: format!("{}:{line}", src.path.display()),
            },
            plugin_ats,
        ));
    }
    Ok(out)
}

/// Substitutes `{attribute}` placeholders in the string values of `v`.
/// A string that is exactly `{name|json}` is replaced by the attribute
/// parsed as JSON (a table of headers). `{object.id}` and
/// `{object.name}` are the object's id and name, `{label.x}` its label.
/// Returns the first unknown placeholder as the error.
pub fn substitute(
    v: &serde_json::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix("|json}")) {
                let text = lookup(name).ok_or_else(|| name.to_string())?;
                return serde_json::from_str(&text).map_err(|_| format!("{name} (not JSON)"));
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open + 1..];
                match after.find('}') {
                    Some(close) => {
                        let name = &after[..close];
                        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
                        rest = &after[close + 1..];
                    }
                    None => {
                        out.push_str(&rest[open..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| substitute(x, lookup).map(|x| (k.clone(), x)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let v =
            serde_json::json!({"url": "{url}", "h": "{headers|json}", "n": 3, "l": ["x{host}y"]});
        let look = |k: &str| match k {
            "url" => Some("http://a/".to_string()),
            "host" => Some("a".to_string()),
            "headers" => Some(r#"{"k":"v"}"#.to_string()),
            _ => None,
        };
        let out = substitute(&v, &look).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"url": "http://a/", "h": {"k": "v"}, "n": 3, "l": ["xay"]})
        );
        assert_eq!(
            substitute(&serde_json::json!("{nope}"), &look).unwrap_err(),
            "nope"
        );
    }
}
