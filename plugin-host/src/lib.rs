//! The plugin host: loads WebAssembly components, checks they are Outpost
//! plugins of a supported version, and runs them under limits.
//!
//! Design (what it owns):
//! - one wasmtime [`Engine`] (Cranelift, async, epoch interruption driven by
//!   a ticker thread) and one [`Linker`] with WASI p2, `wasi:http` and the
//!   `outpost:plugin/host` interface;
//! - compiled components cached on disk ([`cache`]), and a pre-instantiated
//!   `*Pre` per loaded plugin ([`Plugin`]);
//! - an [`Instance`] per configured sensor or notifier, with its own store,
//!   network policy ([`policy`]), memory limit and captured output
//!   ([`sandbox`]);
//! - the pooling instance allocator: linear memories, tables, VM contexts
//!   and fiber stacks come from slots reserved once, so a fresh instance
//!   costs no `mmap`; a slot stays affine to its plugin and keeps the pages
//!   its last instance wrote, reset in place to the memory image (see
//!   `KEEP_RESIDENT`), so a fresh instance takes no page faults either.
//!
//! Isolation scheme: an instance belongs to exactly one configured sensor
//! (or notifier), so one check's state never reaches another sensor. By
//! default every run gets a fresh store and instance, dropped when the run
//! ends: nothing of a run (memory, sockets, resources) reaches the next.
//! A fresh instance costs about 20 µs of host overhead. An agent may opt
//! into keeping up to [`HostConfig::warm_instances`] instances (across all
//! plugins, first come) warm between runs of *their* sensor, which makes a
//! run cost a call (about 1 µs) instead of an instantiation; a warm
//! instance is thrown away after any fault (trap, timeout, memory or
//! output limit), after a run that left a socket or an HTTP exchange, and
//! after [`HostConfig::max_runs_per_instance`] runs. `reuse_instances =
//! false` turns warm instances off whatever `warm_instances` says.
//!
//! Every fault is returned as a [`RunError`], never a panic; callers turn it
//! into an `error` check result. This module must not know about schedules,
//! storage or incidents.

mod bindings;
pub mod builtin;
mod cache;
pub mod compiler;
mod host_api;
pub mod inspect;
mod meter;
mod outbound;
mod output;
pub mod policy;
pub mod provider;
mod result;
mod sandbox;
mod sockets;

pub use meter::HostLimit;
pub use outpost_types::abi::*;
pub use policy::{Endpoint, NetPolicy};
pub use sandbox::Limits;

/// Paths of the test fixture components (`tests/test-plugins`), built with
/// the built-in plugins by `build.rs`, for the workspace's tests and
/// benchmarks.
#[doc(hidden)]
pub mod fixtures {
    /// A sensor with a misbehaviour per config (`mode`).
    pub const HOSTILE: &str = env!("OUTPOST_FIXTURE_HOSTILE");
    /// A provider with a misbehaviour per config (`mode`).
    pub const HOSTILE_PROVIDER: &str = env!("OUTPOST_FIXTURE_HOSTILE_PROVIDER");
    /// A component exporting some other world.
    pub const WRONG_WORLD: &str = env!("OUTPOST_FIXTURE_WRONG_WORLD");
    /// A sensor built against a future major version of the WIT package.
    pub const FUTURE_VERSION: &str = env!("OUTPOST_FIXTURE_FUTURE_VERSION");
    /// A sensor built against `outpost:plugin@0.1.0` (before the rename
    /// of `types`).
    pub const OLD_MINOR: &str = env!("OUTPOST_FIXTURE_OLD_MINOR");
    /// A sensor using the component model's async ABI.
    pub const ASYNC: &str = env!("OUTPOST_FIXTURE_ASYNC");
    /// Components each breaking one rule of `outpost plugin test`: (rule,
    /// path).
    pub const BROKEN: &[(&str, &str)] = &[
        ("info.well-formed", env!("OUTPOST_FIXTURE_BROKEN_INFO")),
        (
            "validate.accepts",
            env!("OUTPOST_FIXTURE_BROKEN_VALIDATE_ACCEPTS"),
        ),
        (
            "validate.rejects-empty",
            env!("OUTPOST_FIXTURE_BROKEN_VALIDATE_EMPTY"),
        ),
        (
            "validate.rejects-wrong-type",
            env!("OUTPOST_FIXTURE_BROKEN_VALIDATE_TYPE"),
        ),
        ("check.ok-200", env!("OUTPOST_FIXTURE_BROKEN_OK_200")),
        ("check.fail-500", env!("OUTPOST_FIXTURE_BROKEN_FAIL_500")),
        ("check.refused", env!("OUTPOST_FIXTURE_BROKEN_REFUSED")),
        ("check.denied", env!("OUTPOST_FIXTURE_BROKEN_DENIED")),
        ("check.deadline", env!("OUTPOST_FIXTURE_BROKEN_DEADLINE")),
        ("notify.delivers", env!("OUTPOST_FIXTURE_BROKEN_DELIVERS")),
        (
            "notify.retryable-500",
            env!("OUTPOST_FIXTURE_BROKEN_RETRYABLE_500"),
        ),
        (
            "notify.permanent-400",
            env!("OUTPOST_FIXTURE_BROKEN_PERMANENT_400"),
        ),
    ];
}

use bindings::notifier::{NotifierPlugin, NotifierPluginPre};
use bindings::provider::{ProviderPlugin, ProviderPluginPre};
use bindings::sensor::{SensorPlugin, SensorPluginPre};
use bindings::wit;
use sandbox::Sandbox;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};

/// The WIT package version this agent implements. Plugins built against
/// any `0.1.x` load (the component model's semver rules for 0.x: same
/// major and minor).
pub const WIT_VERSION: &str = "0.1.1";

