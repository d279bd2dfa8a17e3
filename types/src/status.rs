//! The status document (`GET /api/v1/status`, pushes between agents;
//! `docs/status.schema.json`): one set of types that the serving agent
//! writes and a peer, the CLI and tests read. Each field of a document is
//! defined once here.
//!
//! Documents are written from borrowed data (the agent renders one for
//! every poll, so it copies nothing: `Cow::Borrowed`) and read into owned
//! data (`Cow::Owned`). Reading is lenient where a newer minor version may
//! differ: unknown fields are ignored, optional fields default, an unknown
//! state name reads as `unknown`. `schema_version` decides compatibility
//! ([`parse`]).

use crate::abi::Status;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The version of the document this agent writes and reads. Bumped only
/// for changes an older reader would misread; additions keep it.
pub const SCHEMA_VERSION: u32 = 1;

/// The state of a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No result yet.
    Unknown,
    /// Working.
    Up,
    /// Failing, not yet confirmed (fewer than `fail_after` failures).
    Soft,
    /// Confirmed down (hard).
    Down,
    /// Was down, succeeding, not yet confirmed up.
    Recovering,
}

impl State {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Soft => "soft",
            State::Down => "down",
            State::Recovering => "recovering",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "unknown" => State::Unknown,
            "up" => State::Up,
            "soft" => State::Soft,
            "down" => State::Down,
            "recovering" => State::Recovering,
            _ => return None,
        })
    }

    /// Whether the sensor counts as down for alerting (hard down, or
    /// recovering from it, which is still down until confirmed).
    pub fn is_hard_down(self) -> bool {
        matches!(self, State::Down | State::Recovering)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for State {
    /// An unknown name (a newer agent's state) reads as `unknown`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(State::parse(&s).unwrap_or(State::Unknown))
    }
}

/// The state of a system or service (or of a member, as a node sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Working.
    Up,
    /// Working with reduced redundancy or capacity.
    Degraded,
    /// Not working.
    Down,
    /// Not known (unchecked member, stale peer).
    Unknown,
}

impl NodeState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Degraded => "degraded",
            NodeState::Down => "down",
            NodeState::Unknown => "unknown",
        }
    }

    /// The state of a sensor as a node sees it: a hard-down sensor is down
    /// until it has recovered (a soft failure is not confirmed; one good
    /// check of a recovering sensor is not a recovery yet).
    pub fn of_sensor(s: State) -> NodeState {
        match s {
            State::Up | State::Soft => NodeState::Up,
            State::Down | State::Recovering => NodeState::Down,
            State::Unknown => NodeState::Unknown,
        }
    }

    /// Parses a state name as a node sees it: node states as they are,
    /// sensor states as [`NodeState::of_sensor`] maps them, anything else
    /// `unknown`.
    pub fn parse_remote(s: &str) -> NodeState {
        match s {
            "up" | "soft" | "recovering" => NodeState::Up,
            "degraded" => NodeState::Degraded,
            "down" => NodeState::Down,
            _ => NodeState::Unknown,
        }
    }

    /// Gauge value in `/metrics` (0 unknown, 1 up, 2 degraded, 3 down).
    pub fn code(self) -> u8 {
        match self {
            NodeState::Unknown => 0,
            NodeState::Up => 1,
            NodeState::Degraded => 2,
            NodeState::Down => 3,
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeState {
    /// Lenient like [`NodeState::parse_remote`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NodeState::parse_remote(&Cow::<str>::deserialize(d)?))
    }
}

/// A member of a node and the state it had in this evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// The member as written (`db`, `peer:eu-1/api`).
    pub name: String,
    /// Its state.
    pub state: NodeState,
}

