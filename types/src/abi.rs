//! The values of the plugin ABI (`outpost:plugin/types` in
//! `plugin-sdk/wit/outpost.wit`), as plain Rust. Serialize and Deserialize
//! live here and nowhere else; field names match the WIT records.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The outcome class of a check. Ordered from best to worst.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as expected.
    #[default]
    Ok,
    /// Works, but a warning threshold was crossed (counts as up time).
    Warn,
    /// Does not work: the check ran and the target failed it.
    Fail,
    /// The check could not be carried out (plugin fault, timeout).
    Error,
}

impl Status {
    /// Every status, best first.
    pub const ALL: [Status; 4] = [Status::Ok, Status::Warn, Status::Fail, Status::Error];

    /// Lower-case name (`ok`, `warn`, `fail`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// Whether this counts as the target working (ok or warn).
    pub fn is_up(self) -> bool {
        matches!(self, Status::Ok | Status::Warn)
    }

    /// Whether this counts as a failure and as down time (fail or error).
    pub fn is_failure(self) -> bool {
        !self.is_up()
    }

    /// A small stable integer (0–3, best first): the store's encoding and
    /// an index for per-status counters.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// Inverse of [`Status::code`].
    pub fn from_code(code: i64) -> Option<Status> {
        Status::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin's structured details: JSON text as the plugin wrote it. They
/// are only shown (`outpost plugin run`), so they are parsed when
/// serialized, not on every check; text that is not JSON is shown as a
/// JSON string.
#[derive(Debug, Clone, PartialEq)]
pub struct Details(pub String);

impl Details {
    /// The details as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| serde_json::Value::String(self.0.clone()))
    }
}

impl std::fmt::Display for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Details(serde_json::Value::deserialize(d)?.to_string()))
    }
}

/// What a check returns, and what the agent records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Outcome class.
    pub status: Status,
    /// One line for humans.
    pub message: String,
    /// How long the probe took, as the plugin measured it, in milliseconds.
    pub latency_ms: f64,
    /// Named measurements (snake_case names that carry their unit).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

impl CheckResult {
    /// A result with the given status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            latency_ms: 0.0,
            metrics: BTreeMap::new(),
            details: None,
        }
    }
    /// `Ok` with a message.
    pub fn ok(message: impl Into<String>) -> Self {
        Self::new(Status::Ok, message)
    }
    /// `Warn` with a message.
    pub fn warn(message: impl Into<String>) -> Self {
        Self::new(Status::Warn, message)
    }
    /// `Fail` with a message.
    pub fn fail(message: impl Into<String>) -> Self {
        Self::new(Status::Fail, message)
    }
    /// `Error` with a message: the check could not be carried out.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Status::Error, message)
    }
    /// Sets the measured latency.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_secs_f64() * 1000.0;
        self
    }
    /// Adds (or replaces) a metric.
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.insert(name.into(), value);
        self
    }
    /// Sets the details document: any serializable value (a
    /// `serde_json::Value`, or a struct deriving `Serialize`, which costs
    /// less to build and write than a `Value` tree).
    pub fn details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_string(&details).ok().map(Details);
        self
    }
    /// The details as a JSON value.
    pub fn details_value(&self) -> Option<serde_json::Value> {
        self.details.as_ref().map(Details::to_value)
    }
    /// Raises the status to `status` if that is worse, putting `reason`
    /// into the message. Handy when several conditions are evaluated.
    pub fn worsen(&mut self, status: Status, reason: impl AsRef<str>) {
        if status > self.status {
            if self.status == Status::Ok {
                self.message = reason.as_ref().to_string();
            } else {
                self.message = format!("{}; {}", reason.as_ref(), self.message);
            }
            self.status = status;
        } else if status == self.status && status != Status::Ok {
            self.message = format!("{}; {}", self.message, reason.as_ref());
        }
    }
}