/// The version of wasmtime that runs the plugins.
pub const WASMTIME_VERSION: &str = wasmtime_environ::VERSION;

/// The interfaces a plugin exports, one per kind.
const EXPORTS: [(&str, PluginKind); 3] = [
    ("outpost:plugin/sensor", PluginKind::Sensor),
    ("outpost:plugin/notifier", PluginKind::Notifier),
    ("outpost:plugin/provider", PluginKind::Provider),
];

/// The versions of `outpost:plugin` a plugin may be built against, for
/// messages.
const SUPPORTED: &str = "outpost:plugin@0.1.x";

/// How often the epoch advances. Deadlines are checked at this granularity
/// and a busy guest yields to the async runtime this often, so 5 ms keeps
/// timeouts precise and the runtime responsive at negligible cost (one
/// thread wake-up per tick).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Extra time given to the outer `tokio::time::timeout` over the epoch
/// deadline, so a busy guest is stopped by the (cleaner) epoch trap and the
/// outer timeout only catches host calls that block.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// Time allowed for `info` and `validate`, which must not do I/O.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Host settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Compile cache misses in a child process running this executable
    /// (`outpost compile-plugin`) so Cranelift never enters this process's
    /// memory ([`compiler`]); `None` compiles in-process. Only used with a
    /// cache.
    pub compiler: Option<PathBuf>,
    /// Per-instance limits.
    pub limits: Limits,
    /// Keep instances warm between runs of the same sensor (within
    /// [`HostConfig::warm_instances`]).
    pub reuse_instances: bool,
    /// How many instances may be kept warm at once, across all plugins
    /// (default 0: every run gets a fresh instance). A warm instance saves
    /// an instantiation per run (about 20 µs) but keeps its memory (about
    /// 200 KiB for the HTTP sensor) and lets a plugin's state outlive a
    /// run; past this many, runs get a fresh instance from the pool.
    pub warm_instances: u32,
    /// How many runs may be in flight at once beyond the warm instances
    /// (scheduler concurrency, notifier deliveries, config validation).
    /// With `warm_instances` it sizes the instance pool; a run that finds
    /// the pool full fails with an error result instead of waiting.
    pub concurrent_runs: u32,
    /// Recycle a warm instance after this many runs. 1,000 runs bound what
    /// a leaking plugin can accumulate while making recycling cost noise.
    pub max_runs_per_instance: u32,
    /// Largest plugin file loaded, in bytes.
    pub max_plugin_bytes: u64,
}

/// Default of [`HostConfig::max_plugin_bytes`]: 256 MiB, far above any
/// real plugin (the built-ins are 150–900 KiB) and small enough that a
/// wrong path (a disk image, a log) fails at once instead of filling
/// memory.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// Reads a plugin file: only a regular file (not a FIFO, device, socket
/// or directory, which could block or never end) of at most `max` bytes,
/// and never more than `max` bytes even if it grows meanwhile.
fn read_plugin_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let err = |source: std::io::Error| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        let what = {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_dir() {
                "a directory"
            } else if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        };
        return Err(LoadError::NotAFile {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > max {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            max,
        });
    }
    // O_NONBLOCK: if the path was swapped for a FIFO since the check, the
    // open does not wait for a writer.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(err)?
    };
    if !file.metadata().map_err(err)?.is_file() {
        return Err(LoadError::NotAFile {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > max {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            compiler: None,
            limits: Limits::default(),
            reuse_instances: true,
            warm_instances: DEFAULT_WARM_INSTANCES,
            concurrent_runs: 96,
            max_runs_per_instance: 1000,
            max_plugin_bytes: DEFAULT_MAX_PLUGIN_BYTES,
        }
    }
}

/// Default of [`HostConfig::warm_instances`]: none. A fresh instance per
/// run costs about 20 µs more than a warm one (see `pool_config`), and
/// then no state of a run can reach the next.
pub const DEFAULT_WARM_INSTANCES: u32 = 0;

/// Core instances, memories and tables one component may use, for sizing
/// the pool: a Rust or C component built for `wasm32-wasip2` has its
/// module, the WASI adapter and a few shims.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;

/// Counts warm instances against [`HostConfig::warm_instances`].
struct WarmBudget {
    max: usize,
    used: AtomicUsize,
}

impl WarmBudget {
    /// A ticket if the budget has room.
    fn try_take(self: &Arc<Self>) -> Option<WarmTicket> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(WarmTicket(self.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

/// One warm instance's share of the budget; given back on drop.
struct WarmTicket(Arc<WarmBudget>);

impl Drop for WarmTicket {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither a built-in name nor a path.
    #[error(
        "unknown plugin `{name}`: the built-in plugins are {known}; for another plugin give the path of its .wasm component"
    )]
    Unknown {
        /// What was asked for.
        name: String,
        /// Built-in names.
        known: String,
    },
    /// The file cannot be read.
    #[error("cannot read plugin {}", path.display())]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("cannot load plugin {}: it is {what}; give the path of a .wasm component file", path.display())]
    NotAFile {
        /// Path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// Over the size cap.
    #[error("cannot load plugin {}: it is {size} bytes, more than the limit of {max} bytes for a plugin file", path.display())]
    TooLarge {
        /// Path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// Not a component (not WebAssembly, a core module, malformed).
    #[error("{label} is not a valid WebAssembly component: {reason}")]
    NotAComponent {
        /// Plugin label.
        label: String,
        /// What it is instead.
        reason: inspect::NotAComponent,
    },
    /// A component wasmtime refused to compile.
    #[error("{label} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// Plugin label.
        label: String,
        /// Cause.
        reason: String,
    },
    /// A component, but not an Outpost plugin.
    #[error(
        "{label} is not an Outpost plugin: it exports {exports}, but a plugin exports outpost:plugin/sensor, outpost:plugin/notifier or outpost:plugin/provider of {SUPPORTED} (target the world sensor-plugin, notifier-plugin or provider-plugin of the outpost:plugin WIT package)"
    )]
    WrongWorld {
        /// Plugin label.
        label: String,
        /// What it exports.
        exports: String,
    },
    /// An Outpost plugin of another, incompatible version.
    #[error(
        "{label} was built for {found}, which this agent cannot run: it supports {SUPPORTED} ({WIT_VERSION}); rebuild the plugin against outpost:plugin 0.1"
    )]
    Version {
        /// Plugin label.
        label: String,
        /// What it exports.
        found: String,
    },
    /// Uses the component model's async ABI.
    #[error(
        "{label} is an async component (it uses the component model's async ABI), which this agent does not support: build it with synchronous exports"
    )]
    Async {
        /// Plugin label.
        label: String,
    },
    /// Its initial memory is over the configured memory limit.
    #[error(
        "{label} needs {need_mib} MiB of memory to start, more than the memory limit of {limit_mib} MiB: raise `memory_mb` (agent.plugins.memory_mb in the config, --memory-mb on the command line) to at least {need_mib}"
    )]
    MemoryFloor {
        /// Plugin label.
        label: String,
        /// Its initial linear memory, rounded up to MiB.
        need_mib: u64,
        /// The limit, in MiB.
        limit_mib: u64,
    },
    /// Imports something the agent does not provide, or wrong signatures.
    #[error("{label} cannot be linked: {reason}")]
    Link {
        /// Plugin label.
        label: String,
        /// Cause.
        reason: String,
    },
    /// `info` failed.
    #[error("{label}: calling `info` failed: {source}")]
    Info {
        /// Plugin label.
        label: String,
        /// Cause.
        source: RunError,
    },
}

