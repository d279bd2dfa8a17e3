//! `outpost plugin new <name> --lang rust|python|js [--kind sensor|notifier]`:
//! writes a ready plugin project: sources with a real HTTP check (or a JSON
//! POST for a notifier), the WIT package it targets, the language's helper
//! module (the Rust SDK, `outpost_sdk.py`, `outpost_sdk.js`), a README and
//! an executable `./build` that produces `<name>.wasm`.
//!
//! Everything a project needs is embedded in this binary, so a project
//! made here builds anywhere, outside the Outpost repository too, against
//! the WIT version this agent runs. This module only writes files; it
//! never builds or runs anything.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `plugin new` arguments.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes.
    pub name: String,
    /// The language of the sources.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// A sensor (a check) or a notifier.
    #[arg(long, value_enum, default_value = "sensor")]
    pub kind: Kind,
    /// Where to write the project (default: ./<name>); must not exist or
    /// be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Languages with a scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with the Outpost SDK (cargo, wasm32-wasip2).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with jco / componentize-js.
    Js,
}

/// Kinds of plugin with a scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A check.
    Sensor,
    /// Tells people about incidents.
    Notifier,
}

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../", $path)))),*]
    };
}

/// The WIT package, as in `plugin-sdk/wit` (relative paths inside `wit/`).
const WIT: &[(&str, &str)] = embed!(
    "plugin-sdk/wit/outpost.wit",
    "plugin-sdk/wit/provider.wit",
    "plugin-sdk/wit/deps/cli.wit",
    "plugin-sdk/wit/deps/clocks.wit",
    "plugin-sdk/wit/deps/filesystem.wit",
    "plugin-sdk/wit/deps/http.wit",
    "plugin-sdk/wit/deps/io.wit",
    "plugin-sdk/wit/deps/random.wit",
    "plugin-sdk/wit/deps/sockets.wit",
);

/// The Rust SDK's sources.
const SDK_SRC: &[(&str, &str)] = embed!(
    "plugin-sdk/src/__export.rs",
    "plugin-sdk/src/bindings.rs",
    "plugin-sdk/src/config.rs",
    "plugin-sdk/src/delivery.rs",
    "plugin-sdk/src/http.rs",
    "plugin-sdk/src/lib.rs",
    "plugin-sdk/src/log.rs",
    "plugin-sdk/src/types.rs",
);

/// The shared types the SDK depends on.
const TYPES_SRC: &[(&str, &str)] = embed!(
    "types/src/abi.rs",
    "types/src/duration.rs",
    "types/src/inventory.rs",
    "types/src/lib.rs",
    "types/src/status.rs",
    "types/src/time.rs",
);

const PY_SDK: &str = include_str!("../../../sdk/python/outpost_sdk.py");
const JS_SDK: &str = include_str!("../../../sdk/js/outpost_sdk.js");
const README: &str = include_str!("scaffold/README.md");

/// Checks a plugin name.
fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plugin name: use 1 to 64 lowercase letters, digits and dashes, starting with a letter (like `shop-health`)"
        ))
    }
}

