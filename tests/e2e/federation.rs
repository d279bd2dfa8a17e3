//! Federation end to end: real agents (`outpost run`) on loopback ports
//! polling each other, remote services used as members, loop safety,
//! multi-vantage agreement, push mode, and misbehaving peers.

use crate::util::{Agent, Fault, FaultyPeer, Mode, ReservedPort, Target, entry, http_get, rss_mib};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A fast http sensor on `url`: hard down after one failure, up after one
/// success.
fn sensor(name: &str, url: &str) -> String {
    format!(
        "[[sensor]]\nname = \"{name}\"\nplugin = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nretry_interval = \"100ms\"\nfail_after = 1\nrecover_after = 1\nconfig = {{ url = \"{url}\" }}\n"
    )
}

fn peer(name: &str, port: u16) -> String {
    format!(
        "[[peer]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
    )
}

fn state(v: &Value) -> &str {
    v["state"].as_str().unwrap_or("")
}

fn reason(v: &Value) -> &str {
    v["reason"].as_str().unwrap_or("")
}

#[test]
fn a_remote_service_changes_the_local_state_and_reason() {
    let db = Target::start(Mode::Up);
    let web = Target::start(Mode::Up);
    let mut b = Agent::new("b");
    b.launch(&format!(
        "{}\n[[service]]\nname = \"api\"\ndepends_on = [\"db\"]\n",
        sensor("db", &db.url())
    ));
    let mut a = Agent::new("a");
    a.launch(&format!(
        "{}\n{}\n[[service]]\nname = \"shop\"\ncategory = \"Shop\"\ndepends_on = [\"web\", \"peer:b/api\"]\n",
        sensor("web", &web.url()),
        peer("b", b.port)
    ));
    // c aggregates a, and through it sees b (relayed), once.
    let mut c = Agent::new("c");
    c.launch(&format!(
        "{}\n[[service]]\nname = \"fleet\"\ndepends_on = [\"peer:b/api\"]\n",
        peer("a", a.port)
    ));

    a.wait_status("shop up", WAIT, |s| {
        state(entry(s, "services", "shop")) == "up"
    });
    db.set(Mode::Error);
    let s = a.wait_status("shop down", WAIT, |s| {
        state(entry(s, "services", "shop")) == "down"
    });
    let shop = entry(&s, "services", "shop");
    let r = reason(shop);
    assert!(
        r.starts_with(
            "shop is down because peer:b/api is down on b: api is down because sensor db is down:"
        ),
        "{r}"
    );
    assert!(r.contains("HTTP 500"), "{r}");
    // The remote cause is not a local target: no local cause to link to.
    assert_eq!(shop["caused_by"], serde_json::json!([]));
    let members = shop["members"].as_array().unwrap();
    assert_eq!(
        members[1],
        serde_json::json!({"name": "peer:b/api", "state": "down"})
    );

    // c sees b through a (relayed), and its own service follows.
    let s = c.wait_status("fleet down via a", WAIT, |s| {
        state(entry(s, "services", "fleet")) == "down"
    });
    let relayed = entry(&s, "peers", "b");
    assert_eq!(relayed["via"], serde_json::json!(["a"]), "{relayed}");
    assert_eq!(relayed["mode"], "relayed");

    db.set(Mode::Up);
    a.wait_status("shop up again", WAIT, |s| {
        state(entry(s, "services", "shop")) == "up"
    });
    c.wait_status("fleet up again", WAIT, |s| {
        state(entry(s, "services", "fleet")) == "up"
    });
}

