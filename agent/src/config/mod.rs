//! The agent's configuration: reads `outpost.toml` (and the files its
//! `include` patterns name), checks everything once, and produces a
//! [`Config`] that can only hold valid values. The rest of the agent never
//! re-validates.
//!
//! Every error names the file, line, column and key, and says what to do.
//! Plugin configurations are checked by the plugin's own `validate`, so the
//! plugins are loaded here; they are handed on with the config.

mod alerting;
pub mod providers;
mod raw;
mod secrets;
mod tls;
pub mod topology;

pub use secrets::redact;
pub use tls::HttpLimits;

pub use alerting::{EscalationPolicy, Level, Maintenance, NotifierConfig, Selector, Window};

use outpost_plugin_host::{Endpoint, Limits, Plugin, PluginHost, PluginSource};
use raw::{RawFile, RawIncluded, RawSensor};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// Default check interval when neither the sensor nor `[defaults]` says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default per-check timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default re-check interval while a failure is soft (Nagios' retry).
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// Consecutive failures before a sensor is hard down (Nagios' default 3).
pub const DEFAULT_FAIL_AFTER: u32 = 3;
/// Consecutive successes before a hard-down sensor is up again.
pub const DEFAULT_RECOVER_AFTER: u32 = 2;
/// Shortest interval accepted: below this a check is a load test.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Default cap of the per-sensor start offset: spreads sensors sharing an
/// interval without delaying the first check of a slow sensor for long.
pub const MAX_DEFAULT_JITTER: Duration = Duration::from_secs(10);
/// Default number of checks running at once. Each check in flight holds a
/// plugin instance (about 250 KiB for the HTTP sensor, counting the memory
/// image pages it maps), so the cap bounds the memory of a burst: after a
/// stall of a few tens of milliseconds, a thousand sensors at 1 s have
/// that many checks due at once. At 64, such bursts took the agent from
/// 20–22 MiB to 29–37 MiB, and every fiber stack a burst touched stayed
/// resident; at 16 the same runs stayed under 23 MiB with the same
/// lateness. 16 checks of 100 ms each still make 160 checks a second;
/// raise it for many slow targets.
pub const DEFAULT_CONCURRENCY: u32 = 16;

/// A configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", file.display(), if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key, as a dotted path (`sensor[2].interval`), when known.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// `[agent]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// This agent's name (federation identity, alerts).
    pub name: String,
    /// Where the SQLite database and caches live.
    pub data_dir: PathBuf,
    /// HTTP API / status page address (loopback by default).
    pub listen: SocketAddr,
    /// How long raw results are kept.
    pub raw_retention: Duration,
    /// How long hourly/daily rollups are kept.
    pub rollup_retention: Duration,
    /// Per-plugin-instance limits.
    pub limits: Limits,
    /// Largest plugin file loaded, in bytes.
    pub max_plugin_bytes: u64,
    /// Checks running at once, across all sensors.
    pub concurrency: u32,
    /// Keep plugin instances warm between runs of the same sensor.
    pub reuse_instances: bool,
    /// At most this many warm instances (the rest run fresh each time).
    pub warm_instances: u32,
    /// Base URL of this agent as people reach it (for acknowledgement
    /// links); default `http://<listen>`.
    pub public_url: String,
    /// File holding the admin token (state-changing API calls).
    pub admin_token_file: PathBuf,
    /// `[agent.tls]`: the listener speaks HTTPS.
    pub tls: Option<crate::tls::ServerSettings>,
    /// `[agent.http]`: the server's limits.
    pub http: HttpLimits,
    /// The self-connectivity guard, when configured.
    pub connectivity: Option<Connectivity>,
}

/// `[agent.connectivity]`, checked: the agent is online while at least one
/// canary accepts a TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connectivity {
    /// `host:port` of each canary.
    pub targets: Vec<String>,
    /// Probe period while online.
    pub interval: Duration,
    /// Connect timeout per canary.
    pub timeout: Duration,
}

/// A metric rule that can turn an ok check into warn or fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Metric name as the plugin returns it.
    pub metric: String,
    /// Warn when the value is above.
    pub warn_above: Option<f64>,
    /// Fail when the value is above.
    pub fail_above: Option<f64>,
    /// Warn when the value is below.
    pub warn_below: Option<f64>,
    /// Fail when the value is below.
    pub fail_below: Option<f64>,
    /// The condition must hold this long before it counts.
    pub for_: Duration,
}

