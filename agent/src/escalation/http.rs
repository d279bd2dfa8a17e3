//! HTTP routes of the escalation stage, merged into the agent's API:
//!
//! * `GET /ack/<token>`: a confirmation page (never acknowledges, so a mail
//!   scanner prefetching links changes nothing);
//! * `POST /ack/<token>`: acknowledges (form field `by` optional); HTML,
//!   or JSON when the request accepts `application/json`;
//! * `POST /api/v1/incidents/<id>/ack`, `GET|POST /api/v1/silences`,
//!   `DELETE /api/v1/silences/<id>`: admin calls, bearer admin token
//!   (compared in constant time).
//!
//! Bodies are limited to [`BODY_LIMIT`]. Handlers only call
//! [`super::actions`]; they hold no state of their own.

use super::actions::{self, AckOutcome};
use super::token;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use outpost_store::{Incident, IncidentState, Store};
use std::sync::Arc;
use tokio::sync::Notify;

/// Largest request body accepted: a form with a name, or a small JSON
/// document.
pub const BODY_LIMIT: usize = 16 * 1024;

/// State of the routes.
#[derive(Clone)]
pub struct EscalationApi {
    /// The agent's store.
    pub store: Store,
    /// Agent name (in alerts).
    pub agent: String,
    /// The admin token.
    pub admin_token: Arc<String>,
    /// Wakes the outbox after an acknowledgement.
    pub wake: Arc<Notify>,
}

/// The routes, with their state applied.
pub fn routes(state: EscalationApi) -> Router {
    Router::new()
        .route("/ack/{token}", get(ack_page).post(ack_post))
        .route("/api/v1/incidents/{id}/ack", post(admin_ack))
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(end_silence))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

use outpost_types::time::now_ms;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <meta name=robots content=noindex><title>{t} · Outpost</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         .box{{border:1px solid #ccc;border-radius:8px;padding:1rem 1.5rem}}button{{font-size:1rem;padding:.5rem 1.2rem}}\
         input{{font-size:1rem;padding:.4rem}}</style></head><body><div class=box><h1>{t}</h1>{body}</div></body></html>",
        t = esc(title)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn wants_json(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn describe(i: &Incident) -> String {
    format!(
        "<p><b>{}</b> ({}) — incident #{}</p><p>{}</p>",
        esc(&i.target),
        esc(&i.kind),
        i.id,
        esc(&i.message)
    )
}

// Handlers answer errors as ready responses; boxing them buys nothing.
#[allow(clippy::result_large_err)]
fn lookup(st: &EscalationApi, tok: &str) -> Result<Option<Incident>, Response> {
    tokio::task::block_in_place(|| st.store.tx(|t| actions::incident_for_token(t, tok)))
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

const UNKNOWN: &str = "<p>This acknowledgement link is not valid: it may be mistyped or truncated. Nothing was changed.</p>";

async fn ack_page(State(st): State<EscalationApi>, Path(tok): Path<String>) -> Response {
    let inc = match lookup(&st, &tok) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match inc {
        None => page(StatusCode::NOT_FOUND, "Unknown link", UNKNOWN),
        Some(i) if i.state == IncidentState::Resolved => page(
            StatusCode::OK,
            "Already resolved",
            &format!(
                "{}<p>This incident is resolved; there is nothing to acknowledge.</p>",
                describe(&i)
            ),
        ),
        Some(i) if i.state == IncidentState::Acked => page(
            StatusCode::OK,
            "Already acknowledged",
            &format!(
                "{}<p>Acknowledged by {}.</p>",
                describe(&i),
                esc(i.acked_by.as_deref().unwrap_or("someone"))
            ),
        ),
        Some(i) => page(
            StatusCode::OK,
            "Acknowledge incident",
            &format!(
                "{}<form method=post><p><label>Your name <input name=by maxlength=64 autocomplete=name></label></p>\
                 <p><button type=submit>Acknowledge</button></p></form>\
                 <p><small>Acknowledging stops the escalation to the next contact.</small></p>",
                describe(&i)
            ),
        ),
    }
}

/// `by` from an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn ack_post(
    State(st): State<EscalationApi>,
    Path(tok): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let by = form_field(&body, "by").unwrap_or_else(|| "web".into());
    let out = tokio::task::block_in_place(|| {
        st.store
            .tx(|t| actions::acknowledge(t, &st.agent, &tok, &by, now_ms()))
    });
    let out = match out {
        Ok(o) => o,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    if matches!(out, AckOutcome::Acknowledged { .. }) {
        st.wake.notify_one();
    }
    respond(out, wants_json(&headers))
}

fn respond(out: AckOutcome, json: bool) -> Response {
    let code = match &out {
        AckOutcome::Acknowledged { .. } => StatusCode::OK,
        AckOutcome::AlreadyAcknowledged { .. } | AckOutcome::Resolved { .. } => {
            StatusCode::CONFLICT
        }
        AckOutcome::Unknown => StatusCode::NOT_FOUND,
    };
    if json {
        // The token hash and nonce stay private.
        let mut v = serde_json::to_value(&out).unwrap_or_default();
        if let Some(i) = v.get_mut("incident").and_then(|i| i.as_object_mut()) {
            i.remove("token_hash");
            i.remove("ack_nonce");
        }
        return (code, axum::Json(v)).into_response();
    }
    match out {
        AckOutcome::Acknowledged { incident } => page(
            code,
            "Acknowledged",
            &format!(
                "{}<p>Thank you, {}. Escalation is stopped.</p>",
                describe(&incident),
                esc(incident.acked_by.as_deref().unwrap_or(""))
            ),
        ),
        AckOutcome::AlreadyAcknowledged { incident } => page(
            code,
            "Already acknowledged",
            &format!(
                "{}<p>Acknowledged by {} before; nothing changed.</p>",
                describe(&incident),
                esc(incident.acked_by.as_deref().unwrap_or("someone"))
            ),
        ),
        AckOutcome::Resolved { incident } => page(
            code,
            "Already resolved",
            &format!(
                "{}<p>This incident is resolved; nothing changed.</p>",
                describe(&incident)
            ),
        ),
        AckOutcome::Unknown => page(code, "Unknown link", UNKNOWN),
    }
}

/// Checks the bearer admin token.
#[allow(clippy::result_large_err)]
fn admin(st: &EscalationApi, h: &HeaderMap) -> Result<(), Response> {
    let given = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && token::ct_eq(given.trim(), st.admin_token.as_str()) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({"error": "this call needs the admin token: Authorization: Bearer <token from agent.admin_token_file>"})),
        )
            .into_response())
    }
}

