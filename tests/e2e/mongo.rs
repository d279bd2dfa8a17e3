//! The `mongo` sensor against real wire-protocol peers on loopback:
//! MockupDB scripted as MongoDB servers (`tests/servers/mongo_server.py`),
//! plus raw TCP listeners that misbehave (silent, HTTP, garbage), through
//! `outpost plugin run mongo --json` and under a running agent.

use crate::util::{self, Agent, ReservedPort, run_plugin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A MockupDB server started by `mongo_server.py MODE ARGS...`; killed on drop.
struct MongoServer {
    port: u16,
    child: Child,
}

impl MongoServer {
    fn start(mode: &str, args: &[&str]) -> MongoServer {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/servers/mongo_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(mode)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed (scripts/install-test-deps)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("mongo_server.py {mode} printed no port (is mockupdb installed? run scripts/install-test-deps): {line:?}")
        });
        MongoServer { port, child }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mongo(config: Value) -> util::PluginRun {
    run_plugin("mongo", &config, &["--timeout", "5s"])
}

fn uri(hosts: &[&str], query: &str) -> String {
    format!("mongodb://{}/{query}", hosts.join(","))
}

fn expect(r: &util::PluginRun, status: &str, needle: &str) {
    assert_eq!(r.status(), status, "{r:?}");
    assert!(
        r.message().contains(needle),
        "expected `{needle}` in: {}",
        r.message()
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

fn details(r: &util::PluginRun) -> &Value {
    &r.json.as_ref().unwrap()["details"]
}

/// A raw listener: for each connection, reads once, then does `f`.
/// Returns the port and the number of accepted connections.
fn raw_server(f: fn(&mut TcpStream)) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                f(&mut s);
            });
        }
    });
    (port, count)
}

#[test]
fn primary_reports_role_set_and_metrics() {
    let p = MongoServer::start("primary", &[]);
    let r = mongo(json!({"uri": uri(&[&p.addr()], "?replicaSet=rs0"), "role": "primary"}));
    expect(
        &r,
        "ok",
        "primary of replica set `rs0` (maxWireVersion 21), ping",
    );
    assert_eq!(r.metric("max_wire_version"), Some(21.0));
    assert_eq!(r.metric("hosts_reachable"), Some(1.0));
    assert_eq!(r.metric("primary_reachable"), Some(1.0));
    for m in ["connect_ms", "hello_ms", "rtt_ms"] {
        assert!(r.metric(m).is_some_and(|v| v >= 0.0), "{m}: {r:?}");
    }
    let h = &details(&r)["hosts"][0];
    assert_eq!(h["role"], "primary");
    assert_eq!(h["set_name"], "rs0");
    assert_eq!(h["legacy_hello"], false);
    assert_eq!(details(&r)["set"]["primary"], p.addr());
}

#[test]
fn secondary_passes_secondary_and_fails_primary() {
    let s = MongoServer::start("secondary", &["--primary", "127.0.0.1:1"]);
    let cfg = |role: &str| json!({"uri": uri(&[&s.addr()], ""), "role": role});
    expect(
        &mongo(cfg("secondary")),
        "ok",
        "secondary of replica set `rs0`",
    );
    expect(&mongo(cfg("any")), "ok", "secondary");
    let r = mongo(cfg("primary"));
    expect(
        &r,
        "fail",
        &format!("{} is secondary, expected primary", s.addr()),
    );
    assert_eq!(r.metric("primary_reachable"), Some(0.0));
}

