//! Plugins in any language (issue 16): the conformance suite
//! (`outpost plugin test`) over every plugin of the repository and over one
//! broken component per rule; one-line refusals of what is not a plugin;
//! the compile cache shared by the commands; `plugin new` scaffolds in
//! Rust, Python and JavaScript built with their own `./build` and run
//! under one agent; the example Python notifier.

use crate::util::{self, Agent, Mode, Target, fixture, outpost};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `outpost plugin test <plugin> --json [args]`: (exit code, report, stderr).
fn plugin_test(plugin: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = outpost()
        .args(["plugin", "test", plugin, "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{plugin}: no JSON report ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn failed_rules(report: &serde_json::Value) -> Vec<String> {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pass"] == false)
        .map(|r| format!("{}: {}", r["rule"].as_str().unwrap(), r["detail"]))
        .collect()
}

fn rule_names(report: &serde_json::Value) -> Vec<String> {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect()
}

fn assert_passes(plugin: &str, args: &[&str], rules: usize) {
    let (code, report, stderr) = plugin_test(plugin, args);
    assert_eq!(
        (code, failed_rules(&report)),
        (0, vec![]),
        "{plugin}: {report:#}\n{stderr}"
    );
    assert_eq!(
        report["rules"].as_array().unwrap().len(),
        rules,
        "{plugin}: {report:#}"
    );
}