/// A configuration the plugin cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", if field.is_empty() { message.clone() } else { format!("`{field}`: {message}") })]
pub struct ConfigError {
    /// Dotted path of the offending key, or empty for the whole document.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which world a plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `outpost:plugin/sensor`: a check.
    Sensor,
    /// Exports `outpost:plugin/notifier`: delivers alerts.
    Notifier,
    /// Exports `outpost:plugin/provider`: discovers objects that become
    /// sensors, systems and services.
    Provider,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Sensor => "sensor",
            PluginKind::Notifier => "notifier",
            PluginKind::Provider => "provider",
        })
    }
}

/// One configuration key a plugin documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigField {
    /// Key name.
    pub name: String,
    /// Short type name ("string", "duration", ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it must be given.
    pub required: bool,
    /// Default as JSON text, for optional keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What it does.
    pub description: String,
}

impl ConfigField {
    /// A key that must be given.
    pub fn required(name: &str, ty: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            ty: ty.into(),
            required: true,
            default: None,
            description: description.into(),
        }
    }
    /// An optional key with its default (as JSON text, e.g. `"\"GET\""`).
    pub fn optional(name: &str, ty: &str, default: Option<&str>, description: &str) -> Self {
        Self {
            name: name.into(),
            ty: ty.into(),
            required: false,
            default: default.map(Into::into),
            description: description.into(),
        }
    }
}

/// What a plugin says about itself (`info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Sensor or notifier.
    pub kind: PluginKind,
    /// One paragraph about what it does.
    pub description: String,
    /// Configuration keys.
    pub config: Vec<ConfigField>,
    /// For a provider: the kinds of objects it produces
    /// (`kubernetes.io/Ingress`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

impl PluginInfo {
    /// Info for a sensor.
    pub fn sensor(name: &str, version: &str, description: &str) -> Self {
        Self::new(PluginKind::Sensor, name, version, description)
    }
    /// Info for a notifier.
    pub fn notifier(name: &str, version: &str, description: &str) -> Self {
        Self::new(PluginKind::Notifier, name, version, description)
    }
    /// Info for a provider.
    pub fn provider(name: &str, version: &str, description: &str) -> Self {
        Self::new(PluginKind::Provider, name, version, description)
    }
    fn new(kind: PluginKind, name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kind,
            description: description.into(),
            config: vec![],
            kinds: vec![],
        }
    }
    /// Adds a kind of object the provider produces.
    pub fn produces(mut self, kind: &str) -> Self {
        self.kinds.push(kind.into());
        self
    }
    /// Adds a configuration key.
    pub fn field(mut self, field: ConfigField) -> Self {
        self.config.push(field);
        self
    }
}

/// Why a notifier is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    /// Incident opened; first level told.
    Opened,
    /// Not acknowledged in time; a further level told.
    Escalated,
    /// Reminder to the current level.
    Reminder,
    /// Somebody acknowledged.
    Acknowledged,
    /// The target works again.
    Resolved,
}

impl AlertEvent {
    /// Lower-case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Opened => "opened",
            AlertEvent::Escalated => "escalated",
            AlertEvent::Reminder => "reminder",
            AlertEvent::Acknowledged => "acknowledged",
            AlertEvent::Resolved => "resolved",
        }
    }
}

/// One notification about an incident (field names as in the WIT `alert`
/// record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alert {
    /// Same on every attempt of the same notification.
    pub idempotency_key: String,
    /// Incident identifier.
    pub incident_id: String,
    /// Why this notification is sent.
    pub event: AlertEvent,
    /// The agent that raised it.
    pub agent: String,
    /// Sensor, system or service name.
    pub target: String,
    /// "sensor", "system" or "service".
    pub target_kind: String,
    /// State before.
    pub old_state: String,
    /// State now.
    pub new_state: String,
    /// Human message (the reason).
    pub message: String,
    /// Incident start, Unix milliseconds.
    pub started_at_ms: i64,
    /// This event, Unix milliseconds.
    pub event_at_ms: i64,
    /// Escalation level, from 1.
    pub level: u32,
    /// Acknowledgement link, if any.
    pub ack_url: Option<String>,
}

