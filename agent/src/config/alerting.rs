//! The alerting part of the configuration: `[[notifier]]`,
//! `[[escalation]]` (with its `[[escalation.level]]`s) and
//! `[[maintenance]]`, checked into types that can only hold valid values.
//!
//! It owns the *shape* of alerting rules (selectors, levels, windows) and
//! their validation with located errors; it does not decide anything about
//! incidents (that is [`crate::escalation`]).

use super::raw::{RawEscalation, RawMaintenance, RawNotifier};
use super::{ConfigError, Source, check_name};
use outpost_plugin_host::Endpoint;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// Default alerting window: a target must be hard down this long before an
/// incident opens. The soft/hard model already filters blips; one more
/// minute keeps a short restart from paging anyone.
pub const DEFAULT_ALERT_AFTER: Duration = Duration::from_secs(60);
/// Default time a level has to acknowledge before the next is told.
pub const DEFAULT_ACK_WITHIN: Duration = Duration::from_secs(15 * 60);
/// Default time allowed for one delivery attempt of a notifier.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest `keepalive`: the engine looks at timers every 250 ms, and a
/// receiver re-posted more often than once a second gains nothing.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

/// Which targets a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every target.
    All,
    /// A target by name (a sensor, system, service, or `peer:<agent>`).
    Name(String),
    /// Targets whose category is this.
    Category(String),
    /// Targets carrying this label value.
    Label(String, String),
}

impl Selector {
    /// Parses `*`, `name`, `peer:agent`, `category:web` or
    /// `label:team=core`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        if s == "*" {
            Ok(Selector::All)
        } else if let Some(c) = s.strip_prefix("category:") {
            check_name(c)?;
            Ok(Selector::Category(c.to_string()))
        } else if let Some(l) = s.strip_prefix("label:") {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("`{s}`: write label:key=value"))?;
            Ok(Selector::Label(k.to_string(), v.to_string()))
        } else {
            check_name(s.strip_prefix("peer:").unwrap_or(s))?;
            Ok(Selector::Name(s.to_string()))
        }
    }

    /// Whether a target with these attributes is covered.
    pub fn matches(
        &self,
        name: &str,
        category: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        match self {
            Selector::All => true,
            Selector::Name(n) => n == name,
            Selector::Category(c) => category == Some(c.as_str()),
            Selector::Label(k, v) => labels.get(k) == Some(v),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::All => f.write_str("*"),
            Selector::Name(n) => f.write_str(n),
            Selector::Category(c) => write!(f, "category:{c}"),
            Selector::Label(k, v) => write!(f, "label:{k}={v}"),
        }
    }
}

/// `[[notifier]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// Unique name, used by escalation levels.
    pub name: String,
    /// Built-in plugin name or absolute path.
    pub plugin: String,
    /// Time allowed per delivery attempt.
    pub timeout: Duration,
    /// Re-post (`reminder`) every incident this notifier was told about
    /// this often while it is unresolved, acknowledged or not (for
    /// receivers that expire an alert nobody re-posts, like Alertmanager).
    pub keepalive: Option<Duration>,
    /// Explicit allow-list; `None` means what the config names.
    pub allow: Option<Vec<Endpoint>>,
    /// Plugin configuration.
    pub config: super::PluginConfig,
}

/// One level of an escalation policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Notifier names.
    pub notify: Vec<String>,
    /// Time to acknowledge before the next level is told.
    pub ack_within: Duration,
}

/// `[[escalation]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationPolicy {
    /// Name.
    pub name: String,
    /// Covered targets.
    pub targets: Vec<Selector>,
    /// How long a target must be hard down before an incident opens.
    pub alert_after: Duration,
    /// Remind the current level this often until acknowledged.
    pub repeat_every: Option<Duration>,
    /// Announce resolution to every level told.
    pub notify_on_resolve: bool,
    /// Levels, first to last (at least one).
    pub levels: Vec<Level>,
}

impl EscalationPolicy {
    /// Whether the policy covers a target.
    pub fn covers(
        &self,
        name: &str,
        category: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.targets
            .iter()
            .any(|s| s.matches(name, category, labels))
    }
}