/// A run did not complete. The instance that failed is discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// Deadline passed.
    #[error("plugin exceeded its time limit of {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Memory cap hit.
    #[error("plugin exceeded its memory limit of {} MiB", .0 >> 20)]
    Memory(usize),
    /// Output cap hit.
    #[error("plugin wrote more than {0} bytes to stdout/stderr in one run")]
    Output(usize),
    /// Stack exhausted.
    #[error("plugin overflowed its stack (recursion too deep)")]
    StackOverflow,
    /// A host-side limit (connections, resources, host log) was hit.
    #[error("{0}")]
    HostLimit(HostLimit),
    /// Any other trap (panic, out-of-bounds access, ...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// Called as the wrong kind.
    #[error("plugin is a {actual}, not a {wanted}")]
    WrongKind {
        /// What it is.
        actual: PluginKind,
        /// What the caller wanted.
        wanted: PluginKind,
    },
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Compiled into the binary.
    Builtin(&'static str),
    /// A component file.
    Path(PathBuf),
}

impl PluginSource {
    /// A built-in name, or a path (anything with a `/` or ending in `.wasm`).
    pub fn parse(spec: &str) -> Result<Self, LoadError> {
        if let Some(b) = builtin::find(spec) {
            return Ok(PluginSource::Builtin(b.name));
        }
        if spec.contains('/') || spec.ends_with(".wasm") {
            return Ok(PluginSource::Path(PathBuf::from(spec)));
        }
        Err(LoadError::Unknown {
            name: spec.to_string(),
            known: builtin::names().join(", "),
        })
    }

    /// How the plugin is named in messages.
    pub fn label(&self) -> String {
        match self {
            PluginSource::Builtin(n) => format!("built-in plugin `{n}`"),
            PluginSource::Path(p) => format!("plugin {}", p.display()),
        }
    }
}

/// Advances the engine's epoch until dropped, while a call is in flight.
/// With no plugin running it sleeps: an idle agent (a hundred checks a
/// second leave it idle most of the time) would otherwise wake every
/// [`EPOCH_TICK`] for nothing, which cost about 6 % of its CPU.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    runs: Arc<ActiveRuns>,
}

/// Counts the calls in flight and wakes the ticker on the first.
struct ActiveRuns {
    count: AtomicUsize,
    ticker: std::sync::OnceLock<std::thread::Thread>,
}

impl ActiveRuns {
    /// Marks a call in flight until the guard drops.
    fn enter(self: &Arc<Self>) -> ActiveRun {
        if self.count.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = self.ticker.get()
        {
            t.unpark();
        }
        ActiveRun(self.clone())
    }
}

/// One call in flight (see [`ActiveRuns`]).
struct ActiveRun(Arc<ActiveRuns>);

impl Drop for ActiveRun {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(ActiveRuns {
            count: AtomicUsize::new(0),
            ticker: std::sync::OnceLock::new(),
        });
        let (flag, active) = (stop.clone(), runs.clone());
        let handle = std::thread::Builder::new()
            .name("outpost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if active.count.load(Ordering::Acquire) == 0 {
                        // `enter` unparks; a token given between the load
                        // and here makes `park` return at once. The
                        // timeout only bounds a missed wake-up.
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch thread");
        let _ = runs.ticker.set(handle.thread().clone());
        Self { stop, runs }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.runs.ticker.get() {
            t.unpark();
        }
    }
}

/// Loads and instantiates plugins. Cheap to share behind an `Arc`.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache: Option<cache::ComponentCache>,
    config: HostConfig,
    warm: Arc<WarmBudget>,
    _ticker: EpochTicker,
}

