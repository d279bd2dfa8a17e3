//! Bounds on what a check result may carry into the agent: bytes of its
//! message, number of metrics, bytes of its details. A result over a cap
//! is cut (never refused: the check's outcome stays true) and says so
//! visibly, so nothing beyond the caps is stored, served or rendered.
//!
//! The result arrives through the canonical ABI, so it was already bounded
//! by the plugin's memory cap; this bounds what the agent keeps of it.

use super::sandbox::Limits;
use outpost_types::abi::{CheckResult, Details};

/// Cuts `text` to at most `max` bytes (at a character boundary) and
/// appends a marker naming the limit.
fn cut(text: &mut String, max: usize, what: &str, key: &str) {
    if text.len() <= max {
        return;
    }
    let total = text.len();
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    text.push_str(&format!(
        "… [{what} truncated: {total} bytes, limit {max} (agent.plugins.{key})]"
    ));
}

/// `r` within `limits`.
pub fn bound(mut r: CheckResult, limits: &Limits) -> CheckResult {
    cut(
        &mut r.message,
        limits.message_bytes,
        "message",
        "message_kb",
    );
    if r.metrics.len() > limits.max_metrics {
        let total = r.metrics.len();
        // Metrics are kept in name order; the first ones stay.
        let keep: Vec<String> = r.metrics.keys().take(limits.max_metrics).cloned().collect();
        r.metrics.retain(|k, _| keep.binary_search(k).is_ok());
        r.message.push_str(&format!(
            " [{} of {total} metrics dropped, limit {} (agent.plugins.max_metrics)]",
            total - limits.max_metrics,
            limits.max_metrics
        ));
    }
    // Metric names are labels in /metrics and the API: keep them short.
    if r.metrics.keys().any(|k| k.len() > 128) {
        r.metrics.retain(|k, _| k.len() <= 128);
        r.message
            .push_str(" [metrics with names over 128 bytes dropped]");
    }
    if let Some(Details(d)) = &mut r.details
        && d.len() > limits.details_bytes
    {
        cut(d, limits.details_bytes, "details", "details_kb");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_types::abi::Status;

    #[test]
    fn oversized_parts_are_cut_with_a_marker() {
        let limits = Limits {
            message_bytes: 10,
            max_metrics: 2,
            details_bytes: 8,
            ..Limits::default()
        };
        let mut r = CheckResult::ok("é".repeat(100));
        for i in 0..5 {
            r.metrics.insert(format!("m{i}"), i as f64);
        }
        r.details = Some(Details("x".repeat(1000)));
        let b = bound(r, &limits);
        assert_eq!(b.status, Status::Ok);
        assert!(b.message.starts_with("ééééé…"), "{}", b.message);
        assert!(b.message.contains("message truncated: 200 bytes, limit 10"));
        assert!(b.message.contains("3 of 5 metrics dropped"));
        assert_eq!(b.metrics.keys().collect::<Vec<_>>(), ["m0", "m1"]);
        let d = b.details.unwrap().0;
        assert!(d.starts_with("xxxxxxxx…"), "{d}");
        assert!(d.contains("details truncated"));
        let small = bound(CheckResult::ok("fine"), &limits);
        assert_eq!(small.message, "fine");
    }
}