fn err(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (
        code,
        axum::Json(serde_json::json!({"error": msg.to_string()})),
    )
        .into_response()
}

async fn admin_ack(
    State(st): State<EscalationApi>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return r;
    }
    let by = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("by").and_then(|b| b.as_str()).map(str::to_string))
        .unwrap_or_else(|| "admin".into());
    let out = tokio::task::block_in_place(|| {
        st.store.tx(|t| match t.incident(id)? {
            None => Ok(AckOutcome::Unknown),
            Some(i) => actions::acknowledge_incident(t, &st.agent, i, &by, now_ms()),
        })
    });
    match out {
        Ok(o) => {
            st.wake.notify_one();
            respond(o, true)
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn list_silences(State(st): State<EscalationApi>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return r;
    }
    match tokio::task::block_in_place(|| st.store.tx(|t| t.silences(now_ms(), true))) {
        Ok(s) => axum::Json(serde_json::json!({ "silences": s })).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    target: String,
    #[serde(rename = "for")]
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: Option<String>,
}

async fn add_silence(
    State(st): State<EscalationApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return r;
    }
    let req: NewSilence = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"target\": \"web\", \"for\": \"2h\", \"reason\": \"...\"}}: {e}"
                ),
            );
        }
    };
    let d = match outpost_types::duration::parse(&req.duration) {
        Ok(d) => d,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("`for`: {e}")),
    };
    let by = req.by.unwrap_or_else(|| "api".into());
    let out = tokio::task::block_in_place(|| {
        st.store.tx(|t| {
            Ok(actions::silence(
                t,
                &req.target,
                d.as_millis() as i64,
                &req.reason,
                &by,
                now_ms(),
            ))
        })
    });
    match out {
        Ok(Ok(s)) => (StatusCode::CREATED, axum::Json(s)).into_response(),
        Ok(Err(m)) => err(StatusCode::BAD_REQUEST, m),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn end_silence(
    State(st): State<EscalationApi>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return r;
    }
    match tokio::task::block_in_place(|| st.store.tx(|t| t.end_silence(id, now_ms()))) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => err(StatusCode::NOT_FOUND, format!("no silence #{id} in force")),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field(b"by=Ada+Lovelace", "by").as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(form_field(b"x=1&by=a%2Fb", "by").as_deref(), Some("a/b"));
        assert_eq!(form_field(b"by=%zz", "by").as_deref(), Some("%zz"));
        assert_eq!(form_field(b"", "by"), None);
        assert_eq!(esc("<a href='x'>"), "&lt;a href=&#39;x&#39;&gt;");
    }
}