/// One `[[sensor]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorConfig {
    /// Unique name.
    pub name: String,
    /// Built-in plugin name or absolute path of a component.
    pub plugin: String,
    /// Time between checks while up or hard down.
    pub interval: Duration,
    /// Time allowed per check.
    pub timeout: Duration,
    /// Maximum start offset; the actual one is a stable hash of the name.
    pub jitter: Duration,
    /// Time between checks while a failure is soft.
    pub retry_interval: Duration,
    /// Consecutive failures before hard down.
    pub fail_after: u32,
    /// Consecutive successes before up again.
    pub recover_after: u32,
    /// Grouping for status pages.
    pub category: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Labels (also used by escalation rules).
    pub labels: BTreeMap<String, String>,
    /// Explicit network allow-list; `None` means "what the config names".
    pub allow: Option<Vec<Endpoint>>,
    /// The plugin configuration.
    pub config: PluginConfig,
    /// Metric rules.
    pub thresholds: Vec<Threshold>,
    /// Where it is defined (`file:line`), for messages.
    pub origin: String,
    /// Maintenance windows covering this sensor (results recorded inside
    /// one are excluded from SLA).
    pub maintenance: Vec<Window>,
}

impl SensorConfig {
    /// Whether a maintenance window covers this sensor at `now_ms`.
    pub fn in_maintenance(&self, now_ms: i64) -> bool {
        self.maintenance.iter().any(|w| w.active(now_ms))
    }
}

/// A plugin's `config` table, held as the compact JSON text the plugin
/// receives. A thousand sensors keep a few dozen bytes each instead of a
/// JSON tree; the tree is rebuilt only where the host reads values (the
/// network allow-list it derives from the URLs in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig(Box<str>);

impl Default for PluginConfig {
    /// An empty table (`{}`).
    fn default() -> Self {
        PluginConfig("{}".into())
    }
}

impl PluginConfig {
    /// The configuration of `table` (an empty object when absent), and
    /// where it starts (`default_at` when absent), for error messages.
    fn from_table(
        src: &Source,
        table: Option<Spanned<toml::Table>>,
        default_at: usize,
    ) -> Result<(PluginConfig, usize), ConfigError> {
        match table {
            Some(t) => {
                let at = t.span().start;
                let json = serde_json::to_string(t.get_ref())
                    .map_err(|e| src.err(at, "config", e.to_string()))?;
                Ok((PluginConfig(json.into()), at))
            }
            None => Ok((PluginConfig::default(), default_at)),
        }
    }

    /// A configuration from JSON text the agent made (a sensor template
    /// with its placeholders filled in).
    pub fn from_json(json: String) -> PluginConfig {
        PluginConfig(json.into())
    }

    /// The JSON text, as handed to the plugin.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The configuration as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        // Built from a TOML table by `from_table`: always valid JSON.
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file.
    pub path: PathBuf,
    /// `[agent]`.
    pub agent: AgentConfig,
    /// Enabled sensors, in file order. Shared (not copied) by the
    /// scheduler and the evaluation stage: a thousand sensors' configs
    /// are held once.
    pub sensors: Vec<Arc<SensorConfig>>,
    /// Notifiers.
    pub notifiers: Vec<NotifierConfig>,
    /// Escalation policies.
    pub escalations: Vec<EscalationPolicy>,
    /// Maintenance windows.
    pub maintenance: Vec<Maintenance>,
    /// Directories that `include` patterns read (watched for changes).
    pub include_dirs: Vec<PathBuf>,
    /// Systems, services, peers, push targets and API access.
    pub topology: topology::Topology,
    /// `[[provider]]`s.
    pub providers: Vec<providers::ProviderConfig>,
    /// `[[kind]]` rules.
    pub kinds: Vec<providers::KindRule>,
}

/// A configuration with its plugins loaded.
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Loaded plugins by their `plugin` value.
    pub plugins: HashMap<String, Arc<Plugin>>,
}

/// Line and column (1-based) of a byte offset (builds a line table; use
/// [`Source::locate`] for repeated lookups in one file).
#[cfg(test)]
fn locate(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).locate(text.len(), offset)
}

/// Where each line of a file starts, built once per file so that
/// locating an offset is a binary search: a config of 50,000 sensors
/// locates each sensor's line without counting newlines from the start.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(memchr_newlines(text).map(|i| i + 1));
        Lines(starts)
    }

    /// Line and column (1-based) of `offset` in a text of `len` bytes.
    fn locate(&self, len: usize, offset: usize) -> (usize, usize) {
        let offset = offset.min(len);
        // The last line start at or before `offset`.
        let line = self.0.partition_point(|&s| s <= offset);
        let start = self.0[line - 1];
        (line, offset - start + 1)
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
}

/// One parsed file with its text, for locating errors.
struct Source {
    path: PathBuf,
    text: String,
    lines: Lines,
}

