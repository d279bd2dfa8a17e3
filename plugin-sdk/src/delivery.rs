//! What a notifier's delivery attempt means for the agent's outbox: an HTTP
//! answer or transport failure classified as delivered, retryable or
//! permanent, `Retry-After` parsing, error text taken from the receiver's
//! body, and the time budget of one exchange. Pure: the caller performs the
//! request.
//!
//! | answer | result |
//! | --- | --- |
//! | 2xx | delivered |
//! | 429 | retryable, with `Retry-After` (seconds or an HTTP date) |
//! | 408, 5xx | retryable (a `Retry-After` is passed on too) |
//! | 3xx | permanent (a POST is not redirected; the URL is wrong) |
//! | other 4xx | permanent, with the receiver's body text |
//! | anything else | retryable |
//! | transport: denied, malformed URL, no host | permanent |
//! | transport: refused, timeout, DNS, TLS, ... | retryable |
//!
//! Messages name the other side through a [`Receiver`], so each notifier
//! keeps its own wording ("Slack answered HTTP 500: ...").

use crate::http::HttpError;
use crate::types::{CheckContext, DeliveryError};
use std::time::{Duration, SystemTime};

/// Receivers' error bodies are cut to this many characters so an HTML error
/// page from a proxy does not flood the log and the incident record.
pub const MAX_ERROR_TEXT: usize = 300;

/// The answer is only inspected for its error text, so reading more than
/// this is pointless (use it as the request's `max_body_bytes`).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Kept back from the time the agent allows, so a slow receiver is reported
/// by the plugin as a clear, retryable timeout rather than the call being
/// killed at the agent's deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// How the other side of a delivery is named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver<'a> {
    /// The service, as the subject of a sentence: `"Slack"`, `"PagerDuty"`,
    /// `"the webhook receiver"`.
    pub name: &'a str,
    /// What is delivered: `"message"`, `"notification"` (in "Slack refused
    /// the message with HTTP 400").
    pub item: &'a str,
    /// What the operator should do about a redirect, e.g. ``"check
    /// `webhook_url`"``.
    pub redirect_advice: &'a str,
}

/// The time one delivery exchange (an HTTP request, an SMTP dialogue) may
/// take, given what is left of the call: all of it but [`DEADLINE_MARGIN`],
/// and at least half of it when little is left.
pub fn exchange_timeout(ctx: &CheckContext) -> Duration {
    budget(ctx.remaining())
}

/// [`exchange_timeout`] for `left` time remaining.
pub fn budget(left: Duration) -> Duration {
    left.saturating_sub(DEADLINE_MARGIN).max(left / 2)
}

/// Decides what an HTTP answer means for the delivery. `retry_after` is the
/// raw `Retry-After` header, `body` the answer's text, `now` the time an
/// HTTP-date `Retry-After` is measured from.
pub fn classify(
    receiver: &Receiver<'_>,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    let Receiver {
        name,
        item,
        redirect_advice,
    } = *receiver;
    let text = snippet(body);
    let detail = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    let wait = retry_after.and_then(|v| parse_retry_after(v, now));
    let retry = |message: String| {
        let e = DeliveryError::retry(message);
        match wait {
            Some(w) => e.after(w),
            None => e,
        }
    };
    match status {
        200..=299 => Ok(()),
        429 => Err(retry(format!(
            "{name} is rate-limiting (HTTP 429{}){detail}",
            match wait {
                Some(w) => format!(", retry after {} s", w.as_secs_f64()),
                None => String::new(),
            }
        ))),
        408 | 500..=599 => Err(retry(format!("{name} answered HTTP {status}{detail}"))),
        300..=399 => Err(DeliveryError::permanent(format!(
            "{name} answered HTTP {status} (a redirect, not followed for a POST); {redirect_advice}"
        ))),
        400..=499 => Err(DeliveryError::permanent(format!(
            "{name} refused the {item} with HTTP {status}{detail}"
        ))),
        _ => Err(DeliveryError::retry(format!(
            "unexpected HTTP {status} from {name}{detail}"
        ))),
    }
}

/// A transport failure (no answer): a denied host, a malformed URL or no
/// HTTP at all are permanent; everything else (refused, timeout, DNS, TLS)
/// may pass on a retry. The message is `cannot reach {name}: {e}`.
pub fn transport_error(name: &str, e: &HttpError) -> DeliveryError {
    let message = format!("cannot reach {name}: {e}");
    match e {
        HttpError::Denied(_) | HttpError::BadUrl(_) | HttpError::Unavailable => {
            DeliveryError::permanent(message)
        }
        _ => DeliveryError::retry(message),
    }
}

/// `Retry-After` as delta-seconds (fractions accepted) or an HTTP date,
/// relative to `now`; a date in the past is no wait. `None` if it is
/// neither.
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

