//! The sensor's logic compiled natively (std::net instead of wasi:sockets)
//! against the MockupDB servers of `tests/servers/mongo_server.py`: a quick
//! check of the protocol conversation without the agent. The sandboxed runs
//! are in the workspace's e2e tests (`tests/e2e/mongo.rs`).

use outpost_plugin_mongo::check;
use outpost_plugin_mongo::config::{Config, Settings};
use outpost_plugin_sdk::{CheckResult, Status};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(mode: &str, args: &[&str]) -> Server {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/servers/mongo_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(mode)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .expect("mongo_server.py printed its port");
        Server { port, child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(json: &str) -> CheckResult {
    let c: Config = outpost_plugin_sdk::parse_config(json).unwrap();
    let s = Settings::from_config(&c).unwrap();
    check::run(&s, Duration::from_secs(5), None)
}

#[test]
fn scram_sha_256_against_the_script() {
    let s = Server::start("auth", &["--password", "p@ss"]);
    let r = run(&format!(
        r#"{{"uri": "mongodb://monitor:p%40ss@127.0.0.1:{}/"}}"#,
        s.port
    ));
    assert_eq!(r.status, Status::Ok, "{}", r.message);
    let r = run(&format!(
        r#"{{"uri": "mongodb://monitor:nope@127.0.0.1:{}/"}}"#,
        s.port
    ));
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.message.contains("Authentication failed. (code 18)"),
        "{}",
        r.message
    );
}

#[test]
fn legacy_servers() {
    for mode in ["old", "ancient"] {
        let s = Server::start(mode, &[]);
        let r = run(&format!(r#"{{"uri": "mongodb://127.0.0.1:{}/"}}"#, s.port));
        assert_eq!(r.status, Status::Ok, "{mode}: {}", r.message);
        assert!(r.message.contains("legacy isMaster"), "{}", r.message);
    }
}