impl Source {
    fn new(path: PathBuf, text: String) -> Source {
        Source {
            path,
            lines: Lines::new(&text),
            text,
        }
    }

    /// Line and column (1-based) of a byte offset.
    fn locate(&self, offset: usize) -> (usize, usize) {
        self.lines.locate(self.text.len(), offset)
    }

    fn err(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.locate(offset);
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            key: key.into(),
            // A plugin's validation message may quote a value.
            message: secrets::redact(&message.into()).into_owned(),
        }
    }

    fn read(path: &Path) -> Result<Source, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Ok(Source::new(path.to_path_buf(), text))
    }

    /// Parses the file, with secrets by reference resolved
    /// ([`secrets`]).
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        secrets::parse(self, true)
    }

    /// Parses the file for a command that reads only `[agent]` or `[api]`
    /// (`status`, `history`, ...): a reference that cannot be resolved
    /// (the service's environment is not the operator's shell) reads as
    /// an empty string instead of failing; `run` and `check-config` are
    /// strict.
    fn parse_lenient<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        secrets::parse(self, false)
    }

    fn toml_err(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let message = e.message().trim().to_string();
        let key = key_at(&self.text, offset);
        self.err(offset, key, message)
    }
}

/// The key written at (or just before) `offset`, for error messages about a
/// value: `interval = "5 parsecs"` → `interval`.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = &text[line_start..];
    let line = line.split('\n').next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) if !k.trim().starts_with('[') && !k.trim().is_empty() => {
            k.trim().trim_matches('"').to_string()
        }
        _ => String::new(),
    }
}

/// Refuses a main file that sets nothing (empty, or only comments and
/// whitespace): an agent started on such a file would run on defaults and
/// monitor nothing without a word. `--allow-empty` skips this check.
pub fn refuse_empty(path: &Path) -> Result<(), ConfigError> {
    let src = Source::read(path)?;
    let table: toml::Table = src.parse()?;
    if table.is_empty() {
        return Err(src.err(
            0,
            "",
            "the configuration is empty (nothing but comments or whitespace); write at least a [[sensor]], or pass --allow-empty to run on the defaults",
        ));
    }
    Ok(())
}

/// Reads only `[agent]` (for commands that need the data directory but not
/// the sensors).
pub fn agent_only(path: &Path) -> Result<AgentConfig, ConfigError> {
    let main = Source::read(path)?;
    let file: RawFile = main.parse_lenient()?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    check_agent(&main, file.agent.as_ref(), &base)
}

