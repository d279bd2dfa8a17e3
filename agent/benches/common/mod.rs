//! What the benchmarks share: process CPU and memory from `/proc`, a
//! scrape of the agent's `/metrics`, and a loopback HTTP server in a separate process
//! (this same executable, re-run with `OUTPOST_BENCH_SERVER=1`), so its CPU
//! time is not counted as the agent's.
//!
//! Not every bench uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Set in the environment of the server process.
pub const SERVER_ENV: &str = "OUTPOST_BENCH_SERVER";

/// Re-runs this executable as the server; returns it and its port.
pub fn spawn_server() -> (Child, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap())
}

/// The server process: prints its port, then answers every request with
/// HTTP/1.1 `200` and a small JSON body, keep-alive, a thread per
/// connection.
pub fn serve() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", l.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let body = b"{\"status\":\"up\"}";
    let mut msg = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let _ = s.set_nodelay(true);
        let msg = msg.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut pending = Vec::new();
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    if s.write_all(&msg).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// User + system CPU of a live process.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / hz)
}

/// (RssAnon, VmRSS) in KiB.
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// `GET /metrics` of the agent (empty while it does not answer).
pub fn scrape(addr: std::net::SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nhost: bench\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A status board of `n` up sensors, as a running agent would hold it.
pub fn status_board(n: i64) -> std::sync::Arc<outpost::status::Board> {
    let board = std::sync::Arc::new(outpost::status::Board::default());
    for i in 0..n {
        board.put(outpost::status::SensorView {
            sensor: std::sync::Arc::new(outpost::config::SensorConfig {
                name: format!("sensor-{i:04}"),
                plugin: "http".into(),
                interval: std::time::Duration::from_secs(30),
                timeout: std::time::Duration::from_secs(10),
                jitter: std::time::Duration::ZERO,
                retry_interval: std::time::Duration::from_secs(10),
                fail_after: 3,
                recover_after: 2,
                category: Some("Bench".into()),
                description: None,
                labels: std::collections::BTreeMap::from([("team".into(), "core".into())]),
                allow: None,
                config: outpost::config::PluginConfig::default(),
                thresholds: vec![],
                origin: "bench".into(),
                maintenance: vec![],
            }),
            state: outpost::state::State::Up,
            since_ms: 1_700_000_000_000,
            reason: "2 consecutive successes".into(),
            flapping: false,
            last_check_ms: Some(1_700_000_000_000 + i),
            last_status: Some(outpost_plugin_host::Status::Ok),
            last_message: "HTTP 200 in 12 ms".into(),
            last_latency_ms: Some(12.5),
            offline: false,
        });
    }
    board
}
