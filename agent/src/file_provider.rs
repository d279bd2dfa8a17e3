//! The built-in `file` provider: objects from a JSON, TOML or YAML file the
//! operator keeps (the "file based provider" of the Uptime Server), in the
//! inventory format of `outpost_types::inventory`, re-read when it changes.
//!
//! ```toml
//! [[provider]]
//! name = "hosts"
//! plugin = "file"
//! interval = "5s"                      # how often the file is looked at
//! config = { path = "hosts.yaml", kind = "example.com/Host" }
//! ```
//!
//! Unlike the other providers this one runs in the agent, not as a
//! WebAssembly component: plugins have no filesystem at all (that is part
//! of the sandbox's promise), and reading one local file the operator
//! named needs none of the sandbox's other protections. Only a regular
//! file under [`MAX_FILE_BYTES`] is read; a discovery whose file did not
//! change (same size and modification time) costs one `stat`.
//!
//! This module owns the file's config, reading and parsing; the runner
//! that calls it on an interval and the expansion into sensors live in
//! [`crate::providers`], its config checks in [`crate::config`].

use outpost_types::abi::DiscoveredObject;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `plugin` value that names this provider.
pub const NAME: &str = "file";

/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// The file's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON.
    Json,
    /// TOML (`[[objects]]` tables).
    Toml,
    /// YAML.
    Yaml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: String,
    format: Option<Format>,
    kind: Option<String>,
}

/// The provider's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Its syntax.
    pub format: Format,
    /// Kind of objects that do not name one.
    pub kind: Option<String>,
}

/// A configuration problem: (field, message).
pub type Problem = (String, String);

impl FileConfig {
    /// Checks the `config` table (as JSON); `base` is the config file's
    /// directory (relative paths are relative to it).
    pub fn parse(config: &serde_json::Value, base: &Path) -> Result<FileConfig, Problem> {
        let raw: RawConfig = serde_json::from_value(config.clone()).map_err(|e| {
            let m = e.to_string();
            let field = if m.contains("`path`") { "path" } else { "" };
            (field.to_string(), m)
        })?;
        if raw.path.is_empty() {
            return Err(("path".into(), "must name a file".into()));
        }
        let path = base.join(&raw.path);
        let format = match raw.format {
            Some(f) => f,
            None => match path.extension().and_then(|e| e.to_str()) {
                Some("json") => Format::Json,
                Some("toml") => Format::Toml,
                Some("yaml" | "yml") => Format::Yaml,
                _ => {
                    return Err((
                        "format".into(),
                        format!(
                            "cannot tell the syntax of `{}` from its extension; set format = \"json\", \"toml\" or \"yaml\"",
                            raw.path
                        ),
                    ));
                }
            },
        };
        if let Some(k) = &raw.kind
            && !outpost_types::inventory::valid_kind(k)
        {
            return Err((
                "kind".into(),
                format!("`{k}` is not domain/Name (e.g. example.com/Host)"),
            ));
        }
        Ok(FileConfig {
            path,
            format,
            kind: raw.kind,
        })
    }

    /// The configuration as JSON again, with the path made absolute (what
    /// the runner gets).
    pub fn to_json(&self) -> String {
        let format = match self.format {
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Yaml => "yaml",
        };
        serde_json::json!({
            "path": self.path.to_string_lossy(),
            "format": format,
            "kind": self.kind,
        })
        .to_string()
    }
}

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// Reads the file unless it still has the stamp `last`: `Ok(None)` when
/// unchanged, otherwise its objects and new stamp.
pub fn read(
    cfg: &FileConfig,
    last: Option<Stamp>,
) -> Result<Option<(Vec<DiscoveredObject>, Stamp)>, String> {
    let shown = cfg.path.display();
    let meta = std::fs::metadata(&cfg.path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} has {} bytes, more than the limit of {} MiB",
            meta.len(),
            MAX_FILE_BYTES >> 20
        ));
    }
    let stamp = Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    if last == Some(stamp) && stamp.modified.is_some() {
        return Ok(None);
    }
    // Read at most the cap even if the file grew since the stat.
    let mut text = String::new();
    {
        use std::io::Read;
        let f = std::fs::File::open(&cfg.path).map_err(|e| format!("{shown}: {e}"))?;
        f.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{shown}: {e}"))?;
    }
    let objects =
        parse(&text, cfg.format, cfg.kind.as_deref()).map_err(|e| format!("{shown}: {e}"))?;
    Ok(Some((objects, stamp)))
}

