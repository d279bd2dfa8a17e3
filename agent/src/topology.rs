//! The dependency graph of systems and services and its evaluation: a pure
//! function from member states (local sensors, remote nodes of peers) to
//! the state of every node, each with a *reason* chain ("checkout is down
//! because payments-db is down because sensor mongo-a is down: 3
//! consecutive failures: connection refused").
//!
//! Nodes are evaluated causes first (the config stores them in topological
//! order), so a node always sees its members' states of the same round.
//! No I/O, no clock (the time is passed in); the pipeline stage that feeds
//! it lives in [`crate::evaluation`].
//!
//! Rules, with `u` members up (a degraded member counts as up), `d` down,
//! `x` unknown, of `n`:
//! - `all` / `any` / `quorum = k` (k = n / 1 / k): up when `u ≥ k` (degraded
//!   when `u < degraded_below` or a counted member is degraded), unknown
//!   when `u + x ≥ k` (it might be up), down otherwise.
//! - `agree = k` (multi-vantage): down only when `d ≥ k` vantage points see
//!   it down; unknown when that cannot be ruled out (`d + x ≥ k`) or no
//!   member is up; degraded when any member is not up; up otherwise.

use crate::config::topology::{Member, NodeConfig, NodeKind, Rule};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Longest reason kept, in bytes: chains through deep graphs stay
/// readable in alerts and bounded in the status JSON.
pub const MAX_REASON: usize = 1024;

/// Node and member states (defined with the status document they appear in).
pub use outpost_types::status::{MemberView, NodeState};

/// A member's state and why, as input to the evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// State.
    pub state: NodeState,
    /// Why ("sensor db is down: 3 consecutive failures: timeout").
    pub reason: String,
}

/// The evaluated state of one system or service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// Name.
    pub name: String,
    /// `system` or `service`.
    pub kind: &'static str,
    /// State.
    pub state: NodeState,
    /// Since when in this state (Unix ms).
    pub since_ms: i64,
    /// Why, as a chain down to the failing sensors.
    pub reason: String,
    /// Local targets that are down and explain this node's state.
    pub caused_by: Vec<String>,
    /// Members and their states.
    pub members: Vec<MemberView>,
    /// The rule, in words (`all`, `any`, `quorum 2`, `agree 2`).
    pub rule: String,
    /// Grouping for the status page.
    pub category: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// The graph, ready to evaluate: nodes in topological order and, per
/// member, the nodes that depend on it (directly or not).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: Vec<NodeConfig>,
    dependents: HashMap<Member, Vec<usize>>,
}

impl Graph {
    /// Builds the graph from checked nodes (already in topological order).
    pub fn new(nodes: Vec<NodeConfig>) -> Graph {
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        // Direct dependents, then their closure; the topological order
        // makes one backward pass enough.
        let mut direct: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for m in &n.members {
                if let Member::Node(name) = m
                    && let Some(&j) = index.get(name.as_str())
                {
                    direct[j].push(i);
                }
            }
        }
        let mut closure: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
        for i in (0..nodes.len()).rev() {
            let mut set: Vec<usize> = direct[i].clone();
            for &d in &direct[i] {
                set.extend(closure[d].iter().copied());
            }
            set.sort_unstable();
            set.dedup();
            closure[i] = set;
        }
        let mut dependents: HashMap<Member, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for m in &n.members {
                let mut set = vec![i];
                set.extend(closure[i].iter().copied());
                let e = dependents.entry(m.clone()).or_default();
                e.extend(set);
            }
        }
        for v in dependents.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        Graph { nodes, dependents }
    }

    /// Nodes, causes first.
    pub fn nodes(&self) -> &[NodeConfig] {
        &self.nodes
    }

    /// Names of the nodes affected by `member` (itself excluded), causes
    /// first.
    pub fn affected_by(&self, member: &Member) -> Vec<&str> {
        self.dependents
            .get(member)
            .map(|v| v.iter().map(|&i| self.nodes[i].name.as_str()).collect())
            .unwrap_or_default()
    }

    /// Nodes using any node of peer `agent`, causes first.
    pub fn affected_by_peer(&self, agent: &str) -> Vec<&str> {
        let mut idx: Vec<usize> = self
            .dependents
            .iter()
            .filter(|(m, _)| matches!(m, Member::Peer { agent: a, .. } if a == agent))
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| self.nodes[i].name.as_str())
            .collect()
    }

    /// Every peer member (`peer:<agent>/<node>`) the graph uses.
    pub fn peer_members(&self) -> HashSet<(String, String)> {
        self.dependents
            .keys()
            .filter_map(|m| match m {
                Member::Peer { agent, node } => Some((agent.clone(), node.clone())),
                _ => None,
            })
            .collect()
    }
}