impl Default for Alert {
    /// A sample alert, used by `outpost plugin run <notifier>` to send a
    /// test notification.
    fn default() -> Self {
        let now = crate::time::now_ms();
        Self {
            idempotency_key: format!("test-{now}"),
            incident_id: "test-incident".into(),
            event: AlertEvent::Opened,
            agent: "outpost".into(),
            target: "example".into(),
            target_kind: "sensor".into(),
            old_state: "up".into(),
            new_state: "down".into(),
            message: "This is a test notification from `outpost plugin run`".into(),
            started_at_ms: now,
            event_at_ms: now,
            level: 1,
            ack_url: None,
        }
    }
}

/// A delivery that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong.
    pub message: String,
    /// Wait at least this long before retrying, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// Retrying cannot help.
    pub permanent: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after_ms: None,
            permanent: false,
        }
    }
    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after_ms: None,
            permanent: true,
        }
    }
    /// Asks the agent to wait before retrying.
    pub fn after(mut self, wait: Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
    }
    /// The requested wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip_and_order() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::from_code(4), None);
        assert_eq!(Status::from_code(-1), None);
        assert!(Status::Ok < Status::Warn && Status::Fail < Status::Error);
    }

    #[test]
    fn worsen_keeps_the_worst_and_all_reasons() {
        let mut r = CheckResult::ok("HTTP 200");
        r.worsen(Status::Warn, "slow");
        r.worsen(Status::Fail, "wrong body");
        r.worsen(Status::Warn, "ignored");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.message, "wrong body; slow");
    }

    #[test]
    fn details_that_are_not_json_show_as_a_string() {
        let r = CheckResult::ok("x").details(serde_json::json!({"a": 1}));
        assert_eq!(r.details_value().unwrap()["a"], 1);
        assert_eq!(Details("not json".into()).to_value(), "not json");
    }
}

/// One object a provider found (`outpost:plugin/provider.discovered-object`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiscoveredObject {
    /// `kubernetes.io/Ingress`.
    pub kind: String,
    /// Stable across discoveries.
    pub id: String,
    /// For humans.
    pub name: String,
    /// Labels (grouping rules, escalation selectors).
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    /// Values templates refer to as `{name}`.
    #[serde(default)]
    pub attributes: Vec<(String, String)>,
    /// Ids of the objects this one belongs to.
    #[serde(default)]
    pub parents: Vec<String>,
}

impl DiscoveredObject {
    /// An object of `kind` with `id`, named after its id.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            kind: kind.into(),
            name: id.clone(),
            id,
            ..Default::default()
        }
    }
    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds a label.
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    /// Adds an attribute.
    pub fn attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.push((k.into(), v.into()));
        self
    }
    /// Adds a parent id.
    pub fn parent(mut self, id: impl Into<String>) -> Self {
        self.parents.push(id.into());
        self
    }
    /// The attribute `k`.
    pub fn attribute(&self, k: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    /// The label `k`.
    pub fn label_value(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of failure a discovery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveryErrorKind {
    /// Unreachable, or it answered an error.
    Unavailable,
    /// Credentials refused.
    Denied,
    /// An answer the provider cannot read.
    BadAnswer,
    /// The configuration cannot work.
    Config,
}

/// A failed discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DiscoveryError {
    /// What kind of failure.
    pub kind: DiscoveryErrorKind,
    /// For humans.
    pub message: String,
}

impl DiscoveryError {
    /// An error of `kind`.
    pub fn new(kind: DiscoveryErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A successful discovery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// The whole current set, or `None` when unchanged since the cursor.
    pub objects: Option<Vec<DiscoveredObject>>,
    /// Handed back to the next discovery.
    pub cursor: Option<String>,
}
