//! Cost per check (`cargo bench --workspace --bench check_cost`): CPU per
//! HTTP check of the real agent, side by side with Prometheus'
//! `blackbox_exporter` driven at the same rate and with a native hyper
//! client that makes a new connection per check, all against the same
//! single-worker loopback nginx, at 100 and 1,000 checks a second.
//!
//! CPU is user + system time from `/proc/<pid>/stat` (or `wait4` for the
//! native client, which exits) over a measurement window after warm-up,
//! divided by the checks completed in that window. The agent's figure
//! includes everything it does per check: scheduling, the plugin, the
//! store, evaluation and metrics. Memory of the agent: RssAnon (private
//! memory) with VmRSS beside it.
//!
//! Needs Debian's `nginx-light` and `prometheus-blackbox-exporter`
//! (`apt-get install nginx-light prometheus-blackbox-exporter`).
//! Environment: `OUTPOST_BENCH_WINDOW_S` (default 20), `OUTPOST_BENCH_RATES`
//! (default `100,1000`), `OUTPOST_BENCH_BASELINE_AGENT` (the path of another
//! `outpost` binary, e.g. a release build of `main`: it is measured with a
//! fresh instance per check in the same run, beside this build).

mod common;
use common::{cpu_of, memory_of, scrape};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set (to `URL RATE SECONDS`) in the environment of the native client.
const NATIVE_ENV: &str = "OUTPOST_BENCH_NATIVE";
/// Time for every subject to reach its steady state before the window.
const WARMUP: Duration = Duration::from_secs(8);

fn main() {
    if let Ok(args) = std::env::var(NATIVE_ENV) {
        return native_client(&args);
    }
    let window = Duration::from_secs(env_num("OUTPOST_BENCH_WINDOW_S", 20));
    let rates: Vec<u64> = std::env::var("OUTPOST_BENCH_RATES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    for tool in ["nginx", "prometheus-blackbox-exporter"] {
        if which(tool).is_none() {
            eprintln!(
                "check_cost: `{tool}` is not installed; apt-get install nginx-light prometheus-blackbox-exporter"
            );
            std::process::exit(2);
        }
    }
    let work = std::env::temp_dir().join("outpost-bench-check-cost");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let nginx = Nginx::start(&work);
    let target = format!("http://127.0.0.1:{}/health", nginx.port);
    println!(
        "== CPU per HTTP check against one loopback nginx worker ({}s window after {}s warm-up)",
        window.as_secs(),
        WARMUP.as_secs()
    );
    let this_agent = PathBuf::from(env!("CARGO_BIN_EXE_outpost"));
    let baseline = std::env::var_os("OUTPOST_BENCH_BASELINE_AGENT").map(PathBuf::from);
    let mut rows = vec![];
    for &rate in &rates {
        let native = native(&target, rate, window);
        let blackbox = blackbox(&work, &target, rate, window);
        let fresh = agent(&work, &this_agent, nginx.port, rate, window, false);
        let warm = agent(&work, &this_agent, nginx.port, rate, window, true);
        let base = baseline
            .as_ref()
            .map(|b| agent(&work, b, nginx.port, rate, window, false));
        rows.push((rate, native, blackbox, fresh, warm, base));
    }
    println!(
        "\n| rate | blackbox_exporter | native hyper (new connection) | Outpost defaults (fresh instance per check) | Outpost, all instances warm |"
    );
    println!("|---|---|---|---|---|");
    for (rate, native, bb, fresh, warm, _) in &rows {
        let ratio = |c: &Cost| c.per_check_us() / native.per_check_us();
        println!(
            "| {rate} checks/s | {:.0} µs ({:.1}×) | {:.0} µs | {:.0} µs ({:.2}× native) | {:.0} µs ({:.2}× native) |",
            bb.per_check_us(),
            ratio(bb),
            native.per_check_us(),
            fresh.per_check_us(),
            ratio(fresh),
            warm.per_check_us(),
            ratio(warm),
        );
    }
    println!();
    for (rate, native, _, fresh, _, base) in &rows {
        if let (Some(b), Some(path)) = (base, &baseline) {
            println!(
                "baseline agent {} at {rate} checks/s, fresh instance per check: {:.0} µs ({:.2}× native); this build / baseline: {:.2}",
                path.display(),
                b.per_check_us(),
                b.per_check_us() / native.per_check_us(),
                fresh.per_check_us() / b.per_check_us()
            );
        }
    }
    for (rate, _, _, fresh, warm, base) in &rows {
        let mut subjects = vec![("defaults", fresh), ("all warm", warm)];
        if let Some(b) = base {
            subjects.push(("baseline", b));
        }
        for (label, c) in subjects {
            println!(
                "agent at {rate} checks/s, {label:<8}: {} checks in the window ({} not ok), RssAnon {:.1} MiB, VmRSS {:.1} MiB",
                c.checks,
                c.not_ok,
                c.anon_kib as f64 / 1024.0,
                c.rss_kib as f64 / 1024.0
            );
        }
    }
    let target_ratio = 1.5;
    for (rate, native, _, fresh, _, _) in &rows {
        let r = fresh.per_check_us() / native.per_check_us();
        println!(
            "target: agent CPU per check ≤ {target_ratio}× native at {rate}/s: {} ({r:.2}×)",
            if r <= target_ratio { "MET" } else { "MISSED" }
        );
    }
}

