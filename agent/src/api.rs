//! The agent's HTTP API (axum): health, status JSON, Prometheus metrics and
//! history. It only reads: the board, the metrics and the database (through
//! its own read connection). It listens on loopback unless configured.

use crate::metrics::Metrics;
use crate::status::Board;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// Version of the status JSON schema (`docs/status.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// Shared, read-only state of the API.
#[derive(Clone)]
pub struct AppState {
    agent: String,
    started_ms: i64,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    db: std::path::PathBuf,
}

impl AppState {
    /// State for an agent called `agent`.
    pub fn new(
        agent: String,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        db: std::path::PathBuf,
    ) -> Self {
        Self {
            agent,
            started_ms: crate::scheduler::now_ms(),
            board,
            metrics,
            db,
        }
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sensors/{name}/history", get(history))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves until the task is aborted; `extra` holds the routes of other
/// stages (acknowledgements, silences).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, extra: Router) {
    if let Err(e) = axum::serve(listener, router(state).merge(extra)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn status(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let (version, sensors) = st.board.snapshot();
    let etag = format!("\"{}-{}\"", st.started_ms, version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let body = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "agent": { "name": st.agent, "version": env!("CARGO_PKG_VERSION"), "started_at_ms": st.started_ms },
        "generated_at_ms": crate::scheduler::now_ms(),
        "sensors": sensors,
    });
    ([(header::ETAG, etag)], Json(body)).into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
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
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no sensor named `{name}`")})),
        )
            .into_response();
    }
    let since = match q
        .since
        .as_deref()
        .map(crate::plugin_host::parse_duration)
        .transpose()
    {
        Ok(d) => d.unwrap_or(std::time::Duration::from_secs(3600)),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e})),
            )
                .into_response();
        }
    };
    let since_ms = crate::scheduler::now_ms() - since.as_millis() as i64;
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
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
