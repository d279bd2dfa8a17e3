//! The per-instance state a plugin runs with (`T` of `Store<T>`): its WASI
//! context with no filesystem, no environment and captured output; its
//! network policy applied to `wasi:sockets`, `wasi:http` and the
//! `tls-peer-certificate` host call; its memory limiter; and the deadline
//! of the current call.
//!
//! Nothing here is shared between instances: one sensor's state or fault
//! cannot reach another's.
//!
//! What a plugin makes the host hold is bounded here too: connections per
//! run and host log calls ([`Meter`]), entries of the resource table
//! (sockets, streams, HTTP fields and requests, each HTTP fields resource
//! itself capped in bytes), so the host memory behind a plugin's resources
//! is at most `max_resources × FIELD_BYTES` plus the connections' buffers.

use super::meter::Meter;
use super::output::CappedPipe;
use super::policy::NetPolicy;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Limits applied to every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Captured stdout + stderr cap per run, in bytes.
    pub output_bytes: usize,
    /// TCP connects plus HTTP requests per run.
    pub max_connections: u32,
    /// Live entries of the instance's resource table (sockets, streams,
    /// HTTP fields, pollables, ...).
    pub max_resources: u32,
    /// Host log calls per run.
    pub log_lines: u32,
    /// Bytes logged through the host per run.
    pub log_bytes: usize,
    /// Bytes of a result's message kept (more is cut, with a marker).
    pub message_bytes: usize,
    /// Metrics of a result kept (more are dropped, and the message says so).
    pub max_metrics: usize,
    /// Bytes of a result's details kept (more is cut, with a marker).
    pub details_bytes: usize,
}

/// Bytes one `wasi:http` fields resource (a header map) may take in host
/// memory. 64 KiB holds any real request's headers (proxies refuse more
/// than 8 KiB on the wire); with `max_resources` it bounds the host memory
/// a plugin can pin through header maps.
pub const FIELD_BYTES: usize = 64 << 10;

impl Default for Limits {
    fn default() -> Self {
        Self {
            // 64 MiB: ample for a check (the HTTP sensor peaks at a few MiB
            // with a 1 MiB body), small enough that 100 concurrent faulty
            // plugins cannot exhaust a small host.
            memory_bytes: 64 << 20,
            // 64 KiB of output per run is a lot of log lines; more is a
            // flood, and plugins should log through the host interface.
            output_bytes: 64 << 10,
            // A check makes one to a few connections (redirects, a replica
            // set's members, an Alertmanager cluster); 64 is ample, and
            // sixteen sensors at the cap stay far below a process's
            // descriptor limit.
            max_connections: 64,
            // A Rust guest doing HTTP holds a few dozen resources at once
            // (streams, pollables, fields, the request and response); 1,000
            // leaves room while bounding the host memory behind them to
            // about 64 MiB of header maps at worst.
            max_resources: 1000,
            // Same spirit as stdout: a few hundred lines is a chatty
            // check; more is a flood of the agent's log.
            log_lines: 200,
            log_bytes: 64 << 10,
            // A message is one line for humans; 4 KiB is a long one.
            message_bytes: 4 << 10,
            // The built-in sensors return at most a few dozen metrics.
            max_metrics: 100,
            // Details are stored with each result and served by the API.
            details_bytes: 64 << 10,
        }
    }
}

/// Memory limiter that records why it refused a grow.
pub struct Limiter {
    memory_bytes: usize,
    /// Set when a grow beyond the cap was refused (then the guest traps).
    pub memory_exceeded: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            wasmtime::bail!(
                "plugin memory limit of {} MiB exceeded (asked for {} MiB)",
                self.memory_bytes >> 20,
                desired >> 20
            );
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond
        // any sane guest and bounds the host memory they can take.
        Ok(desired <= 1_000_000)
    }
}

/// `wasi:http` hooks enforcing the network policy.
pub struct PolicyHooks {
    policy: Arc<NetPolicy>,
    meter: Arc<Meter>,
}

