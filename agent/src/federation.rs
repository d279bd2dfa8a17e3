//! Federation: polling peer agents, pushing this agent's status to
//! aggregators, and turning a peer's status document into [`PeerView`]s
//! with loop safety.
//!
//! - **Polling** ([`poll_peer`]): one task per `[[peer]]` with a `url`
//!   sends `GET <url>/api/v1/status` with `If-None-Match`, a bearer token,
//!   an overall deadline (connect, headers and the whole body, so a peer
//!   that hangs or trickles bytes is cut off) and a body-size limit
//!   ([`MAX_STATUS_BYTES`]). Each outcome goes to the evaluation stage as a
//!   [`PeerUpdate`]; the stage decides freshness (it counts misses).
//! - **Pushing** ([`push_to`]): agents that cannot be reached POST their
//!   status to an aggregator's `/api/v1/push`.
//! - **Loop safety** ([`views_from`]): every agent has a random persistent
//!   id. A peer's document lists the peers *it* sees (with the agents they
//!   were relayed through); entries that are this agent, or reached through
//!   it, or more than [`MAX_HOPS`] away are dropped, so A↔B or A→B→C→A
//!   never include an agent twice and never grow.
//!
//! This module owns no state; it never touches the board.

use crate::config::topology::{PeerConfig, PushConfig};
use outpost_types::status::{PeerState, PeerView, RemoteNode, StatusDoc};
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest status document accepted from a peer (poll or push): 4 MiB.
/// A status of 10,000 nodes with long reasons is about 3 MiB; anything
/// larger is a misbehaving peer, and reading it would cost memory.
pub const MAX_STATUS_BYTES: usize = 4 << 20;
/// Relay depth kept: a fleet of aggregators of aggregators rarely needs
/// more, and a bound caps what a misconfigured ring could relay.
pub const MAX_HOPS: usize = 4;
/// Relayed peers kept from one peer's document.
pub const MAX_RELAYED: usize = 256;
/// Nodes kept per peer (its sensors, systems and services).
pub const MAX_NODES: usize = 10_000;

/// Who this agent is, for loop safety.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `[agent] name`.
    pub name: String,
    /// Random, persistent id.
    pub id: String,
}

/// Reads this agent's id from `<data_dir>/agent-id`, creating it (16
/// random bytes, hex) on first start.
pub fn agent_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("agent-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let id = hex::encode(bytes);
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}

/// What one contact with a peer produced.
#[derive(Debug, Clone)]
pub enum PeerUpdate {
    /// A new, valid status document.
    Status {
        /// The configured peer name.
        peer: String,
        /// The document.
        status: Box<StatusDoc<'static>>,
    },
    /// `304 Not Modified`: the peer is alive and unchanged.
    NotModified {
        /// The configured peer name.
        peer: String,
    },
    /// The poll failed (reason in words).
    Failed {
        /// The configured peer name.
        peer: String,
        /// Why.
        error: String,
    },
}

/// Turns a peer's document into views: the peer itself (`mode` `poll` or
/// `push`) and the peers it relays, minus this agent and anything reached
/// through it. Fails when the document is this agent's own or names
/// another agent than the configured one.
pub fn views_from(
    peer: &str,
    mode: &str,
    status: &StatusDoc<'_>,
    me: &Identity,
    now_ms: i64,
) -> Result<Vec<PeerView>, String> {
    if status.agent.id == me.id {
        return Err(format!(
            "the peer answered with this agent's own status (id {}); check its url",
            me.id
        ));
    }
    if status.agent.name != peer {
        return Err(format!(
            "the agent there is `{}`, not `{peer}`; fix the [[peer]] name or url",
            status.agent.name
        ));
    }
    let sensors = status.sensors.iter().map(|e| RemoteNode {
        name: e.name.to_string(),
        kind: "sensor".into(),
        state: e.state.as_str().into(),
        reason: e.reason.to_string(),
        since_ms: e.since_ms,
        category: e.category.as_deref().map(Into::into),
    });
    let nodes = |kind: &'static str, list: &'_ [outpost_types::status::NodeDoc<'_>]| {
        list.iter()
            .map(move |e| RemoteNode {
                name: e.name.to_string(),
                kind: kind.into(),
                state: e.state.as_str().into(),
                reason: e.reason.to_string(),
                since_ms: e.since_ms,
                category: e.category.as_deref().map(Into::into),
            })
            .collect::<Vec<_>>()
    };
    let nodes: Vec<RemoteNode> = sensors
        .chain(nodes("system", &status.systems))
        .chain(nodes("service", &status.services))
        .take(MAX_NODES)
        .collect();
    let mut out = vec![PeerView {
        name: peer.to_string(),
        agent_id: Some(status.agent.id.to_string()),
        via: vec![],
        mode: mode.to_string(),
        state: PeerState::Fresh,
        reason: "answering".into(),
        since_ms: now_ms,
        last_seen_ms: Some(now_ms),
        nodes,
    }];
    for p in status.peers.iter() {
        if out.len() > MAX_RELAYED {
            break;
        }
        let loops = p.agent_id.as_deref() == Some(me.id.as_str())
            || p.name == me.name
            || p.via.iter().any(|v| v == &me.name)
            || p.name == peer
            || p.agent_id.as_deref() == Some(&*status.agent.id);
        if loops || p.via.len() + 1 >= MAX_HOPS || out.iter().any(|o| o.name == p.name) {
            continue;
        }
        let mut v = p.clone();
        v.via.insert(0, peer.to_string());
        v.mode = "relayed".into();
        v.nodes.truncate(MAX_NODES);
        out.push(v);
    }
    Ok(out)
}