/// Reads, checks and loads the plugins of a configuration.
pub async fn load(path: &Path, host: &PluginHost) -> Result<Loaded, ConfigError> {
    let main = Source::read(path)?;
    let file: RawFile = main.parse()?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };

    let agent = check_agent(&main, file.agent.as_ref(), &base)?;
    let raw_providers = file.provider;
    let raw_kinds = file.kind;
    let raw_topology = topology::RawTopology {
        system: file.system,
        service: file.service,
        peer: file.peer,
        push: file.push,
        api: file.api,
    };

    // Sensors from the main file, then from included files in name order.
    let mut sources = vec![];
    let mut include_dirs = vec![];
    let mut raw_sensors: Vec<(usize, Spanned<RawSensor>)> =
        file.sensor.into_iter().map(|s| (0, s)).collect();
    sources.push(main);
    for pattern in &file.include {
        let (dir, files) = expand_include(&base, pattern.get_ref())
            .map_err(|m| sources[0].err(pattern.span().start, "include", m))?;
        include_dirs.push(dir);
        for f in files {
            let src = Source::read(&f)?;
            let inc: RawIncluded = src.parse()?;
            let idx = sources.len();
            raw_sensors.extend(inc.sensor.into_iter().map(|s| (idx, s)));
            sources.push(src);
        }
    }

    let defaults = &file.defaults;
    let mut sensors = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut plugins: HashMap<String, Arc<Plugin>> = HashMap::new();
    for (i, (src_idx, spanned)) in raw_sensors.into_iter().enumerate() {
        let src = &sources[src_idx];
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let s = check_sensor(src, i, raw, defaults, &base, start)?;
        let Some((s, config_span)) = s else { continue };
        if let Some(prev) = seen.get(&s.name) {
            return Err(src.err(
                start,
                "name",
                format!(
                    "a sensor named `{}` is already defined at {prev}; names must be unique",
                    s.name
                ),
            ));
        }
        seen.insert(s.name.clone(), s.origin.clone());
        // Load each distinct plugin once, then let it judge the config.
        let plugin = load_plugin(
            host,
            &mut plugins,
            &s.plugin,
            outpost_plugin_host::PluginKind::Sensor,
        )
        .await
        .map_err(|m| src.err(config_span.0, "plugin", m))?;
        validate_plugin_config(
            &plugin,
            src,
            config_span.1,
            &s.config,
            &format!("sensor `{}`", s.name),
            &s.plugin,
        )
        .await?;
        sensors.push(s);
    }

    let names: Vec<String> = sensors.iter().map(|s| s.name.clone()).collect();
    let topology = topology::check(&sources[0], &raw_topology, &names, &agent.name, &base)?;

    // Providers (each plugin validates its config) and kind rules (their
    // templates' plugins are loaded; configs are judged per object).
    let main = &sources[0];
    let mut provider_cfgs = Vec::new();
    for (mut p, plugin_at, config_at) in providers::check_providers(main, raw_providers)? {
        if p.plugin == crate::file_provider::NAME {
            // Built into the agent (plugins have no filesystem).
            let f = crate::file_provider::FileConfig::parse(&p.config.value(), &base).map_err(
                |(field, m)| {
                    let key = if field.is_empty() {
                        "config".to_string()
                    } else {
                        format!("config.{field}")
                    };
                    main.err(config_at, &key, format!("provider `{}`: {m}", p.name))
                },
            )?;
            p.config = PluginConfig::from_json(f.to_json());
            provider_cfgs.push(p);
            continue;
        }
        p.plugin = resolve_plugin(&base, &p.plugin);
        let plugin = load_plugin(
            host,
            &mut plugins,
            &p.plugin,
            outpost_plugin_host::PluginKind::Provider,
        )
        .await
        .map_err(|m| main.err(plugin_at, "plugin", m))?;
        validate_plugin_config(
            &plugin,
            main,
            config_at,
            &p.config,
            &format!("provider `{}`", p.name),
            &p.plugin,
        )
        .await?;
        provider_cfgs.push(p);
    }
    let mut kinds = Vec::new();
    for (mut k, plugin_ats) in providers::check_kinds(main, raw_kinds)? {
        for t in &mut k.sensors {
            t.plugin = resolve_plugin(&base, &t.plugin);
        }
        for (t, at) in k.sensors.iter().zip(plugin_ats) {
            load_plugin(
                host,
                &mut plugins,
                &t.plugin,
                outpost_plugin_host::PluginKind::Sensor,
            )
            .await
            .map_err(|m| main.err(at, "plugin", m))?;
        }
        kinds.push(k);
    }

    // Alerting: notifiers (each plugin validates its config), then the
    // policies and windows that refer to them and to the targets.
    let mut notifiers: Vec<NotifierConfig> = Vec::new();
    for (i, n) in file.notifier.into_iter().enumerate() {
        let start = n.span().start;
        let (n, plugin_at, config_at) = alerting::check_notifier(main, i, n.into_inner())?;
        if notifiers.iter().any(|o| o.name == n.name) {
            return Err(main.err(
                start,
                "name",
                format!(
                    "a notifier named `{}` is already defined; names must be unique",
                    n.name
                ),
            ));
        }
        let plugin = load_plugin(
            host,
            &mut plugins,
            &n.plugin,
            outpost_plugin_host::PluginKind::Notifier,
        )
        .await
        .map_err(|m| main.err(plugin_at, "plugin", m))?;
        validate_plugin_config(
            &plugin,
            main,
            config_at,
            &n.config,
            &format!("notifier `{}`", n.name),
            &n.plugin,
        )
        .await?;
        notifiers.push(n);
    }
    let mut targets: std::collections::HashSet<String> = names.iter().cloned().collect();
    targets.extend(topology.nodes.iter().map(|n| n.name.clone()));
    targets.extend(topology.peers.iter().map(|p| format!("peer:{}", p.name)));
    let known = |n: &str| targets.contains(n);
    let mut escalations: Vec<EscalationPolicy> = Vec::new();
    for (i, e) in file.escalation.into_iter().enumerate() {
        let start = e.span().start;
        let e = alerting::check_escalation(main, i, e, &notifiers, &known)?;
        if escalations.iter().any(|o| o.name == e.name) {
            return Err(main.err(
                start,
                "name",
                format!(
                    "an escalation named `{}` is already defined; names must be unique",
                    e.name
                ),
            ));
        }
        escalations.push(e);
    }
    let mut maintenance = Vec::new();
    for m in file.maintenance {
        maintenance.push(alerting::check_maintenance(main, m, &known)?);
    }
    for s in &mut sensors {
        s.maintenance = maintenance
            .iter()
            .filter(|m| {
                m.targets
                    .iter()
                    .any(|t| t.matches(&s.name, s.category.as_deref(), &s.labels))
            })
            .map(|m| m.window.clone())
            .collect();
    }
    Ok(Loaded {
        config: Config {
            path: path.to_path_buf(),
            agent,
            sensors: shared(sensors),
            notifiers,
            escalations,
            maintenance,
            include_dirs,
            topology,
            providers: provider_cfgs,
            kinds,
        },
        plugins,
    })
}

