//! The status page at `/`: server-rendered HTML with inline CSS and no
//! script, nothing fetched from elsewhere. It shows the same data as
//! `/api/v1/status`: services grouped by category with state and reason,
//! a 90-day uptime bar per service and sensor (from the store's daily
//! rollups), systems, sensors, peers and recent incidents.
//!
//! A service's daily uptime is the lowest daily uptime among the local
//! sensors it depends on (directly or through systems): an upper bound of
//! its real availability when every sensor is required, and the usual
//! reading of a status-page bar. Remote members have no local rollups and
//! are left out of the bar (their state still counts in the state shown).
//!
//! Owns only presentation; reads the board and the database.

use crate::status::Snapshot;
use outpost_store::IncidentSummary;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// Days in an uptime bar.
pub const BAR_DAYS: u32 = 90;
/// Incidents listed on the page.
const PAGE_INCIDENTS: usize = 20;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn day(ms: i64) -> String {
    outpost_store::format_day(ms)
}

fn when(ms: i64) -> String {
    format!("{} UTC", outpost_store::format_utc(ms))
}

/// Local sensors under each node (through systems and services).
fn leaf_sensors(s: &Snapshot) -> HashMap<String, Vec<String>> {
    let sensors: HashSet<&str> = s.sensors.iter().map(|v| v.name()).collect();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    // Nodes are causes first, so members are done before their users.
    for n in &s.nodes {
        let mut leaves: Vec<String> = vec![];
        for m in &n.members {
            if sensors.contains(m.name.as_str()) {
                leaves.push(m.name.clone());
            } else if let Some(l) = out.get(&m.name) {
                leaves.extend(l.iter().cloned());
            }
        }
        leaves.sort();
        leaves.dedup();
        out.insert(n.name.clone(), leaves);
    }
    out
}

type Bar = Vec<(i64, Option<f64>)>;

fn bars(r: &outpost_store::Reader, names: &[String]) -> HashMap<String, Bar> {
    names
        .iter()
        .filter_map(|n| r.daily_uptime(n, BAR_DAYS).ok().map(|b| (n.clone(), b)))
        .collect()
}

fn combine(bars: &[&Bar]) -> Bar {
    let Some(first) = bars.first() else {
        return vec![];
    };
    (0..first.len())
        .map(|i| {
            let day = first[i].0;
            let vals: Vec<f64> = bars
                .iter()
                .filter_map(|b| b.get(i).and_then(|d| d.1))
                .collect();
            let min = vals.into_iter().reduce(f64::min);
            (day, min)
        })
        .collect()
}

