//! Helpers shared by the end-to-end tests: run the real binary, start real
//! servers on loopback ports. Keep them here, not copied into test modules.
//!
//! Waiting: every wait polls a condition through [`wait_some_or`] (the one
//! poll loop; [`wait_until`], [`Agent::wait_until`], [`Agent::wait_status`],
//! [`Receiver::wait_for`] are built on it). A check that something did
//! *not* happen first waits for a positive event proving it would have by
//! then (a later timer fired, the outbox drained, a probe was counted). A
//! sleep in a test models the world (a slow server, an agent kept down),
//! and says so; it never stands in for a condition.
//!
//! Servers: [`http_server::HttpServer`] is the one scriptable HTTP server
//! (fault deliveries included); [`Target`], [`FaultyPeer`] and
//! [`Receiver`] are handlers on it.
#![allow(dead_code)]

pub mod alertmanager;
pub mod http_server;
pub mod prometheus;

use std::path::PathBuf;
use std::process::{Command, Output};

pub mod receiver;
pub use receiver::Receiver;

/// Path of the `outpost` binary under test: a hard link to the binary this
/// test run was built with, made once per run. Several checkouts may share
/// one cargo target directory, and a build in another checkout replaces
/// `target/debug/outpost` while this run's tests still start it; the link
/// keeps pointing at this build's file.
pub fn outpost_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_outpost"));
        let dir = std::env::temp_dir().join("outpost-e2e-bin");
        std::fs::create_dir_all(&dir).unwrap();
        // Links of earlier runs whose process is gone.
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let link = dir.join(std::process::id().to_string());
        let _ = std::fs::remove_file(&link);
        match std::fs::hard_link(&built, &link) {
            Ok(()) => link,
            Err(_) => built, // another file system: use it in place
        }
    })
    .clone()
}

/// A directory shared by all tests of this run for the compiled-component
/// cache, so each plugin is compiled once per run rather than per test.
pub fn shared_cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outpost-e2e-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `Command` for the binary with a quiet log and the shared cache.
pub fn outpost() -> Command {
    let mut c = Command::new(outpost_bin());
    c.env("OUTPOST_CACHE_DIR", shared_cache_dir())
        .env("RUST_LOG", "warn")
        .env_remove("OUTPOST_CONFIG");
    c
}

/// The outcome of `outpost plugin run ... --json`.
#[derive(Debug)]
pub struct PluginRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The parsed JSON result (None when the command printed none).
    pub json: Option<serde_json::Value>,
}

impl PluginRun {
    /// `status` of the result: "ok", "warn", "fail" or "error".
    pub fn status(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["status"].as_str())
            .unwrap_or("<none>")
    }
    /// `message` of the result.
    pub fn message(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["message"].as_str())
            .unwrap_or("<none>")
    }
    /// A metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.json.as_ref().and_then(|j| j["metrics"][name].as_f64())
    }
}

impl From<Output> for PluginRun {
    fn from(o: Output) -> Self {
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim()).ok();
        PluginRun {
            code: o.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            json,
        }
    }
}

/// Runs `outpost plugin run <plugin> --json --config <config> <extra...>`.
pub fn run_plugin(plugin: &str, config: &serde_json::Value, extra: &[&str]) -> PluginRun {
    let out = outpost()
        .args([
            "plugin",
            "run",
            plugin,
            "--json",
            "--config",
            &config.to_string(),
        ])
        .args(extra)
        .output()
        .expect("run outpost");
    out.into()
}

/// A test fixture component built by `agent/build.rs`.
pub fn fixture(name: &str) -> String {
    match name {
        "hostile" => outpost_plugin_host::fixtures::HOSTILE.to_string(),
        "wrong-world" => outpost_plugin_host::fixtures::WRONG_WORLD.to_string(),
        "hostile-provider" => outpost_plugin_host::fixtures::HOSTILE_PROVIDER.to_string(),
        "future-version" => outpost_plugin_host::fixtures::FUTURE_VERSION.to_string(),
        other => panic!("no fixture {other}"),
    }
}

// ---------------------------------------------------------------------------
// Waiting on conditions: the one poll loop of the tests.
// ---------------------------------------------------------------------------

/// How long the poll helpers pause between two looks at a condition. It is
/// the polling pace only: nothing is decided by it, every wait ends on its
/// condition (or fails at its deadline).
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    wait_some(what, timeout, || cond().then_some(()))
}

/// Polls `get` until it returns `Some`, and returns that value; panics
/// naming `what` after `timeout`.
pub fn wait_some<T>(what: &str, timeout: std::time::Duration, get: impl FnMut() -> Option<T>) -> T {
    wait_some_or(timeout, get, || {
        format!("{what}: not reached after {timeout:?}")
    })
}

