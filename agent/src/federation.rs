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
//! - **Transports** ([`Transport`]): `http://` through reqwest;
//!   `https://` a connection per request over rustls with the peer's CA
//!   file (or the Mozilla roots), an optional client certificate and an
//!   optional SHA-256 pin, errors naming the check that failed
//!   ([`crate::tls::describe`]). With a client certificate (mutual TLS)
//!   the document must be from the agent the server's certificate names.
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
use std::sync::Arc;
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

/// The HTTP client for plain-HTTP peers: no proxies, no redirects (a
/// peer's status is at its own address), no connection pool leaks past the
/// deadline.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .expect("a plain HTTP client builds")
}

const USER_AGENT: &str = concat!("outpost/", env!("CARGO_PKG_VERSION"));

/// An `https://` peer or push target: its rustls configuration (built
/// once per task) and address. Each request is a new connection, so a
/// changed certificate is checked (chain, name, pin) at the next poll.
pub struct TlsTarget {
    config: Arc<rustls::ClientConfig>,
    host: String,
    port: u16,
    server_name: rustls::pki_types::ServerName<'static>,
    /// Mutual TLS (a client certificate is configured): the document must
    /// be from the agent the server's certificate names.
    check_identity: bool,
}

/// How a peer or push target is reached.
pub enum Transport {
    /// `http://`, through reqwest (pooled connections).
    Plain(reqwest::Client),
    /// `https://`, a connection per request over rustls.
    Tls(Box<TlsTarget>),
}

/// One answer, whatever the transport.
struct Answer {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
    /// The server's certificate (DER), over TLS.
    cert: Option<Vec<u8>>,
}

impl Transport {
    /// The transport for `url` (`tls` is `Some` for every https url).
    pub fn new(url: &str, tls: Option<&crate::tls::ClientSettings>) -> Result<Transport, String> {
        let Some(rest) = url.strip_prefix("https://") else {
            return Ok(Transport::Plain(client()));
        };
        let settings = tls.cloned().unwrap_or_default();
        let config = crate::tls::client_config(&settings).map_err(|e| e.0)?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let auth: http::uri::Authority = authority
            .parse()
            .map_err(|_| format!("`{authority}` is not a host and port"))?;
        let host = auth
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| format!("`{host}` is not a host name or address"))?;
        Ok(Transport::Tls(Box::new(TlsTarget {
            config,
            port: auth.port_u16().unwrap_or(443),
            host,
            server_name,
            check_identity: settings.cert_file.is_some(),
        })))
    }

    /// Sends one request and reads the answer's body up to `limit`.
    async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        headers: Vec<(http::HeaderName, String)>,
        body: bytes::Bytes,
        limit: usize,
    ) -> Result<Answer, String> {
        match self {
            Transport::Plain(c) => {
                let mut req = c.request(method, url).body(body);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let mut resp = req.send().await.map_err(|e| describe(&e))?;
                let status = resp.status().as_u16();
                let etag = resp
                    .headers()
                    .get(http::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = if status == 200 {
                    read_limited(&mut resp, limit).await?
                } else {
                    vec![]
                };
                Ok(Answer {
                    status,
                    etag,
                    body,
                    cert: None,
                })
            }
            Transport::Tls(t) => t.exchange(method, url, headers, body, limit).await,
        }
    }
}

impl Transport {
    /// `GET url` with an optional bearer token: (status, body up to
    /// `limit`). For the CLI's view of its own agent.
    pub async fn get(
        &self,
        url: &str,
        bearer: Option<&str>,
        limit: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let headers = bearer
            .map(|t| vec![(http::header::AUTHORIZATION, format!("Bearer {t}"))])
            .unwrap_or_default();
        let a = self
            .exchange(http::Method::GET, url, headers, bytes::Bytes::new(), limit)
            .await?;
        Ok((a.status, a.body))
    }
}

