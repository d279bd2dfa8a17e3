//! Plain, serializable host-side types for what plugins return. The rest
//! of the agent uses these, never the generated bindings.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Outcome class of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works, warning threshold crossed.
    Warn,
    /// Does not work.
    Fail,
    /// The check could not be carried out (includes plugin faults).
    Error,
}

impl Status {
    /// Lower-case name.
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
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one check, as the agent records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Outcome class.
    pub status: Status,
    /// One line for humans.
    pub message: String,
    /// Probe latency as the plugin measured it, in milliseconds.
    pub latency_ms: f64,
    /// Named measurements.
    pub metrics: BTreeMap<String, f64>,
    /// Structured details from the plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// A plugin's structured details: JSON text as the plugin wrote it. The
/// agent only shows them (`outpost plugin run`), so they are parsed when
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

impl CheckResult {
    /// An `error` result for a fault of the plugin or the host.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            status: Status::Error,
            message: message.into(),
            latency_ms: 0.0,
            metrics: BTreeMap::new(),
            details: None,
        }
    }
}

/// Sensor or notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `outpost:plugin/sensor`.
    Sensor,
    /// Exports `outpost:plugin/notifier`.
    Notifier,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Sensor => "sensor",
            PluginKind::Notifier => "notifier",
        })
    }
}

/// One configuration key a plugin documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigField {
    /// Key.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Must be given.
    pub required: bool,
    /// Default, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What it does.
    pub description: String,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: PluginKind,
    /// Description.
    pub description: String,
    /// Configuration keys.
    pub config: Vec<ConfigField>,
}

/// A configuration the plugin refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", if field.is_empty() { message.clone() } else { format!("`{field}`: {message}") })]
pub struct ConfigError {
    /// Dotted path of the key, or empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a notifier is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    /// Incident opened.
    Opened,
    /// Escalated to a further level.
    Escalated,
    /// Reminder.
    Reminder,
    /// Acknowledged.
    Acknowledged,
    /// Resolved.
    Resolved,
}

/// One notification (field names as in the WIT `alert` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alert {
    /// Same on every attempt of one notification.
    pub idempotency_key: String,
    /// Incident id.
    pub incident_id: String,
    /// Why.
    pub event: AlertEvent,
    /// Raising agent.
    pub agent: String,
    /// Target name.
    pub target: String,
    /// "sensor", "system" or "service".
    pub target_kind: String,
    /// State before.
    pub old_state: String,
    /// State now.
    pub new_state: String,
    /// Human message.
    pub message: String,
    /// Incident start (Unix ms).
    pub started_at_ms: i64,
    /// This event (Unix ms).
    pub event_at_ms: i64,
    /// Escalation level from 1.
    pub level: u32,
    /// Acknowledgement link.
    pub ack_url: Option<String>,
}

impl Default for Alert {
    /// A sample alert, used by `outpost plugin run <notifier>` to send a
    /// test notification.
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
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

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong.
    pub message: String,
    /// Receiver asked to wait this long.
    pub retry_after_ms: Option<u64>,
    /// Retrying cannot help.
    pub permanent: bool,
}