/// A peer agent as this agent sees it (direct, pushed or relayed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer agent's name.
    pub name: String,
    /// Its random, persistent id (loop safety), once known.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Agents between this one and it; empty for a configured peer.
    #[serde(default)]
    pub via: Vec<String>,
    /// `poll`, `push` or `relayed`.
    #[serde(default)]
    pub mode: String,
    /// `unknown` (not heard from yet), `fresh` or `stale`.
    pub state: PeerState,
    /// Why it is in this state.
    #[serde(default)]
    pub reason: String,
    /// Since when in this state (Unix ms).
    #[serde(default)]
    pub since_ms: i64,
    /// When it last answered with a valid status (Unix ms).
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
    /// Its sensors, systems and services (all `unknown` while stale).
    #[serde(default)]
    pub nodes: Vec<RemoteNode>,
}

/// Freshness of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Not heard from yet.
    Unknown,
    /// Answering with valid status.
    Fresh,
    /// Unreachable or answering garbage: its nodes are unknown.
    Stale,
}

impl PeerState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Fresh => "fresh",
            PeerState::Stale => "stale",
        }
    }
}

/// One sensor, system or service of a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteNode {
    /// Name on the peer.
    pub name: String,
    /// `sensor`, `system` or `service`.
    pub kind: String,
    /// State as the peer reports it (`unknown` while the peer is stale).
    pub state: String,
    /// Why, as the peer says (or why it is unknown).
    #[serde(default)]
    pub reason: String,
    /// Since when (Unix ms, the peer's clock).
    #[serde(default)]
    pub since_ms: i64,
    /// Category on the peer, if any.
    #[serde(default)]
    pub category: Option<String>,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Who wrote it.
    pub agent: AgentDoc<'a>,
    /// When (Unix ms, the writer's clock).
    #[serde(default)]
    pub generated_at_ms: i64,
    /// Its sensors.
    #[serde(default)]
    pub sensors: Vec<SensorDoc<'a>>,
    /// Its systems.
    #[serde(default)]
    pub systems: Vec<NodeDoc<'a>>,
    /// Its services.
    #[serde(default)]
    pub services: Vec<NodeDoc<'a>>,
    /// The peers it sees.
    #[serde(default)]
    pub peers: Cow<'a, [PeerView]>,
    /// Its providers (`[[provider]]`), when it has any.
    #[serde(default, skip_serializing_if = "<[ProviderView]>::is_empty")]
    pub providers: Cow<'a, [ProviderView]>,
}

/// One provider as the status document shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    /// The `[[provider]]` name.
    pub name: String,
    /// Its plugin.
    pub plugin: String,
    /// `pending` (no discovery yet), `ok` (the last discovery succeeded) or
    /// `stale` (it failed: the last good set is kept).
    pub state: String,
    /// Objects in the set in use.
    pub objects: usize,
    /// Sensors made from them.
    pub sensors: usize,
    /// Last successful discovery (Unix ms).
    #[serde(default)]
    pub last_success_ms: Option<i64>,
    /// Last attempt (Unix ms).
    #[serde(default)]
    pub last_attempt_ms: Option<i64>,
    /// Why the last discovery failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Objects (or sensors) left out of the last discovery.
    #[serde(default)]
    pub dropped: usize,
    /// What was wrong with them (the first few).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// `agent` of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDoc<'a> {
    /// `[agent] name`.
    pub name: Cow<'a, str>,
    /// Random, persistent id (loop safety).
    pub id: Cow<'a, str>,
    /// The writer's version.
    #[serde(default)]
    pub version: Cow<'a, str>,
    /// When it started (Unix ms).
    #[serde(default)]
    pub started_at_ms: i64,
    /// The self-connectivity guard, when the agent has one
    /// (`[agent.connectivity]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<ConnectivityDoc>,
}

/// Whether the agent itself is online, as its canaries say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityDoc {
    /// At least one canary answers. While false, failing checks are
    /// reported as unknown ("agent offline") and open no incident.
    pub online: bool,
    /// Since when (Unix ms).
    pub since_ms: i64,
    /// What the last probe found.
    pub reason: String,
    /// The canaries (`host:port`).
    pub targets: Vec<String>,
}

