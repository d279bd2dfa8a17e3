//! `[[system]]`, `[[service]]`, `[[peer]]`, `[[push]]` and `[api]`: the
//! dependency graph and federation parts of the configuration, raw and
//! checked. Owns only parsing and validation (names resolve, no cycles,
//! rules are satisfiable, tokens readable); evaluation lives in
//! [`crate::topology`], polling in [`crate::federation`].
//!
//! ```toml
//! [[system]]
//! name = "payments-db"
//! members = ["mongo-a", "mongo-b", "mongo-c"]
//! quorum = 2                    # or rule = "all" | "any", or agree = k
//!
//! [[service]]
//! name = "checkout"
//! depends_on = ["payments-db", "peer:eu-1/api"]
//! category = "Shop"
//!
//! [[peer]]
//! name = "eu-1"                 # the peer agent's `[agent] name`
//! url = "http://10.0.0.7:9090"  # omit for a peer that pushes to us
//! token_file = "eu-1.token"
//! ```

use super::raw::{RawApi, RawNode, RawPeer, RawPush};
use super::{ConfigError, Source, check_name};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default time between polls of a peer: frequent enough that a remote
/// failure shows within seconds, cheap because unchanged answers are 304s.
pub const DEFAULT_PEER_INTERVAL: Duration = Duration::from_secs(5);
/// Default time allowed for one poll (connect, headers and whole body): a
/// peer on a LAN answers in milliseconds; one that takes longer is sick.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of missed polls (or pushes) before a peer is stale: one
/// lost packet must not mark a fleet unknown.
pub const DEFAULT_PEER_MISSES: u32 = 2;
/// Default time between pushes to an aggregator.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How a node combines its members' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Up when every member is up; down when any is down.
    All,
    /// Up when at least one member is up.
    Any,
    /// Up when at least k members are up.
    Quorum(u32),
    /// Multi-vantage agreement: down only when at least k members
    /// (vantage points) see it down; fewer is degraded.
    Agree(u32),
}

/// A member reference, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    /// A local sensor.
    Sensor(String),
    /// A local system or service.
    Node(String),
    /// A node (sensor, system or service) of a peer agent.
    Peer {
        /// The peer agent's name.
        agent: String,
        /// The node's name on that agent.
        node: String,
    },
}

impl Member {
    /// The reference as written (`db`, `peer:eu-1/api`).
    pub fn spec(&self) -> String {
        match self {
            Member::Sensor(n) | Member::Node(n) => n.clone(),
            Member::Peer { agent, node } => format!("peer:{agent}/{node}"),
        }
    }
}

/// Whether a node is a system or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `[[system]]`.
    System,
    /// `[[service]]`.
    Service,
}

/// One system or service, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Unique name (across sensors, systems and services).
    pub name: String,
    /// System or service.
    pub kind: NodeKind,
    /// Members (systems) or dependencies (services), in file order.
    pub members: Vec<Member>,
    /// How members combine.
    pub rule: Rule,
    /// Degraded (not up) while fewer than this many members are up; by
    /// default every member must be up for `up`.
    pub degraded_below: u32,
    /// Grouping for the status page.
    pub category: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Labels (escalation selectors).
    pub labels: BTreeMap<String, String>,
}

/// One `[[peer]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// The peer agent's name (`peer:<name>/...`).
    pub name: String,
    /// Base URL to poll; `None` for a peer that pushes to this agent.
    pub url: Option<String>,
    /// Bearer token sent to (or expected from) the peer.
    pub token: Option<String>,
    /// Time between polls (or expected time between pushes).
    pub interval: Duration,
    /// Time allowed for one poll.
    pub timeout: Duration,
    /// Missed polls/pushes before the peer is stale.
    pub stale_after_misses: u32,
    /// TLS options of an `https://` url (`Some` for every https url).
    pub tls: Option<crate::tls::ClientSettings>,
}

