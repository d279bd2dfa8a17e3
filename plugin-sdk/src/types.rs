//! Plain Rust types for what crosses the plugin boundary.
//!
//! They mirror the records of `outpost:plugin/types` but belong to the SDK,
//! so plugin code does not depend on generated names.

use std::time::{Duration, Instant};

/// The outcome class of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as expected.
    Ok,
    /// Works, but a warning threshold was crossed.
    Warn,
    /// Does not work.
    Fail,
    /// The check could not be carried out.
    Error,
}

/// A named measurement (`latency_ms`, `cert_days_left`, ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metric {
    /// snake_case name that carries its unit.
    pub name: String,
    /// The value.
    pub value: f64,
}

/// What a check returns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckResult {
    /// Outcome class.
    pub status: Status,
    /// One line for humans.
    pub message: String,
    /// How long the probe took, in milliseconds.
    pub latency_ms: f64,
    /// Named measurements.
    pub metrics: Vec<Metric>,
    /// Optional structured details, as JSON text ([`CheckResult::details`]
    /// serializes them; [`CheckResult::details_value`] reads them back).
    #[serde(serialize_with = "json_text")]
    pub details: Option<String>,
}

fn json_text<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    text.as_deref()
        .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap_or_else(|_| t.into()))
        .serialize(s)
}

impl CheckResult {
    /// A result with the given status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            latency_ms: 0.0,
            metrics: Vec::new(),
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
    /// `Error` with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Status::Error, message)
    }
    /// Sets the measured latency.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_secs_f64() * 1000.0;
        self
    }
    /// Adds a metric.
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.push(Metric {
            name: name.into(),
            value,
        });
        self
    }
    /// Sets the details document: any serializable value (a
    /// `serde_json::Value`, or a struct deriving `Serialize`, which costs
    /// less to build and write than a `Value` tree).
    pub fn details(mut self, details: impl serde::Serialize) -> Self {
        self.details = serde_json::to_string(&details).ok();
        self
    }
    /// The details as a JSON value (for tests and callers that inspect
    /// them).
    pub fn details_value(&self) -> Option<serde_json::Value> {
        self.details
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
    /// Raises the status to `status` if that is worse, appending `reason`
    /// to the message. Handy when several conditions are evaluated.
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

/// Sensor or notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A check.
    Sensor,
    /// A notifier.
    Notifier,
}

/// One configuration key, for documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigField {
    /// Key name.
    pub name: String,
    /// Short type name ("string", "duration", ...).
    pub ty: String,
    /// Whether it must be given.
    pub required: bool,
    /// Default as JSON text, for optional keys.
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

/// What `info` returns.
#[derive(Debug, Clone, PartialEq)]
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
}

impl PluginInfo {
    /// Info for a sensor.
    pub fn sensor(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Sensor,
            description: description.into(),
            config: vec![],
        }
    }
    /// Info for a notifier.
    pub fn notifier(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Notifier,
            description: description.into(),
            config: vec![],
        }
    }
    /// Adds a configuration key.
    pub fn field(mut self, field: ConfigField) -> Self {
        self.config.push(field);
        self
    }
}

/// Why a notifier is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// One notification about an incident.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

/// A delivery that did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryError {
    /// What went wrong.
    pub message: String,
    /// Wait at least this long before retrying.
    pub retry_after: Option<Duration>,
    /// Retrying cannot help.
    pub permanent: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
            permanent: false,
        }
    }
    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
            permanent: true,
        }
    }
    /// Asks the agent to wait before retrying.
    pub fn after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

/// Per-call context: how much time is left.
#[derive(Debug, Clone)]
pub struct CheckContext {
    started: Instant,
    timeout: Duration,
}

impl CheckContext {
    /// A context allowing `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Self {
            started: Instant::now(),
            timeout,
        }
    }
    /// The whole time the agent allows for this call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }
    /// Time left before the agent stops the call.
    pub fn remaining(&self) -> Duration {
        self.timeout.saturating_sub(self.started.elapsed())
    }
}