/// One sensor of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorDoc<'a> {
    /// Name.
    pub name: Cow<'a, str>,
    /// Plugin name or path.
    #[serde(default)]
    pub plugin: Cow<'a, str>,
    /// Grouping for the status page.
    #[serde(default)]
    pub category: Option<Cow<'a, str>>,
    /// Free text.
    #[serde(default)]
    pub description: Option<Cow<'a, str>>,
    /// Labels.
    #[serde(default)]
    pub labels: Cow<'a, BTreeMap<String, String>>,
    /// State.
    pub state: State,
    /// Since when (Unix ms).
    #[serde(default)]
    pub since_ms: i64,
    /// Why it is in this state.
    #[serde(default)]
    pub reason: Cow<'a, str>,
    /// Flapping.
    #[serde(default)]
    pub flapping: bool,
    /// Last check (Unix ms).
    #[serde(default)]
    pub last_check_ms: Option<i64>,
    /// Last check status.
    #[serde(default)]
    pub last_status: Option<Status>,
    /// Last check message.
    #[serde(default)]
    pub last_message: Cow<'a, str>,
    /// Last check latency (ms).
    #[serde(default)]
    pub last_latency_ms: Option<f64>,
    /// Check interval (ms).
    #[serde(default)]
    pub interval_ms: u64,
    /// The open incident about it, if any.
    #[serde(default)]
    pub incident: Option<Cow<'a, serde_json::Value>>,
}

/// One system or service of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDoc<'a> {
    /// Name.
    pub name: Cow<'a, str>,
    /// State.
    pub state: NodeState,
    /// Since when (Unix ms).
    #[serde(default)]
    pub since_ms: i64,
    /// Why, as a chain down to the failing sensors.
    #[serde(default)]
    pub reason: Cow<'a, str>,
    /// Local targets that are down and explain this node's state.
    #[serde(default)]
    pub caused_by: Cow<'a, [String]>,
    /// The rule, in words.
    #[serde(default)]
    pub rule: Cow<'a, str>,
    /// Members and their states.
    #[serde(default)]
    pub members: Cow<'a, [MemberView]>,
    /// Grouping for the status page.
    #[serde(default)]
    pub category: Option<Cow<'a, str>>,
    /// Free text.
    #[serde(default)]
    pub description: Option<Cow<'a, str>>,
    /// Labels.
    #[serde(default)]
    pub labels: Cow<'a, BTreeMap<String, String>>,
    /// The open incident about it, if any.
    #[serde(default)]
    pub incident: Option<Cow<'a, serde_json::Value>>,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// Not JSON, or not an object.
    #[error("malformed status JSON: {0}")]
    Malformed(String),
    /// No `schema_version`.
    #[error("not a status document: no schema_version")]
    NotADocument,
    /// Another version.
    #[error("unsupported schema_version {0} (this agent reads {SCHEMA_VERSION})")]
    Unsupported(String),
    /// The right version, but fields of the wrong type.
    #[error("invalid status document: {0}")]
    Invalid(String),
}

/// Parses and checks a status document (a poll answer or a push body).
pub fn parse(body: &[u8]) -> Result<StatusDoc<'static>, DocError> {
    #[derive(Deserialize)]
    struct Probe {
        schema_version: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(body).map_err(|e| DocError::Malformed(e.to_string()))?;
    match probe.schema_version {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
        Some(v) => return Err(DocError::Unsupported(v.to_string())),
        None => return Err(DocError::NotADocument),
    }
    serde_json::from_slice(body).map_err(|e| DocError::Invalid(e.to_string()))
}