impl PluginHost {
    /// Builds the engine and linker.
    pub fn new(config: HostConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&config))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        sockets::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::host_api::add_to_linker::<_, HasSelf<Sandbox>>(&mut linker, |s| s)?;
        wit::add_to_linker::<_, HasSelf<Sandbox>>(&mut linker, |s| s)?;
        // Before 0.1.1 the types interface was called `types`; plugins
        // built then import it (an instance of types only, nothing to
        // provide but its name).
        linker.instance("outpost:plugin/types@0.1.0")?;
        let cache = match &config.cache_dir {
            Some(dir) => match cache::ComponentCache::new(
                &engine,
                dir.clone(),
                config
                    .compiler
                    .clone()
                    .map(|exe| compiler::ChildCompiler::new(exe, &config)),
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "compiled-component cache disabled");
                    None
                }
            },
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone());
        let warm = Arc::new(WarmBudget {
            max: if config.reuse_instances {
                config.warm_instances as usize
            } else {
                0
            },
            used: AtomicUsize::new(0),
        });
        Ok(Self {
            engine,
            linker,
            cache,
            config,
            warm,
            _ticker: ticker,
        })
    }

    /// How many instances are warm right now (for metrics and tests).
    pub fn warm_instances(&self) -> usize {
        self.warm.used.load(Ordering::Relaxed)
    }

    /// The host settings.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Compiles into the cache, several at once, the plugins `specs` name
    /// (built-in names or paths), so that loading them one by one
    /// afterwards finds each compiled: a start with several big components
    /// takes about as long as the biggest, not their sum. What cannot be
    /// compiled is left for [`PluginHost::load`] to report; without a cache
    /// this does nothing.
    pub async fn precompile(&self, specs: &[String]) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        // One compile per core: each is a child process running Cranelift
        // on all its threads, more at once only adds memory.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = Arc::new(tokio::sync::Semaphore::new(cores));
        let limit = self.config.limits.memory_bytes as u64;
        let max_file = self.config.max_plugin_bytes;
        let mut tasks = tokio::task::JoinSet::new();
        let mut seen = std::collections::HashSet::new();
        for spec in specs {
            if !seen.insert(spec.as_str()) {
                continue;
            }
            let Ok(source) = PluginSource::parse(spec) else {
                continue;
            };
            let (engine, cache, slots) = (self.engine.clone(), cache.clone(), slots.clone());
            tasks.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || {
                    let bytes: std::borrow::Cow<'static, [u8]> = match &source {
                        PluginSource::Builtin(name) => match builtin::find(name) {
                            Some(b) => b.wasm.into(),
                            None => return,
                        },
                        // Only what `load` would read: a FIFO or a device
                        // is skipped here and refused by `load` with its
                        // reason.
                        PluginSource::Path(p) => match read_plugin_file(p, max_file) {
                            Ok(b) => b.into(),
                            Err(_) => return,
                        },
                    };
                    // Only what `load` would go on to compile.
                    match inspect::inspect(&bytes) {
                        Ok(i) if !i.uses_async && i.initial_memory_bytes <= limit => {
                            let _ = cache.load_or_compile(&engine, &bytes);
                        }
                        _ => {}
                    }
                })
                .await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Loads a plugin by built-in name or path.
    pub async fn load_spec(&self, spec: &str) -> Result<Arc<Plugin>, LoadError> {
        let source = PluginSource::parse(spec)?;
        self.load(&source).await
    }

    /// Loads, compiles (or fetches from cache), checks and describes a plugin.
    pub async fn load(&self, source: &PluginSource) -> Result<Arc<Plugin>, LoadError> {
        let label = source.label();
        let bytes: std::borrow::Cow<'static, [u8]> = match source {
            PluginSource::Builtin(name) => {
                builtin::find(name).expect("parsed built-in").wasm.into()
            }
            PluginSource::Path(p) => read_plugin_file(p, self.config.max_plugin_bytes)?.into(),
        };
        let shape = inspect::inspect(&bytes).map_err(|reason| LoadError::NotAComponent {
            label: label.clone(),
            reason,
        })?;
        // Everything that can be told from the bytes is told before the
        // compile, which takes seconds for a big component.
        let kind = check_exports(&shape.exports, &label)?;
        if shape.uses_async {
            return Err(LoadError::Async { label });
        }
        let limit = self.config.limits.memory_bytes as u64;
        if shape.initial_memory_bytes > limit {
            return Err(LoadError::MemoryFloor {
                label,
                need_mib: shape.initial_memory_bytes.div_ceil(1 << 20),
                limit_mib: limit >> 20,
            });
        }
        let compiled = {
            let engine = self.engine.clone();
            let cache = self.cache.clone();
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || match &cache {
                Some(c) => c.load_or_compile(&engine, &bytes).map(|(c, _)| c),
                None => Component::from_binary(&engine, &bytes),
            })
            .await
            .expect("compile task panicked")
        };
        let component = compiled.map_err(|e| LoadError::Invalid {
            label: label.clone(),
            reason: root_cause(&e),
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                label: label.clone(),
                reason: root_cause(&e),
            })?;
        let pre = match kind {
            PluginKind::Sensor => {
                PluginPre::Sensor(SensorPluginPre::new(pre).map_err(|e| LoadError::Link {
                    label: label.clone(),
                    reason: root_cause(&e),
                })?)
            }
            PluginKind::Notifier => {
                PluginPre::Notifier(NotifierPluginPre::new(pre).map_err(|e| LoadError::Link {
                    label: label.clone(),
                    reason: root_cause(&e),
                })?)
            }
            PluginKind::Provider => {
                PluginPre::Provider(ProviderPluginPre::new(pre).map_err(|e| LoadError::Link {
                    label: label.clone(),
                    reason: root_cause(&e),
                })?)
            }
        };
        let mut plugin = Arc::new(Plugin {
            label: label.clone(),
            kind,
            pre,
            engine: self.engine.clone(),
            config: self.config.clone(),
            warm: self.warm.clone(),
            runs: self._ticker.runs.clone(),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                kind,
                description: String::new(),
                config: vec![],
                kinds: vec![],
            },
        });
        let info = {
            let mut probe = plugin.instance(Arc::new(NetPolicy::deny_all()), "info");
            probe.info().await.map_err(|e| LoadError::Info {
                label: label.clone(),
                source: e,
            })?
        };
        Arc::get_mut(&mut plugin)
            .expect("the probe instance was dropped")
            .info = info;
        Ok(plugin)
    }
}

