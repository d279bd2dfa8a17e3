//! Provider answers: conversion from the bindings, and the bounds every
//! discovery is held to before the agent sees it.
//!
//! A provider is foreign code describing a foreign system; its answer is
//! treated like any other input. Its size is bounded first by the
//! instance's memory limit (the list is built in the guest's linear
//! memory), then here: at most [`DiscoveryLimits::max_objects`] objects
//! (more fails the whole discovery, so a runaway answer never replaces a
//! good set), bounded id, name, label and attribute sizes, unique ids, and
//! parent chains without cycles and at most
//! [`DiscoveryLimits::max_depth`] deep. An object breaking a per-object
//! rule is dropped and named in the report; the rest are kept.

use crate::bindings::provider::exports::outpost::plugin::provider as w;
use outpost_types::abi::{
    ConfigField, DiscoveredObject, Discovery, DiscoveryError, DiscoveryErrorKind, PluginInfo,
    PluginKind,
};
use std::collections::HashMap;

pub(crate) fn convert_info(i: w::ProviderInfo) -> PluginInfo {
    PluginInfo {
        name: i.name,
        version: i.version,
        kind: PluginKind::Provider,
        description: i.description,
        config: i
            .config
            .into_iter()
            .map(|f| ConfigField {
                name: f.name,
                ty: f.type_,
                required: f.required,
                default: f.default,
                description: f.description,
            })
            .collect(),
        kinds: i.kinds,
    }
}

pub(crate) fn convert_discovery(d: w::Discovery) -> Discovery {
    Discovery {
        objects: d.objects.map(|list| {
            list.into_iter()
                .map(|o| DiscoveredObject {
                    kind: o.kind,
                    id: o.id,
                    name: o.name,
                    labels: o.labels,
                    attributes: o.attributes,
                    parents: o.parents,
                })
                .collect()
        }),
        cursor: d.cursor,
    }
}

pub(crate) fn convert_error(e: w::DiscoveryError) -> DiscoveryError {
    DiscoveryError {
        kind: match e.kind {
            w::DiscoveryErrorKind::Unavailable => DiscoveryErrorKind::Unavailable,
            w::DiscoveryErrorKind::Denied => DiscoveryErrorKind::Denied,
            w::DiscoveryErrorKind::BadAnswer => DiscoveryErrorKind::BadAnswer,
            w::DiscoveryErrorKind::Config => DiscoveryErrorKind::Config,
        },
        message: e.message,
    }
}

/// What one discovery may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryLimits {
    /// Objects per discovery; more fails the discovery.
    pub max_objects: usize,
    /// Bytes of an id.
    pub max_id_bytes: usize,
    /// Bytes of a name, a label key or value, an attribute key.
    pub max_text_bytes: usize,
    /// Bytes of an attribute value (URLs, selectors).
    pub max_value_bytes: usize,
    /// Labels, attributes or parents per object.
    pub max_entries: usize,
    /// Length of a parent chain (an object without parents has depth 0).
    pub max_depth: usize,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        Self {
            max_objects: 20_000,
            max_id_bytes: 253,
            max_text_bytes: 256,
            max_value_bytes: 4096,
            max_entries: 64,
            max_depth: 16,
        }
    }
}

/// At most this many problems are spelled out in a report.
const MAX_PROBLEMS: usize = 20;

/// A discovery, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounded {
    /// The objects kept, in the provider's order.
    pub objects: Vec<DiscoveredObject>,
    /// How many were dropped.
    pub dropped: usize,
    /// What was wrong, for the first [`MAX_PROBLEMS`] problems.
    pub problems: Vec<String>,
}

impl Bounded {
    fn problem(&mut self, msg: String) {
        self.dropped += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(msg);
        }
    }
}

/// A kind is `<domain>/<Name>` with an optional `#subresource` (defined
/// with the inventory document, which plugins read too).
pub use outpost_types::inventory::valid_kind;

