//! Threshold alarms on metrics (`[[sensor.threshold]]`): a rule such as
//! "`latency_ms` above 500 for 2 minutes" turns an ok check into warn or
//! fail, with a message naming the rule. Pure logic; time is passed in.

use crate::config::Threshold;
use outpost_types::{CheckResult, Status};

/// Remembers, per rule, since when its warn/fail condition has held.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    since: Vec<(Option<i64>, Option<i64>)>,
}

impl Evaluator {
    /// Applies `rules` to `result` at `now_ms`, worsening its status when a
    /// condition has held for the rule's `for` duration.
    pub fn apply(&mut self, rules: &[Threshold], result: &mut CheckResult, now_ms: i64) {
        self.since.resize(rules.len(), (None, None));
        for (rule, since) in rules.iter().zip(self.since.iter_mut()) {
            let Some(&value) = result.metrics.get(&rule.metric) else {
                // A missing metric resets the rule rather than guessing.
                *since = (None, None);
                continue;
            };
            let fail = breach(value, rule.fail_above, rule.fail_below);
            let warn = fail
                .clone()
                .or_else(|| breach(value, rule.warn_above, rule.warn_below));
            since.0 = warn.as_ref().map(|_| since.0.unwrap_or(now_ms));
            since.1 = fail.as_ref().map(|_| since.1.unwrap_or(now_ms));
            let held =
                |s: Option<i64>| s.is_some_and(|t| now_ms - t >= rule.for_.as_millis() as i64);
            let for_text = if rule.for_.is_zero() {
                String::new()
            } else {
                format!(" for {}s", rule.for_.as_secs())
            };
            if held(since.1) {
                let why = format!("{} {value} {}{for_text}", rule.metric, fail.unwrap());
                worsen(result, Status::Fail, why);
            } else if let Some(w) = warn.filter(|_| held(since.0)) {
                let w = breach(value, rule.warn_above, rule.warn_below).unwrap_or(w);
                worsen(
                    result,
                    Status::Warn,
                    format!("{} {value} {w}{for_text}", rule.metric),
                );
            }
        }
    }
}

/// Describes the bound crossed, if any.
fn breach(value: f64, above: Option<f64>, below: Option<f64>) -> Option<String> {
    if let Some(a) = above.filter(|a| value > *a) {
        return Some(format!("> {a}"));
    }
    if let Some(b) = below.filter(|b| value < *b) {
        return Some(format!("< {b}"));
    }
    None
}

fn worsen(r: &mut CheckResult, status: Status, why: String) {
    // Only healthy results are reinterpreted: a failed check already says
    // what is wrong, and must not be masked.
    if r.status >= status {
        return;
    }
    r.message = if r.message.is_empty() {
        format!("threshold: {why}")
    } else {
        format!("threshold: {why}; {}", r.message)
    };
    r.status = status;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(for_s: u64) -> Threshold {
        Threshold {
            metric: "latency_ms".into(),
            warn_above: Some(500.0),
            fail_above: Some(2000.0),
            warn_below: None,
            fail_below: None,
            for_: Duration::from_secs(for_s),
        }
    }

    fn result(latency: f64) -> CheckResult {
        let mut r = CheckResult::error("");
        r.status = Status::Ok;
        r.message = "HTTP 200".into();
        r.metrics.insert("latency_ms".into(), latency);
        r
    }

    #[test]
    fn immediate_rules() {
        let mut e = Evaluator::default();
        let mut r = result(800.0);
        e.apply(&[rule(0)], &mut r, 0);
        assert_eq!(r.status, Status::Warn);
        assert_eq!(r.message, "threshold: latency_ms 800 > 500; HTTP 200");
        let mut r = result(2500.0);
        e.apply(&[rule(0)], &mut r, 1);
        assert_eq!(r.status, Status::Fail);
        let mut r = result(100.0);
        e.apply(&[rule(0)], &mut r, 2);
        assert_eq!(r.status, Status::Ok);
    }

    #[test]
    fn for_requires_the_condition_to_hold() {
        let mut e = Evaluator::default();
        let rules = [rule(120)];
        let at = |e: &mut Evaluator, v: f64, t: i64| {
            let mut r = result(v);
            e.apply(&rules, &mut r, t);
            r.status
        };
        assert_eq!(at(&mut e, 800.0, 0), Status::Ok);
        assert_eq!(at(&mut e, 800.0, 60_000), Status::Ok);
        assert_eq!(at(&mut e, 800.0, 120_000), Status::Warn);
        // Interrupted: the clock restarts.
        assert_eq!(at(&mut e, 100.0, 130_000), Status::Ok);
        assert_eq!(at(&mut e, 800.0, 140_000), Status::Ok);
        assert_eq!(at(&mut e, 800.0, 260_000), Status::Warn);
    }

    #[test]
    fn failed_checks_are_not_masked() {
        let mut e = Evaluator::default();
        let mut r = result(9999.0);
        r.status = Status::Fail;
        r.message = "HTTP 500".into();
        e.apply(&[rule(0)], &mut r, 0);
        assert_eq!((r.status, r.message.as_str()), (Status::Fail, "HTTP 500"));
    }
}