/// The kind of plugin a component's exports make it, or why it is none.
fn check_exports(names: &[String], label: &str) -> Result<PluginKind, LoadError> {
    let mut other_version = None;
    for name in names {
        let Some((iface, version)) = name.split_once('@') else {
            continue;
        };
        let Some(&(_, kind)) = EXPORTS.iter().find(|(i, _)| *i == iface) else {
            continue;
        };
        if compatible(version) {
            return Ok(kind);
        }
        other_version.get_or_insert_with(|| name.clone());
    }
    if let Some(found) = other_version {
        return Err(LoadError::Version {
            label: label.to_string(),
            found,
        });
    }
    let exports = if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    };
    Err(LoadError::WrongWorld {
        label: label.to_string(),
        exports,
    })
}

/// Whether a plugin built against `version` of the package runs here:
/// semver for 0.x, the same major and minor.
fn compatible(version: &str) -> bool {
    let ours = semver::Version::parse(WIT_VERSION).expect("WIT_VERSION is semver");
    semver::Version::parse(version)
        .is_ok_and(|v| v.major == ours.major && v.minor == ours.minor && v.pre.is_empty())
}

#[cfg(test)]
mod version_tests {
    use super::*;

    fn kind_of(exports: &[&str]) -> Result<PluginKind, LoadError> {
        let names: Vec<String> = exports.iter().map(|s| s.to_string()).collect();
        check_exports(&names, "plugin p.wasm")
    }

    #[test]
    fn any_0_1_x_is_accepted_and_other_versions_are_named() {
        for v in ["0.1.0", "0.1.1", "0.1.9"] {
            let name = format!("outpost:plugin/sensor@{v}");
            assert_eq!(
                kind_of(&["wasi:cli/run@0.2.0", &name]).unwrap(),
                PluginKind::Sensor
            );
        }
        assert_eq!(
            kind_of(&["outpost:plugin/notifier@0.1.4"]).unwrap(),
            PluginKind::Notifier
        );
        for v in ["0.2.0", "1.0.0", "9.0.0", "0.1.2-rc.1"] {
            let e = kind_of(&[&format!("outpost:plugin/sensor@{v}")]).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, LoadError::Version { .. }), "{v}: {text}");
            assert!(
                text.contains(&format!("sensor@{v}")) && text.contains("0.1.x"),
                "{text}"
            );
        }
        let e = kind_of(&["wasi:http/incoming-handler@0.2.0"]).unwrap_err();
        assert!(matches!(e, LoadError::WrongWorld { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("it exports wasi:http/incoming-handler@0.2.0")
        );
        let e = kind_of(&[]).unwrap_err();
        assert!(e.to_string().contains("it exports nothing"), "{e}");
    }

    /// `precompile` compiles each distinct plugin into the cache once and
    /// skips what it cannot read (left for `load` to report).
    #[tokio::test]
    async fn precompile_fills_the_cache_once_per_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c");
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(cache.clone()),
            ..HostConfig::default()
        })
        .unwrap();
        // A FIFO is skipped, not opened and waited on.
        let fifo = dir.path().join("pipe.wasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let fifo = fifo.to_string_lossy().into_owned();
        let specs = [
            "http",
            "slack",
            "http",
            "nosuch",
            "/nonexistent/x.wasm",
            &fifo,
        ];
        let specs = specs.map(String::from);
        let all = host.precompile(&specs);
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("precompile returned");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }
}

/// The engine settings for `config`. A compiled image only loads into an
/// engine built the same way, so [`compiler`]'s child builds its engine
/// here too, from [`compiler::EngineArgs`]: whatever this reads from
/// `config` must be in there.
fn engine_config(config: &HostConfig) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.epoch_interruption(true);
    c.wasm_component_model(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // A guest stack of 1 MiB fits deep-but-sane recursion; overflow traps
    // cleanly. The async fiber stack must exceed it.
    c.max_wasm_stack(1 << 20);
    c.async_stack_size(2 << 20);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(config)));
    c
}

/// Compiles `wasm` into the image a host with `config` loads.
fn precompile(config: &HostConfig, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    Engine::new(&engine_config(config))?.precompile_component(wasm)
}

/// Bytes of a linear memory whose written pages a pool slot keeps between
/// instances (reset in place to the memory image), where the kernel can
/// tell which pages were written ([`PoolingAllocationConfig::pagemap_scan`],
/// Linux 6.7+). Resetting a page in place costs a copy; handing it back
/// costs an `madvise` with a TLB shoot-down on every core the process runs
/// on plus a page fault when the next instance touches it again, which was
/// half of a fresh instance's cost. 1 MiB holds what a check writes (the
/// HTTP sensor writes about 200 KiB); more is handed back.
const KEEP_RESIDENT: usize = 1 << 20;

