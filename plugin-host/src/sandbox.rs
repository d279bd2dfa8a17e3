//! The per-instance state a plugin runs with (`T` of `Store<T>`): its WASI
//! context with no filesystem, no environment and captured output; its
//! network policy applied to `wasi:sockets`, `wasi:http` and the
//! `tls-peer-certificate` host call; its memory limiter; and the deadline
//! of the current call.
//!
//! Nothing here is shared between instances: one sensor's state or fault
//! cannot reach another's.

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
}

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
        let check_policy = policy.clone();
        b.socket_addr_check(move |addr, use_| {
            let policy = check_policy.clone();
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
                        ok
                    }
                    _ => false,
                }
            })
        });
        Self {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            hooks: PolicyHooks {
                policy: policy.clone(),
            },
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                memory_exceeded: false,
            },
            deadline: Instant::now(),
            policy,
            stdout,
            stderr,
            label,
        }
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
