//! The TCP transport the SMTP dialogue runs over, with one deadline for the
//! whole exchange. In the component it is `wasi:sockets` (name lookup,
//! non-blocking connect, streams, all waits bounded by the deadline);
//! natively it is `std::net`, so the dialogue can be exercised in unit
//! tests. The agent's network allow-list is applied by the host at
//! connect time and shows up here as [`NetError::Denied`].

use std::time::Instant;

/// Why the connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The agent's allow-list does not include the server.
    Denied(String),
    /// Nothing listens there.
    Refused(String),
    /// The deadline passed.
    Timeout,
    /// The name did not resolve.
    Dns(String),
    /// The server closed the connection.
    Closed,
    /// Any other socket error.
    Io(String),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Denied(s) => write!(
                f,
                "{s} is not in this notifier's network allow-list (the allow-list holds the hosts the config names, or its explicit `allow` list)"
            ),
            NetError::Refused(s) => {
                write!(f, "connection to {s} refused (is the SMTP server running?)")
            }
            NetError::Timeout => write!(f, "timed out"),
            NetError::Dns(m) => write!(f, "name lookup failed: {m}"),
            NetError::Closed => write!(f, "the server closed the connection"),
            NetError::Io(m) => write!(f, "{m}"),
        }
    }
}

/// A byte stream to the server.
pub trait Transport {
    /// Writes all of `data`.
    fn send(&mut self, data: &[u8]) -> Result<(), NetError>;
    /// Reads what is available (at least one byte) and appends it to
    /// `buf`; `Err(Closed)` at end of stream.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError>;
}

/// Bytes asked for per read; SMTP replies are short.
const READ_CHUNK: u64 = 4096;

