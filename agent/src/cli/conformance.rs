//! `outpost plugin test`: the conformance suite a plugin author runs in one
//! command. It starts its own loopback servers (an HTTP target answering
//! 200, 500 and 400 and recording what it receives, a TCP target that
//! accepts and never answers, a port that refuses), loads the plugin the
//! way the agent does, and checks it rule by rule: each rule has a name
//! (`check.fail-500`), passes or fails with a reason, and the command
//! exits 0 only when every rule passes.
//!
//! The HTTP target answers with the status its URL's first path segment
//! names (`/500/...`), so a plugin that appends its own path to a base URL
//! still gets the answer a rule needs. The plugin's configuration is a
//! template: `{url}` (and `{host}`,
//! `{port}`) in any string value is replaced by the target of each rule.
//! Without `--config` the suite uses `{"url": "{url}"}` (or
//! `webhook_url`) when the plugin declares such a key. This module owns
//! the rules and their servers; it runs plugins only through the plugin
//! host's public API, as the agent does.

use outpost_plugin_host::{
    Alert, CheckResult, NetPolicy, Plugin, PluginHost, PluginKind, RunError, Status,
};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Time a check gets in the rules that expect an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a check gets against the target that never answers: long enough
/// for a plugin to leave a margin, short enough to keep the suite quick.
const SLOW_TIMEOUT: Duration = Duration::from_millis(1500);
/// How far past its timeout a run (instantiation included) may end and
/// still count as "returned before the deadline": scheduling noise on a
/// loaded machine, not plugin time. A plugin that really overruns is
/// stopped by the agent and fails on that instead.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// One rule's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The rule's name.
    pub rule: &'static str,
    /// Passed.
    pub pass: bool,
    /// Why, for humans.
    pub detail: String,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The plugin as named on the command line.
    pub plugin: String,
    /// Sensor, notifier or provider, once loaded.
    pub kind: Option<PluginKind>,
    /// Every rule passed.
    pub passed: bool,
    /// In order.
    pub rules: Vec<Outcome>,
}

/// What one request to the HTTP target looked like.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: Vec<u8>,
}

/// The loopback servers of one run.
struct Targets {
    http: SocketAddr,
    slow: SocketAddr,
    /// Bound but not listening: connections are refused.
    refused: SocketAddr,
    _refused_socket: tokio::net::TcpSocket,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Targets {
    async fn start() -> anyhow::Result<Self> {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let path = uri.path().to_string();
                    log.lock().unwrap().push(Received {
                        path: path.clone(),
                        body: body.to_vec(),
                    });
                    // The first path segment says how to answer
                    // (`/500/...`), so plugins that append their own path
                    // to a base URL still reach the right status.
                    let code = path
                        .split('/')
                        .nth(1)
                        .and_then(|c| c.parse::<u16>().ok())
                        .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                        .unwrap_or(axum::http::StatusCode::OK);
                    (code, format!("outpost plugin test: {code}\n"))
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // Accepts, reads and never answers, until the client gives up.
        let slow_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let slow = slow_listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = slow_listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind("127.0.0.1:0".parse()?)?;
        let refused = sock.local_addr()?;
        Ok(Self {
            http,
            slow,
            refused,
            _refused_socket: sock,
            received,
        })
    }
}

/// Fills `{url}`, `{host}` and `{port}` in every string of `template`.
fn fill(template: &serde_json::Value, url: &str, addr: SocketAddr) -> serde_json::Value {
    use serde_json::Value;
    match template {
        Value::String(s) => Value::String(
            s.replace("{url}", url)
                .replace("{host}", &addr.ip().to_string())
                .replace("{port}", &addr.port().to_string()),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, url, addr)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), fill(v, url, addr)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The configuration template when none is given.
fn default_template(plugin: &Plugin) -> Option<serde_json::Value> {
    let fields = &plugin.info().config;
    ["url", "webhook_url"]
        .iter()
        .find(|k| fields.iter().any(|f| f.name == **k))
        .map(|k| serde_json::json!({ *k: "{url}" }))
}

/// A value of another JSON type than `v`.
fn wrong_type(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(_) => Value::from(12345),
        Value::Number(_) => Value::from("not a number"),
        Value::Bool(_) => Value::from("not a bool"),
        Value::Array(_) => Value::from(7),
        Value::Object(_) => Value::from(7),
        Value::Null => Value::from(7),
    }
}

struct Suite<'a> {
    plugin: Arc<Plugin>,
    targets: &'a Targets,
    template: serde_json::Value,
    out: Vec<Outcome>,
}