/// Marks a view stale: its nodes become `unknown` with `why`.
pub fn mark_stale(v: &mut PeerView, why: &str, now_ms: i64) {
    if v.state != PeerState::Stale {
        v.since_ms = now_ms;
    }
    v.state = PeerState::Stale;
    v.reason = why.to_string();
    for n in &mut v.nodes {
        if n.state != "unknown" {
            n.reason = format!(
                "peer {} is stale ({why}); last reported {}",
                v.name, n.state
            );
            n.state = "unknown".into();
        }
    }
}

/// The HTTP client for peers: no proxies, no redirects (a peer's status
/// is at its own address), no connection pool leaks past the deadline.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a plain HTTP client builds")
}

/// Reads a body up to `limit` bytes, failing as soon as it is exceeded (a
/// huge body is never held in memory).
async fn read_limited(resp: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if let Some(n) = resp.content_length()
        && n > limit as u64
    {
        return Err(format!(
            "the status is {n} bytes, more than the {} MiB limit",
            limit >> 20
        ));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if buf.len() + chunk.len() > limit {
            return Err(format!(
                "the status is more than the {} MiB limit",
                limit >> 20
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no complete answer within the timeout".into()
    } else if e.is_connect() {
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut last = e.to_string();
        while let Some(s) = src {
            last = s.to_string();
            src = s.source();
        }
        format!("cannot connect: {last}")
    } else {
        let mut msg = e.to_string();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    }
}

/// One poll: `Ok(None)` for 304, `Ok(Some(..))` for a new document.
pub async fn poll_once(
    client: &reqwest::Client,
    peer: &PeerConfig,
    url: &str,
    etag: &mut Option<String>,
) -> Result<Option<StatusDoc<'static>>, String> {
    let fut = async {
        let mut req = client.get(format!("{url}/api/v1/status"));
        if let Some(t) = &peer.token {
            req = req.bearer_auth(t);
        }
        if let Some(e) = etag.as_deref() {
            req = req.header(http::header::IF_NONE_MATCH, e);
        }
        let mut resp = req.send().await.map_err(|e| describe(&e))?;
        match resp.status().as_u16() {
            304 => return Ok(None),
            200 => {}
            401 | 403 => {
                return Err(format!(
                    "HTTP {}: the peer refused our token (check token/token_file)",
                    resp.status().as_u16()
                ));
            }
            s => return Err(format!("HTTP {s} from the peer")),
        }
        let new_etag = resp
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(&mut resp, MAX_STATUS_BYTES).await?;
        let status = outpost_types::status::parse(&body).map_err(|e| e.to_string())?;
        *etag = new_etag;
        Ok(Some(status))
    };
    // The overall deadline: connect, headers and the whole body.
    match tokio::time::timeout(peer.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete answer within {} ms",
            peer.timeout.as_millis()
        )),
    }
}

