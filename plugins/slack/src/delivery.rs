//! What Slack's answers mean for a delivery: the SDK's classification
//! ([`outpost_plugin_sdk::delivery`]) in Slack's wording, plus hints for
//! Slack's known refusals. Pure: the caller performs the request.
//!
//! Slack's incoming webhooks answer `200 ok` on success. Failures carry a
//! short text body naming the cause (`invalid_payload`, `no_service`,
//! `channel_is_archived`, `action_prohibited`, ...), which is passed on in
//! the error message. HTTP 429 carries `Retry-After` in seconds
//! (<https://api.slack.com/docs/rate-limits>).

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How Slack is named in messages.
pub const SLACK: Receiver<'static> = Receiver {
    name: "Slack",
    item: "message",
    redirect_advice: "check `webhook_url`",
};

/// Decides what an HTTP answer means for the delivery.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    delivery::classify(&SLACK, status, retry_after, body, now).map_err(|mut e| {
        if e.permanent && (400..=499).contains(&status) {
            e.message.push_str(hint(status, &delivery::snippet(body)));
        }
        e
    })
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

/// A transport failure, as `cannot reach Slack: ...`.
pub fn transport_error(e: &HttpError) -> DeliveryError {
    delivery::transport_error(SLACK.name, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Tue, 01 Dec 2026 19:00:00 GMT.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
    }

    #[test]
    fn success_is_delivered() {
        assert_eq!(classify(200, None, "ok", now()), Ok(()));
    }

    #[test]
    fn rate_limit_is_retryable_after_the_given_seconds() {
        let e = classify(429, Some("30"), "", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert!(e.message.contains("429"), "{}", e.message);
        assert!(e.message.starts_with("Slack "), "{}", e.message);
        let e = classify(429, Some("Tue, 01 Dec 2026 19:00:07 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = classify(429, None, "", now()).unwrap_err();
        assert_eq!((e.permanent, e.retry_after()), (false, None));
        let e = classify(429, Some("soon"), "", now()).unwrap_err();
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn server_errors_are_retryable() {
        for status in [500, 502, 503, 504, 408] {
            let e = classify(status, None, "rollup_error", now()).unwrap_err();
            assert!(!e.permanent, "{status}");
            assert_eq!(
                e.message,
                format!("Slack answered HTTP {status}: rollup_error")
            );
        }
    }

    #[test]
    fn client_errors_are_permanent_with_slacks_text() {
        let e = classify(400, None, "invalid_payload", now()).unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "Slack refused the message with HTTP 400: invalid_payload (the message was malformed; please report this as a bug)"
        );
        let e = classify(404, None, "no_service", now()).unwrap_err();
        assert!(
            e.permanent && e.message.contains("no_service") && e.message.contains("webhook_url")
        );
        let e = classify(403, None, "action_prohibited", now()).unwrap_err();
        assert!(e.permanent && e.message.contains("action_prohibited"));
        let e = classify(410, None, "channel_is_archived", now()).unwrap_err();
        assert!(e.permanent && e.message.contains("archived"));
        let e = classify(422, None, "something_else", now()).unwrap_err();
        assert_eq!(
            e.message,
            "Slack refused the message with HTTP 422: something_else"
        );
    }

    #[test]
    fn redirects_point_at_the_webhook_url() {
        let e = classify(302, None, "", now()).unwrap_err();
        assert!(e.permanent);
        assert!(e.message.ends_with("check `webhook_url`"), "{}", e.message);
    }

    #[test]
    fn long_bodies_are_cut() {
        let e = classify(400, None, &"x".repeat(10_000), now()).unwrap_err();
        assert!(
            e.message.len() < delivery::MAX_ERROR_TEXT + 200,
            "{}",
            e.message.len()
        );
    }

    #[test]
    fn transport_errors() {
        let e = transport_error(&HttpError::Denied("h:443".into()));
        assert!(e.permanent);
        assert!(
            e.message.starts_with("cannot reach Slack: "),
            "{}",
            e.message
        );
        assert!(!transport_error(&HttpError::ConnectionRefused("h:443".into())).permanent);
        assert!(!transport_error(&HttpError::Timeout(Duration::from_secs(1))).permanent);
        assert!(!transport_error(&HttpError::Dns("h".into())).permanent);
    }
}
