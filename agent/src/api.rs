//! The agent's HTTP API (axum): health, the status JSON (schema in
//! `docs/status.schema.json`), the status page, Prometheus metrics,
//! history, SLA, incidents, and the push endpoint for peers that cannot be
//! polled.
//!
//! It reads the board, the metrics and the database (through its own
//! read-only connections); the only thing it writes is a pushed peer
//! status, which it hands to the evaluation stage as a message. It listens
//! on loopback unless configured.
//!
//! Security: with `[api] read_token_file`, every endpoint but `/healthz`
//! needs `Authorization: Bearer <token>`; `POST /api/v1/push` needs the push
//! token. Tokens are compared in constant time (SHA-256 of both sides, then
//! a branch-free comparison). Request bodies are limited
//! ([`MAX_BODY_BYTES`], and [`crate::federation::MAX_STATUS_BYTES`] for
//! pushes).
//!
//! Extending: [`router`] returns a stateless `Router`; other stages add
//! their routes with `.merge()` (e.g. the incident stage's ack/silence
//! routes).

use crate::federation::{Identity, MAX_STATUS_BYTES, PeerUpdate};
use crate::metrics::Metrics;
use crate::status::{Board, Snapshot};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use outpost_types::status::{AgentDoc, NodeDoc, SensorDoc, StatusDoc};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Version of the status JSON schema (`docs/status.schema.json`).
pub use outpost_types::status::SCHEMA_VERSION;

/// Largest request body accepted by any endpoint but the push endpoint:
/// no read endpoint takes a body; 64 KiB leaves room for small admin
/// requests merged in later.
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// Shared, read-only state of the API.
#[derive(Clone)]
pub struct AppState {
    me: Identity,
    started_ms: i64,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    db: std::path::PathBuf,
    read_token: Option<Arc<str>>,
    push_token: Option<Arc<str>>,
    /// Peers allowed to push (configured `[[peer]]`s without a url).
    push_peers: Arc<Vec<String>>,
    /// Mutual TLS is on: a push must come with a client certificate naming
    /// the pushed agent.
    mutual_tls: bool,
    /// To the evaluation stage (pushed statuses).
    peer_tx: Option<mpsc::Sender<PeerUpdate>>,
    /// The last rendered status JSON and the board version it shows: a
    /// poll of an unchanged board costs a copy of an `Arc`.
    cache: Arc<Mutex<Option<(u64, Bytes)>>>,
}

impl AppState {
    /// State for agent `me`.
    pub fn new(
        me: Identity,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        db: std::path::PathBuf,
    ) -> Self {
        Self {
            me,
            started_ms: outpost_types::time::now_ms(),
            board,
            metrics,
            db,
            read_token: None,
            push_token: None,
            push_peers: Arc::new(vec![]),
            mutual_tls: false,
            peer_tx: None,
            cache: Arc::default(),
        }
    }

    /// Requires tokens as `[api]` says.
    pub fn with_tokens(mut self, api: &crate::config::topology::ApiConfig) -> Self {
        self.read_token = api.read_token.as_deref().map(Arc::from);
        self.push_token = api.push_token.as_deref().map(Arc::from);
        self
    }

    /// Accepts pushes from `peers`, forwarded to `tx`.
    pub fn with_push(mut self, peers: Vec<String>, tx: mpsc::Sender<PeerUpdate>) -> Self {
        self.push_peers = Arc::new(peers);
        self.peer_tx = Some(tx);
        self
    }

    /// Requires pushes to come with a client certificate naming the
    /// pushed agent (mutual TLS).
    pub fn with_mutual_tls(mut self, on: bool) -> Self {
        self.mutual_tls = on;
        self
    }

    /// The board.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// The database file.
    pub fn db_path(&self) -> &std::path::Path {
        &self.db
    }

    /// This agent.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The ETag of board version `v`.
    fn etag(&self, v: u64) -> String {
        format!(
            "\"{}-{}-{v}\"",
            &self.me.id[..self.me.id.len().min(8)],
            self.started_ms
        )
    }

    /// The status JSON for the current board, rendered at most once per
    /// board version.
    pub fn status_json(&self) -> (u64, Bytes) {
        let snap = self.board.full();
        {
            let c = self.cache.lock().unwrap();
            if let Some((v, b)) = c.as_ref()
                && *v == snap.version
            {
                return (*v, b.clone());
            }
        }
        let body = Bytes::from(render_status(&self.me, self.started_ms, &snap));
        *self.cache.lock().unwrap() = Some((snap.version, body.clone()));
        (snap.version, body)
    }
}

// ---------------------------------------------------------------------------
// The status document (docs/status.schema.json).
// ---------------------------------------------------------------------------

fn node_doc<'a>(
    n: &'a crate::topology::NodeView,
    incidents: &'a BTreeMap<String, serde_json::Value>,
) -> NodeDoc<'a> {
    NodeDoc {
        name: Cow::Borrowed(&n.name),
        state: n.state,
        since_ms: n.since_ms,
        reason: Cow::Borrowed(&n.reason),
        caused_by: Cow::Borrowed(&n.caused_by),
        rule: Cow::Borrowed(&n.rule),
        members: Cow::Borrowed(&n.members),
        category: n.category.as_deref().map(Cow::Borrowed),
        description: n.description.as_deref().map(Cow::Borrowed),
        labels: Cow::Borrowed(&n.labels),
        incident: incidents.get(&n.name).map(Cow::Borrowed),
    }
}

