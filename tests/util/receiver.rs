//! A real HTTP receiver on loopback that records every request (for
//! notifier tests) and answers as scripted per path.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON (Null if it is not JSON).
    pub json: serde_json::Value,
    /// When it arrived.
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type Script = HashMap<String, VecDeque<(u16, Option<u64>)>>;

/// The receiver.
pub struct Receiver {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// Listens on a free port.
    pub fn start() -> Receiver {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Listens on `port` (e.g. one that refused connections before).
    pub fn start_on(port: u16) -> Receiver {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return Self::serve(l),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot listen on {port}: {e}"),
            }
        }
    }

    /// A receiver that does not listen yet (only its URL is used).
    pub fn unstarted(port: u16) -> Receiver {
        Receiver {
            port,
            log: Arc::default(),
            script: Arc::default(),
        }
    }

    fn serve(l: TcpListener) -> Receiver {
        let r = Receiver {
            port: l.local_addr().unwrap().port(),
            log: Arc::default(),
            script: Arc::default(),
        };
        let (log, script) = (r.log.clone(), r.script.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (log, script) = (log.clone(), script.clone());
                std::thread::spawn(move || serve_one(s, &log, &script));
            }
        });
        r
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next answers for `path`: (status, Retry-After seconds); 200
    /// once the script is used up.
    pub fn script(&self, path: &str, answers: &[(u16, Option<u64>)]) {
        self.script
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(answers.iter().copied());
    }

    /// Requests to `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// All requests.
    pub fn all(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `path` has seen `n` requests; panics with the agent's
    /// logs after `timeout`.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration, agent: &super::Agent) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests after {timeout:?}: {:?}\nlogs:\n{}",
                got.len(),
                got.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
                agent.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn serve_one(mut s: TcpStream, log: &Mutex<Vec<Request>>, script: &Mutex<Script>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let (status, retry_after) = script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|q| q.pop_front())
        .unwrap_or((200, None));
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    log.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
        json,
        at: Instant::now(),
        status,
    });
    let extra = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
    let text = if status == 200 { "ok" } else { "not now" };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{text}",
        text.len()
    );
}