/// The sensors behind `Arc`s, in a vector of exactly their number (a
/// collect in place would keep the buffer the configs themselves took).
fn shared(sensors: Vec<SensorConfig>) -> Vec<Arc<SensorConfig>> {
    let mut v: Vec<Arc<SensorConfig>> = sensors.into_iter().map(Arc::new).collect();
    v.shrink_to_fit();
    v
}

/// Loads a plugin once per spec and checks its kind.
async fn load_plugin(
    host: &PluginHost,
    plugins: &mut HashMap<String, Arc<Plugin>>,
    spec: &str,
    kind: outpost_plugin_host::PluginKind,
) -> Result<Arc<Plugin>, String> {
    let plugin = match plugins.get(spec) {
        Some(p) => p.clone(),
        None => {
            let source = PluginSource::parse(spec).map_err(|e| e.to_string())?;
            let p = host.load(&source).await.map_err(|e| e.to_string())?;
            plugins.insert(spec.to_string(), p.clone());
            p
        }
    };
    if plugin.kind() != kind {
        return Err(format!(
            "{} is a {}, not a {kind}",
            plugin.label(),
            plugin.kind()
        ));
    }
    Ok(plugin)
}

/// Lets a plugin judge its configuration; errors point at the field.
async fn validate_plugin_config(
    plugin: &Arc<Plugin>,
    src: &Source,
    config_at: usize,
    config: &PluginConfig,
    who: &str,
    spec: &str,
) -> Result<(), ConfigError> {
    let mut probe = plugin.instance(Arc::new(outpost_plugin_host::NetPolicy::deny_all()), who);
    match probe.validate(config.json()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let offset = field_offset(&src.text, config_at, &e.field);
            let key = if e.field.is_empty() {
                "config".to_string()
            } else {
                format!("config.{}", e.field)
            };
            Err(src.err(offset, key, format!("{} ({who}, plugin {spec})", e.message)))
        }
        Err(e) => Err(src.err(
            config_at,
            "config",
            format!("the plugin failed while validating: {e}"),
        )),
    }
}

/// The offset of `field`'s first segment inside the config table starting
/// at `table_start`, or the table itself.
fn field_offset(text: &str, table_start: usize, field: &str) -> usize {
    let first = field.split(['.', '[']).next().unwrap_or("");
    if first.is_empty() {
        return table_start;
    }
    let mut offset = table_start;
    for line in text[table_start..].split_inclusive('\n') {
        let t = line.trim_start();
        if offset > table_start && t.starts_with('[') {
            break;
        }
        if let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == first
        {
            return offset + (line.len() - t.len());
        }
        // Inline table: `config = { url = "..." }`.
        if let Some(pos) = line
            .find(&format!("{first} ="))
            .or_else(|| line.find(&format!("{first}=")))
        {
            return offset + pos;
        }
        offset += line.len();
    }
    table_start
}

