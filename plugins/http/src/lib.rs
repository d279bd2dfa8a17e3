//! # The `http` sensor
//!
//! Requests one URL and grades the answer: status code against
//! `expect_status`, latency against `warn_latency` / `fail_latency`, the
//! body against `body_contains`, `body_regex` and `json` conditions, and,
//! for `https`, the days left on the server's certificate. The message
//! names exactly what failed ("HTTP 503, expected 2xx").
//!
//! Layout: [`config`] (what the operator writes, validated), [`expect`]
//! (status-code patterns), [`json_cond`] (JSON pointer conditions),
//! [`cert`] (certificate expiry); this file wires them to one request.
//! Everything except the request and the certificate host call is a pure
//! function, unit-tested natively with `cargo test -p outpost-plugin-http`.
//!
//! The request goes through the SDK's `wasi:http` client, so the agent's
//! allow-list applies to every hop: a redirect to a host the sensor may
//! not reach fails with a message saying so. The plugin keeps no state.

pub mod cert;
pub mod config;
pub mod expect;
pub mod json_cond;

use config::Config;
use outpost_plugin_sdk::http::{self, HttpError, Url};
use outpost_plugin_sdk::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Time kept back from the agent's deadline so that a slow target ends as
/// this plugin's precise "timed out" result rather than the agent stopping
/// the run. The agent checks deadlines every 5 ms; 50 ms also covers
/// building the result on a loaded machine.
const RESULT_MARGIN: Duration = Duration::from_millis(50);

/// The sensor.
pub struct Http;

impl Sensor for Http {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::sensor(
            "http",
            env!("CARGO_PKG_VERSION"),
            "HTTP(S) check: status code, latency, body text, regex and JSON conditions, redirects, certificate expiry",
        )
        .field(ConfigField::required("url", "url", "http:// or https:// URL to request"))
        .field(ConfigField::optional("method", "string", Some("\"GET\""), "HTTP method"))
        .field(ConfigField::optional("headers", "table", Some("{}"), "request headers, name = value"))
        .field(ConfigField::optional("body", "string", None, "request body"))
        .field(ConfigField::optional(
            "expect_status",
            "list",
            Some("[\"2xx\"]"),
            "status codes that count as success: codes (200), ranges (\"200-299\"), classes (\"2xx\")",
        ))
        .field(ConfigField::optional("warn_latency", "duration", None, "warn when the response takes longer"))
        .field(ConfigField::optional("fail_latency", "duration", None, "fail when the response takes longer"))
        .field(ConfigField::optional("body_contains", "string", None, "the body must contain this text"))
        .field(ConfigField::optional("body_regex", "string", None, "the body must match this regular expression"))
        .field(ConfigField::optional(
            "json",
            "list",
            Some("[]"),
            "conditions on the JSON body: { pointer = \"/a/b\", op = \"==|!=|<|>|<=|>=|contains|exists\", value = ..., severity = \"fail|warn\" }",
        ))
        .field(ConfigField::optional("follow_redirects", "bool", Some("false"), "follow 3xx redirects"))
        .field(ConfigField::optional(
            "max_redirects",
            "integer",
            Some(&config::DEFAULT_MAX_REDIRECTS.to_string()),
            "follow at most this many redirects",
        ))
        .field(ConfigField::optional(
            "timeout",
            "duration",
            None,
            "time allowed for the request (default and upper bound: the check's timeout)",
        ))
        .field(ConfigField::optional(
            "cert_warn_days",
            "number",
            Some(&config::DEFAULT_CERT_WARN_DAYS.to_string()),
            "https: warn when the certificate expires in fewer days",
        ))
        .field(ConfigField::optional(
            "cert_fail_days",
            "number",
            Some(&config::DEFAULT_CERT_FAIL_DAYS.to_string()),
            "https: fail when the certificate expires in fewer days",
        ))
        .field(ConfigField::optional(
            "max_body_bytes",
            "integer",
            Some(&config::DEFAULT_MAX_BODY_BYTES.to_string()),
            "read at most this many bytes of the body",
        ))
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn check(config: &Config, ctx: &CheckContext) -> CheckResult {
        run(config, ctx)
    }
}

outpost_plugin_sdk::export_sensor!(Http);

/// What the response looked like, for grading.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// Status code.
    pub status: u16,
    /// Body as read (up to `max_body_bytes`).
    pub body: &'a [u8],
    /// The body was longer than `max_body_bytes`.
    pub truncated: bool,
    /// Request start to last body byte.
    pub latency: Duration,
    /// Redirects followed.
    pub redirects: u32,
    /// The `Location` header of the final response.
    pub location: Option<&'a str>,
}

