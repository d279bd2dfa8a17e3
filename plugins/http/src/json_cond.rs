//! Conditions on a JSON body:
//! `json = [{ pointer = "/status", op = "==", value = "up" }]`.
//!
//! `pointer` is an RFC 6901 JSON pointer (`/a/0/b`, `~1` for `/`, `~0` for
//! `~`); messages show it as a path (`$.a[0].b`) because that is how people
//! read it. Evaluation is a pure function of the parsed body.
//!
//! A condition that does not hold fails the check, or only warns with
//! `severity = "warn"` (Elasticsearch's `yellow`). The ordering operators
//! also accept a string holding a number, because the Prometheus HTTP API
//! writes sample values as strings (`"value": [1700000000.5, "0.97"]`).

use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// Equal (numbers compare by value: `1 == 1.0`).
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than (numbers).
    #[serde(rename = "<")]
    Lt,
    /// Greater than (numbers).
    #[serde(rename = ">")]
    Gt,
    /// Less or equal (numbers).
    #[serde(rename = "<=")]
    Le,
    /// Greater or equal (numbers).
    #[serde(rename = ">=")]
    Ge,
    /// A string contains a substring, or an array contains an element.
    #[serde(rename = "contains")]
    Contains,
    /// The pointer resolves (with `value = false`: it must not).
    #[serde(rename = "exists")]
    Exists,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::Exists => "exists",
        })
    }
}

/// What a condition that does not hold does to the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The check fails (the default).
    #[default]
    Fail,
    /// The check warns.
    Warn,
}

