//! `wasi:sockets/ip-name-lookup` under the network policy: a plugin
//! resolves only names it may connect to. A lookup is itself a message to
//! the outside (the name travels to the resolvers), so a plugin with no
//! grant could otherwise send data out in DNS queries.
//!
//! wasmtime-wasi resolves any name; this module shadows its
//! `resolve-addresses` with one that asks the [`NetPolicy`] first and then
//! hands allowed names (and IP literals, which need no query) to
//! wasmtime-wasi's own implementation. Connects are checked separately
//! (`sandbox`); this module only decides lookups.

use super::policy::NetPolicy;
use super::sandbox::Sandbox;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, ErrorCode, Host, HostResolveAddressStream, IpAddress, Network, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network;
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

/// wasmtime-wasi's sockets view plus the policy of the instance.
pub struct PolicedLookup<'a> {
    inner: WasiSocketsCtxView<'a>,
    policy: Arc<NetPolicy>,
}

/// [`HasData`] marker of [`PolicedLookup`].
pub struct PolicedLookupData;

impl HasData for PolicedLookupData {
    type Data<'a> = PolicedLookup<'a>;
}

/// Replaces `resolve-addresses` in `linker` (which must already hold
/// wasmtime-wasi's sockets) with the policed one.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = ip_name_lookup::add_to_linker::<Sandbox, PolicedLookupData>(linker, |s| {
        let policy = s.policy.clone();
        PolicedLookup {
            inner: s.sockets(),
            policy,
        }
    });
    linker.allow_shadowing(false);
    r
}

/// Whether `name` may be resolved under `policy`: an IP literal (no query
/// leaves the host), or a host name of an allowed endpoint.
pub fn may_resolve(policy: &NetPolicy, name: &str) -> bool {
    let n = name.trim_start_matches('[').trim_end_matches(']');
    if n.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let n = n.strip_suffix('.').unwrap_or(n);
    policy
        .endpoints()
        .iter()
        .any(|e| e.host.eq_ignore_ascii_case(n))
}

impl Host for PolicedLookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !may_resolve(&self.policy, &name) {
            let shown: String = name.chars().take(253).collect();
            tracing::warn!(target: "plugin", name = %shown.escape_debug(), "denied name lookup outside the plugin's allow-list");
            return Err(ErrorCode::AccessDenied.into());
        }
        self.inner.resolve_addresses(network, name)
    }
}

// The error conversion the generated bindings of this interface need,
// delegated to wasmtime-wasi's.
impl network::Host for PolicedLookup<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for PolicedLookup<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, this)
    }
}

impl HostResolveAddressStream for PolicedLookup<'_> {
    fn resolve_next_address(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.inner.resolve_next_address(resource)
    }

    fn subscribe(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.inner, resource)
    }

    fn drop(&mut self, resource: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.inner, resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Endpoint;

    #[test]
    fn only_granted_names_resolve() {
        let p = NetPolicy::new(vec![Endpoint::parse("db.internal:27017").unwrap()]);
        assert!(may_resolve(&p, "db.internal"));
        assert!(may_resolve(&p, "DB.Internal."));
        assert!(may_resolve(&p, "10.0.0.1"));
        assert!(may_resolve(&p, "::1"));
        assert!(!may_resolve(&p, "secret-data.evil.example"));
        assert!(!may_resolve(&NetPolicy::deny_all(), "localhost"));
    }
}