#[test]
fn cycles_do_not_amplify() {
    // A → B → C → A, and A ↔ B.
    let t = Target::start(Mode::Up);
    let names = ["a", "b", "c"];
    let mut agents: Vec<Agent> = names.iter().map(|n| Agent::new(n)).collect();
    let sensor_of = |i: usize| sensor(&format!("s{i}"), &t.url());
    // Each agent's port is known once it runs: start them, then give each
    // its peers.
    for (i, a) in agents.iter_mut().enumerate() {
        a.launch(&sensor_of(i));
    }
    let ports: Vec<u16> = agents.iter().map(|a| a.port).collect();
    let peers_of = |i: usize| -> String {
        match i {
            0 => peer("b", ports[1]),
            1 => format!("{}{}", peer("c", ports[2]), peer("a", ports[0])),
            _ => peer("a", ports[0]),
        }
    };
    for (i, a) in agents.iter().enumerate() {
        a.reconfigure(&format!("{}{}", sensor_of(i), peers_of(i)));
    }
    for a in &agents {
        a.wait_status("every agent sees the other two", WAIT, |s| {
            let p = s["peers"].as_array().unwrap();
            p.len() == 2 && p.iter().all(|p| p["state"] == "fresh")
        });
    }
    // Over many poll rounds, no document grows or includes its own agent.
    let size = |a: &Agent| {
        let (_, _, body) = http_get(&a.api("/api/v1/status"), &[]);
        body.len()
    };
    let first: Vec<usize> = agents.iter().map(size).collect();
    // Many poll rounds: every agent took five new documents from each of
    // its peers (`last_seen_ms` moves with each new document).
    let seen = |a: &Agent| -> Vec<i64> {
        let s = a.status();
        s["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["last_seen_ms"].as_i64().unwrap_or(0))
            .collect()
    };
    let mut rounds = vec![vec![std::collections::BTreeSet::new(); 2]; agents.len()];
    agents[0].wait_until("five poll rounds per peer on every agent", WAIT, || {
        for (a, rounds) in agents.iter().zip(rounds.iter_mut()) {
            for (r, at) in rounds.iter_mut().zip(seen(a)) {
                r.insert(at);
            }
        }
        rounds.iter().flatten().all(|r| r.len() > 5)
    });
    for (i, a) in agents.iter().enumerate() {
        let s = a.status();
        let peers = s["peers"].as_array().unwrap();
        let mut listed: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap()).collect();
        listed.sort();
        let mut others: Vec<&str> = names.iter().copied().filter(|n| *n != names[i]).collect();
        others.sort();
        assert_eq!(listed, others, "agent {} lists {listed:?}", names[i]);
        for p in peers {
            assert_ne!(p["agent_id"], s["agent"]["id"], "self-inclusion: {p}");
        }
        let now = size(a);
        // Only timestamps vary; a relayed copy of a whole document would
        // at least double it.
        assert!(
            now < first[i] + first[i] / 4,
            "agent {} grew from {} to {now} bytes",
            names[i],
            first[i]
        );
    }
}

