//! What the benchmarks share: a loopback HTTP server in a separate process
//! (this same executable, re-run with `OUTPOST_BENCH_SERVER=1`), so its CPU
//! time is not counted as the agent's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

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
