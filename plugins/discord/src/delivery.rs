//! What Discord's answers mean for a delivery. Pure: the caller performs
//! the request.
//!
//! With `?wait=true` Discord answers `200` and the created message. Errors
//! carry `{"code": N, "message": "..."}` (`10015 Unknown Webhook`,
//! `50035 Invalid Form Body`, ...); rate limits are `429` with a
//! `Retry-After` header (seconds) and `retry_after` (seconds, fractional)
//! in the body (<https://discord.com/developers/docs/topics/rate-limits>).
//! Classification is the SDK's; the text is Discord's `message` and
//! `code`, with a hint for the common refusals.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How Discord is named in messages.
pub const DISCORD: Receiver<'static> = Receiver {
    name: "Discord",
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
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| {
            let m = v["message"].as_str()?;
            Some(match v["code"].as_u64() {
                Some(c) if c != 0 => format!("{m} (code {c})"),
                _ => m.to_string(),
            })
        })
        .unwrap_or_else(|| body.to_string());
    let mut result = delivery::classify(&DISCORD, status, retry_after, &text, now);
    if let Err(e) = &mut result {
        if !e.permanent
            && e.retry_after_ms.is_none()
            && let Some(secs) = parsed.as_ref().and_then(|v| v["retry_after"].as_f64())
            && secs.is_finite()
            && secs >= 0.0
        {
            e.retry_after_ms = Some((secs * 1000.0).round() as u64);
        }
        if e.permanent {
            e.message.push_str(match status {
                404 => " (the webhook was deleted; create a new one and update `webhook_url`)",
                401 | 403 => " (the webhook token is wrong; copy `webhook_url` again)",
                400 => " (the message was malformed; please report this as a bug)",
                _ => "",
            });
        }
    }
    result
}

/// A transport failure, as `cannot reach Discord: ...`.
pub fn transport_error(e: &HttpError) -> DeliveryError {
    delivery::transport_error(DISCORD.name, e)
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
        assert_eq!(classify(200, None, "{\"id\":\"1\"}", now()), Ok(()));
        assert_eq!(classify(204, None, "", now()), Ok(()));
        let e = classify(
            429,
            None,
            r#"{"message":"You are being rate limited.","retry_after":0.75,"global":false}"#,
            now(),
        )
        .unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(750)));
        let e = classify(429, Some("2"), r#"{"retry_after":0.75}"#, now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = classify(
            404,
            None,
            r#"{"message":"Unknown Webhook","code":10015}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "Discord refused the message with HTTP 404: Unknown Webhook (code 10015) (the webhook was deleted; create a new one and update `webhook_url`)"
        );
        assert!(
            !classify(503, None, "upstream", now())
                .unwrap_err()
                .permanent
        );
    }
}
