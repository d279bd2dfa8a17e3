//! One check run: probe each host of the connection string in turn, then
//! judge the set's view against the expectations and build the result.
//!
//! [`evaluate`] is pure (it takes the probe outcomes), so the judgement is
//! unit-tested without sockets; [`run`] adds the probing and the time
//! budget.

use crate::config::{ExpectedRole, Settings};
use crate::connection::ProbeError;
use crate::probe::{self, ProbeOptions, Role, ServerReport};
use crate::uri::HostPort;
use outpost_plugin_sdk::{CheckResult, Status};
use serde_json::json;
use std::time::{Duration, Instant};

/// Time kept back from the agent's deadline to build and return the
/// result: a check that ran into the agent's own limit would be reported as
/// a generic time-limit error instead of this sensor's precise message.
const RESULT_MARGIN: Duration = Duration::from_millis(100);

/// The outcome of probing one host.
pub type Outcome = (HostPort, Result<ServerReport, ProbeError>);

/// Runs the check with `remaining` time left in the agent's call.
pub fn run(settings: &Settings, remaining: Duration, nonce: Option<&str>) -> CheckResult {
    let budget = remaining.saturating_sub(RESULT_MARGIN);
    let budget = settings.timeout.map_or(budget, |t| t.min(budget));
    let deadline = Instant::now() + budget;
    let opts = ProbeOptions {
        credential: settings.conn.credential.as_ref(),
        app_name: settings.conn.app_name.as_deref(),
        nonce,
        connect_timeout: settings.conn.connect_timeout_ms.map(Duration::from_millis),
    };
    let hosts = &settings.conn.hosts;
    let mut outcomes = Vec::with_capacity(hosts.len());
    for (i, host) in hosts.iter().enumerate() {
        // Each host gets a fair share of what is left, so one that hangs
        // cannot starve the others of their chance to answer.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (hosts.len() - i) as u32;
        let r = probe::probe(host, &opts, Instant::now() + share);
        outcomes.push((host.clone(), r));
    }
    evaluate(settings, &outcomes)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn latency(r: &ServerReport) -> Duration {
    r.connect + r.hello_rtt + r.ping_rtt
}

/// Judges probe outcomes against the expectations.
pub fn evaluate(settings: &Settings, outcomes: &[Outcome]) -> CheckResult {
    let total = outcomes.len();
    let seeds: Vec<&HostPort> = outcomes.iter().map(|(h, _)| h).collect();
    let single = total == 1;

    // Per-host problems that make an answering host unusable.
    let problem = |r: &ServerReport| -> Option<String> {
        let expected = settings.replica_set.as_deref()?;
        match r.set_name.as_deref() {
            Some(s) if s == expected => None,
            Some(s) => Some(format!("reports replica set `{s}`, expected `{expected}`")),
            None => Some(format!(
                "is not a replica-set member ({}), expected set `{expected}`",
                r.role.name()
            )),
        }
    };
    let mut good: Vec<&ServerReport> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut all_denied = true;
    for (host, r) in outcomes {
        match r {
            Ok(rep) => match problem(rep) {
                None => good.push(rep),
                Some(p) => {
                    all_denied = false;
                    failures.push(format!("{host} {p}"));
                }
            },
            Err(e) => {
                all_denied &= matches!(e, ProbeError::Denied);
                failures.push(format!("{host}: {e}"));
            }
        }
    }
    let reachable = outcomes.iter().filter(|(_, r)| r.is_ok()).count();

    // The set's view: who is primary, which members were named.
    let primary_seed = good.iter().find(|r| r.writable).map(|r| r.host.clone());
    let named_primary: Option<String> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok()?.primary.clone())
        .next();
    let mut named: Vec<HostPort> = Vec::new();
    for rep in outcomes.iter().filter_map(|(_, r)| r.as_ref().ok()) {
        for m in rep.members.iter().chain(rep.primary.iter()) {
            if let Ok(hp) = HostPort::parse(m)
                && !named.contains(&hp)
            {
                named.push(hp);
            }
        }
    }
    let unchecked: Vec<String> = named
        .iter()
        .filter(|h| !seeds.contains(h))
        .map(|h| h.to_string())
        .collect();
    let named_primary_unchecked = named_primary
        .as_deref()
        .and_then(|p| HostPort::parse(p).ok())
        .filter(|p| !seeds.contains(&p))
        .map(|p| p.to_string());
    let mut set_names: Vec<&str> = good.iter().filter_map(|r| r.set_name.as_deref()).collect();
    set_names.sort();
    set_names.dedup();

    let host_details: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(h, r)| match r {
            Ok(rep) => json!({
                "host": h.to_string(),
                "reachable": true,
                "role": rep.role.name(),
                "writable": rep.writable,
                "set_name": rep.set_name,
                "primary": rep.primary,
                "me": rep.me,
                "max_wire_version": rep.max_wire_version,
                "connect_ms": ms(rep.connect),
                "hello_ms": ms(rep.hello_rtt),
                "auth_ms": rep.auth_time.map(ms),
                "rtt_ms": ms(rep.ping_rtt),
                "legacy_hello": rep.legacy_hello,
                "auth_mechanism": rep.auth_mechanism,
                "problem": problem(rep),
            }),
            Err(e) => json!({"host": h.to_string(), "reachable": false, "error": e.to_string()}),
        })
        .collect();
    let details = json!({
        "hosts": host_details,
        "set": {
            "names": set_names,
            "primary": primary_seed.as_ref().map(|h| h.to_string()).or(named_primary.clone()),
            "members": named.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            // Named by the servers but not in the connection string: the
            // sensor's allow-list is the connection string, so these are
            // reported, never contacted.
            "unchecked": unchecked,
        },
    });

    let mut result = if good.is_empty() {
        let status = if all_denied {
            Status::Error
        } else {
            Status::Fail
        };
        let msg = if single {
            failures.join("; ")
        } else {
            format!("no usable host among {total}: {}", failures.join("; "))
        };
        CheckResult::new(status, msg)
    } else {
        let worst = good.iter().map(|r| latency(r)).max().unwrap_or_default();
        let max =
            |f: fn(&ServerReport) -> Duration| good.iter().map(|r| f(r)).max().unwrap_or_default();
        let wire = good
            .iter()
            .find(|r| r.writable)
            .map(|r| r.max_wire_version)
            .unwrap_or_else(|| good.iter().map(|r| r.max_wire_version).min().unwrap_or(0));
        let set_label = |names: &[&str]| match names {
            [] => String::new(),
            [one] => format!(" of replica set `{one}`"),
            _ => String::new(),
        };
        let ok_msg = if single {
            let r = good[0];
            format!(
                "{}{} (maxWireVersion {}{}), ping {:.1} ms",
                r.role.name(),
                set_label(&set_names),
                r.max_wire_version,
                if r.legacy_hello {
                    ", legacy isMaster"
                } else {
                    ""
                },
                ms(r.ping_rtt)
            )
        } else {
            let primary = match (&primary_seed, &named_primary) {
                (Some(p), _) => format!("primary {p}"),
                (None, Some(p)) => format!("primary {p} (named by the members, not checked)"),
                (None, None) => "no primary".to_string(),
            };
            let label = match set_names.as_slice() {
                [one] => format!("replica set `{one}`: "),
                _ => String::new(),
            };
            format!("{label}{primary}, {reachable} of {total} hosts reachable")
        };
        let mut r = CheckResult::ok(ok_msg)
            .latency(worst)
            .metric("connect_ms", ms(max(|r| r.connect)))
            .metric("hello_ms", ms(max(|r| r.hello_rtt)))
            .metric("rtt_ms", ms(max(|r| r.ping_rtt)))
            .metric("max_wire_version", wire as f64);
        if good.iter().any(|r| r.auth_time.is_some()) {
            r = r.metric("auth_ms", ms(max(|r| r.auth_time.unwrap_or_default())));
        }

        // Role expectation.
        let describe = |rs: &[&ServerReport]| -> String {
            rs.iter()
                .map(|r| format!("{} is {}", r.host, r.role.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let elsewhere = named_primary_unchecked
            .as_ref()
            .map(|p| format!("; the set names {p} as primary, which is not in `uri` (not contacted: outside the sensor's allow-list)"))
            .unwrap_or_default();
        match settings.role {
            ExpectedRole::Primary if primary_seed.is_none() => r.worsen(
                Status::Fail,
                if single {
                    format!("{}, expected primary{elsewhere}", describe(&good))
                } else {
                    format!(
                        "no writable primary among the hosts: {}{elsewhere}",
                        describe(&good)
                    )
                },
            ),
            ExpectedRole::Secondary if !good.iter().any(|r| r.role == Role::Secondary) => r.worsen(
                Status::Fail,
                if single {
                    format!("{}, expected secondary", describe(&good))
                } else {
                    format!("no secondary among the hosts: {}", describe(&good))
                },
            ),
            _ => {}
        }
        if !failures.is_empty() {
            r.worsen(
                Status::Warn,
                format!(
                    "{} of {total} hosts usable; {}",
                    good.len(),
                    failures.join("; ")
                ),
            );
        }
        if set_names.len() > 1 {
            r.worsen(
                Status::Warn,
                format!(
                    "the hosts report different replica sets: {}",
                    set_names.join(", ")
                ),
            );
        }
        if let Some(f) = settings.fail_latency.filter(|f| worst > *f) {
            r.worsen(
                Status::Fail,
                format!(
                    "latency {:.1} ms above fail_latency {} ms",
                    ms(worst),
                    f.as_millis()
                ),
            );
        } else if let Some(w) = settings.warn_latency.filter(|w| worst > *w) {
            r.worsen(
                Status::Warn,
                format!(
                    "latency {:.1} ms above warn_latency {} ms",
                    ms(worst),
                    w.as_millis()
                ),
            );
        }
        r
    };
    result = result
        .metric("hosts_total", total as f64)
        .metric("hosts_reachable", reachable as f64)
        .metric(
            "primary_reachable",
            if primary_seed.is_some() { 1.0 } else { 0.0 },
        )
        .details(details);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(json: &str) -> Settings {
        let c: Config = outpost_plugin_sdk::parse_config(json).unwrap();
        Settings::from_config(&c).unwrap()
    }

    fn rep(host: &str, role: Role, set: Option<&str>) -> ServerReport {
        ServerReport {
            host: HostPort::parse(host).unwrap(),
            connect: Duration::from_millis(2),
            hello_rtt: Duration::from_millis(1),
            auth_time: None,
            ping_rtt: Duration::from_millis(1),
            writable: matches!(role, Role::Primary | Role::Standalone | Role::Mongos),
            role,
            max_wire_version: 21,
            set_name: set.map(Into::into),
            primary: None,
            me: None,
            members: vec![],
            legacy_hello: false,
            auth_mechanism: None,
        }
    }

    fn ok(r: ServerReport) -> Outcome {
        (r.host.clone(), Ok(r))
    }

    fn metric(r: &CheckResult, name: &str) -> f64 {
        r.metrics[name]
    }

    #[test]
    fn single_host_roles_against_expectations() {
        let s = settings(r#"{"uri": "mongodb://a:1", "role": "primary"}"#);
        let r = evaluate(&s, &[ok(rep("a:1", Role::Primary, Some("rs")))]);
        assert_eq!(r.status, Status::Ok, "{}", r.message);
        assert!(
            r.message
                .starts_with("primary of replica set `rs` (maxWireVersion 21)"),
            "{}",
            r.message
        );
        let r = evaluate(&s, &[ok(rep("a:1", Role::Secondary, Some("rs")))]);
        assert_eq!(
            (r.status, r.message.as_str()),
            (Status::Fail, "a:1 is secondary, expected primary")
        );
        // A standalone is writable, so it passes `primary`.
        let r = evaluate(&s, &[ok(rep("a:1", Role::Standalone, None))]);
        assert_eq!(r.status, Status::Ok);
        let s = settings(r#"{"uri": "mongodb://a:1", "role": "secondary"}"#);
        let r = evaluate(&s, &[ok(rep("a:1", Role::Standalone, None))]);
        assert_eq!(
            (r.status, r.message.as_str()),
            (Status::Fail, "a:1 is standalone, expected secondary")
        );
    }

    #[test]
    fn set_view_with_an_unreachable_member() {
        let s = settings(r#"{"uri": "mongodb://a:1,b:2,c:3/?replicaSet=rs", "role": "primary"}"#);
        let mut sec = rep("b:2", Role::Secondary, Some("rs"));
        sec.primary = Some("a:1".into());
        let r = evaluate(
            &s,
            &[
                ok(rep("a:1", Role::Primary, Some("rs"))),
                ok(sec),
                (HostPort::parse("c:3").unwrap(), Err(ProbeError::Refused)),
            ],
        );
        assert_eq!(r.status, Status::Warn);
        assert_eq!(r.message, "2 of 3 hosts usable; c:3: connection refused");
        assert_eq!(metric(&r, "hosts_reachable"), 2.0);
        assert_eq!(metric(&r, "primary_reachable"), 1.0);
        assert_eq!(r.details_value().unwrap()["set"]["primary"], "a:1");
    }

    #[test]
    fn wrong_set_and_unreachable() {
        let s = settings(r#"{"uri": "mongodb://a:1", "replica_set": "rs"}"#);
        let r = evaluate(&s, &[ok(rep("a:1", Role::Primary, Some("other")))]);
        assert_eq!(
            (r.status, r.message.as_str()),
            (
                Status::Fail,
                "a:1 reports replica set `other`, expected `rs`"
            )
        );
        let r = evaluate(
            &s,
            &[(HostPort::parse("a:1").unwrap(), Err(ProbeError::Denied))],
        );
        assert_eq!(r.status, Status::Error);
    }

    #[test]
    fn primary_outside_the_seed_list_is_reported_not_followed() {
        let s = settings(r#"{"uri": "mongodb://b:2", "role": "primary"}"#);
        let mut sec = rep("b:2", Role::Secondary, Some("rs"));
        sec.primary = Some("evil:9".into());
        sec.members = vec!["b:2".into(), "evil:9".into()];
        let r = evaluate(&s, &[ok(sec)]);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message
                .contains("names evil:9 as primary, which is not in `uri`"),
            "{}",
            r.message
        );
        assert_eq!(
            r.details_value().unwrap()["set"]["unchecked"],
            json!(["evil:9"])
        );
    }

    #[test]
    fn latency_thresholds() {
        let s =
            settings(r#"{"uri": "mongodb://a:1", "warn_latency": "1ms", "fail_latency": "1s"}"#);
        let r = evaluate(&s, &[ok(rep("a:1", Role::Primary, None))]);
        assert_eq!(r.status, Status::Warn);
        assert!(
            r.message.contains("above warn_latency 1 ms"),
            "{}",
            r.message
        );
        let s = settings(r#"{"uri": "mongodb://a:1", "fail_latency": "3ms"}"#);
        let r = evaluate(&s, &[ok(rep("a:1", Role::Primary, None))]);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.latency_ms, 4.0);
    }
}
