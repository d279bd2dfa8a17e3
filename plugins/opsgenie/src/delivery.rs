//! What the Alerts API's answers mean for a delivery. Pure: the caller
//! performs the request.
//!
//! Alert requests are asynchronous: Opsgenie answers `202` with
//! `{"result": "Request will be processed", "requestId": "..."}`. Refusals
//! carry `{"message": "...", "requestId": "..."}`: `400`/`422` invalid
//! request, `401` bad key, `403` the key lacks create-and-update access,
//! `404`; throttling is `429`
//! (<https://docs.opsgenie.com/docs/api-overview>). Classification is the
//! SDK's; the text is Opsgenie's `message` and the request id. The API key
//! is a header and never appears in a message.

use outpost_plugin_sdk::delivery::{self, Receiver};
use outpost_plugin_sdk::http::HttpError;
use outpost_plugin_sdk::prelude::*;
use std::time::SystemTime;

/// How Opsgenie is named in messages.
pub const OPSGENIE: Receiver<'static> = Receiver {
    name: "Opsgenie",
    item: "request",
    redirect_advice: "check `api_url`",
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
            let m = v["message"].as_str()?;
            Some(match v["requestId"].as_str() {
                Some(id) => format!("{m} (request {id})"),
                None => m.to_string(),
            })
        })
        .unwrap_or_else(|| body.to_string());
    delivery::classify(&OPSGENIE, status, retry_after, &text, now).map_err(|mut e| {
        if e.permanent {
            e.message.push_str(match status {
                401 => " (the API key was refused; check `api_key`, and `api_url` for EU accounts)",
                403 => " (the integration lacks create-and-update access)",
                _ => "",
            });
        }
        e
    })
}

/// A transport failure. A denial of the default API host says to write
/// `api_url`: the allow-list holds the hosts the config names.
pub fn transport_error(e: &HttpError, default_url: bool) -> DeliveryError {
    match e {
        HttpError::Denied(_) if default_url => DeliveryError::permanent(format!(
            "cannot reach Opsgenie: {e}; the allow-list holds the hosts the config names, so write `api_url = \"{}\"` (or the EU host)",
            crate::config::DEFAULT_API_URL
        )),
        _ => delivery::transport_error(OPSGENIE.name, e),
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
    fn classification() {
        assert_eq!(
            classify(
                202,
                None,
                r#"{"result":"Request will be processed","took":0.3,"requestId":"r1"}"#,
                now()
            ),
            Ok(())
        );
        let e = classify(
            422,
            None,
            r#"{"message":"Request body is not processable","took":0.0,"requestId":"r2"}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "Opsgenie refused the request with HTTP 422: Request body is not processable (request r2)"
        );
        let e = classify(
            401,
            None,
            r#"{"message":"Key format is not valid!"}"#,
            now(),
        )
        .unwrap_err();
        assert!(e.permanent && e.message.contains("api_key"));
        let e = classify(429, Some("5"), "", now()).unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        assert!(!classify(503, None, "", now()).unwrap_err().permanent);
        let e = transport_error(&HttpError::Denied("api.opsgenie.com:443".into()), true);
        assert!(e.permanent && e.message.contains("api_url = \"https://api.opsgenie.com\""));
    }
}
