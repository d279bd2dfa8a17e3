//! Compiles the plugin crates to `wasm32-wasip2` components so the agent can
//! embed the built-in ones (`cargo run` alone works) and the tests can load
//! the hostile fixtures in `tests/test-plugins`.
//!
//! It runs a nested `cargo build` with its own target directory (the outer
//! build holds the lock on the normal one) and the `plugin` profile of the
//! workspace. The paths of the results are handed to the crate as
//! `OUTPOST_PLUGIN_<NAME>` environment variables.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugin crates embedded in the binary: (built-in name, package, artifact).
const BUILTIN: &[(&str, &str, &str)] = &[
    ("http", "outpost-plugin-http", "outpost_plugin_http.wasm"),
    ("mongo", "outpost-plugin-mongo", "outpost_plugin_mongo.wasm"),
    ("slack", "outpost-plugin-slack", "outpost_plugin_slack.wasm"),
    (
        "webhook",
        "outpost-plugin-webhook",
        "outpost_plugin_webhook.wasm",
    ),
    ("email", "outpost-plugin-email", "outpost_plugin_email.wasm"),
    (
        "alertmanager",
        "outpost-plugin-alertmanager",
        "outpost_plugin_alertmanager.wasm",
    ),
    (
        "telegram",
        "outpost-plugin-telegram",
        "outpost_plugin_telegram.wasm",
    ),
    (
        "discord",
        "outpost-plugin-discord",
        "outpost_plugin_discord.wasm",
    ),
    ("teams", "outpost-plugin-teams", "outpost_plugin_teams.wasm"),
    (
        "opsgenie",
        "outpost-plugin-opsgenie",
        "outpost_plugin_opsgenie.wasm",
    ),
    (
        "kubernetes",
        "outpost-plugin-kubernetes",
        "outpost_plugin_kubernetes.wasm",
    ),
    (
        "http-inventory",
        "outpost-plugin-http-inventory",
        "outpost_plugin_http_inventory.wasm",
    ),
];

/// Fixture components for tests: (env suffix, package, artifact).
const FIXTURES: &[(&str, &str, &str)] = &[
    (
        "HOSTILE",
        "outpost-test-plugins",
        "outpost_test_plugins.wasm",
    ),
    ("WRONG_WORLD", "outpost-test-plugins", "wrong-world.wasm"),
    (
        "HOSTILE_PROVIDER",
        "outpost-test-plugins",
        "hostile-provider.wasm",
    ),
    (
        "FUTURE_VERSION",
        "outpost-test-plugins",
        "future-version.wasm",
    ),
    ("OLD_MINOR", "outpost-test-plugins", "old-minor.wasm"),
    ("ASYNC", "outpost-test-plugins", "async-sensor.wasm"),
    // One per rule of `outpost plugin test`, each breaking that rule.
    ("BROKEN_INFO", "outpost-test-plugins", "broken-info.wasm"),
    (
        "BROKEN_VALIDATE_ACCEPTS",
        "outpost-test-plugins",
        "broken-validate-accepts.wasm",
    ),
    (
        "BROKEN_VALIDATE_EMPTY",
        "outpost-test-plugins",
        "broken-validate-empty.wasm",
    ),
    (
        "BROKEN_VALIDATE_TYPE",
        "outpost-test-plugins",
        "broken-validate-type.wasm",
    ),
    (
        "BROKEN_OK_200",
        "outpost-test-plugins",
        "broken-ok-200.wasm",
    ),
    (
        "BROKEN_FAIL_500",
        "outpost-test-plugins",
        "broken-fail-500.wasm",
    ),
    (
        "BROKEN_REFUSED",
        "outpost-test-plugins",
        "broken-refused.wasm",
    ),
    (
        "BROKEN_DENIED",
        "outpost-test-plugins",
        "broken-denied.wasm",
    ),
    (
        "BROKEN_DEADLINE",
        "outpost-test-plugins",
        "broken-deadline.wasm",
    ),
    (
        "BROKEN_DELIVERS",
        "outpost-test-plugins",
        "broken-delivers.wasm",
    ),
    (
        "BROKEN_RETRYABLE_500",
        "outpost-test-plugins",
        "broken-retryable-500.wasm",
    ),
    (
        "BROKEN_PERMANENT_400",
        "outpost-test-plugins",
        "broken-permanent-400.wasm",
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in [
        "plugin-sdk",
        "plugins",
        "tests/test-plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    // A stable directory beside the outer target dir, so guest dependencies
    // are compiled once, not once per change of this build script.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = wasm_target_dir(&out_dir, &root);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(&target_dir);
    let mut packages: Vec<&str> = BUILTIN.iter().chain(FIXTURES).map(|(_, p, _)| *p).collect();
    packages.dedup();
    for p in packages {
        cmd.args(["-p", p]);
    }
    // Settings of the outer build must not leak into the guest build.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key == "RUSTFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_BUILD_TARGET"
            || key.starts_with("CARGO_PROFILE_")
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CARGO_LLVM_COV"
            || key.starts_with("CARGO_CFG_")
            || key == "RUSTC_WRAPPER"
        {
            cmd.env_remove(key);
        }
    }
    if !target_installed() {
        panic!(
            "the plugins are compiled for wasm32-wasip2, which this toolchain lacks. \
             Install it with `rustup target add wasm32-wasip2` \
             (the README's scripts/run and scripts/test do this for you)."
        );
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the wasm32-wasip2 plugins");
    if !status.success() {
        panic!("building the plugins for wasm32-wasip2 failed (see above)");
    }

    let artifacts = target_dir.join("wasm32-wasip2").join("plugin");
    for (name, _, file) in BUILTIN {
        emit(
            &format!("OUTPOST_PLUGIN_{}", name.to_uppercase().replace('-', "_")),
            &artifacts.join(file),
        );
    }
    for (name, _, file) in FIXTURES {
        emit(&format!("OUTPOST_FIXTURE_{name}"), &artifacts.join(file));
    }
}

fn emit(var: &str, path: &Path) {
    assert!(
        path.exists(),
        "expected plugin artifact {} after the build",
        path.display()
    );
    println!("cargo:rustc-env={var}={}", path.display());
}

/// `<target>/wasm-plugins/<checkout>`, where `<target>` is the outer target
/// directory (`OUT_DIR` is `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`)
/// and `<checkout>` names the workspace, so two checkouts sharing a target
/// directory never overwrite each other's plugins.
fn wasm_target_dir(out_dir: &Path, root: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    let leaf = format!("{:016x}", h.finish());
    for ancestor in out_dir.ancestors() {
        if ancestor.join("CACHEDIR.TAG").exists() {
            return ancestor.join("wasm-plugins").join(leaf);
        }
    }
    out_dir.join("wasm-plugins")
}

/// Whether the compiler that builds this crate has the `wasm32-wasip2`
/// standard library (checked up front: without it cargo's error is long
/// and does not say what to do).
fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return true; // let cargo report it
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .exists()
}