/// The instance pool: every slot reserved up front (virtual memory only).
/// A slot keeps the pages its last instance wrote (up to [`KEEP_RESIDENT`],
/// reset to the plugin's memory image when the instance ends) and stays
/// affine to its plugin, so the next instance of the same plugin finds its
/// memory mapped and resident. The most recently used affine slot is
/// chosen first, so the slots ever used are about the peak number of
/// instances alive at once, not the pool's size. Without the kernel's
/// `PAGEMAP_SCAN` a reset would have to rewrite the whole kept range, so
/// there pages are handed back instead.
fn pool_config(config: &HostConfig) -> PoolingAllocationConfig {
    let slots = config.warm_instances.max(1) + config.concurrent_runs.max(1);
    let keep = if PoolingAllocationConfig::is_pagemap_scan_available() {
        KEEP_RESIDENT
    } else {
        0
    };
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .total_stacks(slots)
        // The limiter refuses growth past the cap first (and says so);
        // the slot size only has to hold what it lets through.
        .max_memory_size(config.limits.memory_bytes.clamp(64 << 10, 4 << 30))
        .table_elements(100_000)
        .max_unused_warm_slots(8)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(keep)
        .table_keep_resident(keep)
        .decommit_batch_size(1);
    p
}

fn root_cause(e: &wasmtime::Error) -> String {
    let mut msg = format!("{e}");
    let chain: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
    if !chain.is_empty() {
        msg = format!("{msg}: {}", chain.join(": "));
    }
    msg
}

#[derive(Clone)]
enum PluginPre {
    Sensor(SensorPluginPre<Sandbox>),
    Notifier(NotifierPluginPre<Sandbox>),
    Provider(ProviderPluginPre<Sandbox>),
}

/// A loaded, checked plugin, ready to instantiate.
pub struct Plugin {
    label: String,
    kind: PluginKind,
    pre: PluginPre,
    engine: Engine,
    config: HostConfig,
    warm: Arc<WarmBudget>,
    runs: Arc<ActiveRuns>,
    info: PluginInfo,
}

impl Plugin {
    /// What the plugin said about itself at load.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Sensor or notifier.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// How it is named in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A new instance for one configured sensor or notifier (`who` names it
    /// in logs), with its network policy. Nothing is instantiated until the
    /// first call.
    pub fn instance(self: &Arc<Self>, policy: Arc<NetPolicy>, who: &str) -> Instance {
        Instance {
            plugin: self.clone(),
            policy,
            label: format!(
                "{}/{who}",
                if self.info.name.is_empty() {
                    "plugin"
                } else {
                    &self.info.name
                }
            )
            .into(),
            warm: None,
        }
    }
}

enum Bound {
    Sensor(SensorPlugin),
    Notifier(NotifierPlugin),
    Provider(ProviderPlugin),
}

struct Warm {
    store: Store<Sandbox>,
    bound: Bound,
    runs: u32,
    /// Set once the instance is kept warm between runs.
    ticket: Option<WarmTicket>,
    /// Entries of the resource table after the first run: a warm instance
    /// holding more after a later run is discarded.
    baseline: Option<usize>,
}

/// One configured use of a plugin: its store (kept warm between runs when
/// the host allows), policy and limits.
pub struct Instance {
    plugin: Arc<Plugin>,
    policy: Arc<NetPolicy>,
    label: Arc<str>,
    /// Boxed: an idle sensor's task holds its `Instance` inline.
    warm: Option<Box<Warm>>,
}

impl Instance {
    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The network policy.
    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    /// Whether a warm instance is kept (for tests and benchmarks).
    pub fn is_warm(&self) -> bool {
        self.warm.is_some()
    }

