//! Debian's real `prometheus` and `promtool` (package `prometheus`,
//! installed by `scripts/install-test-deps`): a Prometheus server on a
//! loopback port with a test's config, and `promtool` on a text.

use super::http_get;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A Prometheus server in a temporary directory; killed on drop.
pub struct Prometheus {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    /// Writes `files` (relative path, text) into a fresh directory,
    /// starts `prometheus --config.file=<dir>/<config>` and waits until
    /// `/-/ready` answers 200.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join(config).display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            // The kernel picks the port; Prometheus logs the address it
            // listens on ("Listening on" address=127.0.0.1:PORT).
            .arg("--web.listen-address=127.0.0.1:0")
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "prometheus (Debian package `prometheus`, see scripts/install-test-deps): {e}"
                )
            });
        let mut p = Prometheus {
            port: 0,
            dir,
            child,
        };
        let log_path = p.dir.path().join("prometheus.log");
        let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
        super::wait_some_or(
            Duration::from_secs(60),
            || {
                if let Some(st) = p.child.try_wait().unwrap() {
                    panic!("prometheus exited with {st} at start:\n{}", logs());
                }
                if p.port == 0 {
                    p.port = listening_port(&logs()).unwrap_or(0);
                }
                (p.port != 0
                    && http_get(&format!("http://127.0.0.1:{}/-/ready", p.port), &[]).0 == 200)
                    .then_some(())
            },
            || format!("prometheus not ready:\n{}", logs()),
        );
        p
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET `path` of the HTTP API, parsed as JSON.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (code, _, body) = http_get(&self.url(path), &[]);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Polls `path` until `f` holds on its JSON; panics with
    /// the last answer and the server's log after `timeout`.
    pub fn wait_api(
        &self,
        path: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let last = std::cell::RefCell::new(serde_json::Value::Null);
        super::wait_some_or(
            timeout,
            || {
                let v = self.api(path);
                if f(&v) {
                    return Some(v);
                }
                *last.borrow_mut() = v;
                None
            },
            || {
                format!(
                    "{path}: condition not reached; last answer: {}\nprometheus log:\n{}",
                    last.borrow(),
                    self.logs()
                )
            },
        )
    }

    /// The server's log.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The directory the config files were written to.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `promtool <args...>` with `input` on stdin.
pub fn promtool(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian package `prometheus`, see scripts/install-test-deps): {e}")
        });
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A file of the repository's `contrib/` directory.
pub fn contrib_file(rel: &str) -> (PathBuf, String) {
    let p = super::repo_root().join("contrib").join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (p, text)
}

/// The port in Prometheus' `msg="Listening on" address=127.0.0.1:PORT` line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("Listening on"))
        .find_map(|l| l.split("address=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.trim_matches('"').parse().ok())
        .filter(|&p| p != 0)
}