fn check_agent(
    src: &Source,
    raw: Option<&Spanned<raw::RawAgent>>,
    base: &Path,
) -> Result<AgentConfig, ConfigError> {
    let default = raw::RawAgent::default();
    let a = raw.map(|s| s.get_ref()).unwrap_or(&default);
    let name = match &a.name {
        Some(n) => {
            check_name(n.get_ref()).map_err(|m| src.err(n.span().start, "agent.name", m))?;
            n.get_ref().clone()
        }
        None => hostname(),
    };
    let listen = match &a.listen {
        Some(l) => l.get_ref().parse().map_err(|_| {
            src.err(
                l.span().start,
                "agent.listen",
                format!(
                    "`{}` is not an address; write e.g. \"127.0.0.1:9090\"",
                    l.get_ref()
                ),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 9090)),
    };
    let data_dir = match &a.data_dir {
        Some(d) => base.join(d),
        None => base.join("outpost-data"),
    };
    let defaults = Limits::default();
    let p = &a.plugins;
    let at = raw.map(|s| s.span().start).unwrap_or(0);
    let memory_mb = p.memory_mb.unwrap_or((defaults.memory_bytes >> 20) as u32);
    if memory_mb == 0 || memory_mb > 4096 {
        return Err(src.err(
            at,
            "agent.plugins.memory_mb",
            format!("must be between 1 and 4096, got {memory_mb}"),
        ));
    }
    // Host-side limits: each at least 1 (0 would make every run fail) and
    // at most a bound past which it no longer protects the agent.
    let ranged = |v: Option<u32>, key: &str, default: u64, max: u64| -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if v >= 1 && u64::from(v) <= max => Ok(u64::from(v)),
            Some(v) => Err(src.err(
                at,
                format!("agent.plugins.{key}"),
                format!("must be between 1 and {max}, got {v}"),
            )),
        }
    };
    let kb =
        |v: Option<u32>, key: &str, default: usize, max_kb: u64| -> Result<usize, ConfigError> {
            Ok((ranged(v, key, (default >> 10) as u64, max_kb)? as usize) << 10)
        };
    let limits = Limits {
        memory_bytes: (memory_mb as usize) << 20,
        output_bytes: p
            .output_kb
            .map(|k| (k as usize) << 10)
            .unwrap_or(defaults.output_bytes),
        max_connections: ranged(
            p.max_connections,
            "max_connections",
            defaults.max_connections.into(),
            10_000,
        )? as u32,
        max_resources: ranged(
            p.max_resources,
            "max_resources",
            defaults.max_resources.into(),
            1_000_000,
        )? as u32,
        log_lines: ranged(
            p.log_lines,
            "log_lines",
            defaults.log_lines.into(),
            1_000_000,
        )? as u32,
        log_bytes: kb(p.log_kb, "log_kb", defaults.log_bytes, 1 << 20)?,
        message_bytes: kb(p.message_kb, "message_kb", defaults.message_bytes, 1024)?,
        max_metrics: ranged(
            p.max_metrics,
            "max_metrics",
            defaults.max_metrics as u64,
            100_000,
        )? as usize,
        details_bytes: kb(p.details_kb, "details_kb", defaults.details_bytes, 16 << 10)?,
    };
    let max_plugin_bytes = ranged(
        p.max_plugin_mb,
        "max_plugin_mb",
        outpost_plugin_host::DEFAULT_MAX_PLUGIN_BYTES >> 20,
        4096,
    )? << 20;
    let concurrency = p.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(src.err(at, "agent.plugins.concurrency", "must be at least 1"));
    }
    Ok(AgentConfig {
        name,
        listen,
        raw_retention: a
            .raw_retention
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(7 * 86400)),
        rollup_retention: a
            .rollup_retention
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(400 * 86400)),
        limits,
        max_plugin_bytes,
        concurrency,
        reuse_instances: p.reuse_instances.unwrap_or(true),
        warm_instances: p
            .warm_instances
            .unwrap_or(outpost_plugin_host::DEFAULT_WARM_INSTANCES),
        public_url: match &a.public_url {
            Some(u)
                if u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://") =>
            {
                u.get_ref().trim_end_matches('/').to_string()
            }
            Some(u) => {
                return Err(src.err(
                    u.span().start,
                    "agent.public_url",
                    "must start with http:// or https://",
                ));
            }
            None if a.tls.is_some() => format!("https://{listen}"),
            None => format!("http://{listen}"),
        },
        tls: a
            .tls
            .as_ref()
            .map(|t| tls::check_server(src, t, base))
            .transpose()?,
        http: tls::check_http(src, &a.http)?,
        admin_token_file: match &a.admin_token_file {
            Some(f) => base.join(f),
            None => data_dir.join("admin.token"),
        },
        connectivity: match &a.connectivity {
            Some(c) => Some(check_connectivity(src, c)?),
            None => None,
        },
        data_dir,
    })
}

