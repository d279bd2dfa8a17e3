//! Plugin host benchmark (`cargo bench --workspace --bench plugin_host`).
//!
//! Prints, in one run:
//! (a) host overhead per run for a trivial sensor (instantiate if needed +
//!     call + result), median and p99, for a warm instance per sensor and
//!     for a fresh store per run (the default); `OUTPOST_BENCH_ONLY_OVERHEAD=1`
//!     stops after this part (for profiling it);
//! (b) HTTP checks per CPU-second through the built-in `http` plugin against
//!     a loopback server running in a separate process, side by side with a
//!     native Rust client (reqwest) making the same requests, in alternating
//!     rounds, and the median of the rounds' ratios (each sensor keeps a warm
//!     instance); then once with a fresh instance for every check.
//!
//! CPU time is this process's user+system time (getrusage), so the server's
//! work is not counted. Figures are relative: compare the ratios.

mod common;
use outpost_plugin_host::{HostConfig, NetPolicy, PluginHost, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TRIVIAL_RUNS: usize = 5_000;
const HTTP_REQUESTS: usize = 3_000;
const ROUNDS: usize = 5;
const HTTP_CONCURRENCY: usize = 8;

fn main() {
    if std::env::var_os(common::SERVER_ENV).is_some() {
        return common::serve();
    }
    // `cargo bench` passes `--bench`; ignore arguments.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = std::env::temp_dir().join("outpost-bench-cache");
        println!("== (a) host overhead per run, trivial sensor ({TRIVIAL_RUNS} runs each)");
        let only_wasm = std::env::var_os("OUTPOST_BENCH_ONLY_WASM").is_some();
        let warm = if only_wasm { (1.0, 1.0) } else { overhead(true, &cache).await };
        let fresh = if only_wasm { (1.0, 1.0) } else { overhead(false, &cache).await };
        println!("warm instance per sensor : median {:>7.1} µs   p99 {:>7.1} µs", warm.0, warm.1);
        println!("fresh store per run      : median {:>7.1} µs   p99 {:>7.1} µs", fresh.0, fresh.1);
        println!("fresh/warm median ratio  : {:.1}x", fresh.0 / warm.0);
        println!(
            "target ≤ 20 µs median (the default scheme, fresh instance per run): {}",
            if fresh.0 <= 20.0 { "MET" } else { "MISSED" }
        );
        if std::env::var_os("OUTPOST_BENCH_ONLY_OVERHEAD").is_some() {
            return;
        }

        println!(
            "\n== (b) HTTP checks per CPU-second ({ROUNDS} rounds of {HTTP_REQUESTS} requests each, {HTTP_CONCURRENCY} concurrent, loopback server in another process;\n   wasm and native alternate, so each round's ratio compares runs made under the same machine load)"
        );
        let (mut server, port) = common::spawn_server();
        let url = format!("http://127.0.0.1:{port}/health");
        let wasm = WasmHttp::new(&url, &cache, true).await;
        let wasm_fresh = WasmHttp::new(&url, &cache, false).await;
        let fresh = Native::new(&url, false);
        let pooled = Native::new(&url, true);
        wasm.run(HTTP_CONCURRENCY * 10).await;
        fresh.run(HTTP_CONCURRENCY * 10).await;
        pooled.run(HTTP_CONCURRENCY * 10).await;
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let w = measure(wasm.run(HTTP_REQUESTS)).await;
            if only_wasm {
                println!("round {round}: plugins/http (wasm)               : {w}");
                continue;
            }
            let n = measure(fresh.run(HTTP_REQUESTS)).await;
            println!("round {round}: plugins/http (wasm)               : {w}");
            println!("round {round}: reqwest, new connection per check: {n}");
            ratios.push(w.0 / n.0);
        }
        if only_wasm {
            let _ = server.kill();
            return;
        }
        let p = measure(pooled.run(HTTP_REQUESTS)).await;
        wasm_fresh.run(HTTP_CONCURRENCY * 10).await;
        let f = measure(wasm_fresh.run(HTTP_REQUESTS)).await;
        let n = measure(fresh.run(HTTP_REQUESTS)).await;
        let _ = server.kill();
        println!("reqwest, pooled keep-alive (once)       : {p}");
        println!(
            "wasm, fresh instance every check (once) : {f}  (ratio to native {:.2})",
            f.0 / n.0
        );
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = ratios[ratios.len() / 2];
        println!(
            "ratio wasm / native (same work, new connection each): median {median:.2}  (rounds: {})",
            per_round.join(", ")
        );
        println!(
            "target ≥ 0.67 of the native client's checks per CPU-second (warm instance per sensor): {}",
            if median >= 0.67 { "MET" } else { "MISSED" }
        );
    });
}