/// Every plugin of the repository passes the suite. Rules that need HTTP
/// semantics are skipped for plugins that speak another protocol
/// (MongoDB, SMTP) and say so on the command line.
#[test]
fn every_plugin_of_the_repository_passes_the_conformance_suite() {
    let non_http_sensor = ["--skip", "check.ok-200", "--skip", "check.fail-500"];
    let cases: Vec<(&str, String, Vec<&str>, usize)> = vec![
        ("http", String::new(), vec![], 10),
        (
            "mongo",
            r#"{"uri": "mongodb://{host}:{port}/"}"#.into(),
            non_http_sensor.to_vec(),
            8,
        ),
        ("slack", String::new(), vec![], 8),
        ("webhook", String::new(), vec![], 8),
        ("discord", String::new(), vec![], 8),
        ("teams", String::new(), vec![], 8),
        ("alertmanager", r#"{"urls": ["{url}"]}"#.into(), vec![], 8),
        (
            "telegram",
            r#"{"api_url": "{url}", "bot_token": "123:abc", "chat_id": 42}"#.into(),
            vec![],
            8,
        ),
        (
            "opsgenie",
            r#"{"api_url": "{url}", "api_key": "key"}"#.into(),
            vec![],
            8,
        ),
        (
            "email",
            r#"{"smtp": "smtp://{host}:{port}", "from": "a@example.com", "to": ["b@example.com"]}"#
                .into(),
            vec![
                "--skip",
                "notify.delivers",
                "--skip",
                "notify.retryable-500",
                "--skip",
                "notify.permanent-400",
            ],
            5,
        ),
        (
            "kubernetes",
            r#"{"api_url": "{url}", "token": "t"}"#.into(),
            vec![],
            7,
        ),
    ];
    for (plugin, config, skips, rules) in cases {
        let mut args: Vec<&str> = skips.clone();
        if !config.is_empty() {
            args.extend(["--config", config.as_str()]);
        }
        assert_passes(plugin, &args, rules);
    }
}

/// Each deliberately broken component fails the suite, naming the rule it
/// breaks; a component that is no plugin fails `component.world`.
#[test]
fn a_broken_component_fails_the_rule_it_breaks() {
    let mut all: Vec<(&str, String)> = outpost_plugin_host::fixtures::BROKEN
        .iter()
        .map(|(rule, path)| (*rule, path.to_string()))
        .collect();
    all.push(("component.world", fixture("wrong-world")));
    for (rule, path) in all {
        let (code, report, stderr) = plugin_test(&path, &["--config", r#"{"url": "{url}"}"#]);
        assert_eq!(code, 1, "{rule}: {report:#}\n{stderr}");
        let failed = failed_rules(&report);
        assert!(
            failed.iter().any(|f| f.starts_with(&format!("{rule}: "))),
            "{rule} should fail: {report:#}"
        );
        assert_eq!(report["passed"], false);
    }
    // The text form: one line per rule, PASS or FAIL and why.
    let (_, path) = outpost_plugin_host::fixtures::BROKEN
        .iter()
        .find(|(r, _)| *r == "check.denied")
        .unwrap();
    let out = outpost().args(["plugin", "test", path]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("check.denied"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("FAIL "), "{text}");
    assert!(
        line.contains("not a fault") && line.contains("panicked"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS ") && l.contains("check.ok-200")),
        "{text}"
    );
}

/// The suite's own rules, in order, for a sensor.
#[test]
fn the_suite_names_its_rules() {
    let (_, report, _) = plugin_test("http", &[]);
    assert_eq!(
        rule_names(&report),
        [
            "component.world",
            "info.well-formed",
            "validate.accepts",
            "validate.rejects-empty",
            "validate.rejects-wrong-type",
            "check.ok-200",
            "check.fail-500",
            "check.refused",
            "check.denied",
            "check.deadline",
        ]
    );
}

fn expect_one_line_error(args: &[&str], needle: &str) {
    let out = outpost().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected `{needle}` in: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(!stderr.contains("Rust SDK"), "language-neutral: {stderr}");
}

/// What is not a plugin gets one line saying what it is and what Outpost
/// expects, and exit code 2.
#[test]
fn what_is_not_a_plugin_gets_one_line_saying_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, b"hello").unwrap();
    let cases = [
        (
            text.to_str().unwrap().to_string(),
            "does not start with the WebAssembly magic number",
        ),
        (
            core.to_str().unwrap().to_string(),
            "is a core WebAssembly module, not a component; a plugin is a component targeting a world of outpost:plugin@0.1",
        ),
        (
            fixture("wrong-world"),
            "is not an Outpost plugin: it exports wasi:cli/run",
        ),
        (
            outpost_plugin_host::fixtures::ASYNC.to_string(),
            "is an async component (it uses the component model's async ABI), which this agent does not support",
        ),
        (
            fixture("future-version"),
            "was built for outpost:plugin/sensor@9.0.0, which this agent cannot run: it supports outpost:plugin@0.1.x",
        ),
    ];
    for (plugin, needle) in cases {
        expect_one_line_error(&["plugin", "info", &plugin], needle);
        expect_one_line_error(&["plugin", "run", &plugin], needle);
    }
}

/// A plugin built against outpost:plugin@0.1.0 (before `types` was renamed
/// `plugin-types`) still loads and runs: any 0.1.x is compatible.
#[test]
fn a_plugin_built_against_an_older_0_1_release_runs() {
    let r = util::run_plugin(
        outpost_plugin_host::fixtures::OLD_MINOR,
        &serde_json::json!({}),
        &[],
    );
    assert_eq!((r.code, r.status()), (0, "ok"), "{r:?}");
    assert_eq!(r.message(), "built against 0.1.0");
}

// ---------------------------------------------------------------------------
// Plugins in Python and JavaScript: scaffolds, the example notifier, the
// cache.
// ---------------------------------------------------------------------------

/// The guest toolchains' directory (installed by scripts/install-test-deps).
fn guest_tools() -> PathBuf {
    std::env::var_os("OUTPOST_GUEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/outpost-guest-tools")
        })
}

/// Runs `./build` in `dir` with the guest tools on PATH (and, for Rust, a
/// target directory kept between runs); returns the built component.
fn build(dir: &Path, name: &str) -> PathBuf {
    let path = format!(
        "{}:{}",
        guest_tools().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    // Next to the test binary's own target directory: guest dependencies
    // are compiled once, not once per run.
    let target = PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("scaffold-target");
    let out = std::process::Command::new(dir.join("build"))
        .current_dir(dir)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}/build failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(wasm.exists(), "{} not built", wasm.display());
    wasm
}

fn scaffold(parent: &Path, name: &str, lang: &str, kind: &str) -> PathBuf {
    let dir = parent.join(name);
    let out = outpost()
        .args([
            "plugin", "new", name, "--lang", lang, "--kind", kind, "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["build", "README.md"] {
        assert!(dir.join(f).exists(), "{lang}: no {f}");
    }
    dir
}

/// `plugin new` in each language gives a project whose `./build` makes a
/// component that passes the conformance suite; the three sensors then run
/// under one agent against one loopback target and follow it up and down.
#[test]
fn scaffolds_in_rust_python_and_js_build_pass_the_suite_and_run_in_one_agent() {
    let work = tempfile::tempdir().unwrap();
    let langs = [
        ("rust", "rs-check"),
        ("python", "py-check"),
        ("js", "js-check"),
    ];
    let mut built = vec![];
    for (lang, name) in langs {
        let dir = scaffold(work.path(), name, lang, "sensor");
        let wasm = build(&dir, name);
        assert_passes(wasm.to_str().unwrap(), &[], 10);
        built.push((name, wasm));
    }
    // A body condition of the scaffold: text the body must contain.
    let target = Target::start(Mode::Up);
    let mut body = String::new();
    for (name, wasm) in &built {
        body.push_str(&format!(
            "[[sensor]]\nname = \"{name}\"\nplugin = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nfail_after = 1\nrecover_after = 1\nconfig = {{ url = \"{}\" }}\n\n",
            wasm.display(),
            target.url()
        ));
    }
    let mut agent = Agent::new("authors");
    agent.cache_dir = util::shared_cache_dir();
    agent.launch(&body);
    let states = |s: &serde_json::Value| -> Vec<String> {
        built
            .iter()
            .map(|(n, _)| {
                s["sensors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == *n)
                    .map(|x| x["state"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    agent.wait_status("three sensors up", Duration::from_secs(120), |s| {
        states(s).iter().all(|st| st == "up")
    });
    target.set(Mode::Error);
    agent.wait_status("three sensors down", Duration::from_secs(60), |s| {
        states(s).iter().all(|st| st == "down")
    });
}

/// The example notifier in Python (examples/plugins/python-notifier) builds
/// with its ./build and passes the notifier rules; a `memory_mb` below its
/// initial memory is an error naming the need and the setting, and leaves
/// the compile cache as it was; a second `check-config` finds the cache.
#[test]
fn the_python_example_notifier_builds_passes_and_respects_the_memory_floor() {
    let example = util::repo_root().join("examples/plugins/python-notifier");
    let wasm = build(&example, "python-notifier");
    let wasm_s = wasm.to_str().unwrap();
    assert_passes(wasm_s, &[], 8);

    let cache = tempfile::tempdir().unwrap();
    let with_cache = |args: &[&str]| {
        outpost()
            .env("OUTPOST_CACHE_DIR", cache.path())
            .args(args)
            .output()
            .unwrap()
    };
    let entries = || -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let out = with_cache(&["plugin", "info", wasm_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compiled = entries();
    assert_eq!(compiled.len(), 1, "{compiled:?}");

    // Too little memory: refused before anything runs, cache untouched.
    let out = with_cache(&["plugin", "run", wasm_s, "--memory-mb", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "MiB of memory to start, more than the memory limit of 4 MiB: raise `memory_mb`"
        ),
        "{stderr}"
    );
    assert_eq!(entries(), compiled);

    // The same as a config error naming the plugin, its need and the key.
    let agent = Agent::new("floor");
    let config = format!(
        "[agent.plugins]\nmemory_mb = 4\n\n[[notifier]]\nname = \"py\"\nplugin = \"{wasm_s}\"\nconfig = {{ url = \"http://127.0.0.1:9/\" }}\n"
    );
    agent.write_config(&config);
    let config_path = agent.config.to_str().unwrap().to_string();
    let out = with_cache(&["check-config", "-c", &config_path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("python-notifier.wasm needs") && stderr.contains("agent.plugins.memory_mb"),
        "{stderr}"
    );
    assert_eq!(entries(), compiled);

    // With enough memory, check-config twice: the second finds the entry
    // the first `plugin info` wrote and writes none.
    agent.write_config(&config.replace("memory_mb = 4", "memory_mb = 64"));
    for _ in 0..2 {
        let out = with_cache(&["check-config", "-c", &config_path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(entries(), compiled);
    }
}