#[test]
fn standalone_mongos_and_arbiter_roles() {
    let st = MongoServer::start("standalone", &[]);
    expect(
        &mongo(json!({"uri": uri(&[&st.addr()], ""), "role": "primary"})),
        "ok",
        "standalone (maxWireVersion 21)",
    );
    expect(
        &mongo(json!({"uri": uri(&[&st.addr()], ""), "role": "secondary"})),
        "fail",
        "is standalone, expected secondary",
    );
    expect(
        &mongo(json!({"uri": uri(&[&st.addr()], ""), "replica_set": "rs0"})),
        "fail",
        "is not a replica-set member (standalone), expected set `rs0`",
    );
    let ms = MongoServer::start("mongos", &[]);
    expect(
        &mongo(json!({"uri": uri(&[&ms.addr()], "")})),
        "ok",
        "mongos",
    );
    let ar = MongoServer::start("arbiter", &[]);
    expect(
        &mongo(json!({"uri": uri(&[&ar.addr()], ""), "role": "secondary"})),
        "fail",
        "is arbiter, expected secondary",
    );
}

#[test]
fn replica_set_name_must_match() {
    let p = MongoServer::start("primary", &["--set", "prod"]);
    expect(
        &mongo(json!({"uri": uri(&[&p.addr()], "?replicaSet=staging")})),
        "fail",
        &format!(
            "{} reports replica set `prod`, expected `staging`",
            p.addr()
        ),
    );
}

#[test]
fn set_view_of_primary_secondary_and_a_refused_port() {
    let reserved = ReservedPort::new();
    let refused = reserved.addr();
    let p = MongoServer::start("primary", &[]);
    let s = MongoServer::start("secondary", &["--primary", &p.addr(), "--hosts", &p.addr()]);
    let r = mongo(json!({
        "uri": uri(&[&p.addr(), &s.addr(), &refused], "?replicaSet=rs0"),
        "role": "primary",
    }));
    expect(
        &r,
        "warn",
        &format!("2 of 3 hosts usable; {refused}: connection refused"),
    );
    assert_eq!(r.metric("hosts_total"), Some(3.0));
    assert_eq!(r.metric("hosts_reachable"), Some(2.0));
    assert_eq!(r.metric("primary_reachable"), Some(1.0));
    let d = details(&r);
    assert_eq!(d["set"]["primary"], p.addr());
    assert_eq!(d["hosts"][1]["role"], "secondary");
    assert_eq!(d["hosts"][2]["reachable"], false);

    // Without the refused port the set is healthy.
    let r =
        mongo(json!({"uri": uri(&[&p.addr(), &s.addr()], "?replicaSet=rs0"), "role": "primary"}));
    expect(
        &r,
        "ok",
        &format!(
            "replica set `rs0`: primary {}, 2 of 2 hosts reachable",
            p.addr()
        ),
    );
    // Only the secondary listed: role `primary` fails, and the primary it
    // names is reported, not contacted.
    let r = mongo(json!({"uri": uri(&[&s.addr()], ""), "role": "primary"}));
    expect(&r, "fail", "expected primary");
}