/// One graded finding: a non-ok status and what caused it.
pub type Finding = (Status, String);

/// Grades a response against the config (pure).
///
/// When the status code is not an expected one, body conditions are not
/// evaluated: they would be about an error page, and the status already
/// says what is wrong.
pub fn grade_response(c: &Config, o: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let expected = c.expected_status();
    let status_ok = expect::status_matches(&expected, o.status);
    if !status_ok {
        let mut m = format!(
            "HTTP {}, expected {}",
            o.status,
            expect::describe(&expected)
        );
        if (300..400).contains(&o.status) {
            let to = o.location.map(|l| format!(" to {l}")).unwrap_or_default();
            if !c.follow_redirects {
                m.push_str(&format!(
                    " (redirect{to} not followed: follow_redirects is false)"
                ));
            } else if o.redirects >= c.max_redirects {
                m.push_str(&format!(
                    " (gave up at redirect{to} after {} redirects: max_redirects)",
                    o.redirects
                ));
            }
        }
        out.push((Status::Fail, m));
    }
    let ms = o.latency.as_millis();
    if let Some(f) = c.fail_latency.filter(|f| o.latency > *f) {
        out.push((
            Status::Fail,
            format!("response took {ms} ms (fail above {} ms)", f.as_millis()),
        ));
    } else if let Some(w) = c.warn_latency.filter(|w| o.latency > *w) {
        out.push((
            Status::Warn,
            format!("response took {ms} ms (warn above {} ms)", w.as_millis()),
        ));
    }
    if !status_ok {
        return out;
    }
    let cut = if o.truncated {
        format!(
            " (only the first {} bytes were read: max_body_bytes)",
            o.body.len()
        )
    } else {
        String::new()
    };
    let needs_text = c.body_contains.is_some() || c.body_regex.is_some();
    let text = if needs_text {
        String::from_utf8_lossy(o.body)
    } else {
        "".into()
    };
    if let Some(s) = &c.body_contains
        && !text.contains(s.as_str())
    {
        out.push((Status::Fail, format!("body does not contain `{s}`{cut}")));
    }
    if let Some(re) = &c.body_regex
        && !re.0.is_match(&text)
    {
        out.push((
            Status::Fail,
            format!("body does not match regex `{}`{cut}", re.0.as_str()),
        ));
    }
    if !c.json.is_empty() {
        match serde_json::from_slice::<serde_json::Value>(o.body) {
            Err(e) => out.push((
                Status::Fail,
                format!(
                    "body is not JSON ({e}){cut}, so {} json condition(s) could not be checked",
                    c.json.len()
                ),
            )),
            Ok(doc) => {
                for cond in &c.json {
                    if let Err(m) = cond.evaluate(&doc) {
                        let status = match cond.severity {
                            json_cond::Severity::Fail => Status::Fail,
                            json_cond::Severity::Warn => Status::Warn,
                        };
                        out.push((status, m));
                    }
                }
            }
        }
    }
    out
}

/// The overall status and message: failures first, then warnings, joined
/// by `; `; `ok_message` when there is nothing to report.
pub fn summarize(findings: &[Finding], ok_message: String) -> (Status, String) {
    let worst = findings.iter().map(|f| f.0).max().unwrap_or(Status::Ok);
    if worst == Status::Ok {
        return (Status::Ok, ok_message);
    }
    let mut sorted: Vec<&Finding> = findings.iter().filter(|f| f.0 != Status::Ok).collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.0));
    let message = sorted
        .iter()
        .map(|f| f.1.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    (worst, message)
}

/// Time for the request: the configured `timeout`, bounded by what the
/// agent allows minus [`RESULT_MARGIN`].
pub fn request_budget(configured: Option<Duration>, agent_left: Duration) -> Duration {
    let margin = RESULT_MARGIN.min(agent_left / 10);
    let bound = agent_left.saturating_sub(margin);
    configured.map_or(bound, |t| t.min(bound))
}