/// Checks a discovery against `limits`: `Err` when the whole answer is
/// refused (too many objects), otherwise the objects kept and what was
/// dropped.
pub fn bound(objects: Vec<DiscoveredObject>, limits: &DiscoveryLimits) -> Result<Bounded, String> {
    if objects.len() > limits.max_objects {
        return Err(format!(
            "the provider returned {} objects, more than the limit of {}; the last good set is kept",
            objects.len(),
            limits.max_objects
        ));
    }
    let mut out = Bounded::default();
    let mut ids: HashMap<String, usize> = HashMap::with_capacity(objects.len());
    let mut kept: Vec<DiscoveredObject> = Vec::with_capacity(objects.len());
    for o in objects {
        let short = |s: &str| s.chars().take(60).collect::<String>();
        let why = if o.id.is_empty() || o.id.len() > limits.max_id_bytes {
            Some(format!(
                "an object's id is {} bytes (1 to {} allowed)",
                o.id.len(),
                limits.max_id_bytes
            ))
        } else if o.id.chars().any(char::is_control) {
            Some(format!(
                "object `{}`: the id has control characters",
                short(&o.id)
            ))
        } else if !valid_kind(&o.kind) {
            Some(format!(
                "object `{}`: `{}` is not a kind (write `domain.tld/Name`)",
                short(&o.id),
                short(&o.kind)
            ))
        } else if o.name.len() > limits.max_text_bytes {
            Some(format!("object `{}`: the name is too long", short(&o.id)))
        } else if o.labels.len() > limits.max_entries
            || o.attributes.len() > limits.max_entries
            || o.parents.len() > limits.max_entries
        {
            Some(format!(
                "object `{}`: more than {} labels, attributes or parents",
                short(&o.id),
                limits.max_entries
            ))
        } else if o
            .labels
            .iter()
            .any(|(k, v)| k.len() > limits.max_text_bytes || v.len() > limits.max_text_bytes)
            || o.attributes
                .iter()
                .any(|(k, v)| k.len() > limits.max_text_bytes || v.len() > limits.max_value_bytes)
            || o.parents.iter().any(|p| p.len() > limits.max_id_bytes)
        {
            Some(format!(
                "object `{}`: a label, attribute or parent is too long",
                short(&o.id)
            ))
        } else if ids.contains_key(&o.id) {
            Some(format!(
                "object `{}` ({}): the id is already used by another object; ids must be unique",
                short(&o.id),
                o.kind
            ))
        } else {
            None
        };
        match why {
            Some(msg) => out.problem(msg),
            None => {
                ids.insert(o.id.clone(), kept.len());
                kept.push(o);
            }
        }
    }
    // Parent chains: depth by memoised walk; a cycle or a chain past the
    // limit drops the object (its ancestors stay).
    const UNKNOWN: u32 = u32::MAX;
    const VISITING: u32 = u32::MAX - 1;
    const BAD: u32 = u32::MAX - 2;
    let mut depth = vec![UNKNOWN; kept.len()];
    let max = limits.max_depth as u32;
    for start in 0..kept.len() {
        if depth[start] != UNKNOWN {
            continue;
        }
        // Iterative DFS over the parent links.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        depth[start] = VISITING;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let parents = &kept[node].parents;
            if *next < parents.len() {
                let p = &parents[*next];
                *next += 1;
                let Some(&pi) = ids.get(p) else { continue };
                match depth[pi] {
                    UNKNOWN => {
                        if stack.len() > limits.max_depth + 1 {
                            // Too deep already: no need to go further.
                            depth[pi] = BAD;
                            continue;
                        }
                        depth[pi] = VISITING;
                        stack.push((pi, 0));
                    }
                    VISITING => depth[node] = BAD, // a cycle through `node`
                    _ => {}
                }
                continue;
            }
            stack.pop();
            let mut d = 0u32;
            let mut bad = depth[node] == BAD;
            for p in parents {
                if let Some(&pi) = ids.get(p) {
                    match depth[pi] {
                        BAD | VISITING => bad = true,
                        UNKNOWN => {}
                        pd => d = d.max(pd + 1),
                    }
                }
            }
            depth[node] = if bad || d > max { BAD } else { d };
        }
    }
    let mut result = Vec::with_capacity(kept.len());
    for (o, d) in kept.into_iter().zip(depth) {
        if d == BAD {
            let id: String = o.id.chars().take(60).collect();
            out.problem(format!(
                "object `{id}`: its parent chain is a cycle or deeper than {}",
                limits.max_depth
            ));
        } else {
            result.push(o);
        }
    }
    out.objects = result;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: &str, parents: &[&str]) -> DiscoveredObject {
        let mut o = DiscoveredObject::new("example.com/Thing", id);
        o.parents = parents.iter().map(|p| p.to_string()).collect();
        o
    }

    #[test]
    fn kinds() {
        assert!(valid_kind("kubernetes.io/Ingress"));
        assert!(valid_kind("kubernetes.io/Pod#volume"));
        assert!(!valid_kind("Ingress"));
        assert!(!valid_kind("k8s/Ingress"));
        assert!(!valid_kind("kubernetes.io/"));
    }

    #[test]
    fn too_many_objects_fail_the_discovery() {
        let l = DiscoveryLimits {
            max_objects: 3,
            ..Default::default()
        };
        let objs = (0..4).map(|i| obj(&format!("o{i}"), &[])).collect();
        assert!(bound(objs, &l).unwrap_err().contains("4 objects"));
    }

    #[test]
    fn duplicates_cycles_and_deep_chains_are_dropped_and_reported() {
        let l = DiscoveryLimits {
            max_depth: 3,
            ..Default::default()
        };
        let mut objs = vec![
            obj("root", &[]),
            obj("a", &["root"]),
            obj("a", &[]),
            obj("x", &["y"]),
            obj("y", &["x"]),
            obj("orphan", &["nowhere"]),
        ];
        // A chain of 6: c0 <- c1 <- ... <- c5.
        for i in 0..6 {
            let p = if i == 0 {
                vec![]
            } else {
                vec![format!("c{}", i - 1)]
            };
            objs.push(DiscoveredObject {
                parents: p,
                ..obj(&format!("c{i}"), &[])
            });
        }
        let b = bound(objs, &l).unwrap();
        let ids: Vec<&str> = b.objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["root", "a", "orphan", "c0", "c1", "c2", "c3"]);
        assert_eq!(b.dropped, 5, "{:?}", b.problems);
        assert!(b.problems.iter().any(|p| p.contains("already used")));
        assert!(
            b.problems
                .iter()
                .any(|p| p.contains("`x`") && p.contains("cycle"))
        );
    }

    #[test]
    fn a_long_chain_is_walked_without_recursion() {
        let n = 100_000;
        let objs = (0..n)
            .map(|i| {
                if i == 0 {
                    obj("n0", &[])
                } else {
                    obj(&format!("n{i}"), &[&format!("n{}", i - 1)])
                }
            })
            .collect();
        let b = bound(
            objs,
            &DiscoveryLimits {
                max_objects: n,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(b.objects.len(), 17);
        assert_eq!(b.dropped, n - 17);
        assert_eq!(b.problems.len(), MAX_PROBLEMS);
    }
}