fn check_connectivity(
    src: &Source,
    raw: &Spanned<raw::RawConnectivity>,
) -> Result<Connectivity, ConfigError> {
    let c = raw.get_ref();
    if c.targets.is_empty() {
        return Err(src.err(
            raw.span().start,
            "agent.connectivity.targets",
            "name at least one canary, e.g. [\"192.168.1.1:53\", \"example.com:443\"]",
        ));
    }
    let mut targets = Vec::new();
    for t in &c.targets {
        let s = t.get_ref();
        let port_ok = s
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty() && !host.contains('/'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_some_and(|p| p != 0);
        if !port_ok {
            return Err(src.err(
                t.span().start,
                "agent.connectivity.targets",
                format!("`{s}` is not host:port; write e.g. \"192.168.1.1:53\" (the agent opens a TCP connection to it)"),
            ));
        }
        targets.push(s.clone());
    }
    let dur = |d: &Option<Spanned<raw::Dur>>, key: &str, default: u64, min_ms: u128| match d {
        None => Ok(Duration::from_secs(default)),
        Some(v)
            if v.get_ref().0.as_millis() < min_ms || v.get_ref().0 > Duration::from_secs(3600) =>
        {
            Err(src.err(
                v.span().start,
                key,
                format!("must be between {min_ms}ms and 1h"),
            ))
        }
        Some(v) => Ok(v.get_ref().0),
    };
    Ok(Connectivity {
        targets,
        interval: dur(&c.interval, "agent.connectivity.interval", 30, 1000)?,
        timeout: dur(&c.timeout, "agent.connectivity.timeout", 3, 100)?,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| check_name(s).is_ok())
        .unwrap_or_else(|| "outpost".to_string())
}

/// Names appear in URLs, metrics labels and `peer:<agent>/<service>`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}

/// A sensor as loaded, with the offsets of its `plugin` value and its
/// `config` table.
type LoadedSensor = (SensorConfig, (usize, usize));

/// Checks one sensor; `None` when disabled. Also returns the offsets of the
/// `plugin` value and the `config` table, for later messages.
fn check_sensor(
    src: &Source,
    index: usize,
    s: RawSensor,
    d: &raw::RawDefaults,
    base: &Path,
    start: usize,
) -> Result<Option<LoadedSensor>, ConfigError> {
    let name = s.name.get_ref().clone();
    check_name(&name)
        .map_err(|m| src.err(s.name.span().start, format!("sensor[{index}].name"), m))?;
    if s.enabled == Some(false) {
        return Ok(None);
    }
    let plugin_span = s.plugin.span().start;
    let plugin = {
        let p = s.plugin.get_ref();
        if builtin_or_path(p) == Some(true) {
            let path = base.join(p);
            path.to_string_lossy().into_owned()
        } else {
            p.clone()
        }
    };
    let interval = s
        .interval
        .as_ref()
        .map(|v| v.get_ref().0)
        .or(d.interval.map(|v| v.0))
        .unwrap_or(DEFAULT_INTERVAL);
    let interval_at = s.interval.as_ref().map(|v| v.span().start).unwrap_or(start);
    if interval < MIN_INTERVAL {
        return Err(src.err(
            interval_at,
            "interval",
            format!(
                "must be at least {} ms, got {} ms",
                MIN_INTERVAL.as_millis(),
                interval.as_millis()
            ),
        ));
    }
    let timeout = s
        .timeout
        .as_ref()
        .map(|v| v.get_ref().0)
        .or(d.timeout.map(|v| v.0))
        .unwrap_or(DEFAULT_TIMEOUT.min(interval));
    let timeout_at = s.timeout.as_ref().map(|v| v.span().start).unwrap_or(start);
    if timeout.is_zero() {
        return Err(src.err(timeout_at, "timeout", "must be more than 0"));
    }
    if timeout > interval {
        return Err(src.err(
            timeout_at,
            "timeout",
            format!("{} ms is longer than the interval ({} ms); a check must end before the next is due", timeout.as_millis(), interval.as_millis()),
        ));
    }
    let retry_interval = s
        .retry_interval
        .map(|v| v.0)
        .or(d.retry_interval.map(|v| v.0))
        .unwrap_or(DEFAULT_RETRY_INTERVAL)
        .min(interval);
    let fail_after = s
        .fail_after
        .as_ref()
        .map(|v| *v.get_ref())
        .or(d.fail_after)
        .unwrap_or(DEFAULT_FAIL_AFTER);
    if fail_after == 0 {
        let at = s
            .fail_after
            .as_ref()
            .map(|v| v.span().start)
            .unwrap_or(start);
        return Err(src.err(at, "fail_after", "must be at least 1"));
    }
    let recover_after = s
        .recover_after
        .as_ref()
        .map(|v| *v.get_ref())
        .or(d.recover_after)
        .unwrap_or(DEFAULT_RECOVER_AFTER);
    if recover_after == 0 {
        let at = s
            .recover_after
            .as_ref()
            .map(|v| v.span().start)
            .unwrap_or(start);
        return Err(src.err(at, "recover_after", "must be at least 1"));
    }
    let allow = parse_allow(src, s.allow.as_deref())?;
    let (config, config_at) = PluginConfig::from_table(src, s.config, start)?;
    let mut thresholds = Vec::new();
    for t in s.threshold {
        let at = t.span().start;
        let t = t.into_inner();
        if t.warn_above.is_none()
            && t.fail_above.is_none()
            && t.warn_below.is_none()
            && t.fail_below.is_none()
        {
            return Err(src.err(at, "threshold", format!("rule on `{}` sets no bound: add warn_above, fail_above, warn_below or fail_below", t.metric)));
        }
        if let (Some(w), Some(f)) = (t.warn_above, t.fail_above)
            && w > f
        {
            return Err(src.err(
                at,
                "threshold.warn_above",
                format!("warn_above ({w}) is above fail_above ({f})"),
            ));
        }
        if let (Some(w), Some(f)) = (t.warn_below, t.fail_below)
            && w < f
        {
            return Err(src.err(
                at,
                "threshold.warn_below",
                format!("warn_below ({w}) is below fail_below ({f})"),
            ));
        }
        thresholds.push(Threshold {
            metric: t.metric,
            warn_above: t.warn_above,
            fail_above: t.fail_above,
            warn_below: t.warn_below,
            fail_below: t.fail_below,
            for_: t.for_.map(|d| d.0).unwrap_or_default(),
        });
    }
    let (line, _) = src.locate(start);
    let jitter = s
        .jitter
        .map(|d| d.0)
        .unwrap_or(interval.min(MAX_DEFAULT_JITTER))
        .min(interval);
    Ok(Some((
        SensorConfig {
            name,
            plugin,
            interval,
            timeout,
            jitter,
            retry_interval,
            fail_after,
            recover_after,
            category: s.category,
            description: s.description,
            labels: s.labels,
            allow,
            config,
            thresholds,
            origin: format!("{}:{line}", src.path.display()),
            maintenance: Vec::new(),
        },
        (plugin_span, config_at),
    )))
}

/// An explicit `allow = ["host:port", ...]` list, if written.
fn parse_allow(
    src: &Source,
    list: Option<&[Spanned<String>]>,
) -> Result<Option<Vec<Endpoint>>, ConfigError> {
    list.map(|list| {
        list.iter()
            .map(|e| Endpoint::parse(e.get_ref()).map_err(|m| src.err(e.span().start, "allow", m)))
            .collect()
    })
    .transpose()
}

/// A plugin spec with a relative path made relative to the config's
/// directory.
fn resolve_plugin(base: &Path, spec: &str) -> String {
    if builtin_or_path(spec) == Some(true) {
        base.join(spec).to_string_lossy().into_owned()
    } else {
        spec.to_string()
    }
}

/// `Some(true)` for a path, `Some(false)` for a built-in, `None` otherwise.
fn builtin_or_path(spec: &str) -> Option<bool> {
    match PluginSource::parse(spec) {
        Ok(PluginSource::Builtin(_)) => Some(false),
        Ok(PluginSource::Path(_)) => Some(true),
        Err(_) => None,
    }
}

/// Expands `dir/*.toml`-style patterns: glob syntax (`*`, `?`, `[a-z]`,
/// `{a,b}`) in the file name; the directory is literal (it is watched for
/// new files). Hidden files and anything but regular files are skipped.
fn expand_include(base: &Path, pattern: &str) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let full = base.join(pattern);
    let dir = full
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base.to_path_buf());
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let is_glob = |t: &str| t.contains(['*', '?', '[', '{']);
    if is_glob(&dir.to_string_lossy()) {
        return Err(format!(
            "`{pattern}`: wildcards are only supported in the file name, as in \"conf.d/*.toml\""
        ));
    }
    let matcher = globset::GlobBuilder::new(&name)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("`{pattern}`: {e}"))?
        .compile_matcher();
    let mut files = vec![];
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let n = e.file_name();
                let hidden = n.to_string_lossy().starts_with('.');
                if !hidden && matcher.is_match(&n) && e.path().is_file() {
                    files.push(e.path());
                }
            }
        }
        // A missing include directory is allowed (nothing dropped in yet),
        // but it is still watched.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    }
    files.sort();
    Ok((dir, files))
}