/// Renders the status document for a board snapshot (borrowing from it:
/// nothing is copied).
pub fn render_status(me: &Identity, started_ms: i64, s: &Snapshot) -> Vec<u8> {
    let node = |n| node_doc(n, &s.incidents);
    let kind = |k: &'static str| s.nodes.iter().filter(move |n| n.kind == k).map(node);
    StatusDoc {
        schema_version: SCHEMA_VERSION,
        agent: AgentDoc {
            name: Cow::Borrowed(&me.name),
            id: Cow::Borrowed(&me.id),
            version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            started_at_ms: started_ms,
            connectivity: s.connectivity.clone(),
        },
        generated_at_ms: outpost_types::time::now_ms(),
        sensors: s
            .sensors
            .iter()
            .map(|v| SensorDoc {
                name: Cow::Borrowed(&v.sensor.name),
                plugin: Cow::Borrowed(&v.sensor.plugin),
                category: v.sensor.category.as_deref().map(Cow::Borrowed),
                description: v.sensor.description.as_deref().map(Cow::Borrowed),
                labels: Cow::Borrowed(&v.sensor.labels),
                state: if v.offline {
                    outpost_types::status::State::Unknown
                } else {
                    v.state
                },
                since_ms: v.since_ms,
                reason: if v.offline {
                    Cow::Borrowed("agent offline")
                } else {
                    Cow::Borrowed(&v.reason)
                },
                flapping: v.flapping,
                last_check_ms: v.last_check_ms,
                last_status: v.last_status,
                last_message: Cow::Borrowed(&v.last_message),
                last_latency_ms: v.last_latency_ms,
                interval_ms: v.interval_ms(),
                incident: s.incidents.get(v.name()).map(Cow::Borrowed),
            })
            .collect(),
        systems: kind("system").collect(),
        services: kind("service").collect(),
        peers: Cow::Borrowed(&s.peers),
        providers: Cow::Borrowed(&s.providers),
    }
    .to_json()
}

// ---------------------------------------------------------------------------
// Router, auth, handlers.
// ---------------------------------------------------------------------------

/// The router (stateless, so other stages can `.merge()` theirs).
pub fn router(state: AppState) -> Router {
    let read = Router::new()
        .route("/", get(page))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sensors/{name}/history", get(history))
        .route("/api/v1/sla", get(sla))
        .route("/api/v1/incidents", get(incidents))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let push = Router::new()
        .route("/api/v1/push", post(push))
        .layer(DefaultBodyLimit::max(MAX_STATUS_BYTES));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(read)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(push)
        .with_state(state)
}

/// Serves until the task is aborted; `extra` holds the routes of other
/// stages (acknowledgements, silences). The connections (TLS, limits) are
/// [`crate::server`]'s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Router,
    tls: Option<Arc<crate::tls::ServerTls>>,
    limits: crate::server::Limits,
) {
    crate::server::serve(listener, router(state).merge(extra), tls, limits).await
}

/// Constant-time token check: both sides are hashed to 32 bytes first, so
/// neither the content nor the length of the expected token leaks through
/// timing.
pub fn token_matches(given: &str, expected: &str) -> bool {
    // Hashed first, so the comparison takes the same time whatever the
    // lengths; compared with `subtle`.
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let a = sha2::Sha256::digest(given.as_bytes());
    let b = sha2::Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

async fn require_read(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &st.read_token {
        match bearer(req.headers()) {
            Some(t) if token_matches(t, expected) => {}
            Some(_) => return unauthorized("wrong token"),
            None => {
                return unauthorized("this agent requires `Authorization: Bearer <read token>`");
            }
        }
    }
    next.run(req).await
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

async fn status(State(st): State<AppState>, headers: HeaderMap) -> Response {
    // The 304 path reads one counter under a read lock.
    let etag = st.etag(st.board.version());
    if if_none_match(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let (version, body) = st.status_json();
    (
        [
            (header::ETAG, st.etag(version)),
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn push(
    State(st): State<AppState>,
    cert: Option<axum::Extension<crate::server::PeerCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(expected) = &st.push_token else {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "this agent accepts no pushes: set [api] push_token_file"})),
        )
            .into_response();
    };
    match bearer(&headers) {
        Some(t) if token_matches(t, expected) => {}
        _ => return unauthorized("a push needs `Authorization: Bearer <push token>`"),
    }
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(serde_json::json!({"error": format!("a pushed status may be at most {} MiB", MAX_STATUS_BYTES >> 20)})),
        )
            .into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_STATUS_BYTES as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, MAX_STATUS_BYTES).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return too_large(),
        // The server's body timeout, or the client went away.
        Err(e) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                Json(serde_json::json!({"error": error_chain(&e)})),
            )
                .into_response();
        }
    };
    let status = match outpost_types::status::parse(&bytes) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let name = status.agent.name.to_string();
    if st.mutual_tls {
        let checked = match &cert {
            Some(c) => crate::tls::check_identity(&c.0.0, &name, &status.agent.id),
            None => Err("a push to this agent needs a client certificate (mutual TLS)".into()),
        };
        if let Err(e) = checked {
            tracing::warn!(agent = %name, "push refused: {e}");
            return (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": e })),
            )
                .into_response();
        }
    }
    if !st.push_peers.contains(&name) {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": format!("`{name}` is not a [[peer]] of this agent without a url (push peers are declared)")})),
        )
            .into_response();
    }
    let Some(tx) = &st.peer_tx else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    match tx.try_send(PeerUpdate::Status {
        peer: name,
        status: Box::new(status),
    }) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
        )
            .into_response(),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn error_chain(e: &axum::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg = format!("{msg}: {s_text}");
        }
        src = s.source();
    }
    msg
}