/// One check: the request, then (https) the certificate.
fn run(c: &Config, ctx: &CheckContext) -> CheckResult {
    let url = match Url::parse(&c.url) {
        Ok(u) => u,
        Err(e) => return CheckResult::error(format!("`url`: {e}")),
    };
    let mut req = http::Request::new(&c.method.to_ascii_uppercase(), &c.url);
    req.headers = c
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !c
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("user-agent"))
    {
        req.headers.push((
            "user-agent".into(),
            concat!("outpost-http/", env!("CARGO_PKG_VERSION")).into(),
        ));
    }
    if let Some(b) = &c.body {
        req.body = b.clone().into_bytes();
        // A known length instead of chunked encoding, which many servers
        // refuse for requests (411 Length Required) or mishandle.
        if !c
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-length"))
        {
            req.headers
                .push(("content-length".into(), req.body.len().to_string()));
        }
    }
    req.timeout = request_budget(c.timeout, ctx.remaining());
    req.max_redirects = if c.follow_redirects {
        c.max_redirects
    } else {
        0
    };
    req.max_body_bytes = c.max_body_bytes;

    let started = Instant::now();
    let sent = http::send(&req);
    let latency = started.elapsed();

    let mut findings: Vec<Finding> = Vec::new();
    let mut details = Details {
        url: &c.url,
        method: &req.method,
        ..Details::default()
    };
    let mut result_metrics: Vec<(&str, f64)> = vec![("latency_ms", latency.as_secs_f64() * 1000.0)];
    let ok_message;
    let mut tls_failed = false;
    match &sent {
        Ok(r) => {
            let o = Observed {
                status: r.status,
                body: &r.body,
                truncated: r.truncated,
                latency,
                redirects: r.redirects,
                location: r.header("location"),
            };
            findings = grade_response(c, &o);
            // No latency in the message: it is the `latency_ms` field, and
            // a stable message is stored once (the store interns messages).
            ok_message = format!("HTTP {}", r.status);
            result_metrics.push(("status_code", r.status.into()));
            result_metrics.push(("body_bytes", r.body.len() as f64));
            result_metrics.push(("redirects", r.redirects.into()));
            details.response = Some(ResponseDetails {
                status_code: r.status,
                final_url: &r.final_url,
                redirects: r.redirects,
                time_to_headers_ms: r.time_to_headers.as_secs_f64() * 1000.0,
                body_bytes: r.body.len(),
                body_truncated: r.truncated,
                content_type: r.header("content-type"),
            });
        }
        Err(e) => {
            tls_failed = matches!(e, HttpError::Tls(_));
            findings.push(transport_finding(e, &url, c.follow_redirects));
            ok_message = String::new();
        }
    }

    // The certificate is read over its own connection, so it is reported
    // even when the request failed its TLS verification.
    if url.scheme == "https" && (sent.is_ok() || tls_failed) {
        let left = ctx
            .remaining()
            .saturating_sub(RESULT_MARGIN.min(ctx.remaining() / 10));
        if left < Duration::from_millis(1) {
            findings.push((
                Status::Error,
                "no time left to read the certificate; raise the check's timeout".into(),
            ));
        } else {
            match cert::fetch(&url.host, url.port, left) {
                Ok(info) => {
                    let now = unix_now();
                    let (status, message) =
                        cert::grade(&url.host, &info, now, c.cert_warn_days, c.cert_fail_days);
                    let days = cert::days_left(&info, now);
                    result_metrics.push(("cert_days_left", (days * 100.0).round() / 100.0));
                    details.certificate = Some(json!({
                        "subject": info.subject,
                        "issuer": info.issuer,
                        "not_before": info.not_before,
                        "not_after": info.not_after,
                        "dns_names": info.dns_names,
                        "days_left": days,
                    }));
                    findings.push((status, message));
                }
                Err(e) => {
                    findings.push((Status::Fail, format!("cannot read the certificate: {e}")))
                }
            }
        }
    }

    let ok_message = match findings.iter().find(|f| f.0 == Status::Ok) {
        Some(cert_ok) => format!("{ok_message}; {}", cert_ok.1),
        None => ok_message,
    };
    let (status, message) = summarize(&findings, ok_message);
    let problems: Vec<&str> = findings
        .iter()
        .filter(|f| f.0 != Status::Ok)
        .map(|f| f.1.as_str())
        .collect();
    details.problems = problems;
    let mut r = CheckResult::new(status, message)
        .latency(latency)
        .details(details);
    for (name, value) in result_metrics {
        r = r.metric(name, value);
    }
    r
}

/// The `details` of a result: built as a struct and written once (a
/// `serde_json::Value` tree cost a tenth of the plugin's time per check).
#[derive(Debug, Default, serde::Serialize)]
struct Details<'a> {
    url: &'a str,
    method: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    response: Option<ResponseDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'a str>,
}