/// One `[[push]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PushConfig {
    /// Aggregator base URL (the agent POSTs to `<url>/api/v1/push`).
    pub url: String,
    /// Bearer token for the aggregator.
    pub token: Option<String>,
    /// Time between pushes.
    pub interval: Duration,
    /// TLS options of an `https://` url (`Some` for every https url).
    pub tls: Option<crate::tls::ClientSettings>,
}

/// `[api]`, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiConfig {
    /// Bearer token required by the status endpoints (`None`: open).
    pub read_token: Option<String>,
    /// Bearer token peers must present to `POST /api/v1/push` (`None`:
    /// pushes are refused).
    pub push_token: Option<String>,
}

/// The checked topology and federation configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Topology {
    /// Systems and services, causes before dependents (topological order).
    pub nodes: Vec<NodeConfig>,
    /// Peers.
    pub peers: Vec<PeerConfig>,
    /// Aggregators to push to.
    pub push: Vec<PushConfig>,
    /// API access.
    pub api: ApiConfig,
}

/// The raw sections, taken out of the file.
#[derive(Debug, Default)]
pub struct RawTopology {
    /// `[[system]]`.
    pub system: Vec<Spanned<RawNode>>,
    /// `[[service]]`.
    pub service: Vec<Spanned<RawNode>>,
    /// `[[peer]]`.
    pub peer: Vec<Spanned<RawPeer>>,
    /// `[[push]]`.
    pub push: Vec<Spanned<RawPush>>,
    /// `[api]`.
    pub api: Option<RawApi>,
}

struct Pending<'a> {
    name: &'a Spanned<String>,
    at: usize,
    kind: NodeKind,
    members: &'a Spanned<Vec<Spanned<String>>>,
    common: &'a RawNode,
    key: String,
}

fn read_token(
    src: &Source,
    base: &Path,
    key: &str,
    inline: Option<&String>,
    file: Option<&Spanned<String>>,
    at: usize,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(f)) => Err(src.err(
            f.span().start,
            key,
            "set either `token` or `token_file`, not both",
        )),
        (Some(t), None) => Ok(Some(t.trim().to_string())).and_then(|t| nonempty(src, at, key, t)),
        (None, Some(f)) => {
            let path: PathBuf = base.join(f.get_ref());
            let t = std::fs::read_to_string(&path).map_err(|e| {
                src.err(
                    f.span().start,
                    key,
                    format!("cannot read the token file {}: {e}", path.display()),
                )
            })?;
            nonempty(src, f.span().start, key, Some(t.trim().to_string()))
        }
        (None, None) => Ok(None),
    }
}

fn nonempty(
    src: &Source,
    at: usize,
    key: &str,
    t: Option<String>,
) -> Result<Option<String>, ConfigError> {
    match t {
        Some(t) if t.is_empty() => Err(src.err(at, key, "the token is empty")),
        t => Ok(t),
    }
}

fn check_url(src: &Source, u: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
    let s = u.get_ref().trim_end_matches('/');
    let ok = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !ok {
        return Err(src.err(
            u.span().start,
            key,
            format!(
                "`{}` is not a supported URL; write e.g. \"https://10.0.0.7:9090\" or \"http://10.0.0.7:9090\"",
                u.get_ref()
            ),
        ));
    }
    Ok(s.to_string())
}