/// `GET /`: the status page.
async fn page(State(st): State<AppState>) -> Response {
    let snap = st.board().full();
    let db = st.db_path().to_path_buf();
    let agent = st.identity().name.clone();
    let html = tokio::task::spawn_blocking(move || {
        crate::page::page_html(&agent, &snap, &db, outpost_types::time::now_ms())
    })
    .await
    .unwrap_or_else(|e| crate::page::error_html(&e.to_string()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        html,
    )
        .into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.metrics.render();
    let db = st.db.clone();
    // Incidents and the outbox are read from the store at scrape time (the
    // tables are the truth; no copy to keep in sync).
    match tokio::task::spawn_blocking(move || outpost_store::Reader::open(&db)?.backlog()).await {
        Ok(Ok(backlog)) => crate::metrics::render_backlog(&mut text, &backlog),
        Ok(Err(e)) => tracing::debug!("metrics: incidents and outbox not read: {e}"),
        Err(e) => tracing::debug!("metrics: incidents and outbox not read: {e}"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({"error": msg.into()}))).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    since: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    if st.board.get(&name).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no sensor named `{name}`"));
    }
    let since = match q
        .since
        .as_deref()
        .map(outpost_types::duration::parse)
        .transpose()
    {
        Ok(d) => d.unwrap_or(std::time::Duration::from_secs(3600)),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("`since`: {e}")),
    };
    let since_ms = outpost_types::time::now_ms() - since.as_millis() as i64;
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let db = st.db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let r = outpost_store::Reader::open(&db)?;
        Ok::<_, outpost_store::StoreError>((
            r.history(&name, since_ms, limit)?,
            r.transitions(&name, since_ms)?,
        ))
    })
    .await;
    match rows {
        Ok(Ok((results, transitions))) => {
            Json(serde_json::json!({"results": results, "transitions": transitions}))
                .into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct SlaParams {
    sensor: Option<String>,
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn sla(State(st): State<AppState>, Query(q): Query<SlaParams>) -> Response {
    use outpost_store::Period;
    let period = match q.period.as_deref().unwrap_or("month") {
        "day" => Period::Day,
        "week" => Period::Week,
        "month" => Period::Month,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("period `{other}`: use day, week or month"),
            );
        }
    };
    let now = outpost_types::time::now_ms();
    let from = match q.from.as_deref().map(outpost_store::parse_day).transpose() {
        Ok(f) => f.unwrap_or_else(|| outpost_store::period_start(period, now)),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let to = match q.to.as_deref().map(outpost_store::parse_day).transpose() {
        Ok(t) => t.unwrap_or(now),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if to <= from {
        return error(StatusCode::BAD_REQUEST, "`to` must be after `from`");
    }
    let db = st.db.clone();
    let query = outpost_store::SlaQuery {
        sensor: q.sensor.clone(),
        period,
        from_ms: from,
        to_ms: to,
    };
    match tokio::task::spawn_blocking(move || outpost_store::Reader::open(&db)?.sla(&query)).await {
        Ok(Ok(rows)) => Json(serde_json::json!({ "rows": rows })).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct IncidentParams {
    state: Option<String>,
    limit: Option<usize>,
}

async fn incidents(State(st): State<AppState>, Query(q): Query<IncidentParams>) -> Response {
    let only_unresolved = match q.state.as_deref().unwrap_or("unresolved") {
        "unresolved" => true,
        "all" => false,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state `{other}`: use unresolved or all"),
            );
        }
    };
    let limit = q.limit.unwrap_or(100).min(1000);
    let db = st.db.clone();
    match tokio::task::spawn_blocking(move || {
        outpost_store::Reader::open(&db)?.incidents(only_unresolved, limit)
    })
    .await
    {
        Ok(Ok(rows)) => Json(serde_json::json!({ "incidents": rows })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("", "s3cret"));
    }

    #[test]
    fn etag_lists_match() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "\"x\", \"a-1-2\"".parse().unwrap());
        assert!(if_none_match(&h, "\"a-1-2\""));
        assert!(!if_none_match(&h, "\"a-1-3\""));
    }
}