    /// Makes sure a live instance exists and arms the deadline.
    async fn prepare(&mut self, deadline: Instant) -> Result<&mut Warm, RunError> {
        if self.warm.is_none() {
            let p = &self.plugin;
            let mut store = Store::new(
                &p.engine,
                Sandbox::new(self.policy.clone(), p.config.limits, self.label.clone()),
            );
            store.limiter(|s| &mut s.limiter);
            store.data_mut().deadline = deadline;
            store.epoch_deadline_callback(|ctx| {
                if Instant::now() >= ctx.data().deadline {
                    Err(Trap::Interrupt.into())
                } else {
                    // Yield to the async runtime every tick so a busy guest
                    // never monopolises a worker thread.
                    Ok(UpdateDeadline::Yield(1))
                }
            });
            store.set_epoch_deadline(1);
            let timeout = deadline.saturating_duration_since(Instant::now());
            let inst = match &p.pre {
                PluginPre::Sensor(pre) => {
                    tokio::time::timeout(timeout + TIMEOUT_GRACE, pre.instantiate_async(&mut store))
                        .await
                        .map(|r| r.map(Bound::Sensor))
                }
                PluginPre::Notifier(pre) => {
                    tokio::time::timeout(timeout + TIMEOUT_GRACE, pre.instantiate_async(&mut store))
                        .await
                        .map(|r| r.map(Bound::Notifier))
                }
                PluginPre::Provider(pre) => {
                    tokio::time::timeout(timeout + TIMEOUT_GRACE, pre.instantiate_async(&mut store))
                        .await
                        .map(|r| r.map(Bound::Provider))
                }
            };
            let bound = match inst {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    return Err(match classify(&e, &store, &self.plugin.config.limits) {
                        RunError::Timeout(_) => RunError::Timeout(timeout),
                        other => other,
                    });
                }
                Err(_) => return Err(RunError::Timeout(timeout)),
            };
            self.warm = Some(Box::new(Warm {
                store,
                bound,
                runs: 0,
                ticket: None,
                baseline: None,
            }));
        }
        let w = self.warm.as_mut().expect("just created");
        w.store.data().meter.reset();
        w.store.data_mut().deadline = deadline;
        w.store.set_epoch_deadline(1);
        Ok(w)
    }

    /// Ends a call: forwards captured output, and keeps or discards the
    /// instance according to the outcome and the reuse policy.
    fn settle<T>(
        &mut self,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        timeout: Duration,
    ) -> Result<T, RunError> {
        let limits = self.plugin.config.limits;
        let Some(w) = self.warm.as_mut() else {
            return Err(RunError::Trap("instance vanished".into()));
        };
        let result = match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match classify(&e, &w.store, &limits) {
                RunError::Timeout(_) => RunError::Timeout(timeout),
                other => other,
            }),
            Err(_) => Err(RunError::Timeout(timeout)),
        };
        // Host-side limits: the first one hit names the fault, whatever
        // the plugin made of the refusal.
        let (io, entries) = w.store.data_mut().run_resources();
        let max_resources = w.store.data().max_resources;
        let host_limit = w.store.data().meter.exceeded().or_else(|| {
            (entries + 1 >= max_resources as usize).then_some(HostLimit::Resources(max_resources))
        });
        let result = match host_limit {
            Some(l) if !matches!(result, Err(RunError::Memory(_) | RunError::Output(_))) => {
                Err(RunError::HostLimit(l))
            }
            _ => result,
        };
        // Nothing of this run may reach the next: an instance still
        // holding a socket or an HTTP exchange, or more resources than
        // after its first run, is not kept.
        let leftover = io || w.baseline.is_some_and(|b| entries > b);
        w.baseline.get_or_insert(entries);
        let (out, _) = w.store.data().stdout.take();
        let (err, _) = w.store.data().stderr.take();
        forward_output(&self.label, &out, &err);
        w.runs += 1;
        let keep = result.is_ok()
            && !leftover
            && w.runs < self.plugin.config.max_runs_per_instance
            && (w.ticket.is_some() || {
                w.ticket = self.plugin.warm.try_take();
                w.ticket.is_some()
            });
        if !keep {
            self.warm = None;
        }
        match result {
            // A panic prints its message to stderr before trapping: quote it.
            Err(RunError::Trap(t)) if !err.is_empty() => {
                let text = String::from_utf8_lossy(&err);
                let last = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ");
                Err(RunError::Trap(format!("{t} (stderr: {last})")))
            }
            other => other,
        }
    }

    /// Calls `info`.
    pub async fn info(&mut self) -> Result<PluginInfo, RunError> {
        let _active = self.plugin.runs.enter();
        let deadline = Instant::now() + METADATA_TIMEOUT;
        let w = self.prepare(deadline).await?;
        let out = match &w.bound {
            Bound::Sensor(b) => {
                tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_sensor().call_info(&mut w.store),
                )
                .await
            }
            Bound::Notifier(b) => {
                tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_notifier().call_info(&mut w.store),
                )
                .await
            }
            Bound::Provider(b) => {
                let out = tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_provider().call_info(&mut w.store),
                )
                .await;
                return self
                    .settle(out, METADATA_TIMEOUT)
                    .map(provider::convert_info);
            }
        };
        self.settle(out, METADATA_TIMEOUT).map(convert_info)
    }

    /// Calls `validate` on a JSON configuration.
    pub async fn validate(
        &mut self,
        config_json: &str,
    ) -> Result<Result<(), ConfigError>, RunError> {
        let _active = self.plugin.runs.enter();
        let deadline = Instant::now() + METADATA_TIMEOUT;
        let w = self.prepare(deadline).await?;
        let out = match &w.bound {
            Bound::Sensor(b) => {
                tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_sensor()
                        .call_validate(&mut w.store, config_json),
                )
                .await
            }
            Bound::Notifier(b) => {
                tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_notifier()
                        .call_validate(&mut w.store, config_json),
                )
                .await
            }
            Bound::Provider(b) => {
                tokio::time::timeout(
                    METADATA_TIMEOUT + TIMEOUT_GRACE,
                    b.outpost_plugin_provider()
                        .call_validate(&mut w.store, config_json),
                )
                .await
            }
        };
        self.settle(out, METADATA_TIMEOUT).map(|r| {
            r.map_err(|e| ConfigError {
                field: e.field,
                message: e.message,
            })
        })
    }

    /// Runs one check. Faults are returned as `RunError`; see
    /// [`Instance::check_result`] for the form the scheduler records.
    pub async fn check(
        &mut self,
        config_json: &str,
        timeout: Duration,
    ) -> Result<CheckResult, RunError> {
        let _active = self.plugin.runs.enter();
        let deadline = Instant::now() + timeout;
        let ms = timeout.as_millis().min(u32::MAX as u128) as u32;
        let w = self.prepare(deadline).await?;
        let out = match &w.bound {
            Bound::Sensor(b) => {
                tokio::time::timeout(
                    timeout + TIMEOUT_GRACE,
                    b.outpost_plugin_sensor()
                        .call_check(&mut w.store, config_json, ms),
                )
                .await
            }
            Bound::Notifier(_) | Bound::Provider(_) => {
                return Err(RunError::WrongKind {
                    actual: self.plugin.kind,
                    wanted: PluginKind::Sensor,
                });
            }
        };
        let limits = self.plugin.config.limits;
        self.settle(out, timeout)
            .map(|r| result::bound(convert_result(r), &limits))
    }

    /// Runs one check and turns any fault into an `error` result.
    pub async fn check_result(&mut self, config_json: &str, timeout: Duration) -> CheckResult {
        match self.check(config_json, timeout).await {
            Ok(r) => r,
            Err(e) => CheckResult::error(e.to_string()),
        }
    }

    /// Delivers one alert.
    pub async fn notify(
        &mut self,
        config_json: &str,
        alert: &Alert,
        timeout: Duration,
    ) -> Result<Result<(), DeliveryError>, RunError> {
        let _active = self.plugin.runs.enter();
        let deadline = Instant::now() + timeout;
        let ms = timeout.as_millis().min(u32::MAX as u128) as u32;
        let w = self.prepare(deadline).await?;
        let wit_alert = to_wit_alert(alert);
        let out = match &w.bound {
            Bound::Notifier(b) => {
                tokio::time::timeout(
                    timeout + TIMEOUT_GRACE,
                    b.outpost_plugin_notifier().call_notify(
                        &mut w.store,
                        config_json,
                        &wit_alert,
                        ms,
                    ),
                )
                .await
            }
            Bound::Sensor(_) | Bound::Provider(_) => {
                return Err(RunError::WrongKind {
                    actual: self.plugin.kind,
                    wanted: PluginKind::Notifier,
                });
            }
        };
        self.settle(out, timeout).map(|r| {
            r.map_err(|e| DeliveryError {
                message: e.message,
                retry_after_ms: e.retry_after_ms,
                permanent: e.permanent,
            })
        })
    }
}