impl Suite<'_> {
    fn record(&mut self, rule: &'static str, pass: bool, detail: impl Into<String>) {
        self.out.push(Outcome {
            rule,
            pass,
            detail: detail.into(),
        });
    }

    fn config_for(&self, url: &str, addr: SocketAddr) -> serde_json::Value {
        fill(&self.template, url, addr)
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.targets.http)
    }

    fn instance(&self, config: &serde_json::Value) -> outpost_plugin_host::Instance {
        self.plugin
            .instance(Arc::new(NetPolicy::from_config(config, &[])), "conformance")
    }

    fn info_rules(&mut self, wanted: PluginKind) {
        let info = self.plugin.info().clone();
        let mut problems = vec![];
        let name_ok = !info.name.is_empty()
            && info
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            problems.push(format!(
                "name {:?} must be non-empty lowercase letters, digits, - or _",
                info.name
            ));
        }
        if info.version.trim().is_empty() {
            problems.push("version is empty".to_string());
        }
        if info.description.trim().is_empty() {
            problems.push("description is empty".to_string());
        }
        if info.kind != wanted {
            problems.push(format!(
                "info says kind `{}` but the component exports the {wanted} interface",
                info.kind
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &info.config {
            if f.name.is_empty() || f.ty.is_empty() {
                problems.push("a config field has an empty name or type".to_string());
            }
            if !seen.insert(f.name.clone()) {
                problems.push(format!("config field `{}` is listed twice", f.name));
            }
            if let Some(d) = &f.default
                && serde_json::from_str::<serde_json::Value>(d).is_err()
            {
                problems.push(format!(
                    "the default of `{}` is not JSON: {d:?} (write strings as \"\\\"text\\\"\")",
                    f.name
                ));
            }
        }
        if problems.is_empty() {
            self.record(
                "info.well-formed",
                true,
                format!(
                    "{} {} ({}), {} config key(s)",
                    info.name,
                    info.version,
                    info.kind,
                    info.config.len()
                ),
            );
        } else {
            self.record("info.well-formed", false, problems.join("; "));
        }
    }

    async fn validate_rules(&mut self) -> bool {
        let good = self.config_for(&self.http_url("/200/"), self.targets.http);
        let r = self.instance(&good).validate(&good.to_string()).await;
        let accepted = match r {
            Ok(Ok(())) => {
                self.record("validate.accepts", true, format!("accepted {good}"));
                true
            }
            Ok(Err(e)) => {
                self.record(
                    "validate.accepts",
                    false,
                    format!("rejected {good}: {} ({})", e.message, e.field),
                );
                false
            }
            Err(e) => {
                self.record("validate.accepts", false, format!("validate failed: {e}"));
                false
            }
        };
        let required: Vec<String> = self
            .plugin
            .info()
            .config
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.clone())
            .collect();
        let r = self.instance(&good).validate("{}").await;
        match r {
            Ok(Err(e)) if !e.field.is_empty() => self.record(
                "validate.rejects-empty",
                true,
                format!("{{}} rejected naming `{}`: {}", e.field, e.message),
            ),
            Ok(Err(e)) => self.record(
                "validate.rejects-empty",
                false,
                format!(
                    "{{}} rejected without naming a field (the error's `field` must name the missing key): {}",
                    e.message
                ),
            ),
            Ok(Ok(())) if required.is_empty() => self.record(
                "validate.rejects-empty",
                true,
                "no required keys: {} is a valid configuration",
            ),
            Ok(Ok(())) => self.record(
                "validate.rejects-empty",
                false,
                format!(
                    "{{}} was accepted though `{}` is required",
                    required.join("`, `")
                ),
            ),
            Err(e) => self.record("validate.rejects-empty", false, format!("validate failed: {e}")),
        }
        // The first key of the template, given a value of another type.
        let Some((key, value)) = good.as_object().and_then(|o| o.iter().next()) else {
            self.record(
                "validate.rejects-wrong-type",
                false,
                "the configuration has no key to give a wrong type (pass --config)",
            );
            return accepted;
        };
        let mut bad = good.clone();
        bad[key] = wrong_type(value);
        let r = self.instance(&good).validate(&bad.to_string()).await;
        match r {
            Ok(Err(e)) if e.field.split(['.', '[']).next() == Some(key.as_str()) => self.record(
                "validate.rejects-wrong-type",
                true,
                format!("`{key}` = {} rejected: {}", bad[key], e.message),
            ),
            Ok(Err(e)) => self.record(
                "validate.rejects-wrong-type",
                false,
                format!(
                    "`{key}` = {} rejected, but the error names {:?} instead of `{key}`: {}",
                    bad[key], e.field, e.message
                ),
            ),
            Ok(Ok(())) => self.record(
                "validate.rejects-wrong-type",
                false,
                format!("`{key}` = {} was accepted", bad[key]),
            ),
            Err(e) => self.record(
                "validate.rejects-wrong-type",
                false,
                format!("validate failed: {e}"),
            ),
        }
        accepted
    }

    async fn check(
        &self,
        config: &serde_json::Value,
        policy: NetPolicy,
        timeout: Duration,
    ) -> (Result<CheckResult, RunError>, Duration) {
        let mut inst = self.plugin.instance(Arc::new(policy), "conformance");
        let started = Instant::now();
        let r = inst.check(&config.to_string(), timeout).await;
        (r, started.elapsed())
    }

    async fn sensor_rules(&mut self, skip: &[String]) {
        let t = self.targets;
        let cases: [(&'static str, String, SocketAddr, Status); 3] = [
            ("check.ok-200", self.http_url("/200/"), t.http, Status::Ok),
            (
                "check.fail-500",
                self.http_url("/500/"),
                t.http,
                Status::Fail,
            ),
            (
                "check.refused",
                format!("http://{}/", t.refused),
                t.refused,
                Status::Fail,
            ),
        ];
        for (rule, url, addr, want) in cases {
            if skip.iter().any(|s| s == rule) {
                continue;
            }
            let config = self.config_for(&url, addr);
            let policy = NetPolicy::from_config(&config, &[]);
            let (r, _) = self.check(&config, policy, CHECK_TIMEOUT).await;
            match r {
                Ok(res) if res.status == want => self.record(
                    rule,
                    true,
                    format!("{} \"{}\"", res.status.as_str(), res.message),
                ),
                Ok(res) => self.record(
                    rule,
                    false,
                    format!(
                        "expected {}, got {} \"{}\"",
                        want.as_str(),
                        res.status.as_str(),
                        res.message
                    ),
                ),
                Err(e) => self.record(
                    rule,
                    false,
                    format!("expected {}, the run failed: {e}", want.as_str()),
                ),
            }
        }
        if !skip.iter().any(|s| s == "check.denied") {
            let config = self.config_for(&self.http_url("/200/"), t.http);
            let (r, _) = self
                .check(&config, NetPolicy::deny_all(), CHECK_TIMEOUT)
                .await;
            match r {
                Ok(res) if matches!(res.status, Status::Fail | Status::Error) => self.record(
                    "check.denied",
                    true,
                    format!("{} \"{}\"", res.status.as_str(), res.message),
                ),
                Ok(res) => self.record(
                    "check.denied",
                    false,
                    format!(
                        "with no host allowed, expected fail or error, got {} \"{}\"",
                        res.status.as_str(),
                        res.message
                    ),
                ),
                Err(e) => self.record(
                    "check.denied",
                    false,
                    format!("a host outside the allow-list must be a result, not a fault: {e}"),
                ),
            }
        }
        if !skip.iter().any(|s| s == "check.deadline") {
            let config = self.config_for(&format!("http://{}/slow", t.slow), t.slow);
            let policy = NetPolicy::from_config(&config, &[]);
            let (r, took) = self.check(&config, policy, SLOW_TIMEOUT).await;
            let ms = took.as_millis();
            match r {
                Ok(res) if took <= SLOW_TIMEOUT + DEADLINE_SLACK && res.status != Status::Ok => {
                    self.record(
                        "check.deadline",
                        true,
                        format!(
                            "target never answers: {} after {ms} ms of {} ms \"{}\"",
                            res.status.as_str(),
                            SLOW_TIMEOUT.as_millis(),
                            res.message
                        ),
                    )
                }
                Ok(res) if res.status == Status::Ok => self.record(
                    "check.deadline",
                    false,
                    format!("a target that never answers was reported ok: \"{}\"", res.message),
                ),
                Ok(res) => self.record(
                    "check.deadline",
                    false,
                    format!(
                        "returned after {ms} ms, past the {} ms allowed: {} \"{}\"",
                        SLOW_TIMEOUT.as_millis(),
                        res.status.as_str(),
                        res.message
                    ),
                ),
                Err(e) => self.record(
                    "check.deadline",
                    false,
                    format!(
                        "the agent had to stop it ({e}): give requests the time left minus a margin, so a slow target is a `fail`"
                    ),
                ),
            }
        }
    }

    async fn notifier_rules(&mut self, skip: &[String]) {
        let t = self.targets;
        let alert = Alert {
            message: "outpost plugin test: a test notification".into(),
            ..Alert::default()
        };
        let cases: [(&'static str, &str); 3] = [
            ("notify.delivers", "/200/hook"),
            ("notify.retryable-500", "/500/hook"),
            ("notify.permanent-400", "/400/hook"),
        ];
        for (rule, path) in cases {
            if skip.iter().any(|s| s == rule) {
                continue;
            }
            let before = t.received.lock().unwrap().len();
            let config = self.config_for(&self.http_url(path), t.http);
            let r = self
                .instance(&config)
                .notify(&config.to_string(), &alert, CHECK_TIMEOUT)
                .await;
            let got: Vec<Received> = t.received.lock().unwrap()[before..].to_vec();
            let reached = got.iter().any(|g| g.path.starts_with(path));
            let (pass, detail) = match (rule, r) {
                (_, Err(e)) => (false, format!("the run failed: {e}")),
                ("notify.delivers", Ok(Ok(()))) if reached => {
                    let size: usize = got.iter().map(|g| g.body.len()).sum();
                    (true, format!("delivered ({size} bytes received)"))
                }
                ("notify.delivers", Ok(Ok(()))) => (
                    false,
                    "reported delivered, but the receiver got no request".to_string(),
                ),
                ("notify.delivers", Ok(Err(e))) => (
                    false,
                    format!("not delivered to a receiver answering 200: {}", e.message),
                ),
                (_, Ok(Ok(()))) => (
                    false,
                    format!(
                        "reported delivered though the receiver answered {}",
                        &path[1..4]
                    ),
                ),
                ("notify.retryable-500", Ok(Err(e))) if !e.permanent => {
                    (true, format!("retryable: {}", e.message))
                }
                ("notify.retryable-500", Ok(Err(e))) => (
                    false,
                    format!(
                        "a 500 was reported permanent (it must be retried): {}",
                        e.message
                    ),
                ),
                (_, Ok(Err(e))) if e.permanent => (true, format!("permanent: {}", e.message)),
                (_, Ok(Err(e))) => (
                    false,
                    format!(
                        "a 400 was reported retryable (retrying cannot help): {}",
                        e.message
                    ),
                ),
            };
            self.record(rule, pass, detail);
        }
    }

    async fn provider_rules(&mut self, skip: &[String]) {
        let t = self.targets;
        let cases: [(&'static str, String, SocketAddr, Duration); 2] = [
            (
                "discover.refused",
                format!("http://{}/", t.refused),
                t.refused,
                CHECK_TIMEOUT,
            ),
            (
                "discover.deadline",
                format!("http://{}/slow", t.slow),
                t.slow,
                SLOW_TIMEOUT,
            ),
        ];
        for (rule, url, addr, timeout) in cases {
            if skip.iter().any(|s| s == rule) {
                continue;
            }
            let config = self.config_for(&url, addr);
            let started = Instant::now();
            let r = self
                .instance(&config)
                .discover(&config.to_string(), None, timeout)
                .await;
            let took = started.elapsed();
            let (pass, detail) = match r {
                Ok(Err(e)) if took <= timeout + DEADLINE_SLACK => {
                    (true, format!("discovery error: {}", e.message))
                }
                Ok(Err(e)) => (
                    false,
                    format!("returned after {} ms: {}", took.as_millis(), e.message),
                ),
                Ok(Ok(_)) => (
                    false,
                    "reported a discovery from an unreachable system".into(),
                ),
                Err(e) => (false, format!("the run failed: {e}")),
            };
            self.record(rule, pass, detail);
        }
    }
}

/// `text` (which quotes the plugin's own messages) with control
/// characters escaped, so a plugin cannot move the cursor or recolour the
/// author's terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Runs the suite over the plugin `spec`.
pub async fn run(
    host: &PluginHost,
    spec: &str,
    template: Option<serde_json::Value>,
    skip: &[String],
) -> anyhow::Result<Report> {
    let mut report = Report {
        plugin: spec.to_string(),
        kind: None,
        passed: false,
        rules: vec![],
    };
    let plugin = match host.load_spec(spec).await {
        Ok(p) => p,
        Err(e) => {
            report.rules.push(Outcome {
                rule: "component.world",
                pass: false,
                detail: e.to_string(),
            });
            return Ok(report);
        }
    };
    let kind = plugin.kind();
    report.kind = Some(kind);
    report.rules.push(Outcome {
        rule: "component.world",
        pass: true,
        detail: format!(
            "a {kind} of outpost:plugin@0.1 (this agent: {})",
            outpost_plugin_host::WIT_VERSION
        ),
    });
    let template = match template.or_else(|| default_template(&plugin)) {
        Some(t) => t,
        None => anyhow::bail!(
            "{} has no `url` key: pass --config with `{{url}}` where the target goes, like --config '{{\"endpoint\": \"{{url}}\"}}'",
            plugin.label()
        ),
    };
    let targets = Targets::start().await?;
    let mut suite = Suite {
        plugin,
        targets: &targets,
        template,
        out: vec![],
    };
    suite.info_rules(kind);
    suite.validate_rules().await;
    match kind {
        PluginKind::Sensor => suite.sensor_rules(skip).await,
        PluginKind::Notifier => suite.notifier_rules(skip).await,
        PluginKind::Provider => suite.provider_rules(skip).await,
    }
    report.rules.extend(
        suite
            .out
            .into_iter()
            .filter(|o| !skip.iter().any(|s| s == o.rule)),
    );
    report.passed = report.rules.iter().all(|r| r.pass);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_every_string() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let t = serde_json::json!({"url": "{url}", "n": 1, "nested": {"h": ["{host}:{port}"]}});
        let v = fill(&t, "http://127.0.0.1:8080/x", addr);
        assert_eq!(
            v,
            serde_json::json!({"url": "http://127.0.0.1:8080/x", "n": 1, "nested": {"h": ["127.0.0.1:8080"]}})
        );
    }

    #[test]
    fn a_wrong_type_is_never_the_same_type() {
        for v in [
            serde_json::json!("s"),
            serde_json::json!(1),
            serde_json::json!(true),
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            let w = wrong_type(&v);
            assert_ne!(
                std::mem::discriminant(&v),
                std::mem::discriminant(&w),
                "{v}"
            );
        }
    }
}