/// Checks the topology sections of the main file against the (enabled)
/// sensor names. Errors name file:line:key.
pub(super) fn check(
    src: &Source,
    raw: &RawTopology,
    sensors: &[String],
    agent_name: &str,
    base: &Path,
) -> Result<Topology, ConfigError> {
    // Peers first: members may refer to them.
    let mut peers = Vec::new();
    let mut peer_names: HashMap<String, usize> = HashMap::new();
    for (i, p) in raw.peer.iter().enumerate() {
        let at = p.span().start;
        let p = p.get_ref();
        let key = format!("peer[{i}]");
        check_name(p.name.get_ref())
            .map_err(|m| src.err(p.name.span().start, format!("{key}.name"), m))?;
        let name = p.name.get_ref().clone();
        if name == agent_name {
            return Err(src.err(
                p.name.span().start,
                format!("{key}.name"),
                format!("`{name}` is this agent's own name; an agent cannot be its own peer"),
            ));
        }
        if let Some(prev) = peer_names.insert(name.clone(), at) {
            let (line, _) = src.locate(prev);
            return Err(src.err(
                p.name.span().start,
                format!("{key}.name"),
                format!("a peer named `{name}` is already defined at line {line}"),
            ));
        }
        let url = p
            .url
            .as_ref()
            .map(|u| check_url(src, u, &format!("{key}.url")))
            .transpose()?;
        let token = read_token(
            src,
            base,
            &format!("{key}.token_file"),
            p.token.as_ref(),
            p.token_file.as_ref(),
            at,
        )?;
        let interval = p
            .interval
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(DEFAULT_PEER_INTERVAL);
        if interval < super::MIN_INTERVAL {
            let at = p.interval.as_ref().map(|d| d.span().start).unwrap_or(at);
            return Err(src.err(
                at,
                format!("{key}.interval"),
                format!("must be at least {} ms", super::MIN_INTERVAL.as_millis()),
            ));
        }
        let timeout = p
            .timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(DEFAULT_PEER_TIMEOUT.min(interval));
        if timeout.is_zero() || timeout > interval {
            let at = p.timeout.as_ref().map(|d| d.span().start).unwrap_or(at);
            return Err(src.err(
                at,
                format!("{key}.timeout"),
                "must be more than 0 and at most the interval",
            ));
        }
        let misses = p
            .stale_after_misses
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or(DEFAULT_PEER_MISSES);
        if misses == 0 {
            return Err(src.err(
                at,
                format!("{key}.stale_after_misses"),
                "must be at least 1",
            ));
        }
        let https = url.as_deref().is_some_and(|u| u.starts_with("https://"));
        let tls = super::tls::check_client(src, p.tls.as_ref(), base, &key, https)?;
        peers.push(PeerConfig {
            name,
            url,
            token,
            interval,
            timeout,
            stale_after_misses: misses,
            tls,
        });
    }

    // Node names: unique across sensors, systems and services.
    let mut pending = Vec::new();
    let all = raw
        .system
        .iter()
        .enumerate()
        .map(|(i, s)| (NodeKind::System, i, s))
        .chain(
            raw.service
                .iter()
                .enumerate()
                .map(|(i, s)| (NodeKind::Service, i, s)),
        );
    for (kind, i, s) in all {
        let r = s.get_ref();
        let (key, list, wrong, want, other) = match kind {
            NodeKind::System => (
                format!("system[{i}]"),
                &r.members,
                &r.depends_on,
                "members",
                "depends_on",
            ),
            NodeKind::Service => (
                format!("service[{i}]"),
                &r.depends_on,
                &r.members,
                "depends_on",
                "members",
            ),
        };
        if let Some(w) = wrong {
            return Err(src.err(
                w.span().start,
                format!("{key}.{other}"),
                format!("a {} lists `{want}`, not `{other}`", kind_word(kind)),
            ));
        }
        let Some(members) = list else {
            return Err(src.err(
                s.span().start,
                format!("{key}.{want}"),
                format!("missing `{want}`: list the sensors, systems or services it is made of"),
            ));
        };
        pending.push(Pending {
            name: &r.name,
            at: s.span().start,
            kind,
            members,
            common: r,
            key,
        });
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        let n = p.name.get_ref();
        check_name(n).map_err(|m| src.err(p.name.span().start, format!("{}.name", p.key), m))?;
        if sensors.iter().any(|s| s == n) {
            return Err(src.err(
                p.name.span().start,
                format!("{}.name", p.key),
                format!("`{n}` is already the name of a sensor; sensors, systems and services share one namespace"),
            ));
        }
        if let Some(&j) = index.get(n.as_str()) {
            let (line, _) = src.locate(pending[j].at);
            return Err(src.err(
                p.name.span().start,
                format!("{}.name", p.key),
                format!(
                    "`{n}` is already defined as a {} at line {line}; names must be unique",
                    kind_word(pending[j].kind)
                ),
            ));
        }
        index.insert(n, i);
    }

    // Members and rules.
    let mut nodes: Vec<NodeConfig> = Vec::new();
    let mut spans: Vec<Vec<usize>> = Vec::new();
    for p in &pending {
        let list_key = match p.kind {
            NodeKind::System => format!("{}.members", p.key),
            NodeKind::Service => format!("{}.depends_on", p.key),
        };
        let list = p.members.get_ref();
        if list.is_empty() {
            return Err(src.err(
                p.members.span().start,
                list_key,
                "must name at least one member",
            ));
        }
        let mut members = Vec::new();
        let mut member_spans = Vec::new();
        for m in list {
            let spec = m.get_ref();
            let at = m.span().start;
            let member = if let Some(rest) = spec.strip_prefix("peer:") {
                let Some((agent, node)) = rest.split_once('/') else {
                    return Err(src.err(
                        at,
                        &list_key,
                        format!("`{spec}`: write a remote member as \"peer:<agent>/<name>\""),
                    ));
                };
                check_name(agent).map_err(|e| src.err(at, &list_key, e))?;
                check_name(node).map_err(|e| src.err(at, &list_key, e))?;
                if agent == agent_name {
                    return Err(src.err(
                        at,
                        &list_key,
                        format!("`{spec}` names this agent; refer to its own nodes by name"),
                    ));
                }
                // An agent that is not a [[peer]] may be relayed by one (a
                // peer's peer), so it is allowed; until it is seen, the
                // member is unknown with a reason saying so.
                Member::Peer {
                    agent: agent.into(),
                    node: node.into(),
                }
            } else if sensors.iter().any(|s| s == spec) {
                Member::Sensor(spec.clone())
            } else if index.contains_key(spec.as_str()) {
                if spec == p.name.get_ref() {
                    return Err(src.err(
                        at,
                        &list_key,
                        format!("`{spec}` cannot be a member of itself"),
                    ));
                }
                Member::Node(spec.clone())
            } else {
                return Err(src.err(at, &list_key, format!("`{spec}` is not a sensor, system or service (disabled sensors cannot be members); for a peer's, write \"peer:<agent>/{spec}\"")));
            };
            if members.contains(&member) {
                return Err(src.err(at, &list_key, format!("`{spec}` is listed twice")));
            }
            members.push(member);
            member_spans.push(at);
        }
        let n = members.len() as u32;
        let c = p.common;
        let set = [c.rule.is_some(), c.quorum.is_some(), c.agree.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            return Err(src.err(
                p.at,
                format!("{}.rule", p.key),
                "set only one of `rule`, `quorum` and `agree`",
            ));
        }
        let rule = if let Some(r) = &c.rule {
            match r.get_ref().as_str() {
                "all" => Rule::All,
                "any" => Rule::Any,
                other => return Err(src.err(r.span().start, format!("{}.rule", p.key), format!("`{other}` is not a rule: write \"all\" or \"any\", or `quorum = k` / `agree = k`"))),
            }
        } else if let Some(q) = &c.quorum {
            let k = *q.get_ref();
            if k == 0 || k > n {
                return Err(src.err(
                    q.span().start,
                    format!("{}.quorum", p.key),
                    format!("must be between 1 and the number of members ({n}), got {k}"),
                ));
            }
            Rule::Quorum(k)
        } else if let Some(q) = &c.agree {
            let k = *q.get_ref();
            if k == 0 || k > n {
                return Err(src.err(
                    q.span().start,
                    format!("{}.agree", p.key),
                    format!("must be between 1 and the number of vantage points ({n}), got {k}"),
                ));
            }
            Rule::Agree(k)
        } else {
            Rule::All
        };
        let degraded_below = match &c.degraded_below {
            Some(d) => {
                let v = *d.get_ref();
                if v > n {
                    return Err(src.err(
                        d.span().start,
                        format!("{}.degraded_below", p.key),
                        format!("must be at most the number of members ({n}), got {v}"),
                    ));
                }
                v
            }
            None => n,
        };
        nodes.push(NodeConfig {
            name: p.name.get_ref().clone(),
            kind: p.kind,
            members,
            rule,
            degraded_below,
            category: c.category.clone(),
            description: c.description.clone(),
            labels: c.labels.clone(),
        });
        spans.push(member_spans);
    }

    let order = topo_order(&nodes).map_err(|cycle| {
        let first = index[cycle[0].as_str()];
        let next = &cycle[1];
        let pos = nodes[first]
            .members
            .iter()
            .position(|m| matches!(m, Member::Node(n) if n == next))
            .unwrap_or(0);
        src.err(
            spans[first].get(pos).copied().unwrap_or(pending[first].at),
            format!(
                "{}.{}",
                pending[first].key,
                if nodes[first].kind == NodeKind::System {
                    "members"
                } else {
                    "depends_on"
                }
            ),
            format!(
                "dependency cycle: {}; a node cannot depend on itself, even indirectly",
                cycle.join(" → ")
            ),
        )
    })?;
    let nodes = order.into_iter().map(|i| nodes[i].clone()).collect();

    let mut push = Vec::new();
    for (i, p) in raw.push.iter().enumerate() {
        let at = p.span().start;
        let p = p.get_ref();
        let key = format!("push[{i}]");
        let url = check_url(src, &p.url, &format!("{key}.url"))?;
        let tls =
            super::tls::check_client(src, p.tls.as_ref(), base, &key, url.starts_with("https://"))?;
        push.push(PushConfig {
            tls,
            url,
            token: read_token(
                src,
                base,
                &format!("{key}.token_file"),
                p.token.as_ref(),
                p.token_file.as_ref(),
                at,
            )?,
            interval: p
                .interval
                .map(|d| d.0)
                .unwrap_or(DEFAULT_PUSH_INTERVAL)
                .max(super::MIN_INTERVAL),
        });
    }
    let api = match &raw.api {
        Some(a) => ApiConfig {
            read_token: read_token(
                src,
                base,
                "api.read_token_file",
                None,
                a.read_token_file.as_ref(),
                0,
            )?,
            push_token: read_token(
                src,
                base,
                "api.push_token_file",
                None,
                a.push_token_file.as_ref(),
                0,
            )?,
        },
        None => ApiConfig::default(),
    };
    Ok(Topology {
        nodes,
        peers,
        push,
        api,
    })
}