pub use imp::{Conn, connect};

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};

    /// A connection over `std::net`.
    pub struct Conn {
        stream: TcpStream,
        deadline: Instant,
    }

    fn left(deadline: Instant) -> Result<std::time::Duration, NetError> {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(NetError::Timeout)
        } else {
            Ok(d)
        }
    }

    fn io(e: std::io::Error) -> NetError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => NetError::Timeout,
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                NetError::Closed
            }
            _ => NetError::Io(e.to_string()),
        }
    }

    /// Connects to `host:port` before `deadline`.
    pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<Conn, NetError> {
        let name = crate::config::Server {
            host: host.into(),
            port,
        }
        .to_string();
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| NetError::Dns(format!("{host}: {e}")))?
            .collect();
        let mut last = NetError::Dns(format!("{host}: no addresses"));
        for a in addrs {
            match TcpStream::connect_timeout(&a, left(deadline)?) {
                Ok(stream) => return Ok(Conn { stream, deadline }),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    last = NetError::Refused(name.clone())
                }
                Err(e) => last = io(e),
            }
        }
        Err(last)
    }

    impl Transport for Conn {
        fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
            self.stream
                .set_write_timeout(Some(left(self.deadline)?))
                .map_err(io)?;
            self.stream.write_all(data).map_err(io)
        }
        fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
            self.stream
                .set_read_timeout(Some(left(self.deadline)?))
                .map_err(io)?;
            let mut chunk = [0u8; READ_CHUNK as usize];
            match self.stream.read(&mut chunk).map_err(io)? {
                0 => Err(NetError::Closed),
                n => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(())
                }
            }
        }
    }
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::*;
    use wasi::io::poll::{self, Pollable};
    use wasi::io::streams::{InputStream, OutputStream, StreamError};
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::ip_name_lookup::resolve_addresses;
    use wasi::sockets::network::{
        ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
        Ipv6SocketAddress, Network,
    };
    use wasi::sockets::tcp::TcpSocket;
    use wasi::sockets::tcp_create_socket::create_tcp_socket;

    /// A connection over `wasi:sockets`. Field order is drop order: the
    /// streams are children of the socket and must go first.
    pub struct Conn {
        input: InputStream,
        output: OutputStream,
        _socket: TcpSocket,
        deadline: Instant,
    }

    /// Waits for `p` until the deadline; false on timeout.
    fn wait(p: &Pollable, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return p.ready();
        }
        let timer = wasi::clocks::monotonic_clock::subscribe_duration(left.as_nanos() as u64);
        poll::poll(&[p, &timer]).contains(&0)
    }

    fn stream_err(e: StreamError) -> NetError {
        match e {
            StreamError::Closed => NetError::Closed,
            StreamError::LastOperationFailed(e) => NetError::Io(e.to_debug_string()),
        }
    }

    fn resolve(net: &Network, host: &str, deadline: Instant) -> Result<Vec<IpAddress>, NetError> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![match ip {
                std::net::IpAddr::V4(v4) => {
                    let o = v4.octets();
                    IpAddress::Ipv4((o[0], o[1], o[2], o[3]))
                }
                std::net::IpAddr::V6(v6) => {
                    let s = v6.segments();
                    IpAddress::Ipv6((s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
                }
            }]);
        }
        let stream =
            resolve_addresses(net, host).map_err(|e| NetError::Dns(format!("{host}: {e:?}")))?;
        let mut out = Vec::new();
        loop {
            match stream.resolve_next_address() {
                Ok(Some(a)) => out.push(a),
                Ok(None) => break,
                Err(ErrorCode::WouldBlock) => {
                    if !wait(&stream.subscribe(), deadline) {
                        return Err(NetError::Timeout);
                    }
                }
                Err(e) => return Err(NetError::Dns(format!("{host}: {e:?}"))),
            }
        }
        if out.is_empty() {
            return Err(NetError::Dns(format!("{host}: no addresses")));
        }
        Ok(out)
    }

    fn map_connect(e: ErrorCode, name: &str) -> NetError {
        match e {
            ErrorCode::AccessDenied => NetError::Denied(name.to_string()),
            ErrorCode::ConnectionRefused => NetError::Refused(name.to_string()),
            ErrorCode::Timeout => NetError::Timeout,
            ErrorCode::RemoteUnreachable => NetError::Io(format!("{name} is unreachable")),
            other => NetError::Io(format!("connecting to {name}: {other:?}")),
        }
    }

    /// Connects to `host:port` before `deadline`, trying each address.
    pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<Conn, NetError> {
        let name = crate::config::Server {
            host: host.into(),
            port,
        }
        .to_string();
        let net = instance_network();
        let mut last = NetError::Dns(format!("{host}: no addresses"));
        for ip in resolve(&net, host, deadline)? {
            let (family, addr) = match ip {
                IpAddress::Ipv4(address) => (
                    IpAddressFamily::Ipv4,
                    IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
                ),
                IpAddress::Ipv6(address) => (
                    IpAddressFamily::Ipv6,
                    IpSocketAddress::Ipv6(Ipv6SocketAddress {
                        port,
                        address,
                        flow_info: 0,
                        scope_id: 0,
                    }),
                ),
            };
            let socket =
                create_tcp_socket(family).map_err(|e| NetError::Io(format!("socket: {e:?}")))?;
            if let Err(e) = socket.start_connect(&net, addr) {
                last = map_connect(e, &name);
                if matches!(last, NetError::Denied(_)) {
                    return Err(last);
                }
                continue;
            }
            let result = loop {
                match socket.finish_connect() {
                    Err(ErrorCode::WouldBlock) => {
                        if !wait(&socket.subscribe(), deadline) {
                            break Err(NetError::Timeout);
                        }
                    }
                    other => break other.map_err(|e| map_connect(e, &name)),
                }
            };
            match result {
                Ok((input, output)) => {
                    return Ok(Conn {
                        input,
                        output,
                        _socket: socket,
                        deadline,
                    });
                }
                Err(e @ (NetError::Denied(_) | NetError::Timeout)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    impl Transport for Conn {
        fn send(&mut self, mut data: &[u8]) -> Result<(), NetError> {
            while !data.is_empty() {
                let n = self.output.check_write().map_err(stream_err)?;
                if n == 0 {
                    if !wait(&self.output.subscribe(), self.deadline) {
                        return Err(NetError::Timeout);
                    }
                    continue;
                }
                let take = (n as usize).min(data.len());
                self.output.write(&data[..take]).map_err(stream_err)?;
                data = &data[take..];
            }
            self.output.flush().map_err(stream_err)?;
            // The flush is complete once the stream accepts writes again.
            loop {
                if self.output.check_write().map_err(stream_err)? > 0 {
                    return Ok(());
                }
                if !wait(&self.output.subscribe(), self.deadline) {
                    return Err(NetError::Timeout);
                }
            }
        }

        fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
            loop {
                let chunk = self.input.read(READ_CHUNK).map_err(stream_err)?;
                if !chunk.is_empty() {
                    buf.extend_from_slice(&chunk);
                    return Ok(());
                }
                if !wait(&self.input.subscribe(), self.deadline) {
                    return Err(NetError::Timeout);
                }
            }
        }
    }
}