/// What the response looked like, in [`Details`].
#[derive(Debug, serde::Serialize)]
struct ResponseDetails<'a> {
    status_code: u16,
    final_url: &'a str,
    redirects: u32,
    time_to_headers_ms: f64,
    body_bytes: usize,
    body_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
}

/// A request that produced no response.
fn transport_finding(e: &HttpError, url: &Url, follow_redirects: bool) -> Finding {
    match e {
        HttpError::Denied(target) if follow_redirects && *target != url.authority() => (
            Status::Fail,
            format!(
                "redirected to {target}, which is not in this sensor's network allow-list (add it to the sensor's `allow` list if the redirect is expected)"
            ),
        ),
        HttpError::Denied(_) | HttpError::BadUrl(_) | HttpError::Unavailable => {
            (Status::Error, e.to_string())
        }
        HttpError::Timeout(d) => (
            Status::Fail,
            format!(
                "no complete response from {} within {} ms (timeout)",
                url.authority(),
                d.as_millis()
            ),
        ),
        HttpError::Tls(m) => (
            Status::Fail,
            format!("TLS error with {}: {m}", url.authority()),
        ),
        HttpError::ConnectionRefused(_) | HttpError::Dns(_) => (Status::Fail, e.to_string()),
        HttpError::Transport(m) => (
            Status::Fail,
            format!("request to {} failed: {m}", url.authority()),
        ),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_plugin_sdk::parse_config;

    fn cfg(json: &str) -> Config {
        let c: Config = parse_config(json).unwrap();
        config::validate(&c).unwrap();
        c
    }

    fn obs(status: u16, body: &str, ms: u64) -> Observed<'_> {
        Observed {
            status,
            body: body.as_bytes(),
            truncated: false,
            latency: Duration::from_millis(ms),
            redirects: 0,
            location: None,
        }
    }

    fn verdict(c: &Config, o: &Observed) -> (Status, String) {
        summarize(&grade_response(c, o), "fine".into())
    }

    #[test]
    fn status_codes() {
        let c = cfg(r#"{"url":"http://h/"}"#);
        assert_eq!(verdict(&c, &obs(204, "", 1)), (Status::Ok, "fine".into()));
        assert_eq!(
            verdict(&c, &obs(503, "", 1)),
            (Status::Fail, "HTTP 503, expected 2xx".into())
        );
        let c = cfg(r#"{"url":"http://h/","expect_status":[404,"500-502"]}"#);
        assert_eq!(verdict(&c, &obs(501, "", 1)).0, Status::Ok);
        assert_eq!(
            verdict(&c, &obs(200, "", 1)).1,
            "HTTP 200, expected 404, 500-502"
        );
    }

    #[test]
    fn redirects_explain_themselves() {
        let c = cfg(r#"{"url":"http://h/"}"#);
        let mut o = obs(302, "", 1);
        o.location = Some("/login");
        assert_eq!(
            verdict(&c, &o).1,
            "HTTP 302, expected 2xx (redirect to /login not followed: follow_redirects is false)"
        );
        let c = cfg(r#"{"url":"http://h/","follow_redirects":true,"max_redirects":2}"#);
        o.redirects = 2;
        assert_eq!(
            verdict(&c, &o).1,
            "HTTP 302, expected 2xx (gave up at redirect to /login after 2 redirects: max_redirects)"
        );
    }

    #[test]
    fn latency_thresholds() {
        let c = cfg(r#"{"url":"http://h/","warn_latency":"100ms","fail_latency":"300ms"}"#);
        assert_eq!(verdict(&c, &obs(200, "", 50)).0, Status::Ok);
        assert_eq!(
            verdict(&c, &obs(200, "", 150)),
            (
                Status::Warn,
                "response took 150 ms (warn above 100 ms)".into()
            )
        );
        assert_eq!(
            verdict(&c, &obs(200, "", 400)),
            (
                Status::Fail,
                "response took 400 ms (fail above 300 ms)".into()
            )
        );
    }

    #[test]
    fn body_regex_is_unicode_aware_for_classes_and_case() {
        let c = cfg(r#"{"url":"http://h/","body_regex":"(?i)^ÉTAT: \\w+ \\d+$"}"#);
        assert_eq!(verdict(&c, &obs(200, "état: prêt ٣", 1)).0, Status::Ok);
        assert_eq!(verdict(&c, &obs(200, "état: prêt x", 1)).0, Status::Fail);
    }

    #[test]
    fn body_conditions() {
        let c = cfg(r#"{"url":"http://h/","body_contains":"ready","body_regex":"^v\\d+$"}"#);
        assert_eq!(
            verdict(&c, &obs(200, "v12", 1)).1,
            "body does not contain `ready`"
        );
        let c = cfg(r#"{"url":"http://h/","body_regex":"^v\\d+$"}"#);
        assert_eq!(verdict(&c, &obs(200, "v12", 1)).0, Status::Ok);
        assert_eq!(
            verdict(&c, &obs(200, "vx", 1)).1,
            "body does not match regex `^v\\d+$`"
        );
        let mut o = obs(200, "v", 1);
        o.truncated = true;
        assert!(
            verdict(&c, &o)
                .1
                .ends_with("(only the first 1 bytes were read: max_body_bytes)")
        );
    }

    #[test]
    fn json_conditions_and_non_json_bodies() {
        let c = cfg(
            r#"{"url":"http://h/","json":[{"pointer":"/status","op":"==","value":"up"},{"pointer":"/n","op":">","value":1}]}"#,
        );
        assert_eq!(
            verdict(&c, &obs(200, r#"{"status":"up","n":2}"#, 1)).0,
            Status::Ok
        );
        assert_eq!(
            verdict(&c, &obs(200, r#"{"status":"down","n":0}"#, 1)).1,
            "$.status is \"down\", expected == \"up\"; $.n is 0, expected > 1"
        );
        let v = verdict(&c, &obs(200, "<html>", 1));
        assert_eq!(v.0, Status::Fail);
        assert!(v.1.starts_with("body is not JSON ("), "{}", v.1);
        assert!(
            v.1.ends_with("so 2 json condition(s) could not be checked"),
            "{}",
            v.1
        );
    }

    #[test]
    fn warn_severity_conditions_warn_and_failures_still_win() {
        // Elasticsearch `_cluster/health`: green ok, yellow warn, red fail.
        let c = cfg(
            r#"{"url":"http://h/","json":[{"pointer":"/status","op":"!=","value":"red"},{"pointer":"/status","op":"==","value":"green","severity":"warn"}]}"#,
        );
        let status = |s: &str| verdict(&c, &obs(200, &format!(r#"{{"status":"{s}"}}"#), 1));
        assert_eq!(status("green").0, Status::Ok);
        assert_eq!(
            status("yellow"),
            (
                Status::Warn,
                "$.status is \"yellow\", expected == \"green\"".into()
            )
        );
        assert_eq!(
            status("red"),
            (
                Status::Fail,
                "$.status is \"red\", expected != \"red\"; $.status is \"red\", expected == \"green\""
                    .into()
            )
        );
    }

    #[test]
    fn body_is_not_judged_on_an_error_status() {
        let c = cfg(r#"{"url":"http://h/","body_contains":"ready","fail_latency":"10ms"}"#);
        assert_eq!(
            verdict(&c, &obs(500, "oops", 20)).1,
            "HTTP 500, expected 2xx; response took 20 ms (fail above 10 ms)"
        );
    }

    #[test]
    fn failures_come_before_warnings() {
        let f = vec![
            (Status::Warn, "slow".to_string()),
            (Status::Ok, "cert fine".to_string()),
            (Status::Fail, "bad".to_string()),
        ];
        assert_eq!(
            summarize(&f, "x".into()),
            (Status::Fail, "bad; slow".into())
        );
    }

    #[test]
    fn budget_keeps_a_margin_before_the_agent_deadline() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(request_budget(None, s(10)), ms(9_950));
        assert_eq!(request_budget(Some(s(2)), s(10)), s(2));
        assert_eq!(request_budget(Some(s(20)), s(10)), ms(9_950));
        assert_eq!(request_budget(None, ms(200)), ms(180));
    }

    #[test]
    fn transport_errors() {
        let u = Url::parse("http://a:1/").unwrap();
        let (s, m) = transport_finding(&HttpError::Denied("b:2".into()), &u, true);
        assert_eq!(s, Status::Fail);
        assert!(
            m.starts_with("redirected to b:2, which is not in this sensor's network allow-list")
        );
        assert_eq!(
            transport_finding(&HttpError::Denied("a:1".into()), &u, true).0,
            Status::Error
        );
        assert_eq!(
            transport_finding(&HttpError::Timeout(Duration::from_millis(450)), &u, false).1,
            "no complete response from a:1 within 450 ms (timeout)"
        );
        assert_eq!(
            transport_finding(&HttpError::ConnectionRefused("a:1".into()), &u, false),
            (Status::Fail, "connection refused by a:1".into())
        );
    }
}