#[test]
fn k_of_n_vantage_points_must_agree() {
    let targets: Vec<Target> = (0..3).map(|_| Target::start(Mode::Up)).collect();
    let mut b = Agent::new("b");
    b.launch(&sensor("api", &targets[1].url()));
    let mut c = Agent::new("c");
    c.launch(&sensor("api", &targets[2].url()));
    let mut a = Agent::new("a");
    a.launch(&format!(
        "{}{}{}\n[[service]]\nname = \"api-global\"\ndepends_on = [\"api\", \"peer:b/api\", \"peer:c/api\"]\nagree = 2\n",
        sensor("api", &targets[0].url()),
        peer("b", b.port),
        peer("c", c.port)
    ));
    a.wait_status("all vantage points up", WAIT, |s| {
        state(entry(s, "services", "api-global")) == "up"
    });
    // One vantage point sees a failure: not enough to count as down.
    targets[0].set(Mode::Error);
    let s = a.wait_status("one vantage point down", WAIT, |s| {
        state(entry(s, "sensors", "api")) == "down"
            && state(entry(s, "services", "api-global")) != "up"
    });
    let g = entry(&s, "services", "api-global");
    assert_eq!(state(g), "degraded", "{g}");
    assert!(
        reason(g).contains("1 of 3 vantage points see it down, agreement needs 2"),
        "{g}"
    );
    // Hold it for a few rounds: it must stay degraded while the local
    // sensor is checked and both peers are polled four more times each.
    let clocks = |s: &Value| -> Vec<i64> {
        ["api"]
            .iter()
            .map(|n| {
                entry(s, "sensors", n)["last_check_ms"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .chain(
                ["b", "c"]
                    .iter()
                    .map(|n| entry(s, "peers", n)["last_seen_ms"].as_i64().unwrap_or(0)),
            )
            .collect()
    };
    let mut rounds = vec![std::collections::BTreeSet::new(); 3];
    a.wait_until("four more rounds, degraded throughout", WAIT, || {
        let s = a.status();
        let g = entry(&s, "services", "api-global");
        assert_eq!(state(g), "degraded", "{g}");
        for (r, at) in rounds.iter_mut().zip(clocks(&s)) {
            r.insert(at);
        }
        rounds.iter().all(|r| r.len() > 4)
    });
    // A second agent agrees: down, with the local sensor as the local cause.
    targets[1].set(Mode::Error);
    let s = a.wait_status("two agree", WAIT, |s| {
        state(entry(s, "services", "api-global")) == "down"
    });
    let g = entry(&s, "services", "api-global");
    assert!(
        reason(g).starts_with("api-global is down (2 of 3 vantage points see it down"),
        "{g}"
    );
    assert_eq!(g["caused_by"], serde_json::json!(["api"]));
    targets[0].set(Mode::Up);
    targets[1].set(Mode::Up);
    a.wait_status("recovered", WAIT, |s| {
        state(entry(s, "services", "api-global")) == "up"
    });
}

#[test]
fn misbehaving_peers_go_stale_and_the_agent_stays_healthy() {
    let faults = [
        ("hang", Fault::Hang),
        ("trickle", Fault::Trickle),
        ("malformed", Fault::Malformed),
        ("huge", Fault::Huge),
        ("wrongschema", Fault::WrongSchema),
    ];
    let servers: Vec<(&str, FaultyPeer)> = faults
        .iter()
        .map(|(n, f)| (*n, FaultyPeer::start(*f, n)))
        .collect();
    let mut body = String::new();
    let mut members = vec![];
    for (n, srv) in &servers {
        body.push_str(&format!(
            "[[peer]]\nname = \"{n}\"\nurl = \"{}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
            srv.url()
        ));
        members.push(format!("\"peer:{n}/api\""));
    }
    let gone = ReservedPort::new();
    body.push_str(&format!(
        "[[peer]]\nname = \"gone\"\nurl = \"http://{}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
        gone.addr()
    ));
    members.push("\"peer:gone/api\"".into());
    body.push_str(&format!(
        "[[service]]\nname = \"remote\"\ndepends_on = [{}]\nrule = \"any\"\n",
        members.join(", ")
    ));
    let a = Agent::start(&body);
    let s = a.wait_status("every faulty peer stale", WAIT, |s| {
        s["peers"].as_array().unwrap().len() == 6
            && s["peers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] == "stale")
    });
    let why = |n: &str| reason(entry(&s, "peers", n)).to_string();
    assert!(
        why("hang").contains("no complete answer within 250 ms"),
        "{}",
        why("hang")
    );
    assert!(
        why("trickle").contains("no complete answer within 250 ms"),
        "{}",
        why("trickle")
    );
    assert!(
        why("malformed").contains("malformed status JSON"),
        "{}",
        why("malformed")
    );
    assert!(
        why("huge").contains("more than the 4 MiB limit"),
        "{}",
        why("huge")
    );
    assert!(
        why("wrongschema").contains("unsupported schema_version 2"),
        "{}",
        why("wrongschema")
    );
    assert!(why("gone").contains("cannot connect"), "{}", why("gone"));
    // Their services are unknown, not down.
    let remote = entry(&s, "services", "remote");
    assert_eq!(state(remote), "unknown", "{remote}");
    assert!(reason(remote).contains("is stale"), "{remote}");
    // The huge body was cut off near the limit, not read.
    let huge_sent = servers[3].1.sent.load(std::sync::atomic::Ordering::SeqCst);
    // Each poll stops a little past the 4 MiB limit (socket buffers
    // included), so the whole 1 GiB is never read.
    assert!(huge_sent < 1 << 30, "{huge_sent} bytes sent");
    // The agent stays healthy: it answers promptly and stays small.
    let t0 = Instant::now();
    let (code, _, _) = http_get(&a.api("/healthz"), &[]);
    assert_eq!(code, 200);
    assert!(t0.elapsed() < Duration::from_secs(1));
    let rss = rss_mib(a.pid());
    assert!(rss < 300, "agent RSS {rss} MiB");
}