/// Reads only `[api]` of the main file (for `outpost status`, which asks
/// the running agent and needs its read token).
pub fn api_only(path: &Path) -> Result<ApiConfig, ConfigError> {
    let src = Source::read(path)?;
    let file: super::raw::RawFile = src.parse_lenient()?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let raw = RawTopology {
        api: file.api,
        ..Default::default()
    };
    Ok(check(&src, &raw, &[], "", &base)?.api)
}

fn kind_word(k: NodeKind) -> &'static str {
    match k {
        NodeKind::System => "system",
        NodeKind::Service => "service",
    }
}

/// Indices of `nodes` with every node after the local nodes it depends on,
/// or the path of a cycle (`a → b → a`).
fn topo_order(nodes: &[NodeConfig]) -> Result<Vec<usize>, Vec<String>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    fn visit(
        i: usize,
        nodes: &[NodeConfig],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<String>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..]
                    .iter()
                    .map(|&s| nodes[s].name.clone())
                    .collect();
                cycle.push(nodes[i].name.clone());
                return Err(cycle);
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for m in &nodes[i].members {
            if let Member::Node(n) = m
                && let Some(&j) = index.get(n.as_str())
            {
                visit(j, nodes, index, mark, stack, order)?;
            }
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..nodes.len() {
        let mut stack = Vec::new();
        visit(i, nodes, &index, &mut mark, &mut stack, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, sensors: &[&str]) -> Result<Topology, ConfigError> {
        #[derive(serde::Deserialize)]
        struct F {
            #[serde(default)]
            system: Vec<Spanned<RawNode>>,
            #[serde(default)]
            service: Vec<Spanned<RawNode>>,
            #[serde(default)]
            peer: Vec<Spanned<RawPeer>>,
        }
        let src = Source::new(PathBuf::from("t.toml"), text.to_string());
        let f: F = src.parse()?;
        let raw = RawTopology {
            system: f.system,
            service: f.service,
            peer: f.peer,
            ..Default::default()
        };
        let sensors: Vec<String> = sensors.iter().map(|s| s.to_string()).collect();
        check(&src, &raw, &sensors, "me", Path::new("."))
    }

    #[test]
    fn orders_causes_first() {
        let t = parse(
            "[[service]]\nname = \"checkout\"\ndepends_on = [\"db\", \"peer:eu/api\"]\n\
             [[system]]\nname = \"db\"\nmembers = [\"m1\", \"m2\", \"m3\"]\nquorum = 2\n\
             [[peer]]\nname = \"eu\"\nurl = \"http://127.0.0.1:1\"\n",
            &["m1", "m2", "m3"],
        )
        .unwrap();
        let names: Vec<_> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["db", "checkout"]);
        assert_eq!(t.nodes[0].rule, Rule::Quorum(2));
        assert_eq!(t.nodes[0].degraded_below, 3);
        assert_eq!(
            t.nodes[1].members[1],
            Member::Peer {
                agent: "eu".into(),
                node: "api".into()
            }
        );
    }

    #[test]
    fn names_the_cycle() {
        let e = parse(
            "[[system]]\nname = \"a\"\nmembers = [\"b\"]\n[[system]]\nname = \"b\"\nmembers = [\"c\"]\n[[system]]\nname = \"c\"\nmembers = [\"a\", \"s\"]\n",
            &["s"],
        )
        .unwrap_err();
        assert!(e.message.contains("a → b → c → a"), "{e}");
        assert_eq!(e.line, 3);
        assert_eq!(e.key, "system[0].members");
    }

    #[test]
    fn rejects_unknown_members_and_duplicates() {
        let e = parse("[[system]]\nname = \"a\"\nmembers = [\"nope\"]\n", &[]).unwrap_err();
        assert!(e.message.contains("`nope` is not a sensor"), "{e}");
        assert_eq!((e.line, e.key.as_str()), (3, "system[0].members"));
        let e = parse("[[service]]\nname = \"s\"\ndepends_on = [\"s\"]\n", &["s"]).unwrap_err();
        assert!(e.message.contains("already the name of a sensor"), "{e}");
        let e = parse(
            "[[system]]\nname = \"a\"\nmembers = [\"x\"]\n[[service]]\nname = \"a\"\ndepends_on = [\"x\"]\n",
            &["x"],
        )
        .unwrap_err();
        assert!(
            e.message.contains("already defined as a system at line 1"),
            "{e}"
        );
        let e = parse("[[system]]\nname = \"a\"\nmembers = [\"peer:zz\"]\n", &[]).unwrap_err();
        assert!(e.message.contains("peer:<agent>/<name>"), "{e}");
        let e = parse("[[system]]\nname = \"a\"\nmembers = [\"peer:me/x\"]\n", &[]).unwrap_err();
        assert!(e.message.contains("names this agent"), "{e}");
        let e = parse(
            "[[system]]\nname = \"a\"\nmembers = [\"x\"]\nquorum = 2\n",
            &["x"],
        )
        .unwrap_err();
        assert_eq!(e.key, "system[0].quorum");
        let e = parse(
            "[[system]]\nname = \"a\"\nmembers = [\"x\"]\nrule = \"most\"\n",
            &["x"],
        )
        .unwrap_err();
        assert!(e.message.contains("`most` is not a rule"), "{e}");
    }
}
