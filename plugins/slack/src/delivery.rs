//! Classification of Slack's answers into delivered, retryable and
//! permanent failures. Pure: the caller performs the request.
//!
//! Slack's incoming webhooks answer `200 ok` on success. Failures carry a
//! short text body naming the cause (`invalid_payload`, `no_service`,
//! `channel_is_archived`, `action_prohibited`, ...), which is passed on in
//! the error message. HTTP 429 carries `Retry-After` in seconds
//! (<https://api.slack.com/docs/rate-limits>).

use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::{Duration, SystemTime};

/// Slack's error bodies are single words; anything longer is cut to this
/// many characters so a proxy's HTML error page does not flood the log.
pub const MAX_ERROR_TEXT: usize = 300;

/// The answer is only inspected for its error text, so reading more than
/// this is pointless.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Kept back from the time the agent allows, so a slow receiver is reported
/// by this plugin as a clear, retryable timeout rather than the call being
/// killed by the agent's deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The timeout for the HTTP exchange, given what is left of the call.
pub fn request_timeout(ctx: &CheckContext) -> Duration {
    let left = ctx.remaining();
    left.saturating_sub(DEADLINE_MARGIN).max(left / 2)
}

/// Decides what an HTTP answer means for the delivery.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    let text = snippet(body);
    let detail = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    match status {
        200..=299 => Ok(()),
        429 => {
            let wait = retry_after.and_then(|v| parse_retry_after(v, now));
            let mut e = DeliveryError::retry(format!(
                "Slack rate-limited the webhook (HTTP 429{})",
                match wait {
                    Some(w) => format!(", retry after {} s", w.as_secs_f64()),
                    None => String::new(),
                }
            ));
            e.retry_after = wait;
            Err(e)
        }
        408 | 500..=599 => {
            let mut e = DeliveryError::retry(format!("Slack answered HTTP {status}{detail}"));
            e.retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
            Err(e)
        }
        300..=399 => Err(DeliveryError::permanent(format!(
            "Slack answered HTTP {status} (a redirect); check `webhook_url`"
        ))),
        400..=499 => Err(DeliveryError::permanent(format!(
            "Slack refused the message with HTTP {status}{detail}{}",
            hint(status, &text)
        ))),
        _ => Err(DeliveryError::retry(format!(
            "unexpected HTTP {status} from Slack{detail}"
        ))),
    }
}

/// What an operator can do about a known refusal.
fn hint(status: u16, text: &str) -> &'static str {
    match (status, text) {
        (_, "invalid_payload") => " (the message was malformed; please report this as a bug)",
        (_, "no_service") | (404, _) => {
            " (the webhook was disabled or removed; create a new one and update `webhook_url`)"
        }
        (_, "channel_is_archived") => " (the webhook's channel is archived)",
        (_, "action_prohibited") | (403, _) => {
            " (an admin restriction or an invalid token; check the webhook in Slack)"
        }
        _ => "",
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A transport failure: denied or malformed requests are permanent,
/// everything else (refused, timeout, DNS, TLS) may pass on a retry.
pub fn transport_error(e: &HttpError) -> DeliveryError {
    match e {
        HttpError::Denied(_) | HttpError::BadUrl(_) | HttpError::Unavailable => {
            DeliveryError::permanent(format!("cannot reach Slack: {e}"))
        }
        _ => DeliveryError::retry(format!("cannot reach Slack: {e}")),
    }
}

fn snippet(body: &str) -> String {
    let t = body.trim();
    let mut s: String = t.chars().take(MAX_ERROR_TEXT).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        httpdate::parse_http_date("Tue, 01 Dec 2026 19:00:00 GMT").unwrap()
    }

    #[test]
    fn success_is_delivered() {
        assert_eq!(classify(200, None, "ok", now()), Ok(()));
    }

    #[test]
    fn rate_limit_is_retryable_after_the_given_seconds() {
        let e = classify(429, Some("30"), "", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        assert!(e.message.contains("429"), "{}", e.message);
        let e = classify(429, Some("Tue, 01 Dec 2026 19:00:07 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = classify(429, None, "", now()).unwrap_err();
        assert_eq!((e.permanent, e.retry_after), (false, None));
        let e = classify(429, Some("soon"), "", now()).unwrap_err();
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn server_errors_are_retryable() {
        for status in [500, 502, 503, 504, 408] {
            let e = classify(status, None, "rollup_error", now()).unwrap_err();
            assert!(!e.permanent, "{status}");
            assert!(e.message.contains(&status.to_string()));
        }
    }

    #[test]
    fn client_errors_are_permanent_with_slacks_text() {
        let e = classify(400, None, "invalid_payload", now()).unwrap_err();
        assert!(e.permanent);
        assert!(
            e.message.contains("HTTP 400: invalid_payload"),
            "{}",
            e.message
        );
        let e = classify(404, None, "no_service", now()).unwrap_err();
        assert!(
            e.permanent && e.message.contains("no_service") && e.message.contains("webhook_url")
        );
        let e = classify(403, None, "action_prohibited", now()).unwrap_err();
        assert!(e.permanent && e.message.contains("action_prohibited"));
        let e = classify(410, None, "channel_is_archived", now()).unwrap_err();
        assert!(e.permanent && e.message.contains("archived"));
    }

    #[test]
    fn long_bodies_are_cut() {
        let e = classify(400, None, &"x".repeat(10_000), now()).unwrap_err();
        assert!(
            e.message.len() < MAX_ERROR_TEXT + 200,
            "{}",
            e.message.len()
        );
    }

    #[test]
    fn transport_errors() {
        assert!(transport_error(&HttpError::Denied("h:443".into())).permanent);
        assert!(!transport_error(&HttpError::ConnectionRefused("h:443".into())).permanent);
        assert!(!transport_error(&HttpError::Timeout(Duration::from_secs(1))).permanent);
        assert!(!transport_error(&HttpError::Dns("h".into())).permanent);
    }
}