/// A JSON pointer (RFC 6901), checked at deserialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Parses `""` (the whole document) or `/a/b`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                tokens: vec![],
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "`{text}`: a JSON pointer must start with `/` (RFC 6901), e.g. `/status` or `/checks/0/state`"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut t = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => t.push('~'),
                        Some('1') => t.push('/'),
                        _ => {
                            return Err(format!(
                                "`{text}`: `~` must be written `~0` (and `/` inside a key `~1`)"
                            ));
                        }
                    }
                } else {
                    t.push(c);
                }
            }
            tokens.push(t);
        }
        Ok(Self {
            text: text.to_string(),
            tokens,
        })
    }

    /// The value this pointer designates in `doc`, if any.
    pub fn resolve<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut v = doc;
        for t in &self.tokens {
            v = match v {
                Value::Object(o) => o.get(t)?,
                Value::Array(a) => {
                    // RFC 6901: decimal without leading zeros.
                    if t.is_empty() || (t.len() > 1 && t.starts_with('0')) {
                        return None;
                    }
                    a.get(t.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
        }
        Some(v)
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `$.a[0].b` for `/a/0/b`; odd keys are quoted (`$["a b"]`).
impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for t in &self.tokens {
            let ident = !t.is_empty()
                && !t.starts_with(|c: char| c.is_ascii_digit())
                && t.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if ident {
                write!(f, ".{t}")?;
            } else if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
                write!(f, "[{t}]")?;
            } else {
                write!(f, "[{}]", Value::String(t.clone()))?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Pointer::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCondition {
    /// Where in the document.
    pub pointer: Pointer,
    /// How to compare.
    pub op: Op,
    /// What to compare with (for `exists`: `true` (default) or `false`).
    #[serde(default)]
    pub value: Option<Value>,
    /// `fail` (default) or `warn` when the condition does not hold.
    #[serde(default)]
    pub severity: Severity,
}

impl JsonCondition {
    /// Cross-field checks; the error is `(field, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match (self.op, &self.value) {
            (Op::Exists, None | Some(Value::Bool(_))) => Ok(()),
            (Op::Exists, Some(v)) => Err((
                "value",
                format!("`exists` takes `value = true` or `value = false` (or none), got {v}"),
            )),
            (_, None) => Err((
                "value",
                format!("operator `{}` needs a `value` to compare with", self.op),
            )),
            (Op::Lt | Op::Gt | Op::Le | Op::Ge, Some(v)) if !v.is_number() => Err((
                "value",
                format!(
                    "operator `{}` compares numbers; `value` must be a number, got {v}",
                    self.op
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Evaluates against `doc`; `Err` is the failure message, e.g.
    /// `$.status is "down", expected == "up"`.
    pub fn evaluate(&self, doc: &Value) -> Result<(), String> {
        let found = self.pointer.resolve(doc);
        let expected = match &self.value {
            Some(v) => format!("{} {}", self.op, v),
            None => self.op.to_string(),
        };
        if self.op == Op::Exists {
            let want = !matches!(self.value, Some(Value::Bool(false)));
            return match (found, want) {
                (Some(_), true) | (None, false) => Ok(()),
                (None, true) => Err(format!("{} is missing, expected it to exist", self.pointer)),
                (Some(v), false) => Err(format!(
                    "{} is {}, expected it not to exist",
                    self.pointer,
                    short(v)
                )),
            };
        }
        let Some(actual) = found else {
            return Err(format!("{} is missing, expected {expected}", self.pointer));
        };
        let value = self
            .value
            .as_ref()
            .expect("validated: non-exists ops have a value");
        let holds = match self.op {
            Op::Eq => json_eq(actual, value),
            Op::Ne => !json_eq(actual, value),
            Op::Lt | Op::Gt | Op::Le | Op::Ge => {
                let (Some(a), Some(b)) = (as_number(actual), value.as_f64()) else {
                    return Err(format!(
                        "{} is {}, expected {expected} (not a number)",
                        self.pointer,
                        short(actual)
                    ));
                };
                match self.op {
                    Op::Lt => a < b,
                    Op::Gt => a > b,
                    Op::Le => a <= b,
                    _ => a >= b,
                }
            }
            Op::Contains => match (actual, value) {
                (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
                (Value::Array(items), v) => items.iter().any(|i| json_eq(i, v)),
                (Value::Object(o), Value::String(key)) => o.contains_key(key),
                _ => false,
            },
            Op::Exists => unreachable!("handled above"),
        };
        if holds {
            Ok(())
        } else {
            Err(format!(
                "{} is {}, expected {expected}",
                self.pointer,
                short(actual)
            ))
        }
    }
}

/// A number, or a string holding one (`"0.97"`, `"NaN"`, `"+Inf"`: how
/// Prometheus writes sample values). NaN compares false with everything.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// Equality with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A value for a one-line message: JSON text, cut at 80 characters.
fn short(v: &Value) -> String {
    /// Long enough for any status word or number, short enough that the
    /// message stays one readable line.
    const MAX: usize = 80;
    let text = v.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(pointer: &str, op: &str, value: Option<Value>) -> JsonCondition {
        let mut j = json!({"pointer": pointer, "op": op});
        if let Some(v) = value {
            j["value"] = v;
        }
        let c: JsonCondition = serde_json::from_value(j).unwrap();
        c.validate().unwrap();
        c
    }

    fn doc() -> Value {
        json!({
            "status": "down",
            "count": 3,
            "ratio": 0.5,
            "tags": ["a", "b"],
            "checks": [{"name": "db", "ok": true}],
            "a/b": {"m~n": 1},
            "": 7
        })
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let d = doc();
        let get = |p: &str| Pointer::parse(p).unwrap().resolve(&d).cloned();
        assert_eq!(get(""), Some(d.clone()));
        assert_eq!(get("/status"), Some(json!("down")));
        assert_eq!(get("/checks/0/name"), Some(json!("db")));
        assert_eq!(get("/a~1b/m~0n"), Some(json!(1)));
        assert_eq!(get("/"), Some(json!(7)));
        assert_eq!(get("/checks/01"), None);
        assert_eq!(get("/checks/1"), None);
        assert_eq!(get("/status/x"), None);
        assert!(Pointer::parse("status").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert_eq!(
            Pointer::parse("/checks/0/name").unwrap().to_string(),
            "$.checks[0].name"
        );
        assert_eq!(Pointer::parse("/a~1b").unwrap().to_string(), "$[\"a/b\"]");
    }

    #[test]
    fn each_operator() {
        let d = doc();
        let ok = |p, op, v: Value| cond(p, op, Some(v)).evaluate(&d);
        assert_eq!(ok("/status", "==", json!("down")), Ok(()));
        assert_eq!(
            ok("/status", "==", json!("up")),
            Err("$.status is \"down\", expected == \"up\"".into())
        );
        assert_eq!(ok("/count", "==", json!(3.0)), Ok(()));
        assert_eq!(ok("/status", "!=", json!("up")), Ok(()));
        assert!(ok("/status", "!=", json!("down")).is_err());
        assert_eq!(ok("/count", "<", json!(4)), Ok(()));
        assert!(ok("/count", "<", json!(3)).is_err());
        assert_eq!(ok("/count", "<=", json!(3)), Ok(()));
        assert_eq!(ok("/ratio", ">", json!(0.25)), Ok(()));
        assert_eq!(
            ok("/ratio", ">=", json!(0.75)),
            Err("$.ratio is 0.5, expected >= 0.75".into())
        );
        assert_eq!(
            ok("/status", ">", json!(1)),
            Err("$.status is \"down\", expected > 1 (not a number)".into())
        );
        assert_eq!(ok("/status", "contains", json!("ow")), Ok(()));
        assert_eq!(ok("/tags", "contains", json!("b")), Ok(()));
        assert!(ok("/tags", "contains", json!("c")).is_err());
        assert_eq!(ok("/checks/0", "contains", json!("ok")), Ok(()));
        assert_eq!(cond("/checks/0/ok", "exists", None).evaluate(&d), Ok(()));
        assert_eq!(
            cond("/nope", "exists", None).evaluate(&d),
            Err("$.nope is missing, expected it to exist".into())
        );
        assert_eq!(
            cond("/nope", "exists", Some(json!(false))).evaluate(&d),
            Ok(())
        );
        assert!(
            cond("/status", "exists", Some(json!(false)))
                .evaluate(&d)
                .is_err()
        );
    }

    #[test]
    fn ordering_accepts_numeric_strings_as_prometheus_writes_them() {
        let d = json!({"data": {"result": [{"value": [1700000000.5, "0.97"]}]}, "nan": "NaN", "inf": "+Inf"});
        let ok = |p, op, v: Value| cond(p, op, Some(v)).evaluate(&d);
        assert_eq!(ok("/data/result/0/value/1", ">=", json!(0.95)), Ok(()));
        assert_eq!(
            ok("/data/result/0/value/1", "<", json!(0.9)),
            Err("$.data.result[0].value[1] is \"0.97\", expected < 0.9".into())
        );
        assert!(ok("/nan", "<", json!(1)).is_err());
        assert!(ok("/nan", ">=", json!(1)).is_err());
        assert_eq!(ok("/inf", ">", json!(1e300)), Ok(()));
        // Equality stays JSON equality: "1" is not 1.
        assert!(ok("/data/result/0/value/1", "==", json!(0.97)).is_err());
    }

    #[test]
    fn severity_defaults_to_fail_and_parses_warn() {
        let c: JsonCondition =
            serde_json::from_value(json!({"pointer": "/s", "op": "==", "value": "green"})).unwrap();
        assert_eq!(c.severity, Severity::Fail);
        let c: JsonCondition = serde_json::from_value(
            json!({"pointer": "/s", "op": "==", "value": "green", "severity": "warn"}),
        )
        .unwrap();
        assert_eq!(c.severity, Severity::Warn);
        let e = serde_json::from_value::<JsonCondition>(
            json!({"pointer": "/s", "op": "==", "value": 1, "severity": "page"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }

    #[test]
    fn missing_pointer_says_so() {
        assert_eq!(
            cond("/health/db", "==", Some(json!("up"))).evaluate(&doc()),
            Err("$.health.db is missing, expected == \"up\"".into())
        );
    }

    #[test]
    fn validation() {
        let bad = |j: Value| {
            serde_json::from_value::<JsonCondition>(j)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map_err(|e| e.1))
                .unwrap_err()
        };
        assert!(bad(json!({"pointer": "/a", "op": "=="})).contains("needs a `value`"));
        assert!(
            bad(json!({"pointer": "/a", "op": "<", "value": "5"})).contains("must be a number")
        );
        assert!(bad(json!({"pointer": "/a", "op": "exists", "value": 1})).contains("true"));
        assert!(bad(json!({"pointer": "/a", "op": "~"})).contains("unknown variant"));
        assert!(
            bad(json!({"pointer": "/a", "op": "==", "value": 1, "x": 1})).contains("unknown field")
        );
    }
}