/// A body as one line of error text: trimmed, cut to [`MAX_ERROR_TEXT`]
/// characters (marked with `…`), line breaks turned into spaces.
pub fn snippet(body: &str) -> String {
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

    const R: Receiver<'static> = Receiver {
        name: "the receiver",
        item: "notification",
        redirect_advice: "write the final URL in `url`",
    };

    /// Tue, 01 Dec 2026 19:00:00 GMT.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
    }

    fn err(status: u16, retry_after: Option<&str>, body: &str) -> DeliveryError {
        classify(&R, status, retry_after, body, now()).unwrap_err()
    }

    #[test]
    fn success_is_delivered() {
        for s in [200, 202, 204, 299] {
            assert_eq!(classify(&R, s, Some("5"), "{}", now()), Ok(()), "{s}");
        }
    }

    #[test]
    fn rate_limit_is_retryable_after_the_given_time() {
        let e = err(429, Some("2"), "slow down");
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            e.message,
            "the receiver is rate-limiting (HTTP 429, retry after 2 s): slow down"
        );
        let e = err(429, Some("Tue, 01 Dec 2026 19:01:00 GMT"), "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        let e = err(429, None, "");
        assert_eq!((e.permanent, e.retry_after()), (false, None));
        assert_eq!(e.message, "the receiver is rate-limiting (HTTP 429)");
        let e = err(429, Some("soon"), "");
        assert_eq!((e.permanent, e.retry_after()), (false, None));
    }

    #[test]
    fn server_errors_and_timeouts_are_retryable() {
        for s in [500, 502, 503, 504, 408] {
            let e = err(s, None, "rollup_error");
            assert!(!e.permanent, "{s}");
            assert_eq!(
                e.message,
                format!("the receiver answered HTTP {s}: rollup_error")
            );
        }
        let e = err(503, Some("5"), "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(e.message, "the receiver answered HTTP 503");
    }

    #[test]
    fn client_errors_are_permanent_with_the_body_text() {
        for s in [400, 401, 403, 404, 410, 422] {
            let e = err(s, Some("5"), "{\"error\":\"nope\"}\n");
            assert!(e.permanent, "{s}");
            assert_eq!(e.retry_after(), None);
            assert_eq!(
                e.message,
                format!(
                    "the receiver refused the notification with HTTP {s}: {{\"error\":\"nope\"}}"
                )
            );
        }
    }

    #[test]
    fn redirects_are_permanent_with_the_advice() {
        let e = err(301, None, "<html>moved</html>");
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "the receiver answered HTTP 301 (a redirect, not followed for a POST); write the final URL in `url`"
        );
    }

    #[test]
    fn other_statuses_are_retryable() {
        for s in [100, 600, 999] {
            let e = err(s, None, "");
            assert!(!e.permanent, "{s}");
            assert_eq!(e.message, format!("unexpected HTTP {s} from the receiver"));
        }
    }

    #[test]
    fn long_bodies_are_cut_to_one_line() {
        let e = err(400, None, &"x".repeat(10_000));
        assert!(
            e.message.len() < MAX_ERROR_TEXT + 100,
            "{}",
            e.message.len()
        );
        assert!(e.message.ends_with('…'), "{}", e.message);
        assert_eq!(snippet("  a\r\nb \n"), "a  b");
        assert_eq!(
            snippet(&"é".repeat(MAX_ERROR_TEXT)),
            "é".repeat(MAX_ERROR_TEXT)
        );
        assert_eq!(
            snippet(&"é".repeat(MAX_ERROR_TEXT + 1)),
            format!("{}…", "é".repeat(MAX_ERROR_TEXT))
        );
        assert_eq!(snippet(" \n "), "");
    }

    #[test]
    fn retry_after_forms() {
        let p = |v| parse_retry_after(v, now());
        assert_eq!(p("30"), Some(Duration::from_secs(30)));
        assert_eq!(p(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(p("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(p("-1"), None);
        assert_eq!(p("NaN"), None);
        assert_eq!(p("inf"), None);
        assert_eq!(
            p("Tue, 01 Dec 2026 19:00:07 GMT"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(p("Tue, 01 Dec 2026 18:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(p("soon"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn transport_errors() {
        let e = transport_error("Slack", &HttpError::Denied("h:443".into()));
        assert!(e.permanent);
        assert!(
            e.message.starts_with("cannot reach Slack: "),
            "{}",
            e.message
        );
        assert!(transport_error("x", &HttpError::BadUrl("u".into())).permanent);
        assert!(transport_error("x", &HttpError::Unavailable).permanent);
        assert!(!transport_error("x", &HttpError::ConnectionRefused("h:443".into())).permanent);
        assert!(!transport_error("x", &HttpError::Timeout(Duration::from_secs(1))).permanent);
        assert!(!transport_error("x", &HttpError::Dns("h".into())).permanent);
    }

    #[test]
    fn budget_keeps_a_margin_but_at_least_half() {
        assert_eq!(budget(Duration::from_secs(10)), Duration::from_millis(9750));
        assert_eq!(
            budget(Duration::from_millis(400)),
            Duration::from_millis(200)
        );
        assert_eq!(budget(Duration::ZERO), Duration::ZERO);
        let ctx = CheckContext::new(Duration::from_secs(10));
        let t = exchange_timeout(&ctx);
        assert!(
            t <= Duration::from_millis(9750) && t > Duration::from_secs(9),
            "{t:?}"
        );
    }
}