fn rule_words(r: Rule) -> String {
    match r {
        Rule::All => "all".into(),
        Rule::Any => "any".into(),
        Rule::Quorum(k) => format!("quorum {k}"),
        Rule::Agree(k) => format!("agree {k}"),
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Evaluates every node, causes first. `leaf` gives the state of sensors
/// and peer members; `prev` the previous views (for `since_ms`).
pub fn evaluate(
    graph: &Graph,
    leaf: impl Fn(&Member) -> Input,
    prev: &HashMap<String, NodeView>,
    now_ms: i64,
) -> Vec<NodeView> {
    let mut done: HashMap<&str, (NodeState, String)> = HashMap::new();
    let mut out = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let inputs: Vec<(String, Input, bool)> = node
            .members
            .iter()
            .map(|m| match m {
                Member::Node(n) => {
                    let (state, reason) = done
                        .get(n.as_str())
                        .cloned()
                        .unwrap_or((NodeState::Unknown, format!("{n} is not evaluated")));
                    (n.clone(), Input { state, reason }, true)
                }
                Member::Sensor(n) => (n.clone(), leaf(m), true),
                Member::Peer { .. } => (m.spec(), leaf(m), false),
            })
            .collect();
        let (state, reason, caused_by) = combine(node, &inputs);
        let reason = clip(reason);
        let since_ms = match prev.get(&node.name) {
            Some(p) if p.state == state => p.since_ms,
            _ => now_ms,
        };
        done.insert(node.name.as_str(), (state, reason.clone()));
        out.push(NodeView {
            name: node.name.clone(),
            kind: match node.kind {
                NodeKind::System => "system",
                NodeKind::Service => "service",
            },
            state,
            since_ms,
            reason,
            caused_by,
            members: inputs
                .iter()
                .map(|(n, i, _)| MemberView {
                    name: n.clone(),
                    state: i.state,
                })
                .collect(),
            rule: rule_words(node.rule),
            category: node.category.clone(),
            description: node.description.clone(),
            labels: node.labels.clone(),
        });
    }
    out
}

/// One node's state, reason and causes from its members' inputs
/// (`(name, input, local)`).
fn combine(
    node: &NodeConfig,
    inputs: &[(String, Input, bool)],
) -> (NodeState, String, Vec<String>) {
    let n = inputs.len() as u32;
    let count = |s: NodeState| inputs.iter().filter(|(_, i, _)| i.state == s).count() as u32;
    let (up_only, degraded, down, unknown) = (
        count(NodeState::Up),
        count(NodeState::Degraded),
        count(NodeState::Down),
        count(NodeState::Unknown),
    );
    let up = up_only + degraded;
    let name = &node.name;
    let first = |s: NodeState| inputs.iter().find(|(_, i, _)| i.state == s);
    let others = |s: NodeState| {
        let rest: Vec<&str> = inputs
            .iter()
            .filter(|(_, i, _)| i.state == s)
            .skip(1)
            .map(|(n, _, _)| n.as_str())
            .collect();
        if rest.is_empty() {
            String::new()
        } else {
            format!(" (also {s}: {})", rest.join(", "))
        }
    };
    let caused_by: Vec<String> = inputs
        .iter()
        .filter(|(_, i, local)| *local && i.state == NodeState::Down)
        .map(|(n, _, _)| n.clone())
        .collect();
    let tally = format!("{up} of {n} members up");
    let because = |s: NodeState| {
        first(s)
            .map(|(_, i, _)| format!("because {}{}", i.reason, others(s)))
            .unwrap_or_default()
    };
    let down_reason = |detail: String| {
        let head = if n == 1 || node.rule == Rule::All {
            format!("{name} is down")
        } else {
            format!("{name} is down ({detail})")
        };
        format!("{head} {}", because(NodeState::Down))
    };
    let not_up_reason = || {
        first(NodeState::Down)
            .or_else(|| first(NodeState::Unknown))
            .or_else(|| first(NodeState::Degraded))
            .map(|(_, i, _)| i.reason.clone())
            .unwrap_or_default()
    };
    match node.rule {
        Rule::All | Rule::Any | Rule::Quorum(_) => {
            let k = match node.rule {
                Rule::All => n,
                Rule::Any => 1,
                Rule::Quorum(k) => k,
                Rule::Agree(_) => unreachable!(),
            };
            if up >= k {
                if up < node.degraded_below || degraded > 0 {
                    let why = not_up_reason();
                    (
                        NodeState::Degraded,
                        format!("{name} is degraded ({tally}): {why}"),
                        vec![],
                    )
                } else {
                    (NodeState::Up, format!("{name} is up ({tally})"), vec![])
                }
            } else if up + unknown >= k {
                let why = first(NodeState::Unknown)
                    .map(|(_, i, _)| i.reason.clone())
                    .unwrap_or_default();
                (
                    NodeState::Unknown,
                    format!("{name} is unknown ({tally}, {unknown} unknown): {why}"),
                    vec![],
                )
            } else {
                let detail = match node.rule {
                    Rule::Any => format!("no member up, {down} down"),
                    _ => format!("{tally}, needs {k}"),
                };
                (NodeState::Down, down_reason(detail), caused_by)
            }
        }
        Rule::Agree(k) => {
            if down >= k {
                let detail =
                    format!("{down} of {n} vantage points see it down, agreement needs {k}");
                (NodeState::Down, down_reason(detail), caused_by)
            } else if (down > 0 && down + unknown >= k) || up == 0 {
                let why = not_up_reason();
                (
                    NodeState::Unknown,
                    format!(
                        "{name} is unknown ({down} of {n} vantage points see it down, {unknown} unknown, agreement needs {k}): {why}"
                    ),
                    vec![],
                )
            } else if down > 0 || unknown > 0 || degraded > 0 {
                let why = not_up_reason();
                (
                    NodeState::Degraded,
                    format!(
                        "{name} is degraded ({down} of {n} vantage points see it down, agreement needs {k}): {why}"
                    ),
                    vec![],
                )
            } else {
                (
                    NodeState::Up,
                    format!("{name} is up (all {n} vantage points see it up)"),
                    vec![],
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, kind: NodeKind, members: &[&str], rule: Rule) -> NodeConfig {
        let members: Vec<Member> = members
            .iter()
            .map(|m| {
                if let Some(r) = m.strip_prefix("peer:") {
                    let (a, n) = r.split_once('/').unwrap();
                    Member::Peer {
                        agent: a.into(),
                        node: n.into(),
                    }
                } else if m.starts_with('s') {
                    Member::Sensor(m.to_string())
                } else {
                    Member::Node(m.to_string())
                }
            })
            .collect();
        NodeConfig {
            name: name.into(),
            kind,
            degraded_below: members.len() as u32,
            members,
            rule,
            category: None,
            description: None,
            labels: BTreeMap::new(),
        }
    }

    fn leaf(states: &[(&str, NodeState)]) -> impl Fn(&Member) -> Input {
        let map: HashMap<String, NodeState> =
            states.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        move |m: &Member| {
            let spec = m.spec();
            let state = map.get(&spec).copied().unwrap_or(NodeState::Unknown);
            let reason = match state {
                NodeState::Down => {
                    format!("sensor {spec} is down: 3 consecutive failures: connection refused")
                }
                s => format!("sensor {spec} is {s}"),
            };
            Input { state, reason }
        }
    }

    fn by_name(v: &[NodeView], n: &str) -> NodeView {
        v.iter().find(|x| x.name == n).unwrap().clone()
    }

    #[test]
    fn reason_chains_down_to_the_sensor() {
        let g = Graph::new(vec![
            node("payments-db", NodeKind::System, &["smongo-a"], Rule::All),
            node(
                "checkout",
                NodeKind::Service,
                &["payments-db", "sweb"],
                Rule::All,
            ),
        ]);
        let v = evaluate(
            &g,
            leaf(&[("smongo-a", NodeState::Down), ("sweb", NodeState::Up)]),
            &HashMap::new(),
            7,
        );
        let c = by_name(&v, "checkout");
        assert_eq!(c.state, NodeState::Down);
        assert_eq!(
            c.reason,
            "checkout is down because payments-db is down because sensor smongo-a is down: 3 consecutive failures: connection refused"
        );
        assert_eq!(c.caused_by, ["payments-db"]);
        assert_eq!(by_name(&v, "payments-db").caused_by, ["smongo-a"]);
        assert_eq!(c.since_ms, 7);
        // Parents come first.
        assert_eq!(v[0].name, "payments-db");
    }

    #[test]
    fn quorum_degrades_then_fails() {
        let g = Graph::new(vec![node(
            "db",
            NodeKind::System,
            &["s1", "s2", "s3"],
            Rule::Quorum(2),
        )]);
        let up = NodeState::Up;
        let down = NodeState::Down;
        let v = evaluate(
            &g,
            leaf(&[("s1", up), ("s2", up), ("s3", up)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Up);
        let v = evaluate(
            &g,
            leaf(&[("s1", up), ("s2", up), ("s3", down)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Degraded);
        assert!(
            v[0].reason
                .starts_with("db is degraded (2 of 3 members up): sensor s3 is down"),
            "{}",
            v[0].reason
        );
        assert!(v[0].caused_by.is_empty());
        let v = evaluate(
            &g,
            leaf(&[("s1", up), ("s2", down), ("s3", down)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Down);
        assert!(
            v[0].reason
                .starts_with("db is down (1 of 3 members up, needs 2) because sensor s2 is down"),
            "{}",
            v[0].reason
        );
        assert!(v[0].reason.ends_with("(also down: s3)"), "{}", v[0].reason);
        assert_eq!(v[0].caused_by, ["s2", "s3"]);
        // One member unknown: it might still reach quorum.
        let v = evaluate(&g, leaf(&[("s1", up), ("s2", down)]), &HashMap::new(), 0);
        assert_eq!(v[0].state, NodeState::Unknown);
    }

    #[test]
    fn any_and_degraded_threshold() {
        let mut n = node("lb", NodeKind::System, &["s1", "s2", "s3"], Rule::Any);
        n.degraded_below = 2;
        let g = Graph::new(vec![n]);
        let (up, down) = (NodeState::Up, NodeState::Down);
        let v = evaluate(
            &g,
            leaf(&[("s1", up), ("s2", up), ("s3", down)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Up, "{}", v[0].reason);
        let v = evaluate(
            &g,
            leaf(&[("s1", up), ("s2", down), ("s3", down)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Degraded);
        let v = evaluate(
            &g,
            leaf(&[("s1", down), ("s2", down), ("s3", down)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Down);
        assert!(
            v[0].reason.starts_with("lb is down (no member up, 3 down)"),
            "{}",
            v[0].reason
        );
    }

    #[test]
    fn agreement_needs_k_vantage_points() {
        let g = Graph::new(vec![node(
            "api",
            NodeKind::Service,
            &["sapi", "peer:b/api", "peer:c/api"],
            Rule::Agree(2),
        )]);
        let (up, down) = (NodeState::Up, NodeState::Down);
        let v = evaluate(
            &g,
            leaf(&[("sapi", down), ("peer:b/api", up), ("peer:c/api", up)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Degraded, "{}", v[0].reason);
        let v = evaluate(
            &g,
            leaf(&[("sapi", down), ("peer:b/api", down), ("peer:c/api", up)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Down);
        // Only the local vantage point is a local cause.
        assert_eq!(v[0].caused_by, ["sapi"]);
        // A stale peer cannot confirm or deny.
        let v = evaluate(
            &g,
            leaf(&[("sapi", down), ("peer:c/api", up)]),
            &HashMap::new(),
            0,
        );
        assert_eq!(v[0].state, NodeState::Unknown, "{}", v[0].reason);
    }

    #[test]
    fn since_is_kept_while_the_state_holds() {
        let g = Graph::new(vec![node("x", NodeKind::System, &["s1"], Rule::All)]);
        let v1 = evaluate(&g, leaf(&[("s1", NodeState::Up)]), &HashMap::new(), 10);
        let prev: HashMap<_, _> = v1.into_iter().map(|v| (v.name.clone(), v)).collect();
        let v2 = evaluate(&g, leaf(&[("s1", NodeState::Up)]), &prev, 20);
        assert_eq!(v2[0].since_ms, 10);
        let v3 = evaluate(&g, leaf(&[("s1", NodeState::Down)]), &prev, 30);
        assert_eq!(v3[0].since_ms, 30);
    }

    #[test]
    fn dependents_are_transitive_and_ordered() {
        let g = Graph::new(vec![
            node("a", NodeKind::System, &["s1"], Rule::All),
            node("b", NodeKind::System, &["a", "peer:p/x"], Rule::All),
            node("c", NodeKind::Service, &["b"], Rule::All),
            node("d", NodeKind::Service, &["s2"], Rule::All),
        ]);
        assert_eq!(g.affected_by(&Member::Sensor("s1".into())), ["a", "b", "c"]);
        assert_eq!(g.affected_by_peer("p"), ["b", "c"]);
        assert!(g.affected_by(&Member::Sensor("zz".into())).is_empty());
    }

    #[test]
    fn long_reasons_are_clipped() {
        let s = clip("é".repeat(2000));
        assert!(s.len() <= MAX_REASON && s.ends_with("..."));
    }
}