fn render_bar(out: &mut String, bar: &Bar) {
    let known: Vec<f64> = bar.iter().filter_map(|d| d.1).collect();
    let summary = if known.is_empty() {
        "no data".to_string()
    } else {
        format!(
            "{:.2}% over {} day{}",
            known.iter().sum::<f64>() / known.len() as f64,
            known.len(),
            if known.len() == 1 { "" } else { "s" }
        )
    };
    let _ = write!(
        out,
        "<div class=\"uptime\" data-days=\"{}\" title=\"{}\">",
        bar.len(),
        esc(&summary)
    );
    for (d, pct) in bar {
        let (class, label) = match pct {
            None => ("none", "no data".to_string()),
            Some(p) if *p >= 99.9 => ("good", format!("{p:.2}%")),
            Some(p) if *p >= 99.0 => ("fair", format!("{p:.2}%")),
            Some(p) => ("bad", format!("{p:.2}%")),
        };
        let data = pct
            .map(|p| format!(" data-uptime=\"{p:.3}\""))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<span class=\"day {class}\"{data} title=\"{}: {label}\"></span>",
            day(*d)
        );
    }
    let _ = write!(
        out,
        "</div><div class=\"uptime-summary\">{}</div>",
        esc(&summary)
    );
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}\
header{background:#1d232b;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}\
main{max-width:1000px;margin:0 auto;padding:16px}section{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:16px 0;padding:12px 16px}\
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;color:#55606e;margin:12px 0 4px;text-transform:uppercase;letter-spacing:.04em}\
.node{border-top:1px solid #eef0f3;padding:8px 0}.node:first-of-type{border-top:0}.row{display:flex;gap:8px;align-items:center}\
.name{font-weight:600}.reason{color:#55606e;font-size:13px;margin:2px 0}\
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}\
.s-up,.s-ok{background:#1f9d55}.s-degraded,.s-soft,.s-recovering,.s-pending{background:#d69e2e}.s-down{background:#d64545}.s-unknown{background:#8a94a3}.s-stale{background:#d64545}.s-fresh{background:#1f9d55}\
.uptime{display:flex;gap:1px;height:24px;margin-top:4px}.day{flex:1;border-radius:1px;min-width:2px}\
.good{background:#1f9d55}.fair{background:#d69e2e}.bad{background:#d64545}.none{background:#dde1e6}\
.uptime-summary{font-size:12px;color:#55606e}table{width:100%;border-collapse:collapse;font-size:13px}\
td,th{text-align:left;padding:4px;border-top:1px solid #eef0f3}.offline{border-color:#d69e2e;background:#fff8e6}";

fn state_badge(out: &mut String, state: &str) {
    let _ = write!(out, "<span class=\"state s-{0}\">{0}</span>", esc(state));
}

/// Renders the page.
pub fn render(
    agent: &str,
    s: &Snapshot,
    bars: &HashMap<String, Bar>,
    incidents: &[IncidentSummary],
    now_ms: i64,
) -> String {
    let leaves = leaf_sensors(s);
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{0} status</title><style>{CSS}</style></head><body><header><h1>{0} status</h1>\
         <div>as of {1}</div></header><main>",
        esc(agent),
        when(now_ms)
    );
    if let Some(c) = s.connectivity.as_ref().filter(|c| !c.online) {
        let _ = write!(
            o,
            "<section id=\"offline\" class=\"offline\"><h2>This agent is offline</h2>\
             <p>No connectivity canary answers ({}) since {}. Failing checks are shown as unknown and open no incident until a canary answers again.</p></section>",
            esc(&c.reason),
            when(c.since_ms)
        );
    }
    let services: Vec<_> = s.nodes.iter().filter(|n| n.kind == "service").collect();
    let mut by_cat: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for n in &services {
        by_cat
            .entry(n.category.clone().unwrap_or_else(|| "Other".into()))
            .or_default()
            .push(*n);
    }
    o.push_str("<section id=\"services\"><h2>Services</h2>");
    if services.is_empty() {
        o.push_str("<p>No services are configured.</p>");
    }
    for (cat, list) in &by_cat {
        let _ = write!(
            o,
            "<div class=\"category\" data-category=\"{0}\"><h3>{0}</h3>",
            esc(cat)
        );
        for n in list {
            let _ = write!(
                o,
                "<div class=\"node service\" data-service=\"{0}\" data-state=\"{1}\"><div class=\"row\"><span class=\"name\">{0}</span>",
                esc(&n.name),
                n.state
            );
            state_badge(&mut o, n.state.as_str());
            let _ = write!(o, "</div>");
            if let Some(d) = &n.description {
                let _ = write!(o, "<div class=\"description\">{}</div>", esc(d));
            }
            let _ = write!(
                o,
                "<div class=\"reason\">{} · since {}</div>",
                esc(&n.reason),
                when(n.since_ms)
            );
            let parts: Vec<&Bar> = leaves
                .get(&n.name)
                .map(|l| l.iter().filter_map(|x| bars.get(x)).collect())
                .unwrap_or_default();
            render_bar(&mut o, &combine(&parts));
            o.push_str("</div>");
        }
        o.push_str("</div>");
    }
    o.push_str("</section>");

    let systems: Vec<_> = s.nodes.iter().filter(|n| n.kind == "system").collect();
    if !systems.is_empty() {
        o.push_str("<section id=\"systems\"><h2>Systems</h2>");
        for n in systems {
            let _ = write!(
                o,
                "<div class=\"node system\" data-system=\"{0}\" data-state=\"{1}\"><div class=\"row\"><span class=\"name\">{0}</span>",
                esc(&n.name),
                n.state
            );
            state_badge(&mut o, n.state.as_str());
            let _ = write!(
                o,
                "<span class=\"rule\">({})</span></div><div class=\"reason\">{}</div></div>",
                esc(&n.rule),
                esc(&n.reason)
            );
        }
        o.push_str("</section>");
    }

    o.push_str("<section id=\"sensors\"><h2>Sensors</h2>");
    for v in &s.sensors {
        let (state, reason) = if v.offline {
            (crate::state::State::Unknown, "agent offline")
        } else {
            (v.state, v.reason.as_str())
        };
        let _ = write!(
            o,
            "<div class=\"node sensor\" data-sensor=\"{0}\" data-state=\"{1}\"><div class=\"row\"><span class=\"name\">{0}</span>",
            esc(v.name()),
            state
        );
        state_badge(&mut o, state.as_str());
        let _ = write!(
            o,
            "</div><div class=\"reason\">{} · {}</div>",
            esc(reason),
            esc(&v.last_message)
        );
        if let Some(b) = bars.get(v.name()) {
            render_bar(&mut o, b);
        }
        o.push_str("</div>");
    }
    o.push_str("</section>");

    if !s.peers.is_empty() {
        o.push_str("<section id=\"peers\"><h2>Peers</h2><table><tr><th>Agent</th><th>State</th><th>Via</th><th>Reason</th></tr>");
        for p in &s.peers {
            let state = match p.state {
                crate::status::PeerState::Fresh => "fresh",
                crate::status::PeerState::Stale => "stale",
                crate::status::PeerState::Unknown => "unknown",
            };
            let _ = write!(
                o,
                "<tr class=\"peer\" data-peer=\"{0}\" data-state=\"{state}\"><td>{0}</td><td>",
                esc(&p.name)
            );
            state_badge(&mut o, state);
            let _ = write!(
                o,
                "</td><td>{}</td><td>{}</td></tr>",
                esc(&p.via.join(" → ")),
                esc(&p.reason)
            );
        }
        o.push_str("</table></section>");
    }

    if !s.providers.is_empty() {
        o.push_str("<section id=\"providers\"><h2>Providers</h2><table><tr><th>Provider</th><th>State</th><th>Objects</th><th>Sensors</th><th>Last discovery</th><th>Problems</th></tr>");
        for p in &s.providers {
            let _ = write!(
                o,
                "<tr class=\"provider\" data-provider=\"{0}\" data-state=\"{1}\"><td>{0} <span class=\"reason\">({2})</span></td><td>",
                esc(&p.name),
                esc(&p.state),
                esc(&p.plugin)
            );
            state_badge(&mut o, &p.state);
            let mut problems: Vec<&str> = p.error.iter().map(String::as_str).collect();
            problems.extend(p.problems.iter().map(String::as_str));
            let _ = write!(
                o,
                "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.objects,
                p.sensors,
                p.last_success_ms
                    .map(when)
                    .unwrap_or_else(|| "never".into()),
                esc(&problems.join("; "))
            );
        }
        o.push_str("</table></section>");
    }

    o.push_str("<section id=\"incidents\"><h2>Recent incidents</h2>");
    if incidents.is_empty() {
        o.push_str("<p>No incidents.</p>");
    } else {
        o.push_str("<table><tr><th>Target</th><th>State</th><th>Opened</th><th>Resolved</th></tr>");
        for i in incidents {
            let _ = write!(
                o,
                "<tr class=\"incident\" data-incident=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i.id,
                esc(&i.target),
                esc(&i.state),
                when(i.opened_at_ms),
                i.resolved_at_ms.map(when).unwrap_or_else(|| "-".into())
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section></main></body></html>");
    o
}

/// The page for `snap`, with the uptime bars and recent incidents read
/// from the store at `db` (blocking: call it off the async runtime).
pub fn page_html(agent: &str, snap: &Snapshot, db: &std::path::Path, now_ms: i64) -> String {
    let mut names: Vec<String> = snap.sensors.iter().map(|v| v.name().to_owned()).collect();
    names.sort();
    let reader = outpost_store::Reader::open(db).ok();
    let bars = reader.as_ref().map(|r| bars(r, &names)).unwrap_or_default();
    let incidents = reader
        .and_then(|r| r.incidents(false, PAGE_INCIDENTS).ok())
        .unwrap_or_default();
    render(agent, snap, &bars, &incidents, now_ms)
}

/// What to show when the page could not be rendered.
pub fn error_html(why: &str) -> String {
    format!("<!DOCTYPE html><p>cannot render the page: {}</p>", esc(why))
}