/// When a maintenance window applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// Once, from/to (Unix ms).
    Once {
        /// Start.
        from_ms: i64,
        /// End (exclusive).
        to_ms: i64,
    },
    /// Every week on these days (Monday = 0) from `start_min` minutes after
    /// midnight UTC, for `duration`.
    Weekly {
        /// Days, Monday first.
        days: [bool; 7],
        /// Minutes after 00:00 UTC.
        start_min: u32,
        /// Length.
        duration: Duration,
    },
}

impl Window {
    /// Whether the window covers `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.end_if_active(now_ms).is_some()
    }

    /// The end (Unix ms) of the occurrence covering `now_ms`, if any.
    pub fn end_if_active(&self, now_ms: i64) -> Option<i64> {
        match self {
            Window::Once { from_ms, to_ms } => {
                (*from_ms..*to_ms).contains(&now_ms).then_some(*to_ms)
            }
            Window::Weekly {
                days,
                start_min,
                duration,
            } => {
                // Look at today's and earlier days' occurrences: one may run
                // past midnight (or span days).
                let day_ms = 86_400_000i64;
                let len = duration.as_millis() as i64;
                let today = now_ms.div_euclid(day_ms);
                (0..=len / day_ms + 1).find_map(|back| {
                    let day = today - back;
                    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
                    let weekday = (day + 3).rem_euclid(7) as usize;
                    let start = day * day_ms + *start_min as i64 * 60_000;
                    (days[weekday] && now_ms >= start && now_ms < start + len)
                        .then_some(start + len)
                })
            }
        }
    }
}

/// `[[maintenance]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Covered targets.
    pub targets: Vec<Selector>,
    /// When.
    pub window: Window,
    /// Why.
    pub reason: String,
}