/// [`wait_some`] whose panic message is `describe()` (called once, on
/// timeout: the last value seen, a server's log, ...).
pub fn wait_some_or<T>(
    timeout: std::time::Duration,
    mut get: impl FnMut() -> Option<T>,
    describe: impl FnOnce() -> String,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = get() {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            panic!("{}", describe());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------
// Real HTTP target whose behaviour a test switches, and the agent harness.
// ---------------------------------------------------------------------------

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a [`Target`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 "ok".
    Up = 0,
    /// 500.
    Error = 1,
    /// 200 after 1.5 s.
    Slow = 2,
    /// Accepts and closes at once (no HTTP answer).
    Reset = 3,
    /// Alternates 200 and 500 per request.
    Alternate = 4,
}

/// A real HTTP/1.1 server on loopback whose answers a test switches (a
/// handler on [`http_server::HttpServer`]).
pub struct Target {
    pub port: u16,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    times: Arc<Mutex<Vec<Instant>>>,
    _server: http_server::HttpServer,
}

impl Target {
    pub fn start(mode: Mode) -> Target {
        use http_server::Reply;
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let hits: Arc<AtomicUsize> = Arc::default();
        let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (m, h, t) = (mode.clone(), hits.clone(), times.clone());
        let server = http_server::HttpServer::start(move |_| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            t.lock().unwrap().push(Instant::now());
            match m.load(Ordering::SeqCst) {
                0 => Reply::new(200, "ok"),
                1 => Reply::new(500, "broken"),
                // Models a slow server: the answer comes late (not a wait).
                2 => Reply::new(200, "ok").delay(Duration::from_millis(1500)),
                3 => Reply::hang_up(),
                _ if n.is_multiple_of(2) => Reply::new(200, "ok"),
                _ => Reply::new(500, "broken"),
            }
        });
        Target {
            port: server.port,
            mode,
            hits,
            times,
            _server: server,
        }
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Times at which requests arrived.
    pub fn times(&self) -> Vec<Instant> {
        self.times.lock().unwrap().clone()
    }
}

/// A plain HTTP GET (HTTP/1.0, no keep-alive): (status, headers, body).
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    http_exchange("GET", url, "", b"", headers)
}

/// A POST of `body`: (status, body).
pub fn http_post(
    url: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let (code, _, body) = http_exchange("POST", url, content_type, body, headers);
    (code, body)
}

/// One HTTP/1.0 exchange: (status, head, body).
pub fn http_exchange(
    method: &str,
    url: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nhost: {authority}\r\n");
    if !content_type.is_empty() {
        req.push_str(&format!("content-type: {content_type}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A loopback port held by a socket that is bound but does not listen:
/// connections to it are refused, and no other process can take the port
/// meanwhile. [`ReservedPort::listen`] starts listening on that same port
/// (a receiver that was down comes up).
pub struct ReservedPort {
    socket: socket2::Socket,
    pub port: u16,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        ReservedPort { socket, port }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Listens on the reserved port.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(128).unwrap();
        self.socket.into()
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The real agent, started on a config in a temporary directory.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    pub port: u16,
    /// `[agent] name`.
    pub name: String,
    /// Extra environment of the agent process (secrets by reference).
    pub env: Vec<(String, String)>,
    child: Option<std::process::Child>,
}

impl Agent {
    /// Writes `[agent]` (data dir in the temp dir, listening on a port the
    /// kernel picks) followed by `body`, and starts `outpost run`.
    pub fn start(body: &str) -> Agent {
        let mut a = Agent::new("test");
        a.write_config(body);
        a.spawn();
        a
    }

    /// An agent called `name`, not started yet (its files can be written
    /// first). Its port is known once it runs ([`Agent::spawn`]).
    pub fn new(name: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("outpost.toml");
        Agent {
            dir,
            config,
            port: 0,
            name: name.to_string(),
            env: vec![],
            child: None,
        }
    }

    /// Rewrites the config and reloads it (SIGHUP); returns once the agent
    /// logged the reload.
    pub fn reconfigure(&self, body: &str) {
        let reloads = |a: &Agent| a.logs().matches("configuration reloaded").count();
        let before = reloads(self);
        self.write_config(body);
        self.signal(libc::SIGHUP);
        self.wait_until("configuration reloaded", Duration::from_secs(30), || {
            reloads(self) > before
        });
    }

    /// Polls `cond` until it holds; panics naming `what`, with the agent's
    /// logs, after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        self.wait_some(what, timeout, || cond().then_some(()))
    }

    /// Polls `get` until it returns `Some` and returns that value; panics
    /// naming `what`, with the agent's logs, after `timeout`.
    pub fn wait_some<T>(&self, what: &str, timeout: Duration, get: impl FnMut() -> Option<T>) -> T {
        wait_some_or(timeout, get, || {
            format!(
                "{what}: not reached on agent `{}` after {timeout:?}\nlogs:\n{}",
                self.name,
                self.logs()
            )
        })
    }

    /// Waits until `text` appears in the agent's log `n` times or more.
    pub fn wait_log(&self, text: &str, n: usize, timeout: Duration) {
        self.wait_until(&format!("{n} × `{text}` in the log"), timeout, || {
            self.logs().matches(text).count() >= n
        });
    }

    /// The value of one sample of `GET /metrics`, by its exact name and
    /// labels as the agent writes them (`outpost_outbox_pending`,
    /// `outpost_checks_total{sensor="web",status="ok"}`).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (code, _, body) = http_get(&self.api("/metrics"), &[]);
        assert_eq!(code, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Waits until the outbox holds no notification still to deliver
    /// (`outpost_outbox_pending 0`): every notification created so far has
    /// reached its receiver (or was given up), so none of them can still
    /// arrive.
    pub fn wait_outbox_drained(&self, timeout: Duration) {
        self.wait_until("outbox drained", timeout, || {
            self.metric("outpost_outbox_pending") == Some(0.0)
        });
    }

    /// Writes `body` (see [`Agent::write_config`]) and starts the agent.
    pub fn launch(&mut self, body: &str) {
        self.write_config(body);
        self.spawn();
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// A file in the agent's directory (token files, ...).
    pub fn write_file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Polls the status until `f` holds; panics with the logs after `timeout`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.poll(
            timeout,
            || self.status(),
            f,
            |s| {
                format!(
                    "{what}: not reached on agent `{}`; last status: {}",
                    self.name,
                    serde_json::to_string_pretty(s).unwrap()
                )
            },
        )
    }

    /// Reads `get` until `f` holds on it; after `timeout`,
    /// panics with `describe(last)` and the agent's logs.
    pub fn poll(
        &self,
        timeout: Duration,
        get: impl Fn() -> serde_json::Value,
        f: impl Fn(&serde_json::Value) -> bool,
        describe: impl Fn(&serde_json::Value) -> String,
    ) -> serde_json::Value {
        let last = std::cell::RefCell::new(serde_json::Value::Null);
        wait_some_or(
            timeout,
            || {
                let v = get();
                if f(&v) {
                    return Some(v);
                }
                *last.borrow_mut() = v;
                None
            },
            || format!("{}\nlogs:\n{}", describe(&last.borrow()), self.logs()),
        )
    }

    /// Rewrites the config (same `[agent]`).
    pub fn write_config(&self, body: &str) {
        let head = format!(
            "[agent]\nname = \"{}\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:0\"\n\n",
            self.name
        );
        let (top, rest) = match body.find("\n[") {
            _ if body.trim_start().starts_with('[') => ("", body),
            Some(i) => body.split_at(i),
            None => (body, ""),
        };
        std::fs::write(&self.config, format!("{top}\n{head}{rest}")).unwrap();
    }

    /// Starts the binary (again) and waits until its API listens.
    pub fn spawn(&mut self) {
        let listen_addr = self.dir.path().join("data").join("listen-addr");
        let _ = std::fs::remove_file(&listen_addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = std::process::Command::new(outpost_bin())
            .args(["run", "-c"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // The agent writes the address it listens on to data/listen-addr
        // once it listens (the kernel picks the port).
        let log_path = self.dir.path().join("agent.log");
        let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let child = self.child.as_mut().unwrap();
        self.port = wait_some_or(
            Duration::from_secs(60),
            || {
                let addr = std::fs::read_to_string(&listen_addr)
                    .ok()
                    .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok());
                if let Some(a) = addr {
                    return Some(a.port());
                }
                if let Some(st) = child.try_wait().unwrap() {
                    panic!("agent exited with {st} at start:\n{}", logs());
                }
                None
            },
            || format!("agent did not start listening:\n{}", logs()),
        );
    }

    /// Whether the agent process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("data").join("outpost.db")
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /api/v1/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, _, body) = http_get(&self.api("/api/v1/status"), &[]);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// One sensor's entry of the status.
    pub fn sensor(&self, name: &str) -> serde_json::Value {
        self.status()["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Polls `sensor(name)` until `f` holds; panics with the logs after `timeout`.
    pub fn wait_sensor(
        &self,
        name: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.poll(
            timeout,
            || self.sensor(name),
            f,
            |s| format!("condition not reached for `{name}`; last: {s}"),
        )
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take().unwrap();
        c.wait().unwrap()
    }

    /// Runs a CLI command against this agent's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        outpost()
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// `outpost history <sensor> --json --since 1h`.
    pub fn history(&self, sensor: &str) -> serde_json::Value {
        let out = self.cli(&[
            "history", sensor, "--json", "--since", "1h", "--limit", "10000",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Status documents: lookups, schema validation, metrics parsing.
// ---------------------------------------------------------------------------

/// The entry called `name` in `status[section]` (sensors, systems,
/// services, peers), or null.
pub fn entry<'a>(
    status: &'a serde_json::Value,
    section: &str,
    name: &str,
) -> &'a serde_json::Value {
    status[section]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Validates `json` against `docs/status.schema.json` with Python's
/// `jsonschema` (a real, independent validator); returns the errors.
pub fn schema_errors(json: &str) -> Vec<String> {
    let schema = repo_root().join("docs/status.schema.json");
    let code = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
doc = json.load(sys.stdin)
for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):
    print("/".join(str(p) for p in e.absolute_path) + ": " + e.message)
"#;
    let schema = schema.to_string_lossy().into_owned();
    let out = run_python(code, &[&schema], json.as_bytes(), "jsonschema");
    assert!(
        out.status.success(),
        "schema validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `python3 -c code args...` with `input` on stdin; `package` names
/// what `scripts/install-test-deps` installs for it.
fn run_python(code: &str, args: &[&str], input: &[u8], package: &str) -> Output {
    let mut child = Command::new("python3")
        .args(["-c", code])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 ({package} from scripts/install-test-deps): {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Parses a Prometheus text exposition with `prometheus_client`'s parser
/// (a real one); returns `{family: {"type": .., "samples": [[name, labels,
/// value], ..]}}` or panics with the parser's error.
pub fn parse_metrics(text: &str) -> serde_json::Value {
    let code = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let out = run_python(code, &[], text.as_bytes(), "prometheus_client");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A plain HTTP request with a body: (status, head, body).
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    http_exchange(method, url, "", body, headers)
}

// ---------------------------------------------------------------------------
// Misbehaving peers: real TCP servers on loopback.
// ---------------------------------------------------------------------------

/// How a [`FaultyPeer`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts, reads the request, never answers (keeps the socket open).
    Hang,
    /// Sends headers, then one byte of body every 100 ms.
    Trickle,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 announcing and streaming a 1 GiB body (generated on the fly,
    /// never allocated).
    Huge,
    /// 200 with a valid document of schema_version 2.
    WrongSchema,
}

/// A peer that misbehaves as told (a handler on
/// [`http_server::HttpServer`]); counts bytes it managed to send.
pub struct FaultyPeer {
    pub port: u16,
    pub sent: Arc<AtomicUsize>,
    _server: http_server::HttpServer,
}

impl FaultyPeer {
    pub fn start(fault: Fault, agent_name: &str) -> FaultyPeer {
        use http_server::{Delivery, Reply};
        let name = agent_name.to_string();
        let server = http_server::HttpServer::start(move |_| match fault {
            Fault::Hang => Reply::silent(),
            Fault::Trickle => Reply::new(
                200,
                &format!("{{\"schema_version\":1,\"agent\":{{\"name\":\"{name}\",\"id\":\"x\"}}}}"),
            )
            .header("content-type", "application/json")
            .deliver(Delivery::Trickle(Duration::from_millis(100))),
            Fault::Malformed => Reply::new(200, "{\"schema_version\": 1, \"agent\": {oops"),
            Fault::WrongSchema => Reply::new(
                200,
                &format!(
                    "{{\"schema_version\":2,\"agent\":{{\"name\":\"{name}\",\"id\":\"x\"}},\"sensors\":[],\"systems\":[],\"services\":[],\"peers\":[]}}"
                ),
            ),
            // Chunked, so the client cannot refuse it by its length alone.
            Fault::Huge => Reply::new(200, "")
                .header("content-type", "application/json")
                .deliver(Delivery::Endless(1 << 30)),
        });
        FaultyPeer {
            port: server.port,
            sent: server.sent_counter(),
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Sends only a request head (a declared body is never sent) and reads the
/// answer: (status, head, body).
pub fn http_head_only(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap();
    let mut s = TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_answer(&mut s)
}

/// POSTs `total` bytes with chunked encoding, stopping early when the
/// server answers; returns its answer.
pub fn http_chunked_post(
    url: &str,
    headers: &[(&str, &str)],
    total: usize,
) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap();
    let mut s = TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req =
        format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let piece = vec![b' '; 64 << 10];
    let mut sent = 0;
    while sent < total {
        let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
        frame.extend_from_slice(&piece);
        frame.extend_from_slice(b"\r\n");
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += piece.len();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> (u16, String, String) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the head and a content-length body are in, or EOF/reset.
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}
