//! The inventory document: a list of objects as an external system (a
//! CMDB, a service catalog, a file an operator keeps) writes them, read by
//! the `http-inventory` and `file` providers.
//!
//! ```json
//! { "objects": [
//!     { "kind": "example.com/Host", "id": "db-1", "name": "Primary DB",
//!       "labels": { "role": "db" },
//!       "attributes": { "url": "http://10.0.0.5:8080/health", "port": 5432 },
//!       "parents": ["dc/eu-1"] } ] }
//! ```
//!
//! A bare array of objects is accepted too. `kind` may be left out when
//! the provider's config names a default kind; `name` defaults to the id;
//! attribute values may be strings, numbers or booleans (templates see
//! their text). Anything else is an error that names the object and the
//! field. This module only parses; bounds (object count, sizes, cycles)
//! are the host's.

use crate::abi::DiscoveredObject;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a document cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    /// Not JSON of the expected shape.
    #[error("not an inventory document: {0}")]
    Shape(String),
    /// An object is missing something or has a wrong value.
    #[error("object {index}{id}: {message}")]
    Object {
        /// Position in the list, from 0.
        index: usize,
        /// ` (`id`)` when the object has one.
        id: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    kind: Option<String>,
    id: Option<serde_json::Value>,
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    parents: Vec<String>,
}

/// The text of a string, number or boolean.
fn scalar(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `kind` has the `<domain>/<Name>` shape (`kubernetes.io/Ingress`),
/// with an optional `#subresource` (`kubernetes.io/Pod#volume`); the domain
/// has a dot, at most 128 bytes in all.
pub fn valid_kind(kind: &str) -> bool {
    let (main, sub) = kind.split_once('#').unwrap_or((kind, ""));
    let Some((domain, name)) = main.split_once('/') else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    domain.contains('.')
        && word(domain)
        && word(name)
        && (sub.is_empty() || word(sub))
        && kind.len() <= 128
        && !kind.ends_with('#')
}

/// Parses a JSON inventory document; objects without a `kind` get
/// `default_kind`.
pub fn parse_json(
    body: &[u8],
    default_kind: Option<&str>,
) -> Result<Vec<DiscoveredObject>, InventoryError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| InventoryError::Shape(e.to_string()))?;
    from_value(value, default_kind)
}

/// Converts an already parsed document (JSON, or TOML/YAML read into a
/// `serde_json::Value`) the same way as [`parse_json`].
pub fn from_value(
    value: serde_json::Value,
    default_kind: Option<&str>,
) -> Result<Vec<DiscoveredObject>, InventoryError> {
    use serde_json::Value;
    let shape = || {
        InventoryError::Shape(
            "expected {\"objects\": [{\"kind\": .., \"id\": .., ..}]} or a list of objects".into(),
        )
    };
    let list = match value {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("objects") {
            Some(Value::Array(a)) => a,
            _ => return Err(shape()),
        },
        _ => return Err(shape()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (index, item) in list.into_iter().enumerate() {
        let id_hint = item.get("id").cloned().and_then(scalar).unwrap_or_default();
        let err = |message: String| InventoryError::Object {
            index,
            id: if id_hint.is_empty() {
                String::new()
            } else {
                format!(" (`{id_hint}`)")
            },
            message,
        };
        let o: RawObject = serde_json::from_value(item).map_err(|e| err(e.to_string()))?;
        let id = o.id.and_then(scalar).unwrap_or_default();
        if id.is_empty() {
            return Err(err(
                "has no `id` (a stable id names its sensors and keeps their history)".into(),
            ));
        }
        let kind = match (o.kind, default_kind) {
            (Some(k), _) => k,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(err(
                    "has no `kind`; give one (`example.com/Host`) or set the provider's `kind`"
                        .into(),
                ));
            }
        };
        if !valid_kind(&kind) {
            return Err(err(format!(
                "`kind` `{kind}` is not domain/Name (e.g. `example.com/Host`)"
            )));
        }
        let pairs = |m: BTreeMap<String, Value>, what: &str| {
            m.into_iter()
                .map(|(k, v)| {
                    scalar(v).map(|v| (k.clone(), v)).ok_or_else(|| {
                        err(format!("{what}.{k} must be a string, number or boolean"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut obj = DiscoveredObject::new(kind, id);
        if let Some(n) = o.name {
            obj = obj.name(n);
        }
        obj.labels = pairs(o.labels, "labels")?;
        obj.attributes = pairs(o.attributes, "attributes")?;
        obj.parents = o.parents;
        out.push(obj);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_and_bare_documents() {
        let doc = br#"{"objects":[{"kind":"example.com/Host","id":"db-1","name":"Primary",
            "labels":{"role":"db"},"attributes":{"url":"http://db:8080/","port":5432,"tls":false},
            "parents":["dc/eu"]}]}"#;
        let o = parse_json(doc, None).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].kind, "example.com/Host");
        assert_eq!(o[0].name, "Primary");
        assert_eq!(o[0].attribute("port"), Some("5432"));
        assert_eq!(o[0].attribute("tls"), Some("false"));
        assert_eq!(o[0].label_value("role"), Some("db"));
        assert_eq!(o[0].parents, ["dc/eu"]);

        let bare = br#"[{"id":7},{"id":"b","kind":"x.io/Y"}]"#;
        let o = parse_json(bare, Some("example.com/Host")).unwrap();
        assert_eq!(o[0].id, "7");
        assert_eq!(o[0].name, "7");
        assert_eq!(o[0].kind, "example.com/Host");
        assert_eq!(o[1].kind, "x.io/Y");
    }

    #[test]
    fn errors_name_the_object_and_field() {
        let e = parse_json(br#"[{"id":"a","kind":"x.io/A"},{"name":"no id"}]"#, None).unwrap_err();
        assert_eq!(e.to_string().split(':').next().unwrap(), "object 1");
        assert!(e.to_string().contains("`id`"), "{e}");
        let e = parse_json(br#"[{"id":"a"}]"#, None).unwrap_err();
        assert!(
            e.to_string().contains("object 0 (`a`)") && e.to_string().contains("kind"),
            "{e}"
        );
        let e = parse_json(br#"[{"id":"a","kind":"Host"}]"#, None).unwrap_err();
        assert!(e.to_string().contains("domain/Name"), "{e}");
        let e = parse_json(br#"[{"id":"a","kind":"x.io/A","colour":1}]"#, None).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse_json(b"{\"things\":[]}", None).unwrap_err();
        assert!(matches!(e, InventoryError::Shape(_)), "{e}");
        let e = parse_json(
            br#"[{"id":"a","kind":"x.io/A","attributes":{"n":[1]}}]"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("attributes.n"), "{e}");
    }

    #[test]
    fn kinds() {
        assert!(valid_kind("kubernetes.io/Ingress"));
        assert!(valid_kind("kubernetes.io/Pod#volume"));
        assert!(!valid_kind("kubernetes.io/Pod#"));
        assert!(!valid_kind("/Ingress"));
        assert!(!valid_kind("Ingress"));
        assert!(!valid_kind("a b/C"));
        assert!(!valid_kind("k8s/Ingress"));
        assert!(!valid_kind("kubernetes.io/"));
    }
}
