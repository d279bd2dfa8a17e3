//! Certificate expiry for `https` URLs: fetches the server's leaf
//! certificate through the agent's `tls-peer-certificate` host call (the
//! same network allow-list applies) and grades the days left against
//! `cert_warn_days` / `cert_fail_days`. Grading is a pure function.

use outpost_plugin_sdk::Status;
use std::time::Duration;

/// What the plugin needs of the certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
}

/// Seconds per day.
const DAY: f64 = 86_400.0;

/// Fetches the leaf certificate of `host:port`.
pub fn fetch(host: &str, port: u16, timeout: Duration) -> Result<CertInfo, String> {
    #[cfg(target_family = "wasm")]
    {
        use outpost_plugin_sdk::bindings::sensor::outpost::plugin::host;
        let ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        host::tls_peer_certificate(host, port, None, ms).map(|c| CertInfo {
            subject: c.subject,
            issuer: c.issuer,
            not_before: c.not_before,
            not_after: c.not_after,
            dns_names: c.dns_names,
        })
    }
    #[cfg(not(target_family = "wasm"))]
    {
        let _ = (host, port, timeout);
        Err("tls-peer-certificate is only available inside the Outpost agent".into())
    }
}

/// Days from `now` (Unix seconds) until the certificate expires; negative
/// once it has.
pub fn days_left(cert: &CertInfo, now: i64) -> f64 {
    (cert.not_after - now) as f64 / DAY
}

/// Grades a certificate: `(status, message)`, e.g.
/// `(Fail, "certificate for example.com expires in 2 days (fail below 3)")`.
pub fn grade(
    host: &str,
    cert: &CertInfo,
    now: i64,
    warn_days: f64,
    fail_days: f64,
) -> (Status, String) {
    if now < cert.not_before {
        let days = (cert.not_before - now) as f64 / DAY;
        return (
            Status::Fail,
            format!(
                "certificate for {host} is not valid yet (valid in {})",
                days_text(days)
            ),
        );
    }
    let left = days_left(cert, now);
    if left <= 0.0 {
        return (
            Status::Fail,
            format!("certificate for {host} expired {} ago", days_text(-left)),
        );
    }
    let limit = |n: f64| format_number(n);
    if left < fail_days {
        (
            Status::Fail,
            format!(
                "certificate for {host} expires in {} (fail below {})",
                days_text(left),
                limit(fail_days)
            ),
        )
    } else if left < warn_days {
        (
            Status::Warn,
            format!(
                "certificate for {host} expires in {} (warn below {})",
                days_text(left),
                limit(warn_days)
            ),
        )
    } else {
        (
            Status::Ok,
            format!("certificate for {host} expires in {}", days_text(left)),
        )
    }
}

/// `2 days`, `1 day`, `5 hours` (under a day), whole units rounded down.
fn days_text(days: f64) -> String {
    if days < 1.0 {
        let hours = (days * 24.0).floor() as i64;
        return if hours == 1 {
            "1 hour".into()
        } else {
            format!("{hours} hours")
        };
    }
    let d = days.floor() as i64;
    if d == 1 {
        "1 day".into()
    } else {
        format!("{d} days")
    }
}

/// `3` for 3.0, `2.5` for 2.5.
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn cert(days_from_now: f64) -> CertInfo {
        CertInfo {
            subject: "CN=example.com".into(),
            issuer: "CN=Test CA".into(),
            not_before: NOW - 30 * 86_400,
            not_after: NOW + (days_from_now * DAY) as i64,
            dns_names: vec!["example.com".into()],
        }
    }

    #[test]
    fn grades_against_thresholds() {
        let g = |d: f64| grade("example.com", &cert(d), NOW, 14.0, 3.0);
        assert_eq!(
            g(2.1),
            (
                Status::Fail,
                "certificate for example.com expires in 2 days (fail below 3)".into()
            )
        );
        assert_eq!(
            g(10.5),
            (
                Status::Warn,
                "certificate for example.com expires in 10 days (warn below 14)".into()
            )
        );
        assert_eq!(
            g(90.2),
            (
                Status::Ok,
                "certificate for example.com expires in 90 days".into()
            )
        );
        assert_eq!(g(1.0).0, Status::Fail);
        assert_eq!(g(14.0).0, Status::Ok);
        assert_eq!(
            g(0.25).1,
            "certificate for example.com expires in 6 hours (fail below 3)"
        );
        assert_eq!(
            g(-3.5),
            (
                Status::Fail,
                "certificate for example.com expired 3 days ago".into()
            )
        );
    }

    #[test]
    fn not_yet_valid_fails() {
        let mut c = cert(90.0);
        c.not_before = NOW + 2 * 86_400 + 60;
        assert_eq!(
            grade("h", &c, NOW, 14.0, 3.0),
            (
                Status::Fail,
                "certificate for h is not valid yet (valid in 2 days)".into()
            )
        );
    }

    #[test]
    fn days_left_is_fractional() {
        assert!((days_left(&cert(2.5), NOW) - 2.5).abs() < 1e-9);
    }
}