/// The stable start offset of a sensor within its jitter window.
pub fn stable_offset(name: &str, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    // FNV-1a: stable across runs and Rust versions, unlike DefaultHasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    Duration::from_nanos(h % jitter.as_nanos().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(locate(t, 0), (1, 1));
        assert_eq!(locate(t, 6), (2, 1));
        assert_eq!(locate(t, 8), (2, 3));
        assert_eq!(key_at(t, 11), "bb");
    }

    #[test]
    fn offsets_are_stable_and_bounded() {
        let j = Duration::from_secs(10);
        assert_eq!(stable_offset("api", j), stable_offset("api", j));
        assert!(stable_offset("api", j) < j);
        assert_ne!(stable_offset("api", j), stable_offset("db", j));
        assert_eq!(stable_offset("api", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn names() {
        assert!(check_name("api-1.prod_x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a b").is_err());
    }

    #[test]
    fn finds_config_fields() {
        let t = "[[sensor]]\nname = \"a\"\n[sensor.config]\nurl = \"x\"\nexpect_status = 7\n[[sensor]]\n";
        let table = t.find("[sensor.config]").unwrap();
        assert_eq!(locate(t, field_offset(t, table, "expect_status[0]")).0, 5);
        assert_eq!(locate(t, field_offset(t, table, "nothing")).0, 3);
    }
}
