//! What the Bot API's answers mean for a delivery. Pure: the caller
//! performs the request.
//!
//! The Bot API answers `200 {"ok": true, "result": {...}}` on success and
//! otherwise `{"ok": false, "error_code": N, "description": "..."}` with
//! the same HTTP status. Flood control is `429` with
//! `parameters.retry_after` (seconds) in the body; a group that became a
//! supergroup is `400` with `parameters.migrate_to_chat_id`
//! (<https://core.telegram.org/bots/api#making-requests>,
//! <https://core.telegram.org/bots/api#responseparameters>).
//!
//! Classification is the SDK's (2xx delivered, 429/408/5xx retryable,
//! other 4xx permanent); the error text is Telegram's `description`, with a
//! hint for the common refusals. The bot token is part of the URL and is
//! never put in a message.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How Telegram is named in messages.
pub const TELEGRAM: Receiver<'static> = Receiver {
    name: "Telegram",
    item: "message",
    redirect_advice: "check `api_url`",
};

/// Decides what an HTTP answer means for the delivery.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let description = parsed
        .as_ref()
        .and_then(|v| v["description"].as_str())
        .map(str::to_string);
    let text = description.clone().unwrap_or_else(|| body.to_string());
    let mut result = delivery::classify(&TELEGRAM, status, retry_after, &text, now);
    if let Err(e) = &mut result {
        let params = parsed.as_ref().map(|v| &v["parameters"]);
        if !e.permanent
            && e.retry_after_ms.is_none()
            && let Some(secs) = params.and_then(|p| p["retry_after"].as_f64())
            && secs.is_finite()
            && secs >= 0.0
        {
            e.retry_after_ms = Some((secs * 1000.0).round() as u64);
        }
        if e.permanent {
            if let Some(id) = params.and_then(|p| p["migrate_to_chat_id"].as_i64()) {
                e.message.push_str(&format!(
                    " (the group became a supergroup; write chat_id = {id})"
                ));
            } else {
                e.message.push_str(hint(status));
            }
        }
    }
    result
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 404 => " (the bot token was refused; check `bot_token`)",
        403 => {
            " (the bot cannot write to this chat: add it to the group or channel, or unblock it)"
        }
        400 => " (check `chat_id`; the bot must have been added to the chat)",
        _ => "",
    }
}

/// A transport failure. A denial of the default API host says to write
/// `api_url`: the allow-list holds the hosts the config names.
pub fn transport_error(e: &HttpError, default_url: bool) -> DeliveryError {
    match e {
        HttpError::Denied(_) if default_url => DeliveryError::permanent(format!(
            "cannot reach Telegram: {e}; the allow-list holds the hosts the config names, so write `api_url = \"{}\"`",
            crate::config::DEFAULT_API_URL
        )),
        _ => delivery::transport_error(TELEGRAM.name, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_151_600)
    }

    #[test]
    fn ok_is_delivered() {
        assert_eq!(
            classify(200, None, r#"{"ok":true,"result":{"message_id":1}}"#, now()),
            Ok(())
        );
    }

    #[test]
    fn flood_control_uses_the_body_when_no_header() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#;
        let e = classify(429, None, body, now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(35)));
        assert_eq!(
            e.message,
            "Telegram is rate-limiting (HTTP 429): Too Many Requests: retry after 35"
        );
        let e = classify(429, Some("3"), body, now()).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn refusals_are_permanent_with_telegrams_description_and_a_hint() {
        let e = classify(
            400,
            None,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "Telegram refused the message with HTTP 400: Bad Request: chat not found (check `chat_id`; the bot must have been added to the chat)"
        );
        let e = classify(
            401,
            None,
            r#"{"ok":false,"description":"Unauthorized"}"#,
            now(),
        )
        .unwrap_err();
        assert!(
            e.permanent && e.message.contains("bot_token"),
            "{}",
            e.message
        );
        let e = classify(
            400,
            None,
            r#"{"ok":false,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}}"#,
            now(),
        )
        .unwrap_err();
        assert!(
            e.message.ends_with("write chat_id = -1001234)"),
            "{}",
            e.message
        );
        let e = classify(502, None, "<html>bad gateway</html>", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(
            e.message,
            "Telegram answered HTTP 502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn denial_of_the_default_host_says_what_to_write() {
        let e = transport_error(&HttpError::Denied("api.telegram.org:443".into()), true);
        assert!(e.permanent);
        assert!(
            e.message.contains("api_url = \"https://api.telegram.org\""),
            "{}",
            e.message
        );
        assert!(!transport_error(&HttpError::ConnectionRefused("h".into()), false).permanent);
    }
}
