//! What the Workflows endpoint's answers mean for a delivery. Pure: the
//! caller performs the request.
//!
//! A Workflows ("When a Teams webhook request is received") trigger answers
//! `202 Accepted` once the flow run is queued. Refusals carry
//! `{"error": {"code": "...", "message": "..."}}` (`400` malformed body or
//! card, `401`/`403` a bad signature in the URL, `404` the flow was deleted
//! or turned off); throttling is `429` with `Retry-After`. Classification
//! is the SDK's; the text is the error's `code: message`.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How Teams is named in messages.
pub const TEAMS: Receiver<'static> = Receiver {
    name: "the Teams workflow",
    item: "card",
    redirect_advice: "check `webhook_url`",
};

/// Decides what an HTTP answer means for the delivery.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    let text = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = &v["error"];
            let m = e["message"].as_str()?;
            Some(match e["code"].as_str() {
                Some(c) => format!("{c}: {m}"),
                None => m.to_string(),
            })
        })
        .unwrap_or_else(|| body.to_string());
    delivery::classify(&TEAMS, status, retry_after, &text, now).map_err(|mut e| {
        if e.permanent {
            e.message.push_str(match status {
                404 => " (the workflow was deleted or turned off; check it in Power Automate)",
                401 | 403 => " (the URL's signature was refused; copy `webhook_url` again)",
                _ => "",
            });
        }
        e
    })
}

/// A transport failure, as `cannot reach the Teams workflow: ...`.
pub fn transport_error(e: &HttpError) -> DeliveryError {
    delivery::transport_error(TEAMS.name, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
    }

    #[test]
    fn classification() {
        assert_eq!(classify(202, None, "", now()), Ok(()));
        let e = classify(429, Some("11"), "", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(11)));
        let e = classify(
            404,
            None,
            r#"{"error":{"code":"WorkflowNotFound","message":"The workflow could not be found."}}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "the Teams workflow refused the card with HTTP 404: WorkflowNotFound: The workflow could not be found. (the workflow was deleted or turned off; check it in Power Automate)"
        );
        assert!(!classify(500, None, "x", now()).unwrap_err().permanent);
    }
}
