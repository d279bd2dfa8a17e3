//! What the receiver's answer means for a delivery: the SDK's
//! classification ([`outpost_plugin_sdk::delivery`]) worded for the
//! configured format, plus advice when the default PagerDuty URL is not in
//! the allow-list. Pure: the caller performs the request.
//!
//! - 2xx: delivered (PagerDuty answers `202 Accepted`).
//! - 429: retryable, with `Retry-After` (seconds or an HTTP date) passed on
//!   as `retry-after-ms`.
//! - 408 and 5xx: retryable (a `Retry-After` is passed on too).
//! - other 4xx and 3xx: permanent, with the receiver's body text.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// The receiver named `name` ("PagerDuty", "the webhook receiver") in
/// messages.
pub fn receiver(name: &str) -> Receiver<'_> {
    Receiver {
        name,
        item: "notification",
        redirect_advice: "write the final URL in `url`",
    }
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
    delivery::classify(&self::receiver(receiver), status, retry_after, body, now)
}

/// A transport failure (see [`delivery::transport_error`]). `default_url`
/// says the URL was not written in the config, which matters for a denial:
/// the allow-list only holds hosts the config names.
pub fn transport_error(receiver: &str, e: &HttpError, default_url: bool) -> DeliveryError {
    match e {
        HttpError::Denied(_) if default_url => DeliveryError::permanent(format!(
            "cannot reach {receiver}: {e}; the allow-list holds the hosts the config names, so write `url = \"{}\"` (or an `allow` entry)",
            crate::config::PAGERDUTY_URL
        )),
        _ => delivery::transport_error(receiver, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const R: &str = "the webhook receiver";

    /// Tue, 01 Dec 2026 19:00:00 GMT.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
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
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            e.message,
            "the webhook receiver is rate-limiting (HTTP 429, retry after 2 s): slow down"
        );
        let e = classify(R, 429, Some("Tue, 01 Dec 2026 19:01:00 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        let e = classify(R, 429, Some("Tue, 01 Dec 2026 18:00:00 GMT"), "", now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::ZERO));
        let e = classify(R, 429, None, "", now()).unwrap_err();
        assert_eq!((e.permanent, e.retry_after()), (false, None));
    }

    #[test]
    fn server_errors_are_retryable_client_errors_permanent() {
        for s in [500, 502, 503, 408] {
            assert!(
                !classify(R, s, None, "", now()).unwrap_err().permanent,
                "{s}"
            );
        }
        let e = classify(R, 503, Some("5"), "maintenance", now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(
            e.message,
            "the webhook receiver answered HTTP 503: maintenance"
        );
        for s in [400, 401, 403, 404, 410, 422] {
            let e = classify(R, s, None, "{\"error\":\"nope\"}", now()).unwrap_err();
            assert!(e.permanent, "{s}");
            assert!(
                e.message.contains("nope") && e.message.contains(&s.to_string()),
                "{}",
                e.message
            );
        }
        let e = classify("PagerDuty", 400, None, "bad", now()).unwrap_err();
        assert_eq!(
            e.message,
            "PagerDuty refused the notification with HTTP 400: bad"
        );
        let e = classify(R, 301, None, "", now()).unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "the webhook receiver answered HTTP 301 (a redirect, not followed for a POST); write the final URL in `url`"
        );
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
        let e = transport_error(R, &HttpError::Denied("h:1".into()), false);
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "cannot reach the webhook receiver: host h:1 is not in this plugin's network allow-list"
        );
    }
}