/// This process's (user, system) CPU seconds so far.
fn cpu_times() -> (f64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(u.ru_utime), tv(u.ru_stime))
}

/// CPU use of `HTTP_REQUESTS` checks: (checks per CPU-second, CPU-s,
/// wall s, user µs per check, system µs per check).
struct Cpu(f64, f64, f64, f64, f64);

impl Cpu {
    fn since(c0: (f64, f64), t0: Instant) -> Cpu {
        let c1 = cpu_times();
        let (user, sys) = (c1.0 - c0.0, c1.1 - c0.1);
        let n = HTTP_REQUESTS as f64;
        Cpu(
            n / (user + sys),
            user + sys,
            t0.elapsed().as_secs_f64(),
            user / n * 1e6,
            sys / n * 1e6,
        )
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.0} checks/CPU-s  ({:.2} CPU-s, {:.2} s wall; per check {:.0} µs user + {:.0} µs system)",
            self.0, self.1, self.2, self.3, self.4
        )
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn overhead(reuse: bool, cache: &std::path::Path) -> (f64, f64) {
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(cache.to_path_buf()),
        reuse_instances: reuse,
        warm_instances: 1,
        ..HostConfig::default()
    })
    .unwrap();
    let plugin = host
        .load_spec(outpost_plugin_host::fixtures::HOSTILE)
        .await
        .unwrap();
    let mut inst = plugin.instance(Arc::new(NetPolicy::deny_all()), "bench");
    let cfg = r#"{"mode":"ok"}"#;
    for _ in 0..200 {
        inst.check_result(cfg, Duration::from_secs(5)).await;
    }
    let mut samples = Vec::with_capacity(TRIVIAL_RUNS);
    for _ in 0..TRIVIAL_RUNS {
        let t = Instant::now();
        let r = inst.check_result(cfg, Duration::from_secs(5)).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(r.status, Status::Ok);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Measures the CPU time of `work` (this process, all threads).
async fn measure(work: impl std::future::Future<Output = ()>) -> Cpu {
    let (c0, t0) = (cpu_times(), Instant::now());
    work.await;
    Cpu::since(c0, t0)
}

/// `plugins/http` checking `url` from [`HTTP_CONCURRENCY`] sensors.
struct WasmHttp {
    plugin: Arc<outpost_plugin_host::Plugin>,
    policy: Arc<NetPolicy>,
    cfg: Arc<String>,
    _host: Arc<PluginHost>,
}

impl WasmHttp {
    /// `warm`: each sensor keeps its instance between checks (the agent's
    /// scheme within its `warm_instances` budget); otherwise every check
    /// gets a fresh instance from the pool.
    async fn new(url: &str, cache: &std::path::Path, warm: bool) -> Self {
        let host = Arc::new(
            PluginHost::new(HostConfig {
                cache_dir: Some(cache.to_path_buf()),
                reuse_instances: warm,
                warm_instances: HTTP_CONCURRENCY as u32,
                ..HostConfig::default()
            })
            .unwrap(),
        );
        let plugin = host.load_spec("http").await.unwrap();
        let cfg = serde_json::json!({ "url": url });
        let policy = Arc::new(NetPolicy::from_config(&cfg, &[]));
        WasmHttp {
            plugin,
            policy,
            cfg: Arc::new(cfg.to_string()),
            _host: host,
        }
    }

    /// `n` checks; each sensor's instance lives for the run.
    async fn run(&self, n: usize) {
        let per = n / HTTP_CONCURRENCY;
        let tasks: Vec<_> = (0..HTTP_CONCURRENCY)
            .map(|i| {
                let mut inst = self
                    .plugin
                    .instance(self.policy.clone(), &format!("bench{i}"));
                let cfg = self.cfg.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        let r = inst.check_result(&cfg, Duration::from_secs(5)).await;
                        assert_eq!(r.status, Status::Ok, "{r:?}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
}

/// reqwest making the same GETs.
struct Native {
    client: reqwest::Client,
    url: String,
}

impl Native {
    fn new(url: &str, pooled: bool) -> Self {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(5));
        if !pooled {
            b = b.pool_max_idle_per_host(0);
        }
        Native {
            client: b.build().unwrap(),
            url: url.to_string(),
        }
    }

    async fn run(&self, n: usize) {
        let per = n / HTTP_CONCURRENCY;
        let tasks: Vec<_> = (0..HTTP_CONCURRENCY)
            .map(|_| {
                let client = self.client.clone();
                let url = self.url.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        let r = client.get(&url).send().await.unwrap();
                        let ok = r.status().is_success();
                        let _ = r.bytes().await.unwrap();
                        assert!(ok);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
}
