//! Real receivers for the notifier tests: an HTTP/1.1 server on loopback
//! (a handler on [`super::http_server::HttpServer`]) that records every
//! request and answers what the test tells it, and the aiosmtpd SMTP
//! server of `tests/servers/smtp_server.py`.
#![allow(dead_code)]

use super::http_server::{HttpServer, Reply};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the receiver read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// The status the receiver answered.
    pub status: u16,
}

impl Recorded {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body parsed as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Answers queued per path, used before the default answer.
type Scripts = HashMap<String, VecDeque<Answer>>;

/// A recording HTTP server on `127.0.0.1:<port chosen by the OS>`.
pub struct Receiver {
    pub port: u16,
    answer: Arc<Mutex<Answer>>,
    scripts: Arc<Mutex<Scripts>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// The server answering (none while unstarted).
    _server: Option<HttpServer>,
}

impl Receiver {
    /// Starts answering `200 ok`.
    pub fn start() -> Receiver {
        Self::serve_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Serves on `l` (a [`super::ReservedPort`] that refused connections
    /// before, say).
    pub fn on(l: TcpListener) -> Receiver {
        Self::serve_on(l)
    }

    /// A receiver that does not listen (yet): only its URL is of use.
    pub fn unstarted(port: u16) -> Receiver {
        Receiver {
            port,
            answer: Arc::new(Mutex::new(Answer::new(200, "ok"))),
            scripts: Arc::default(),
            requests: Arc::default(),
            _server: None,
        }
    }

    fn serve_on(l: TcpListener) -> Receiver {
        let mut r = Receiver {
            port: l.local_addr().unwrap().port(),
            ..Self::unstarted(0)
        };
        let (answer, scripts, requests) = (r.answer.clone(), r.scripts.clone(), r.requests.clone());
        r._server = Some(HttpServer::on(l, move |req| {
            let a = scripts
                .lock()
                .unwrap()
                .get_mut(&req.path)
                .and_then(|q| q.pop_front())
                .unwrap_or_else(|| answer.lock().unwrap().clone());
            requests.lock().unwrap().push(Recorded {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                at: Instant::now(),
                status: a.status,
            });
            a.headers
                .iter()
                .fold(Reply::new(a.status, &a.body), |r, (n, v)| r.header(n, v))
        }));
        r
    }

    /// Queues answers for requests to `path`: (status, Retry-After
    /// seconds); later requests get the default answer.
    pub fn script(&self, path: &str, answers: &[(u16, Option<u64>)]) {
        let mut s = self.scripts.lock().unwrap();
        let q = s.entry(path.to_string()).or_default();
        for (status, retry_after) in answers {
            let mut a = Answer::new(*status, "scripted");
            if let Some(r) = retry_after {
                a = a.header("retry-after", &r.to_string());
            }
            q.push_back(a);
        }
    }

    /// Requests to `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `path` has had `n` requests; panics with the agent's log
    /// after `timeout`.
    pub fn wait_for(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
        agent: &super::Agent,
    ) -> Vec<Recorded> {
        super::wait_some_or(
            timeout,
            || {
                let got = self.requests_to(path);
                (got.len() >= n).then_some(got)
            },
            || {
                let got = self.requests_to(path);
                format!(
                    "{path}: {} of {n} requests after {timeout:?}: {:?}\nlogs:\n{}",
                    got.len(),
                    got.iter()
                        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                        .collect::<Vec<_>>(),
                    agent.logs()
                )
            },
        )
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Changes what later requests get.
    pub fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received (panics otherwise).
    pub fn single(&self) -> Recorded {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected exactly one request, got {r:?}");
        r.into_iter().next().unwrap()
    }
}

/// The aiosmtpd server of `tests/servers/smtp_server.py`, writing each
/// received message as a JSON file into its own temporary directory.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts the server with extra arguments (`--auth u:p`,
    /// `--mechanisms LOGIN`, `--rcpt-reply "451 ..."`).
    pub fn start(args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 (run scripts/install-test-deps)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("smtp_server.py did not print its port (is aiosmtpd installed? run scripts/install-test-deps); got `{first}`")
        });
        SmtpServer { port, dir, child }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("msg-"))
                .and_then(|n| n.parse::<u32>().ok())
        });
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits (bounded) until `n` messages were received.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        super::wait_some_or(
            timeout + super::POLL_INTERVAL,
            || {
                let m = self.messages();
                (m.len() >= n || Instant::now() > deadline).then_some(m)
            },
            String::new,
        )
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