/// Parses a document in `format`.
pub fn parse(
    text: &str,
    format: Format,
    kind: Option<&str>,
) -> Result<Vec<DiscoveredObject>, String> {
    let value: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?,
        Format::Toml => {
            let t: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
            serde_json::to_value(t).map_err(|e| e.to_string())?
        }
        Format::Yaml => yaml_serde::from_str(text).map_err(|e| format!("not YAML: {e}"))?,
    };
    outpost_types::inventory::from_value(value, kind).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_syntaxes_give_the_same_objects() {
        let json = r#"{"objects":[{"id":"db-1","labels":{"dc":"eu"},"attributes":{"url":"http://db:1/","port":5432}}]}"#;
        let toml = "[[objects]]\nid = \"db-1\"\nlabels = { dc = \"eu\" }\nattributes = { url = \"http://db:1/\", port = 5432 }\n";
        let yaml = "objects:\n  - id: db-1\n    labels: {dc: eu}\n    attributes:\n      url: http://db:1/\n      port: 5432\n";
        let k = Some("example.com/Host");
        let a = parse(json, Format::Json, k).unwrap();
        assert_eq!(a, parse(toml, Format::Toml, k).unwrap());
        assert_eq!(a, parse(yaml, Format::Yaml, k).unwrap());
        assert_eq!(a[0].attribute("port"), Some("5432"));
    }

    #[test]
    fn config_and_errors() {
        let base = Path::new("/etc/outpost");
        let c = FileConfig::parse(&serde_json::json!({"path": "hosts.yml"}), base).unwrap();
        assert_eq!(c.path, Path::new("/etc/outpost/hosts.yml"));
        assert_eq!(c.format, Format::Yaml);
        let again = FileConfig::parse(
            &serde_json::from_str(&c.to_json()).unwrap(),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(again, c);
        let e = FileConfig::parse(&serde_json::json!({"path": "hosts"}), base).unwrap_err();
        assert_eq!(e.0, "format");
        let e = FileConfig::parse(&serde_json::json!({}), base).unwrap_err();
        assert_eq!(e.0, "path");
        let e = FileConfig::parse(&serde_json::json!({"path": "a.json", "kind": "Host"}), base)
            .unwrap_err();
        assert_eq!(e.0, "kind");
        let e = parse("objects:\n  - id: [", Format::Yaml, None).unwrap_err();
        assert!(e.starts_with("not YAML"), "{e}");
    }

    #[test]
    fn unchanged_files_are_not_read_again_and_odd_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.json");
        std::fs::write(&p, r#"[{"id":"a","kind":"x.io/A"}]"#).unwrap();
        let cfg = FileConfig {
            path: p.clone(),
            format: Format::Json,
            kind: None,
        };
        let (objs, stamp) = read(&cfg, None).unwrap().unwrap();
        assert_eq!(objs.len(), 1);
        assert!(read(&cfg, Some(stamp)).unwrap().is_none());
        std::fs::write(
            &p,
            r#"[{"id":"a","kind":"x.io/A"},{"id":"b","kind":"x.io/A"}]"#,
        )
        .unwrap();
        assert_eq!(read(&cfg, Some(stamp)).unwrap().unwrap().0.len(), 2);

        let dir_cfg = FileConfig {
            path: dir.path().to_path_buf(),
            ..cfg.clone()
        };
        assert!(
            read(&dir_cfg, None)
                .unwrap_err()
                .contains("not a regular file")
        );
        let gone = FileConfig {
            path: dir.path().join("missing.json"),
            ..cfg
        };
        assert!(read(&gone, None).unwrap_err().contains("missing.json"));
    }
}