/// The files of a project, with their contents and whether they are
/// executable.
pub fn files(name: &str, lang: Lang, kind: Kind) -> Vec<(PathBuf, String, bool)> {
    let world = match kind {
        Kind::Sensor => "sensor-plugin",
        Kind::Notifier => "notifier-plugin",
    };
    let kind_word = match kind {
        Kind::Sensor => "sensor",
        Kind::Notifier => "notifier",
    };
    let crate_name = name.replace('-', "_");
    let wit = outpost_plugin_host::WIT_VERSION;
    let subst = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{world}}", world)
            .replace("{{kind}}", kind_word)
            .replace("{{wit}}", wit)
            .replace("{{version}}", env!("CARGO_PKG_VERSION"))
    };
    let mut out: Vec<(PathBuf, String, bool)> = vec![];
    let mut add =
        |path: &str, text: String, exec: bool| out.push((PathBuf::from(path), text, exec));
    let wit_files = |prefix: &str, add: &mut dyn FnMut(&str, String, bool)| {
        for (path, text) in WIT {
            let rel = path.trim_start_matches("plugin-sdk/wit/");
            add(&format!("{prefix}{rel}"), text.to_string(), false);
        }
    };
    let (language, toolchain, memory, edit) = match lang {
        Lang::Rust => {
            add(
                "Cargo.toml",
                subst(include_str!("scaffold/rust/Cargo.toml")),
                false,
            );
            let src = match kind {
                Kind::Sensor => include_str!("scaffold/rust/sensor.rs"),
                Kind::Notifier => include_str!("scaffold/rust/notifier.rs"),
            };
            add("src/lib.rs", subst(src), false);
            add("build", subst(include_str!("scaffold/rust/build")), true);
            add(".gitignore", "/target\n*.wasm\n".into(), false);
            add(
                "sdk/outpost-plugin-sdk/Cargo.toml",
                subst(include_str!("scaffold/rust/sdk-Cargo.toml")),
                false,
            );
            for (path, text) in SDK_SRC {
                let rel = path.trim_start_matches("plugin-sdk/");
                add(
                    &format!("sdk/outpost-plugin-sdk/{rel}"),
                    text.to_string(),
                    false,
                );
            }
            wit_files("sdk/outpost-plugin-sdk/wit/", &mut add);
            add(
                "sdk/outpost-types/Cargo.toml",
                subst(include_str!("scaffold/rust/types-Cargo.toml")),
                false,
            );
            for (path, text) in TYPES_SRC {
                let rel = path.trim_start_matches("types/");
                add(&format!("sdk/outpost-types/{rel}"), text.to_string(), false);
            }
            (
                "Rust",
                " (cargo; adds the wasm32-wasip2 target through rustup the first time)",
                "A Rust plugin starts with 1 to 2 MiB of memory; the agent's default\nlimit (`memory_mb = 64`) leaves plenty.",
                "`src/lib.rs`: the `Config` struct (what `config = { ... }` may hold)\nand `check`. The SDK is in `sdk/` (`outpost-plugin-sdk`): `http::send`,\n`CheckResult::ok/warn/fail`, `ConfigError::new(field, message)`.",
            )
        }
        Lang::Python => {
            let src = match kind {
                Kind::Sensor => include_str!("scaffold/python/sensor.py"),
                Kind::Notifier => include_str!("scaffold/python/notifier.py"),
            };
            add("app.py", subst(src), false);
            add("outpost_sdk.py", PY_SDK.to_string(), false);
            add("build", subst(include_str!("scaffold/python/build")), true);
            add(".gitignore", "*.wasm\n__pycache__/\n".into(), false);
            wit_files("wit/", &mut add);
            (
                "Python",
                " (componentize-py 0.25.1 from PyPI, installed the first time)",
                "A Python plugin is about 19 MB and needs about 13 MiB of memory at start\n(the agent's default `memory_mb = 64` is enough; below that the agent refuses\nit with a message naming the need). The first load compiles it for about 30 s; the agent\ncaches the result.",
                "`app.py`: `CONFIG` (the keys `config = { ... }` may hold) and `run`.\n`outpost_sdk.py` wraps the generated bindings: `http_get`, `ok/warn/fail`,\n`ConfigError(field, message)`. The standard library works, but there is no\n`ssl` or `socket`: HTTP(S) goes through `sdk.http_get`.",
            )
        }
        Lang::Js => {
            let src = match kind {
                Kind::Sensor => include_str!("scaffold/js/sensor.js"),
                Kind::Notifier => include_str!("scaffold/js/notifier.js"),
            };
            add("app.js", subst(src), false);
            add("outpost_sdk.js", JS_SDK.to_string(), false);
            add("build", subst(include_str!("scaffold/js/build")), true);
            add(".gitignore", "*.wasm\nnode_modules/\n".into(), false);
            wit_files("wit/", &mut add);
            (
                "JavaScript",
                " (jco 1.35 + componentize-js 0.23 from npm, installed the first time)",
                "A JavaScript plugin is about 13 MB and needs about 11 MiB of memory at\nstart (the default `memory_mb = 64` is enough). The first load compiles it\nfor about 30 s; the agent caches the result.",
                "`app.js`: the `config` fields and `run`. `outpost_sdk.js` wraps the\ngenerated bindings: `httpGet` (which, unlike `fetch`, tells refused,\ntimed out and denied apart), `ok/warn/fail`, `ConfigError(field, message)`.",
            )
        }
    };
    let readme = subst(README)
        .replace("{{language}}", language)
        .replace("{{toolchain}}", toolchain)
        .replace("{{memory}}", memory)
        .replace("{{edit}}", edit);
    add("README.md", readme, false);
    out
}

/// Writes the project.
pub fn new(a: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&a.name).map_err(anyhow::Error::msg)?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose another name or --dir",
            dir.display()
        );
    }
    for (rel, text, exec) in files(&a.name, a.lang, a.kind) {
        write(&dir.join(rel), &text, exec)?;
    }
    println!(
        "wrote {}: cd {} && ./build && outpost plugin test {}.wasm",
        dir.display(),
        dir.display(),
        a.name
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str, exec: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The Rust scaffold carries the SDK and the types crate as sources:
    /// every source file of both must be in the lists above.
    #[test]
    fn every_sdk_and_types_source_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, list) in [("plugin-sdk/src", SDK_SRC), ("types/src", TYPES_SRC)] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".rs") {
                    let path = format!("{dir}/{name}");
                    assert!(
                        list.iter().any(|(p, _)| *p == path),
                        "{path} is not embedded in the Rust scaffold"
                    );
                }
            }
        }
    }

    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["ping", "shop-health", "a1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Ping",
            "1ping",
            "shop_health",
            "a-",
            "x/y",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in [Kind::Sensor, Kind::Notifier] {
                let files = files("shop-health", lang, kind);
                assert!(
                    files
                        .iter()
                        .any(|(p, _, exec)| p == Path::new("build") && *exec)
                );
                assert!(files.iter().any(|(p, _, _)| p.ends_with("wit/outpost.wit")));
                // The templates (the copied SDK and WIT are not templates).
                for (path, text, _) in files
                    .iter()
                    .filter(|(p, _, _)| !p.starts_with("sdk") && !p.starts_with("wit"))
                {
                    assert!(!text.contains("{{"), "{lang:?} {kind:?} {}", path.display());
                }
            }
        }
    }
}
