//! Secrets by reference: any string value of the configuration may be
//! written as a table of exactly one key, `{ env = "NAME" }` (the value of
//! an environment variable) or `{ file = "path" }` (the contents of a file,
//! relative to the config file's directory, trailing newline removed):
//!
//! ```toml
//! [[notifier]]
//! name = "ops"
//! plugin = "slack"
//! config = { webhook_url = { file = "/run/secrets/slack-webhook" } }
//!
//! [[sensor]]
//! name = "api"
//! plugin = "http"
//! config = { url = "https://api.example.net/", headers = { Authorization = { env = "API_AUTH" } } }
//! ```
//!
//! References are resolved when the file is read, before anything else
//! sees it, so every part of the agent gets plain strings; a missing
//! variable or an unreadable file is an error at the reference's line.
//! Each resolved value is remembered (process-wide) so that text the agent
//! shows (config errors, check results) can be scrubbed of it
//! ([`redact`]).
//!
//! This module owns only the resolution and the redaction list; it does
//! not know what the values mean.

use super::{ConfigError, Source};
use std::borrow::Cow;
use std::path::Path;
use std::sync::RwLock;
use toml::de::{DeTable, DeValue};

/// Secrets shorter than this are not scrubbed from text (a 1-3 character
/// "secret" would blank out ordinary words); they are still never printed
/// by the config code itself.
const MIN_REDACTED_LEN: usize = 4;

/// What replaces a secret in shown text.
pub const REDACTED: &str = "[redacted]";

/// Every value resolved from a reference, longest first.
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn remember(value: &str) {
    if value.len() < MIN_REDACTED_LEN {
        return;
    }
    let mut k = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if !k.iter().any(|v| v == value) {
        k.push(value.to_string());
        k.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `text` with every secret resolved from a reference replaced by
/// [`REDACTED`]. Free when the configuration has no references.
pub fn redact(text: &str) -> Cow<'_, str> {
    let k = KNOWN.read().unwrap_or_else(|p| p.into_inner());
    if k.is_empty() || !k.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in k.iter() {
        out = out.replace(s.as_str(), REDACTED);
    }
    Cow::Owned(out)
}

/// Parses `src` as TOML with its references resolved, into `T`. Not
/// `strict`, a reference that cannot be resolved reads as `""`.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    src: &Source,
    strict: bool,
) -> Result<T, ConfigError> {
    let mut root = DeTable::parse(&src.text).map_err(|e| src.toml_err(&e))?;
    let base = src
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut key = String::new();
    let mut cx = Cx {
        src,
        base: &base,
        strict,
    };
    resolve_table(&mut cx, root.get_mut(), &mut key)?;
    T::deserialize(toml::de::Deserializer::from(root)).map_err(|e| src.toml_err(&e))
}

/// What resolution needs beside the value.
struct Cx<'a> {
    src: &'a Source,
    base: &'a Path,
    strict: bool,
}

fn resolve_table(
    cx: &mut Cx<'_>,
    table: &mut DeTable<'_>,
    key: &mut String,
) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let len = key.len();
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(k.get_ref());
        resolve_value(cx, v, key)?;
        key.truncate(len);
    }
    Ok(())
}

fn resolve_value(
    cx: &mut Cx<'_>,
    v: &mut toml::Spanned<DeValue<'_>>,
    key: &mut String,
) -> Result<(), ConfigError> {
    let at = v.span().start;
    let resolved = match v.get_mut() {
        DeValue::Table(t) if t.len() == 1 => {
            let (k, inner) = t.iter().next().expect("one entry");
            match (&**k.get_ref(), inner.get_ref().as_str()) {
                ("env", Some(name)) => Some(from_env(cx.src, at, key, name)),
                ("file", Some(path)) => Some(from_file(cx.src, cx.base, at, key, path)),
                _ => None,
            }
        }
        _ => None,
    };
    match (resolved, v.get_mut()) {
        (Some(Ok(value)), slot) => {
            remember(&value);
            *slot = DeValue::String(Cow::Owned(value));
        }
        (Some(Err(e)), _) if cx.strict => return Err(e),
        (Some(Err(_)), slot) => *slot = DeValue::String(Cow::Borrowed("")),
        (None, DeValue::Table(t)) => resolve_table(cx, t, key)?,
        (None, DeValue::Array(a)) => {
            for (i, item) in a.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{i}]"));
                resolve_value(cx, item, key)?;
                key.truncate(len);
            }
        }
        (None, _) => {}
    }
    Ok(())
}

fn from_env(src: &Source, at: usize, key: &str, name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => Err(src.err(
            at,
            key,
            format!("the environment variable `{name}` is empty"),
        )),
        Err(std::env::VarError::NotPresent) => Err(src.err(
            at,
            key,
            format!("the environment variable `{name}` is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(src.err(
            at,
            key,
            format!("the environment variable `{name}` is not valid UTF-8"),
        )),
    }
}

/// Largest secret file read: a token, a password or a URL; anything
/// bigger is the wrong file.
const MAX_SECRET_FILE: u64 = 64 << 10;

fn from_file(
    src: &Source,
    base: &Path,
    at: usize,
    key: &str,
    path: &str,
) -> Result<String, ConfigError> {
    let full = base.join(path);
    let fail = |why: String| {
        src.err(
            at,
            key,
            format!("cannot read the secret file {}: {why}", full.display()),
        )
    };
    let meta = std::fs::metadata(&full).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(fail(format!(
            "{} bytes; a secret file holds at most {} KiB",
            meta.len(),
            MAX_SECRET_FILE >> 10
        )));
    }
    let text = std::fs::read_to_string(&full).map_err(|e| fail(e.to_string()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(fail("it is empty".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        a: String,
        t: toml::Table,
    }

    fn source(dir: &Path, text: &str) -> Source {
        Source::new(dir.join("outpost.toml"), text.to_string())
    }

    #[test]
    fn file_references_resolve_everywhere_and_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s1"), "first-secret-value\n").unwrap();
        std::fs::write(dir.path().join("s2"), "second-secret-value").unwrap();
        let src = source(
            dir.path(),
            "a = { file = \"s1\" }\n[t]\nlist = [\"x\", { file = \"s2\" }]\nnested = { h = { file = \"s1\" } }\nplain = { file = 3 }\n",
        );
        let d: Doc = parse(&src, true).unwrap();
        assert_eq!(d.a, "first-secret-value");
        assert_eq!(d.t["list"][1].as_str(), Some("second-secret-value"));
        assert_eq!(d.t["nested"]["h"].as_str(), Some("first-secret-value"));
        // Not a reference (the value is not a string): left alone.
        assert_eq!(d.t["plain"]["file"].as_integer(), Some(3));
        assert_eq!(
            redact("url https://x/first-secret-value?second-secret-value"),
            "url https://x/[redacted]?[redacted]"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn missing_references_name_the_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(
            dir.path(),
            "a = \"x\"\n[t]\nurl = { env = \"OUTPOST_UNIT_TEST_SURELY_UNSET\" }\n",
        );
        let e = parse::<Doc>(&src, true).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "t.url"), "{e}");
        assert!(
            e.message
                .contains("`OUTPOST_UNIT_TEST_SURELY_UNSET` is not set")
        );
        // Lenient parsing (status, history) reads it as empty.
        let d: Doc = parse(&src, false).unwrap();
        assert_eq!(d.t["url"].as_str(), Some(""));

        let src = source(dir.path(), "a = { file = \"nope\" }\n[t]\n");
        let e = parse::<Doc>(&src, true).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (1, "a"), "{e}");
        assert!(e.message.contains("cannot read the secret file"), "{e}");
    }
}
