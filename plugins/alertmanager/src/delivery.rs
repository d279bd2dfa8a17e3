//! What the members' answers mean for a delivery. Pure: the caller performs
//! the requests.
//!
//! Each member is classified with the SDK's rules
//! ([`outpost_plugin_sdk::delivery`]): 2xx accepted (Alertmanager answers
//! `200`), 429/408/5xx retryable (honouring `Retry-After`), other 4xx
//! permanent (`400` with Alertmanager's reason for a malformed alert),
//! transport failures retryable unless the host is denied.
//!
//! The alert is **delivered** when at least one member accepted it: the
//! members gossip among themselves and deduplicate notifications, so one
//! accepting member is enough for the alert to be routed (the others
//! learn nothing until the next re-post, which is why it goes to all).
//! When none accepted, the delivery is permanent only if every member's
//! failure was permanent; otherwise retryable, after the shortest
//! `Retry-After` any member asked for.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How member `url` is named in messages.
pub fn receiver(name: &str) -> Receiver<'_> {
    Receiver {
        name,
        item: "alert",
        redirect_advice: "write the member's final base URL in `urls`",
    }
}

/// `Alertmanager http://am-1:9093`.
pub fn member_name(base_url: &str) -> String {
    format!("Alertmanager {}", base_url.trim_end_matches('/'))
}

/// One member's HTTP answer.
pub fn classify(
    member: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    delivery::classify(&receiver(member), status, retry_after, body, now)
}

/// One member's transport failure.
pub fn transport_error(member: &str, e: &HttpError) -> DeliveryError {
    delivery::transport_error(member, e)
}

/// What the members' results (in `urls` order) mean together; the second
/// value lists the members that failed, for the log, when the delivery
/// succeeded anyway.
pub fn combine(
    results: Vec<Result<(), DeliveryError>>,
) -> (Result<(), DeliveryError>, Vec<String>) {
    let total = results.len();
    let failures: Vec<DeliveryError> = results.into_iter().filter_map(Result::err).collect();
    let accepted = total - failures.len();
    let messages: Vec<String> = failures.iter().map(|e| e.message.clone()).collect();
    if accepted > 0 {
        return (Ok(()), messages);
    }
    let permanent = failures.iter().all(|e| e.permanent);
    let retry_after = failures
        .iter()
        .filter(|e| !e.permanent)
        .filter_map(|e| e.retry_after())
        .min();
    let err = DeliveryError {
        message: format!(
            "no Alertmanager accepted the alert (0 of {total}): {}",
            messages.join("; ")
        ),
        retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        permanent,
    };
    (Err(err), vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
    }

    #[test]
    fn members_are_classified_like_any_receiver() {
        let m = member_name("http://am-1:9093/");
        assert_eq!(m, "Alertmanager http://am-1:9093");
        assert_eq!(classify(&m, 200, None, "", now()), Ok(()));
        let e = classify(&m, 400, None, "{\"code\":400,\"message\":\"bad\"}", now()).unwrap_err();
        assert!(e.permanent);
        assert!(
            e.message
                .starts_with("Alertmanager http://am-1:9093 refused the alert with HTTP 400"),
            "{}",
            e.message
        );
        let e = classify(&m, 503, Some("3"), "", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn one_accepting_member_is_enough() {
        let (r, failed) = combine(vec![Err(DeliveryError::retry("a down")), Ok(())]);
        assert_eq!(r, Ok(()));
        assert_eq!(failed, ["a down"]);
        let (r, failed) = combine(vec![Ok(()), Ok(())]);
        assert_eq!(r, Ok(()));
        assert!(failed.is_empty());
    }

    #[test]
    fn none_accepting_is_retryable_unless_all_are_permanent() {
        let (r, _) = combine(vec![
            Err(DeliveryError::permanent("a: 400")),
            Err(DeliveryError::retry("b: 503").after(Duration::from_secs(9))),
            Err(DeliveryError::retry("c: 429").after(Duration::from_secs(4))),
        ]);
        let e = r.unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
        assert_eq!(
            e.message,
            "no Alertmanager accepted the alert (0 of 3): a: 400; b: 503; c: 429"
        );
        let (r, _) = combine(vec![
            Err(DeliveryError::permanent("a: 400")),
            Err(DeliveryError::permanent("b: 404")),
        ]);
        let e = r.unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.retry_after(), None);
    }
}