impl Instance {
    /// Runs one discovery of a provider. The answer is bounded and checked
    /// by [`provider::bound`] before the caller sees it.
    pub async fn discover(
        &mut self,
        config_json: &str,
        cursor: Option<&str>,
        timeout: Duration,
    ) -> Result<Result<Discovery, DiscoveryError>, RunError> {
        let _active = self.plugin.runs.enter();
        let deadline = Instant::now() + timeout;
        let ms = timeout.as_millis().min(u32::MAX as u128) as u32;
        let w = self.prepare(deadline).await?;
        let out = match &w.bound {
            Bound::Provider(b) => {
                tokio::time::timeout(
                    timeout + TIMEOUT_GRACE,
                    b.outpost_plugin_provider().call_discover(
                        &mut w.store,
                        config_json,
                        cursor,
                        ms,
                    ),
                )
                .await
            }
            Bound::Sensor(_) | Bound::Notifier(_) => {
                return Err(RunError::WrongKind {
                    actual: self.plugin.kind,
                    wanted: PluginKind::Provider,
                });
            }
        };
        self.settle(out, timeout).map(|r| match r {
            Ok(d) => Ok(provider::convert_discovery(d)),
            Err(e) => Err(provider::convert_error(e)),
        })
    }
}

/// Names the limit or trap behind a failed call.
fn classify(e: &wasmtime::Error, store: &Store<Sandbox>, limits: &Limits) -> RunError {
    let data = store.data();
    if data.limiter.memory_exceeded {
        return RunError::Memory(limits.memory_bytes);
    }
    if data.stdout.overflowed() || data.stderr.overflowed() {
        return RunError::Output(limits.output_bytes);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunError::Timeout(Duration::ZERO),
        Some(Trap::StackOverflow) => RunError::StackOverflow,
        Some(Trap::UnreachableCodeReached) => {
            RunError::Trap("the plugin panicked or aborted (wasm `unreachable`)".into())
        }
        Some(Trap::MemoryOutOfBounds) => RunError::Trap(
            "out of bounds memory access (often the plugin's stack overflowing into its data)"
                .into(),
        ),
        Some(t) => RunError::Trap(t.to_string()),
        None => RunError::Trap(root_cause(e)),
    }
}

fn forward_output(label: &str, out: &[u8], err: &[u8]) {
    for (stream, bytes) in [("stdout", out), ("stderr", err)] {
        if bytes.is_empty() {
            continue;
        }
        for line in String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(100)
        {
            tracing::info!(target: "plugin", plugin = label, stream, "{line}");
        }
    }
}

fn convert_info(i: wit::PluginInfo) -> PluginInfo {
    PluginInfo {
        name: i.name,
        version: i.version,
        kind: match i.kind {
            wit::PluginKind::Sensor => PluginKind::Sensor,
            wit::PluginKind::Notifier => PluginKind::Notifier,
        },
        kinds: vec![],
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
    }
}

fn convert_result(r: wit::CheckResult) -> CheckResult {
    let details = r.details.map(Details);
    CheckResult {
        status: match r.status {
            wit::Status::Ok => Status::Ok,
            wit::Status::Warn => Status::Warn,
            wit::Status::Fail => Status::Fail,
            wit::Status::Error => Status::Error,
        },
        message: r.message,
        latency_ms: if r.latency_ms.is_finite() && r.latency_ms >= 0.0 {
            r.latency_ms
        } else {
            0.0
        },
        metrics: r
            .metrics
            .into_iter()
            .filter(|m| m.value.is_finite())
            .map(|m| (m.name, m.value))
            .collect(),
        details,
    }
}

fn to_wit_alert(a: &Alert) -> wit::Alert {
    wit::Alert {
        idempotency_key: a.idempotency_key.clone(),
        incident_id: a.incident_id.clone(),
        event: match a.event {
            AlertEvent::Opened => wit::AlertEvent::Opened,
            AlertEvent::Escalated => wit::AlertEvent::Escalated,
            AlertEvent::Reminder => wit::AlertEvent::Reminder,
            AlertEvent::Acknowledged => wit::AlertEvent::Acknowledged,
            AlertEvent::Resolved => wit::AlertEvent::Resolved,
        },
        agent: a.agent.clone(),
        target: a.target.clone(),
        target_kind: a.target_kind.clone(),
        old_state: a.old_state.clone(),
        new_state: a.new_state.clone(),
        message: a.message.clone(),
        started_at_ms: a.started_at_ms,
        event_at_ms: a.event_at_ms,
        level: a.level,
        ack_url: a.ack_url.clone(),
    }
}
