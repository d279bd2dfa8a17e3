//! Classification of the receiver's answer into delivered, retryable and
//! permanent failures. Pure: the caller performs the request.
//!
//! - 2xx: delivered (PagerDuty answers `202 Accepted`).
//! - 429: retryable, with `Retry-After` (seconds or an HTTP date) passed on
//!   as `retry-after-ms`.
//! - 408 and 5xx: retryable (a `Retry-After` is passed on too).
//! - other 4xx and 3xx: permanent, with the receiver's body text.

use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::{Duration, SystemTime};

/// Receivers' error bodies are cut to this many characters so an HTML error
/// page does not flood the log and the incident record.
pub const MAX_ERROR_TEXT: usize = 300;

/// The answer is only inspected for its error text.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Kept back from the time the agent allows, so a slow receiver is reported
/// by this plugin as a clear, retryable timeout rather than the call being
/// killed at the agent's deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The timeout for the HTTP exchange, given what is left of the call.
pub fn request_timeout(ctx: &CheckContext) -> Duration {
    let left = ctx.remaining();
    left.saturating_sub(DEADLINE_MARGIN).max(left / 2)
}

/// Decides what an HTTP answer means for the delivery. `receiver` names
/// the other side in messages ("PagerDuty", "the webhook receiver").
pub fn classify(
    receiver: &str,
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
    let wait = retry_after.and_then(|v| parse_retry_after(v, now));
    match status {
        200..=299 => Ok(()),
        429 => {
            let mut e = DeliveryError::retry(format!(
                "{receiver} is rate-limiting (HTTP 429{}){detail}",
                match wait {
                    Some(w) => format!(", retry after {} s", w.as_secs_f64()),
                    None => String::new(),
                }
            ));
            e.retry_after = wait;
            Err(e)
        }
        408 | 500..=599 => {
            let mut e = DeliveryError::retry(format!("{receiver} answered HTTP {status}{detail}"));
            e.retry_after = wait;
            Err(e)
        }
        300..=399 => Err(DeliveryError::permanent(format!(
            "{receiver} answered HTTP {status} (a redirect, not followed for a POST); write the final URL in `url`"
        ))),
        400..=499 => Err(DeliveryError::permanent(format!(
            "{receiver} refused the notification with HTTP {status}{detail}"
        ))),
        _ => Err(DeliveryError::retry(format!(
            "unexpected HTTP {status} from {receiver}{detail}"
        ))),
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
/// `default_url` says the URL was not written in the config, which matters
/// for a denial: the allow-list only holds hosts the config names.
pub fn transport_error(receiver: &str, e: &HttpError, default_url: bool) -> DeliveryError {
    match e {
        HttpError::Denied(_) if default_url => DeliveryError::permanent(format!(
            "cannot reach {receiver}: {e}; the allow-list holds the hosts the config names, so write `url = \"{}\"` (or an `allow` entry)",
            crate::config::PAGERDUTY_URL
        )),
        HttpError::Denied(_) | HttpError::BadUrl(_) | HttpError::Unavailable => {
            DeliveryError::permanent(format!("cannot reach {receiver}: {e}"))
        }
        _ => DeliveryError::retry(format!("cannot reach {receiver}: {e}")),
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

    const R: &str = "the webhook receiver";

    fn now() -> SystemTime {
        httpdate::parse_http_date("Tue, 01 Dec 2026 19:00:00 GMT").unwrap()
    }

    #[test]
    fn success_is_delivered() {
        assert_eq!(classify(R, 200, None, "", now()), Ok(()));
        assert_eq!(classify("PagerDuty", 202, None, "{}", now()), Ok(()));
    }

    #[test]
    fn rate_limit_is_retryable_after_the_given_time() {
        let e = classify(R, 429, Some("2"), "slow down", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert!(
            e.message.contains("429") && e.message.contains("slow down"),
            "{}",
            e.message
        );
        let e = classify(R, 429, Some("Tue, 01 Dec 2026 19:01:00 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
        let e = classify(R, 429, Some("Tue, 01 Dec 2026 18:00:00 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::ZERO));
        let e = classify(R, 429, None, "", now()).unwrap_err();
        assert_eq!((e.permanent, e.retry_after), (false, None));
    }

    #[test]
    fn server_errors_are_retryable_client_errors_permanent() {
        for s in [500, 502, 503, 408] {
            assert!(
                !classify(R, s, None, "", now()).unwrap_err().permanent,
                "{s}"
            );
        }
        let e = classify(R, 503, Some("5"), "", now()).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
        for s in [400, 401, 403, 404, 410, 422] {
            let e = classify(R, s, None, "{\"error\":\"nope\"}", now()).unwrap_err();
            assert!(e.permanent, "{s}");
            assert!(
                e.message.contains("nope") && e.message.contains(&s.to_string()),
                "{}",
                e.message
            );
        }
        assert!(classify(R, 301, None, "", now()).unwrap_err().permanent);
    }

    #[test]
    fn denial_of_the_default_url_says_what_to_write() {
        let e = transport_error(
            "PagerDuty",
            &HttpError::Denied("events.pagerduty.com:443".into()),
            true,
        );
        assert!(e.permanent);
        assert!(
            e.message
                .contains("url = \"https://events.pagerduty.com/v2/enqueue\""),
            "{}",
            e.message
        );
        assert!(!transport_error(R, &HttpError::ConnectionRefused("h:1".into()), false).permanent);
        assert!(transport_error(R, &HttpError::Denied("h:1".into()), false).permanent);
    }
}
