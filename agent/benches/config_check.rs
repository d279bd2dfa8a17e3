//! Config checking at scale: `config::load` (what `check-config`, start
//! and every reload do: parse, check, each plugin's own `validate` of each
//! sensor's config, locating each sensor's line) for 5,000 and 50,000
//! sensors. Target: 50,000 sensors in under 5 s, and linear in the file
//! (the 10× file takes about 10× the time, not 100×: locating a key's line
//! is a binary search in a line table built once per file).
//!
//! Baseline, in the same run: a bare `toml` parse of the same text (the
//! least any loader must do), as a ratio.
//!
//! `cargo bench --workspace --bench config_check`. Without a release
//! build: `cargo test -p outpost --bench config_check --no-run --config
//! 'profile.dev.package.outpost.opt-level=3'` and run the printed binary
//! (dependencies are already optimised in dev builds).
//!
//! Measured 2026-12-04 on the shared 2-core machine under heavy load (two
//! other builds running), with a *debug* build of the bench and the agent
//! crate (opt-level 0; the generic TOML and serde code is monomorphised in
//! it, so even the "bare parse" runs unoptimised): 5,000 sensors 3.90 s,
//! 50,000 sensors 38.3 s — 9.8× the time for 10× the sensors (before the
//! line table, 8,000 sensors took 9.8 s and 45,000 did not finish in 4
//! minutes); load/parse ratio 7.0× and 7.7×. The < 5 s target is for an
//! optimised build and was not measured in this session.

use outpost_plugin_host::{HostConfig, PluginHost};
use std::fmt::Write;
use std::time::{Duration, Instant};

fn config_text(n: usize) -> String {
    let mut t = String::from(
        "[agent]\nname = \"bench\"\ndata_dir = \"data\"\n\n[defaults]\ninterval = \"30s\"\n\n",
    );
    for i in 0..n {
        let _ = write!(
            t,
            "[[sensor]]\nname = \"web-{i}\"\nplugin = \"http\"\ntimeout = \"5s\"\nlabels = {{ team = \"t{}\" }}\nconfig = {{ url = \"http://10.{}.{}.{}:8080/health\", expect_status = [\"2xx\"] }}\n\n",
            i % 7,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
    }
    t
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..HostConfig::default()
    })
    .unwrap();
    let path = dir.path().join("outpost.toml");
    // Warm the compiled-component cache (a real agent has it on disk).
    std::fs::write(&path, config_text(1)).unwrap();
    rt.block_on(outpost::config::load(&path, &host)).unwrap();

    let mut times = vec![];
    for n in [5_000usize, 50_000] {
        let text = config_text(n);
        std::fs::write(&path, &text).unwrap();
        let t = Instant::now();
        let _: toml::Table = toml::from_str(&text).unwrap();
        let parse = t.elapsed();
        let t = Instant::now();
        let loaded = rt.block_on(outpost::config::load(&path, &host)).unwrap();
        let load = t.elapsed();
        assert_eq!(loaded.config.sensors.len(), n);
        println!(
            "{n:>6} sensors ({:.1} MiB): load {:>7.3} s ({:.1} µs/sensor); bare toml parse {:.3} s; load/parse {:.1}×",
            text.len() as f64 / (1 << 20) as f64,
            load.as_secs_f64(),
            load.as_secs_f64() * 1e6 / n as f64,
            parse.as_secs_f64(),
            load.as_secs_f64() / parse.as_secs_f64()
        );
        times.push(load);
    }
    let ratio = times[1].as_secs_f64() / times[0].as_secs_f64();
    println!(
        "50,000 vs 5,000 sensors: {ratio:.1}× the time for 10× the sensors (linear: about 10×); target: 50,000 in < 5 s: {}",
        if times[1] < Duration::from_secs(5) {
            "met"
        } else {
            "NOT met"
        }
    );
}