impl TlsTarget {
    async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        headers: Vec<(http::HeaderName, String)>,
        body: bytes::Bytes,
        limit: usize,
    ) -> Result<Answer, String> {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                format!(
                    "TLS: {}",
                    crate::tls::describe_io(&e).unwrap_or_else(|| e.to_string())
                )
            })?;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
        let conn = tokio::spawn(conn);
        let path = url
            .strip_prefix("https://")
            .and_then(|r| r.find('/').map(|i| &r[i..]))
            .unwrap_or("/");
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                http::header::HOST,
                if self.port == 443 {
                    self.host.clone()
                } else {
                    format!("{}:{}", self.host, self.port)
                },
            )
            .header(http::header::USER_AGENT, USER_AGENT);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(http_body_util::Full::new(body))
            .map_err(|e| format!("HTTP: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(n) = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && n > limit as u64
        {
            conn.abort();
            return Err(format!(
                "the status is {n} bytes, more than the {} MiB limit",
                limit >> 20
            ));
        }
        let body = if status == 200 {
            http_body_util::Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        format!("the status is more than the {} MiB limit", limit >> 20)
                    } else {
                        format!("HTTP: {e}")
                    }
                })?
                .to_bytes()
                .to_vec()
        } else {
            vec![]
        };
        conn.abort();
        Ok(Answer {
            status,
            etag,
            body,
            cert,
        })
    }
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
    transport: &Transport,
    peer: &PeerConfig,
    url: &str,
    etag: &mut Option<String>,
) -> Result<Option<StatusDoc<'static>>, String> {
    let fut = async {
        let mut headers = vec![];
        if let Some(t) = &peer.token {
            headers.push((http::header::AUTHORIZATION, format!("Bearer {t}")));
        }
        if let Some(e) = etag.as_deref() {
            headers.push((http::header::IF_NONE_MATCH, e.to_string()));
        }
        let answer = transport
            .exchange(
                http::Method::GET,
                &format!("{url}/api/v1/status"),
                headers,
                bytes::Bytes::new(),
                MAX_STATUS_BYTES,
            )
            .await?;
        match answer.status {
            304 => return Ok(None),
            200 => {}
            401 | 403 => {
                return Err(format!(
                    "HTTP {}: the peer refused our token (check token/token_file)",
                    answer.status
                ));
            }
            s => return Err(format!("HTTP {s} from the peer")),
        }
        let status = outpost_types::status::parse(&answer.body).map_err(|e| e.to_string())?;
        if let Transport::Tls(t) = transport
            && t.check_identity
        {
            let cert = answer.cert.as_deref().unwrap_or_default();
            crate::tls::check_identity(cert, &status.agent.name, &status.agent.id)
                .map_err(|e| format!("identity mismatch: {e}"))?;
        }
        *etag = answer.etag;
        Ok(Some(status))
    };
    // The overall deadline: connect, handshake, headers and the whole body.
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
    let transport = match Transport::new(&url, peer.tls.as_ref()) {
        Ok(t) => t,
        Err(error) => {
            // Checked at config load; a file that went away since then.
            let _ = tx
                .send(PeerUpdate::Failed {
                    peer: peer.name.clone(),
                    error,
                })
                .await;
            return;
        }
    };
    let mut etag = None;
    let mut tick = tokio::time::interval(peer.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let name = peer.name.clone();
        let update = match poll_once(&transport, &peer, &url, &mut etag).await {
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
    let transport = match Transport::new(&target.url, target.tls.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(aggregator = %target.url, "cannot push: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    // A push is bounded like a poll: it must not pile up behind a dead
    // aggregator.
    let deadline = target.interval.min(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let mut headers = vec![(http::header::CONTENT_TYPE, "application/json".to_string())];
        if let Some(t) = &target.token {
            headers.push((http::header::AUTHORIZATION, format!("Bearer {t}")));
        }
        let sent = tokio::time::timeout(
            deadline,
            transport.exchange(
                http::Method::POST,
                &format!("{}/api/v1/push", target.url),
                headers,
                render(),
                64 << 10,
            ),
        )
        .await;
        let err = match sent {
            Ok(Ok(a)) if (200..300).contains(&a.status) => None,
            Ok(Ok(a)) => Some(format!("HTTP {}", a.status)),
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("no answer within {} ms", deadline.as_millis())),
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