impl StatusDoc<'_> {
    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Every field is a string, number, bool, map with string keys or
        // a JSON value: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> StatusDoc<'static> {
        StatusDoc {
            schema_version: SCHEMA_VERSION,
            agent: AgentDoc {
                name: "edge-1".into(),
                id: "abc".into(),
                version: "0.1.0".into(),
                started_at_ms: 1,
                connectivity: None,
            },
            generated_at_ms: 2,
            sensors: vec![SensorDoc {
                name: "web".into(),
                plugin: "http".into(),
                category: Some("shop".into()),
                description: None,
                labels: Cow::Owned(BTreeMap::from([("team".into(), "a".into())])),
                state: State::Soft,
                since_ms: 3,
                reason: "HTTP 503".into(),
                flapping: false,
                last_check_ms: Some(4),
                last_status: Some(Status::Fail),
                last_message: "HTTP 503".into(),
                last_latency_ms: Some(1.5),
                interval_ms: 30_000,
                incident: None,
            }],
            systems: vec![],
            services: vec![NodeDoc {
                name: "checkout".into(),
                state: NodeState::Degraded,
                since_ms: 5,
                reason: "web is soft".into(),
                caused_by: Cow::Owned(vec!["web".into()]),
                rule: "all".into(),
                members: Cow::Owned(vec![MemberView {
                    name: "web".into(),
                    state: NodeState::Up,
                }]),
                category: None,
                description: None,
                labels: Cow::Owned(BTreeMap::new()),
                incident: Some(Cow::Owned(serde_json::json!({"id": "i-1"}))),
            }],
            peers: Cow::Owned(vec![]),
            providers: Cow::Owned(vec![]),
        }
    }

    #[test]
    fn a_written_document_reads_back_the_same() {
        let d = doc();
        assert_eq!(parse(&d.to_json()).unwrap(), d);
    }

    #[test]
    fn reading_is_lenient_about_additions_and_strict_about_the_version() {
        let mut v: serde_json::Value = serde_json::from_slice(&doc().to_json()).unwrap();
        v["sensors"][0]["state"] = "maintenance".into();
        v["sensors"][0]["new_field"] = 1.into();
        v["services"][0]["state"] = "sideways".into();
        let d = parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(d.sensors[0].state, State::Unknown);
        assert_eq!(d.services[0].state, NodeState::Unknown);
        v["schema_version"] = 2.into();
        assert!(matches!(
            parse(v.to_string().as_bytes()),
            Err(DocError::Unsupported(_))
        ));
        assert_eq!(parse(b"{}"), Err(DocError::NotADocument));
        assert!(matches!(parse(b"[1"), Err(DocError::Malformed(_))));
        assert!(matches!(
            parse(br#"{"schema_version":1,"agent":{"name":1,"id":"x"}}"#),
            Err(DocError::Invalid(_))
        ));
    }

    #[test]
    fn a_minimal_document_reads() {
        let d = parse(
            br#"{"schema_version":1,"agent":{"name":"a","id":"b"},
                "sensors":[{"name":"s","state":"down"}],
                "services":[{"name":"x","state":"up"}]}"#,
        )
        .unwrap();
        assert_eq!(d.sensors[0].state, State::Down);
        assert_eq!(d.services[0].state, NodeState::Up);
    }

    /// A bounded property run in the normal test command (the fuzz
    /// targets `status_doc` and `push_body` run it for longer): mutations
    /// of a valid document never panic the parser, and whatever it
    /// accepts it writes back as a document it reads unchanged.
    #[test]
    fn mutated_documents_never_panic_and_round_trip() {
        let base = doc().to_json();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let junk = b"{}[]\",:0123456789.-eE truefalsnul\\u\xff\x00";
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..(1 + next() % 4) {
                let at = (next() % (b.len() as u64 + 1)) as usize;
                let c = junk[(next() % junk.len() as u64) as usize];
                match next() % 4 {
                    0 if at < b.len() => b[at] = c,
                    1 => b.insert(at, c),
                    2 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.truncate(at),
                }
            }
            if let Ok(d) = parse(&b) {
                let again = parse(&d.to_json()).expect("what the agent writes it reads");
                assert_eq!(d, again);
            }
        }
    }
}