/// CPU spent on `checks` checks.
#[derive(Debug, Default)]
struct Cost {
    cpu: Duration,
    checks: u64,
    not_ok: u64,
    anon_kib: u64,
    rss_kib: u64,
}

impl Cost {
    fn per_check_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.checks.max(1) as f64
    }
}

// ---------------------------------------------------------------------------
// Subjects
// ---------------------------------------------------------------------------

/// The agent with `rate` http sensors at a 1 s interval.
fn agent(work: &Path, bin: &Path, port: u16, rate: u64, window: Duration, all_warm: bool) -> Cost {
    let dir = work.join(format!(
        "agent-{rate}-{all_warm}-{}",
        bin.file_name().unwrap_or_default().to_string_lossy()
    ));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let warm = if all_warm { rate } else { 0 };
    let mut cfg = format!(
        "[agent]\nname = \"bench\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\n\
         [agent.plugins]\nwarm_instances = {warm}\nreuse_instances = {all_warm}\nconcurrency = 64\n\n\
         [defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\n\n",
        data.display()
    );
    for i in 0..rate {
        cfg.push_str(&format!(
            "[[sensor]]\nname = \"s{i:05}\"\nplugin = \"http\"\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\n"
        ));
    }
    let cfg_path = dir.join("outpost.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut child = Command::new(bin)
        .args(["run", "-c"])
        .arg(&cfg_path)
        .env("RUST_LOG", "warn")
        // One compile cache for every run of this bench.
        .env("OUTPOST_CACHE_DIR", work.join("plugin-cache"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start outpost run");
    let api = wait_listen_addr(&data, &mut child, &dir);
    std::thread::sleep(WARMUP);
    let before = (cpu_of(child.id()), scrape(api));
    std::thread::sleep(window);
    let after = (cpu_of(child.id()), scrape(api));
    let mem = memory_of(child.id());
    stop(&mut child);
    let count = |m: &str, ok: bool| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("outpost_checks_total{"))
            .filter(|l| l.contains("status=\"ok\"") == ok)
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let checks = |m: &str| count(m, true) + count(m, false);
    Cost {
        cpu: after.0.saturating_sub(before.0),
        checks: checks(&after.1) - checks(&before.1),
        not_ok: count(&after.1, false) - count(&before.1, false),
        anon_kib: mem.0,
        rss_kib: mem.1,
    }
}

/// The agent writes its bound address to `<data_dir>/listen-addr` once it
/// listens; wait for it.
fn wait_listen_addr(data: &Path, child: &mut Child, dir: &Path) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(a) = std::fs::read_to_string(data.join("listen-addr"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return a;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "agent exited with {st}; see {}",
                dir.join("agent.log").display()
            );
        }
        assert!(Instant::now() < deadline, "agent did not start in 300 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `blackbox_exporter` probing `target` `rate` times a second, driven by
/// this process (as Prometheus would drive it) over keep-alive
/// connections; only the exporter's CPU is counted.
fn blackbox(work: &Path, target: &str, rate: u64, window: Duration) -> Cost {
    let cfg = work.join("blackbox.yml");
    std::fs::write(
        &cfg,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .unwrap();
    let (mut child, port) = start_on_free_port(|port| {
        Command::new("prometheus-blackbox-exporter")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start blackbox_exporter")
    });
    let path = format!("/probe?module=http_2xx&target={target}");
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + WARMUP + window + Duration::from_secs(1);
    // Enough drivers that a probe in flight never delays the next one.
    let drivers = (rate / 50).clamp(2, 32);
    let handles: Vec<_> = (0..drivers)
        .map(|d| {
            let (done, failed, path) = (done.clone(), failed.clone(), path.clone());
            let every = Duration::from_secs_f64(drivers as f64 / rate as f64);
            std::thread::spawn(move || {
                let mut next = Instant::now() + every.mul_f64(d as f64 / drivers as f64);
                let mut conn: Option<TcpStream> = None;
                while Instant::now() < stop_at {
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    next += every;
                    match probe(&mut conn, port, &path) {
                        Some(true) => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(WARMUP);
    let (cpu0, n0, f0) = (
        cpu_of(child.id()),
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    std::thread::sleep(window);
    let (cpu1, n1, f1) = (
        cpu_of(child.id()),
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    for h in handles {
        h.join().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    Cost {
        cpu: cpu1.saturating_sub(cpu0),
        checks: (n1 - n0) + (f1 - f0),
        not_ok: f1 - f0,
        ..Cost::default()
    }
}

/// One `/probe` over a kept-alive connection; `Some(probe_success)`.
fn probe(conn: &mut Option<TcpStream>, port: u16, path: &str) -> Option<bool> {
    for _ in 0..2 {
        if conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            *conn = Some(s);
        }
        let s = conn.as_mut()?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n");
        if s.write_all(req.as_bytes()).is_ok()
            && let Some(body) = read_response(s)
        {
            return Some(body.contains("\nprobe_success 1"));
        }
        *conn = None;
    }
    None
}

/// Reads one HTTP/1.1 response with a content-length body.
fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut r = BufReader::new(s);
    let mut len = None;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// A native client (this executable re-run as a child): a tokio runtime on
/// one thread making `rate` GETs a second, each on a new connection with
/// hyper, for warm-up plus window; its whole CPU (`wait4`) over all its
/// requests.
fn native(target: &str, rate: u64, window: Duration) -> Cost {
    let secs = (WARMUP + window).as_secs();
    // Reaped by wait4 below (for its rusage), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(NATIVE_ENV, format!("{target} {rate} {secs}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    // SAFETY: pid is our child; status and ru are valid out-pointers.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut ru) }, pid);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let mut it = out
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    let (ok, failed) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    Cost {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        checks: ok + failed,
        not_ok: failed,
        ..Cost::default()
    }
}

/// The native client's process: prints `ok failed` when done.
fn native_client(args: &str) {
    let mut a = args.split_whitespace();
    let url: hyper::Uri = a.next().unwrap().parse().unwrap();
    let rate: u64 = a.next().unwrap().parse().unwrap();
    let secs: u64 = a.next().unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, failed) = rt.block_on(async move {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut tasks = tokio::task::JoinSet::new();
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            let (url, ok, failed) = (url.clone(), ok.clone(), failed.clone());
            tasks.spawn(async move {
                match tokio::time::timeout(Duration::from_secs(5), get(&url)).await {
                    Ok(Ok(200)) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
    });
    println!("{ok} {failed}");
}

/// One GET on a new connection; the status code.
async fn get(url: &hyper::Uri) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::BodyExt;
    let host = url.host().unwrap_or("127.0.0.1");
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(url.path())
        .header(hyper::header::HOST, host)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let res = send.send_request(req).await?;
    let code = res.status().as_u16();
    res.into_body().collect().await?;
    Ok(code)
}

// ---------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------

/// One nginx process (no master, one worker) answering `/health`.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(work: &Path) -> Nginx {
        let dir = work.join("nginx");
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let (child, port) = start_on_free_port(|port| {
            let conf = dir.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log {err} warn;\n\
                     events {{ worker_connections 4096; }}\n\
                     http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
                       server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 100000;\n\
                         location / {{ default_type application/json; return 200 '{{\"status\":\"up\"}}'; }} }} }}\n",
                    pid = dir.join("nginx.pid").display(),
                    err = dir.join("logs/error.log").display(),
                    tmp = dir.display(),
                ),
            )
            .unwrap();
            Command::new(which("nginx").unwrap())
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx")
        });
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Starts a server that must be told its port (nginx and blackbox_exporter
/// cannot report a port the kernel chose): tries ports until one of them
/// answers while the process is still alive (another process holding the
/// port makes it exit at once).
fn start_on_free_port(mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    let mut seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    for _ in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + (seed >> 33) as u16 % 30_000;
        let mut child = spawn(port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no free port found for a bench server in 20 tries");
}

fn stop(child: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