/// Polls one peer forever at its interval, sending each outcome.
pub async fn poll_peer(peer: PeerConfig, tx: mpsc::Sender<PeerUpdate>) {
    let Some(url) = peer.url.clone() else { return };
    let client = client();
    let mut etag = None;
    let mut tick = tokio::time::interval(peer.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let name = peer.name.clone();
        let update = match poll_once(&client, &peer, &url, &mut etag).await {
            Ok(Some(status)) => PeerUpdate::Status {
                peer: name,
                status: Box::new(status),
            },
            Ok(None) => PeerUpdate::NotModified { peer: name },
            Err(error) => {
                // A failed poll must fetch in full next time.
                etag = None;
                PeerUpdate::Failed { peer: name, error }
            }
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}

/// Pushes this agent's status (rendered by `render`) to an aggregator at
/// its interval, forever. Failures are logged once per change of error.
pub async fn push_to(target: PushConfig, render: impl Fn() -> bytes::Bytes + Send + 'static) {
    let client = client();
    let mut tick = tokio::time::interval(target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    // A push is bounded like a poll: it must not pile up behind a dead
    // aggregator.
    let deadline = target.interval.min(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let mut req = client
            .post(format!("{}/api/v1/push", target.url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(deadline)
            .body(render());
        if let Some(t) = &target.token {
            req = req.bearer_auth(t);
        }
        let err = match req.send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Some(describe(&e)),
        };
        if err != last_error {
            match &err {
                Some(e) => tracing::warn!(aggregator = %target.url, "push failed: {e}"),
                None => tracing::info!(aggregator = %target.url, "pushing status"),
            }
            last_error = err;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            name: "a".into(),
            id: "id-a".into(),
        }
    }

    fn doc(name: &str, id: &str, peers: serde_json::Value) -> StatusDoc<'static> {
        let v = serde_json::json!({
            "schema_version": 1,
            "agent": {"name": name, "id": id},
            "services": [{"name": "api", "state": "down", "reason": "x", "since_ms": 1}],
            "peers": peers,
        });
        outpost_types::status::parse(v.to_string().as_bytes()).unwrap()
    }

    fn relayed(name: &str, id: &str, via: &[&str]) -> serde_json::Value {
        serde_json::json!({"name": name, "agent_id": id, "via": via, "mode": "poll",
            "state": "fresh", "reason": "", "since_ms": 0, "last_seen_ms": 0, "nodes": []})
    }

    #[test]
    fn a_peer_listing_us_back_is_not_reaggregated() {
        // A polls B; B lists A as its peer (A↔B).
        let v = views_from(
            "b",
            "poll",
            &doc("b", "id-b", serde_json::json!([relayed("a", "id-a", &[])])),
            &me(),
            5,
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].nodes[0].name, "api");
        // A→B→C→A: B relays C, and C's view of A (via C).
        let v = views_from(
            "b",
            "poll",
            &doc(
                "b",
                "id-b",
                serde_json::json!([relayed("c", "id-c", &[]), relayed("a", "id-a", &["c"])]),
            ),
            &me(),
            5,
        )
        .unwrap();
        let names: Vec<_> = v.iter().map(|p| (p.name.as_str(), p.via.clone())).collect();
        assert_eq!(names, [("b", vec![]), ("c", vec!["b".to_string()])]);
        // Something relayed through us is dropped too.
        let v = views_from(
            "b",
            "poll",
            &doc(
                "b",
                "id-b",
                serde_json::json!([relayed("d", "id-d", &["a"])]),
            ),
            &me(),
            5,
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        // Too many hops.
        let v = views_from(
            "b",
            "poll",
            &doc(
                "b",
                "id-b",
                serde_json::json!([relayed("e", "id-e", &["x", "y", "z"])]),
            ),
            &me(),
            5,
        )
        .unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn own_status_and_wrong_names_are_refused() {
        assert!(
            views_from(
                "b",
                "poll",
                &doc("a", "id-a", serde_json::json!([])),
                &me(),
                0
            )
            .unwrap_err()
            .contains("own status")
        );
        assert!(
            views_from(
                "b",
                "poll",
                &doc("c", "id-c", serde_json::json!([])),
                &me(),
                0
            )
            .unwrap_err()
            .contains("is `c`, not `b`")
        );
    }

    #[test]
    fn stale_nodes_become_unknown() {
        let mut v = views_from(
            "b",
            "poll",
            &doc("b", "id-b", serde_json::json!([])),
            &me(),
            5,
        )
        .unwrap()
        .remove(0);
        mark_stale(&mut v, "cannot connect", 9);
        assert_eq!(v.state, PeerState::Stale);
        assert_eq!(v.nodes[0].state, "unknown");
        assert!(
            v.nodes[0]
                .reason
                .contains("peer b is stale (cannot connect); last reported down")
        );
    }
}