#[test]
fn members_named_by_a_reply_are_never_contacted() {
    // The "evil" port counts connections; it is named as a member and as
    // the primary by the servers, but it is not in the connection string.
    let (evil_port, accepted) = raw_server(|_| {});
    let evil = format!("127.0.0.1:{evil_port}");
    let p = MongoServer::start("primary", &["--hosts", &evil]);
    let s = MongoServer::start("secondary", &["--primary", &evil, "--hosts", &evil]);

    let r = mongo(json!({"uri": uri(&[&p.addr()], ""), "role": "primary"}));
    expect(&r, "ok", "primary");
    assert_eq!(details(&r)["set"]["unchecked"], json!([evil]));

    let r = mongo(json!({"uri": uri(&[&s.addr()], ""), "role": "primary"}));
    expect(
        &r,
        "fail",
        &format!(
            "the set names {evil} as primary, which is not in `uri` (not contacted: outside the sensor's allow-list)"
        ),
    );
    assert_eq!(r.metric("hosts_reachable"), Some(1.0));
    assert_eq!(details(&r)["set"]["unchecked"], json!([evil]));
    // The plugin runs have ended. Connect once ourselves: the listener
    // accepts in arrival order, so once it has counted ours, it has counted
    // any connection the plugin made before.
    let _probe = TcpStream::connect(&evil).unwrap();
    util::wait_until("the probe accepted", Duration::from_secs(10), || {
        accepted.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a host outside the connection string saw a connection"
    );
}

#[test]
fn scram_sha_256_authentication_succeeds_with_the_right_password() {
    let a = MongoServer::start("auth", &["--user", "monitor", "--password", "p@ss:w/rd"]);
    let r = mongo(
        json!({"uri": format!("mongodb://monitor:p%40ss%3Aw%2Frd@{}/?authSource=admin", a.addr())}),
    );
    expect(&r, "ok", "primary of replica set `rs0`");
    assert_eq!(details(&r)["hosts"][0]["auth_mechanism"], "SCRAM-SHA-256");
    assert!(r.metric("auth_ms").is_some(), "{r:?}");

    // The same server refuses a wrong password with its own message.
    let r = mongo(json!({"uri": format!("mongodb://monitor:wrong@{}/", a.addr())}));
    expect(
        &r,
        "fail",
        "authentication failed (SCRAM-SHA-256 as `monitor` on `admin`): Authentication failed. (code 18)",
    );
    // And without credentials its `ping` is refused.
    let r = mongo(json!({"uri": uri(&[&a.addr()], "")}));
    expect(
        &r,
        "fail",
        "`ping` failed: command ping requires authentication (code 13)",
    );
}

#[test]
fn refused_authentication_reports_the_server_message() {
    let a = MongoServer::start("auth-refuse", &[]);
    let r = mongo(json!({
        "uri": format!("mongodb://monitor:pencil@{}/?authMechanism=SCRAM-SHA-256", a.addr()),
    }));
    expect(
        &r,
        "fail",
        "authentication failed (SCRAM-SHA-256 as `monitor` on `admin`): Authentication failed. (code 18)",
    );
}

#[test]
fn servers_without_hello_get_the_legacy_handshake() {
    let old = MongoServer::start("old", &[]);
    let r = mongo(json!({"uri": uri(&[&old.addr()], ""), "role": "primary"}));
    expect(
        &r,
        "ok",
        "primary of replica set `rs0` (maxWireVersion 7, legacy isMaster)",
    );
    assert_eq!(details(&r)["hosts"][0]["legacy_hello"], true);
    // 3.4 hangs up on OP_MSG: the sensor reconnects and speaks OP_QUERY only.
    let ancient = MongoServer::start("ancient", &[]);
    let r = mongo(json!({"uri": uri(&[&ancient.addr()], "")}));
    expect(&r, "ok", "(maxWireVersion 5, legacy isMaster)");
}

#[test]
fn connection_refused() {
    let refused = ReservedPort::new();
    let port = refused.port;
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(&r, "fail", &format!("127.0.0.1:{port}: connection refused"));
    assert_eq!(r.metric("hosts_reachable"), Some(0.0));
}

#[test]
fn a_silent_server_times_out_within_the_configured_timeout() {
    // Reads the request and never answers: holds the connection until the
    // sensor hangs up (or 10 s, the read timeout, have passed).
    let (port, _) = raw_server(|s| {
        let mut buf = [0u8; 4096];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}"), "timeout": "700ms"}));
    expect(&r, "fail", "timed out after");
    assert!(
        r.message().contains("waiting for the reply to `hello`"),
        "{}",
        r.message()
    );
    // The sensor's own clock: it gave up at its 700 ms budget, not at the
    // agent's 5 s limit (process start and compilation are not counted).
    let ms: u64 = r
        .message()
        .split("timed out after ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((650..2500).contains(&ms), "{}", r.message());
}

#[test]
fn an_http_server_is_not_mongodb() {
    let (port, _) = raw_server(|s| {
        let _ = s.write_all(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(
        &r,
        "fail",
        "not a MongoDB server: it answered with text `HTTP/1.1 400 Bad Request` (an HTTP server is listening on this port)",
    );
}

#[test]
fn a_server_that_hangs_up_is_reported() {
    let (port, _) = raw_server(|s| {
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(
        &r,
        "fail",
        "the server closed the connection without answering",
    );
}

#[test]
fn malformed_replies_are_rejected() {
    // An absurd declared length (1 GiB).
    let (port, _) = raw_server(|s| {
        let mut m = Vec::new();
        for v in [1i32 << 30, 7, 1, 2013] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        let _ = s.write_all(&m);
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(
        &r,
        "fail",
        "malformed reply: declared message length 1073741824 is outside 26..=16793600 bytes",
    );
    // A plausible header and garbage where the BSON document should be.
    let (port, _) = raw_server(|s| {
        let mut m = Vec::new();
        for v in [16 + 4 + 1 + 12, 7, 1, 2013, 0i32] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.push(0);
        m.extend_from_slice(&12i32.to_le_bytes());
        m.extend_from_slice(&[0x77, b'x', 0, 1, 2, 3, 4, 0]);
        let _ = s.write_all(&m);
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(&r, "fail", "malformed reply: OP_MSG body: invalid BSON");
    // A header shorter than 16 bytes, then close.
    let (port, _) = raw_server(|s| {
        let _ = s.write_all(&[0x20, 0, 0, 0, 1, 2]);
    });
    let r = mongo(json!({"uri": format!("mongodb://127.0.0.1:{port}")}));
    expect(
        &r,
        "fail",
        "the server closed the connection after 6 of 16 bytes of a reply",
    );
}

#[test]
fn configuration_errors_name_the_field() {
    let cases = [
        (
            json!({"uri": "mongodb+srv://cluster0.example.net"}),
            "`uri`: `mongodb+srv://` needs DNS SRV/TXT lookups",
        ),
        (
            json!({"uri": "mongodb://h/?tls=true"}),
            "`uri`: `tls=true`: TLS is not supported",
        ),
        (
            json!({"uri": "mongodb://h", "role": "leader"}),
            "`role`: unknown role `leader`",
        ),
        (
            json!({"uri": "mongodb://h", "warn_latency": "2s", "fail_latency": "1s"}),
            "`warn_latency`: 2000 ms is above fail_latency",
        ),
        (
            json!({"uri": "mongodb://h", "timeout": "soon"}),
            "`timeout`: invalid duration",
        ),
    ];
    for (cfg, needle) in cases {
        let r = mongo(cfg.clone());
        assert_eq!(r.code, 2, "{cfg}: {r:?}");
        assert!(
            r.stderr.contains(needle),
            "{cfg}: expected `{needle}` in {}",
            r.stderr
        );
    }
}

#[test]
fn runs_under_the_agent_and_lands_in_the_status_api() {
    let p = MongoServer::start("primary", &[]);
    let agent = Agent::start(&format!(
        "[[sensor]]\nname = \"db\"\nplugin = \"mongo\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         config = {{ uri = \"mongodb://{}/?replicaSet=rs0\", role = \"primary\" }}\n",
        p.addr()
    ));
    let s = agent.wait_sensor("db", Duration::from_secs(20), |s| s["last_status"] == "ok");
    assert!(
        s["last_message"]
            .as_str()
            .unwrap()
            .starts_with("primary of replica set `rs0`"),
        "{s}"
    );
    assert_eq!(s["plugin"], "mongo");
    assert!(s["last_latency_ms"].as_f64().is_some(), "{s}");
}

#[test]
fn info_lists_the_configuration_keys() {
    let out = util::outpost()
        .args(["plugin", "info", "mongo", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "sensor");
    let names: Vec<&str> = v["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "uri",
            "timeout",
            "role",
            "warn_latency",
            "fail_latency",
            "replica_set"
        ]
    );
}