impl WasiHttpHooks for PolicyHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let allowed = match (
            uri.host(),
            uri.port_u16().or(Some(if https { 443 } else { 80 })),
        ) {
            (Some(host), Some(port)) => self.policy.allows_name(host, port),
            _ => false,
        };
        if !allowed {
            tracing::warn!(target: "plugin", uri = %uri, "denied HTTP request to a host outside the plugin's allow-list");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if !self.meter.connect() {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if https {
            return Box::new(super::outbound::send(
                request,
                options,
                super::outbound::client_tls(),
            ));
        }
        wasmtime_wasi_http::default_hooks().send_request(request, options, fut)
    }
}

/// Store data of one plugin instance.
pub struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: PolicyHooks,
    table: ResourceTable,
    /// Memory limiter (consulted by wasmtime on every grow).
    pub limiter: Limiter,
    /// When the current call must stop; read by the epoch callback.
    pub deadline: Instant,
    /// The network policy (also used by the `tls-peer-certificate` call).
    pub policy: Arc<NetPolicy>,
    /// Captured stdout.
    pub stdout: CappedPipe,
    /// Captured stderr.
    pub stderr: CappedPipe,
    /// Who runs here, for log lines: "plugin/sensor".
    pub label: Arc<str>,
    /// Per-run counters of connections and host log calls.
    pub meter: Arc<Meter>,
    /// The resource-table cap (for naming it when the table is full).
    pub max_resources: u32,
}

impl Sandbox {
    /// A fresh sandbox for one instance.
    pub fn new(policy: Arc<NetPolicy>, limits: Limits, label: Arc<str>) -> Self {
        let stdout = CappedPipe::new(limits.output_bytes);
        let stderr = CappedPipe::new(limits.output_bytes);
        let mut b = WasiCtx::builder();
        b.stdout(stdout.clone()).stderr(stderr.clone());
        b.allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(true);
        let meter = Arc::new(Meter::new(
            limits.max_connections,
            limits.log_lines,
            limits.log_bytes,
        ));
        let check_policy = policy.clone();
        let check_meter = meter.clone();
        b.socket_addr_check(move |addr, use_| {
            let policy = check_policy.clone();
            let meter = check_meter.clone();
            Box::pin(async move {
                match use_ {
                    // A connect first binds implicitly to the unspecified
                    // address; allow that and nothing else (no listening).
                    SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                    SocketAddrUse::TcpConnect => {
                        let ok = policy.allows_addr(addr).await;
                        if !ok {
                            tracing::warn!(target: "plugin", %addr, "denied TCP connect outside the plugin's allow-list");
                        }
                        ok && meter.connect()
                    }
                    _ => false,
                }
            })
        });
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources as usize);
        Self {
            wasi: b.build(),
            http,
            hooks: PolicyHooks {
                policy: policy.clone(),
                meter: meter.clone(),
            },
            table,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                memory_exceeded: false,
            },
            deadline: Instant::now(),
            policy,
            stdout,
            stderr,
            label,
            meter,
            max_resources: limits.max_resources,
        }
    }

    /// Whether the resource table still holds a connection or an HTTP
    /// exchange, and how many entries it holds (the caller compares them
    /// with what the instance held after its first run).
    pub fn run_resources(&mut self) -> (bool, usize) {
        let mut n = 0;
        let mut io = false;
        for e in self.table.iter_mut() {
            n += 1;
            let any: &dyn std::any::Any = e;
            io |= any.is::<wasmtime_wasi::p2::TcpSocket>()
                || any.is::<wasmtime_wasi::p2::UdpSocket>()
                || any.is::<wasmtime_wasi_http::p2::types::HostOutgoingRequest>()
                || any.is::<wasmtime_wasi_http::p2::types::HostIncomingResponse>()
                || any.is::<wasmtime_wasi_http::p2::types::HostFutureIncomingResponse>()
                || any.is::<wasmtime_wasi_http::p2::body::HostIncomingBody>()
                || any.is::<wasmtime_wasi_http::p2::body::HostOutgoingBody>();
        }
        (io, n)
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