impl Maintenance {
    /// Whether this window covers a target now.
    pub fn covers(
        &self,
        name: &str,
        category: Option<&str>,
        labels: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> bool {
        self.window.active(now_ms)
            && self
                .targets
                .iter()
                .any(|s| s.matches(name, category, labels))
    }
}

/// Parses a target list; a plain name must be a known sensor, system,
/// service or peer.
fn selectors(
    src: &Source,
    key: &str,
    list: &[Spanned<String>],
    at: usize,
    target_known: &dyn Fn(&str) -> bool,
) -> Result<Vec<Selector>, ConfigError> {
    if list.is_empty() {
        return Err(src.err(
            at,
            key,
            "names no target: write e.g. [\"*\"], [\"web\"], [\"category:db\"] or [\"label:team=core\"]",
        ));
    }
    list.iter()
        .map(|s| {
            let sel = Selector::parse(s.get_ref()).map_err(|m| src.err(s.span().start, key, m))?;
            if let Selector::Name(n) = &sel
                && !target_known(n)
            {
                return Err(src.err(
                    s.span().start,
                    key,
                    format!("no sensor, system, service or peer is named `{n}`"),
                ));
            }
            Ok(sel)
        })
        .collect()
}

/// Checks one `[[notifier]]` (not its plugin: the loader does that).
pub(super) fn check_notifier(
    src: &Source,
    index: usize,
    n: RawNotifier,
) -> Result<(NotifierConfig, usize, usize), ConfigError> {
    let name = n.name.get_ref().clone();
    check_name(&name)
        .map_err(|m| src.err(n.name.span().start, format!("notifier[{index}].name"), m))?;
    let timeout = n.timeout.map(|d| d.0).unwrap_or(DEFAULT_NOTIFY_TIMEOUT);
    if timeout.is_zero() {
        return Err(src.err(n.name.span().start, "timeout", "must be more than 0"));
    }
    let keepalive = match n.keepalive {
        Some(k) if k.get_ref().0 < MIN_KEEPALIVE => {
            return Err(src.err(
                k.span().start,
                format!("notifier[{index}].keepalive"),
                format!("must be at least 1s, got {}ms", k.get_ref().0.as_millis()),
            ));
        }
        k => k.map(|k| k.into_inner().0),
    };
    let allow = super::parse_allow(src, n.allow.as_deref())?;
    let plugin_at = n.plugin.span().start;
    let (config, config_at) = super::PluginConfig::from_table(src, n.config, plugin_at)?;
    Ok((
        NotifierConfig {
            name,
            plugin: n.plugin.into_inner(),
            timeout,
            keepalive,
            allow,
            config,
        },
        plugin_at,
        config_at,
    ))
}

/// Checks one `[[escalation]]` against the known notifiers and targets.
pub(super) fn check_escalation(
    src: &Source,
    index: usize,
    e: Spanned<RawEscalation>,
    notifiers: &[NotifierConfig],
    target_known: &dyn Fn(&str) -> bool,
) -> Result<EscalationPolicy, ConfigError> {
    let at = e.span().start;
    let e = e.into_inner();
    let name = e.name.get_ref().clone();
    check_name(&name)
        .map_err(|m| src.err(e.name.span().start, format!("escalation[{index}].name"), m))?;
    let targets = selectors(src, "targets", &e.targets, at, target_known)?;
    if e.level.is_empty() {
        return Err(src.err(
            at,
            "level",
            format!(
                "escalation `{name}` has no level: add [[escalation.level]] with notify = [\"...\"]"
            ),
        ));
    }
    let mut levels = Vec::new();
    for (i, l) in e.level.into_iter().enumerate() {
        let lat = l.span().start;
        let l = l.into_inner();
        if l.notify.is_empty() {
            return Err(src.err(lat, format!("level[{i}].notify"), "names no notifier"));
        }
        for n in &l.notify {
            if !notifiers.iter().any(|c| &c.name == n.get_ref()) {
                let known: Vec<&str> = notifiers.iter().map(|c| c.name.as_str()).collect();
                return Err(src.err(
                    n.span().start,
                    format!("level[{i}].notify"),
                    format!(
                        "no notifier is named `{}` (defined: {})",
                        n.get_ref(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        let ack_within = l.ack_within.map(|d| d.0).unwrap_or(DEFAULT_ACK_WITHIN);
        if ack_within.is_zero() {
            return Err(src.err(lat, format!("level[{i}].ack_within"), "must be more than 0"));
        }
        levels.push(Level {
            notify: l.notify.into_iter().map(Spanned::into_inner).collect(),
            ack_within,
        });
    }
    let repeat_every = e.repeat_every.map(|d| d.0);
    if repeat_every.is_some_and(|d| d < Duration::from_secs(1)) {
        return Err(src.err(at, "repeat_every", "must be at least 1s"));
    }
    Ok(EscalationPolicy {
        name,
        targets,
        alert_after: e.alert_after.map(|d| d.0).unwrap_or(DEFAULT_ALERT_AFTER),
        repeat_every,
        notify_on_resolve: e.notify_on_resolve.unwrap_or(true),
        levels,
    })
}

/// Parses an RFC 3339 timestamp (`2026-12-24T22:00:00Z`, `…+01:00`) into Unix ms.
pub use outpost_store::parse_timestamp;

fn parse_clock(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a time of day: write e.g. \"02:30\" (UTC)"))?;
    match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(format!(
            "`{s}` is not a time of day: write e.g. \"02:30\" (UTC)"
        )),
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Checks one `[[maintenance]]`.
pub(super) fn check_maintenance(
    src: &Source,
    m: Spanned<RawMaintenance>,
    target_known: &dyn Fn(&str) -> bool,
) -> Result<Maintenance, ConfigError> {
    let at = m.span().start;
    let m = m.into_inner();
    let targets = selectors(src, "maintenance.targets", &m.targets, at, target_known)?;
    let window = match (&m.from, &m.to, &m.days) {
        (Some(from), Some(to), None) => {
            let f = parse_timestamp(from.get_ref())
                .map_err(|e| src.err(from.span().start, "maintenance.from", e))?;
            let t = parse_timestamp(to.get_ref())
                .map_err(|e| src.err(to.span().start, "maintenance.to", e))?;
            if t <= f {
                return Err(src.err(to.span().start, "maintenance.to", "must be after `from`"));
            }
            if m.start.is_some() || m.duration.is_some() {
                return Err(src.err(
                    at,
                    "maintenance",
                    "a one-off window (from/to) takes no `start` or `duration`",
                ));
            }
            Window::Once {
                from_ms: f,
                to_ms: t,
            }
        }
        (None, None, Some(days)) => {
            let mut set = [false; 7];
            for d in days {
                let v = d.get_ref().to_ascii_lowercase();
                match WEEKDAYS.iter().position(|w| v.starts_with(w)) {
                    Some(i) => set[i] = true,
                    None if v == "daily" || v == "*" => set = [true; 7],
                    None => {
                        return Err(src.err(
                            d.span().start,
                            "maintenance.days",
                            format!("`{}` is not a weekday: write mon, tue, wed, thu, fri, sat, sun or daily", d.get_ref()),
                        ));
                    }
                }
            }
            let start = m.start.as_ref().ok_or_else(|| {
                src.err(
                    at,
                    "maintenance.start",
                    "a weekly window needs `start` (\"HH:MM\", UTC)",
                )
            })?;
            let start_min = parse_clock(start.get_ref())
                .map_err(|e| src.err(start.span().start, "maintenance.start", e))?;
            let duration = m.duration.map(|d| d.0).ok_or_else(|| {
                src.err(
                    at,
                    "maintenance.duration",
                    "a weekly window needs `duration`, e.g. \"2h\"",
                )
            })?;
            if duration.is_zero() || duration > Duration::from_secs(7 * 86_400) {
                return Err(src.err(at, "maintenance.duration", "must be between 1s and 7 days"));
            }
            Window::Weekly {
                days: set,
                start_min,
                duration,
            }
        }
        _ => {
            return Err(src.err(
                at,
                "maintenance",
                "write either `from` and `to` (a one-off window) or `days`, `start` and `duration` (a weekly one)",
            ));
        }
    };
    Ok(Maintenance {
        targets,
        window,
        reason: m.reason.unwrap_or_else(|| "maintenance".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_match() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "core".to_string())].into();
        assert!(Selector::parse("*").unwrap().matches("x", None, &labels));
        assert!(
            Selector::parse("web")
                .unwrap()
                .matches("web", None, &labels)
        );
        assert!(!Selector::parse("web").unwrap().matches("db", None, &labels));
        assert!(
            Selector::parse("category:db")
                .unwrap()
                .matches("x", Some("db"), &labels)
        );
        assert!(
            Selector::parse("label:team=core")
                .unwrap()
                .matches("x", None, &labels)
        );
        assert!(
            !Selector::parse("label:team=ops")
                .unwrap()
                .matches("x", None, &labels)
        );
        assert!(Selector::parse("peer:edge-1").is_ok());
        assert!(Selector::parse("label:team").is_err());
        assert!(Selector::parse("a b").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_timestamp("1970-01-01T01:00Z").unwrap(), 3_600_000);
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(
            parse_timestamp("2026-12-01T00:00:00Z").unwrap(),
            outpost_store::utc_ms(2026, 12, 1).unwrap()
        );
        assert!(parse_timestamp("2026-12-01T00:00:00").is_err());
        assert!(parse_timestamp("2026-13-01T00:00:00Z").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn weekly_windows_cross_midnight() {
        // Sundays 23:00 UTC for 2 h.
        let w = Window::Weekly {
            days: [false, false, false, false, false, false, true],
            start_min: 23 * 60,
            duration: Duration::from_secs(7200),
        };
        let sun = outpost_store::utc_ms(2026, 11, 29).unwrap(); // a Sunday
        assert!(!w.active(sun + 22 * 3_600_000));
        assert!(w.active(sun + 23 * 3_600_000 + 1));
        assert!(w.active(sun + 24 * 3_600_000 + 30 * 60_000)); // Monday 00:30
        assert_eq!(
            w.end_if_active(sun + 24 * 3_600_000),
            Some(sun + 25 * 3_600_000)
        );
        assert!(!w.active(sun + 25 * 3_600_000));
        let once = Window::Once {
            from_ms: 10,
            to_ms: 20,
        };
        assert!(once.active(10) && once.active(19) && !once.active(20));
    }
}
