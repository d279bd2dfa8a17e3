//! One TCP connection to one server, with a deadline for everything done
//! on it, and the command round trip (`OP_MSG`, or `OP_QUERY` for the legacy
//! handshake).
//!
//! Sockets are `std::net` over `wasi:sockets` (the agent checks every
//! connect against the sensor's allow-list; a denied connect fails with
//! `PermissionDenied`). This module owns only the socket and the failure
//! vocabulary ([`ProbeError`]); what is asked and what the answers mean is
//! in `probe`.

use crate::uri::HostPort;
use crate::wire::{self, ReadError, WireError};
use bson::Document;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Why a probe of one server did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The name does not resolve.
    #[error("cannot resolve `{0}`: {1}")]
    Resolve(String, String),
    /// Nothing listens there.
    #[error("connection refused")]
    Refused,
    /// The sandbox refused the connect.
    #[error("denied by the sensor's network allow-list (only the hosts in `uri` may be reached)")]
    Denied,
    /// The deadline passed.
    #[error("timed out after {ms} ms {stage}")]
    Timeout {
        /// Time spent on this server.
        ms: u64,
        /// What was going on.
        stage: String,
    },
    /// Another socket failure.
    #[error("{stage}: {error}")]
    Io {
        /// What was going on.
        stage: String,
        /// The error.
        error: String,
    },
    /// The bytes received are not a valid reply.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The server refused the credentials.
    #[error("authentication failed ({mechanism} as `{user}` on `{source_db}`): {message}")]
    Auth {
        /// Mechanism used.
        mechanism: &'static str,
        /// User name.
        user: String,
        /// Database of the user.
        source_db: String,
        /// The server's `errmsg` (or what was wrong with its answer).
        message: String,
    },
    /// A command returned `ok: 0`.
    #[error("`{command}` failed: {errmsg}{code}", code = code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Command {
        /// Command name.
        command: String,
        /// The server's `errmsg`.
        errmsg: String,
        /// The server's `code`.
        code: Option<i32>,
    },
}

/// A connection with a deadline.
pub struct Connection {
    stream: TcpStream,
    started: Instant,
    deadline: Instant,
    next_id: i32,
}

fn io_error(stage: &str, e: &std::io::Error) -> ProbeError {
    match e.kind() {
        ErrorKind::ConnectionRefused => ProbeError::Refused,
        ErrorKind::PermissionDenied => ProbeError::Denied,
        _ => ProbeError::Io {
            stage: stage.to_string(),
            error: e.to_string(),
        },
    }
}

impl Connection {
    /// Resolves `host` and connects to the first address that answers,
    /// before `connect_deadline`; later operations end by `deadline`.
    /// Returns the connection and the connect time.
    pub fn open(
        host: &HostPort,
        connect_deadline: Instant,
        deadline: Instant,
    ) -> Result<(Connection, Duration), ProbeError> {
        let started = Instant::now();
        let addrs: Vec<SocketAddr> = match host.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, host.port)],
            Err(_) => (host.host.as_str(), host.port)
                .to_socket_addrs()
                .map_err(|e| ProbeError::Resolve(host.to_string(), e.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ProbeError::Resolve(host.to_string(), "no addresses".into()));
        }
        let mut last = None;
        for addr in addrs {
            let left = connect_deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    // On wasm32-wasip2, `connect_timeout` can return a
                    // socket whose connect actually failed (the error is not
                    // surfaced through SO_ERROR); such a socket has no peer.
                    if let Ok(Some(e)) = stream.take_error() {
                        last = Some(io_error("connect", &e));
                        continue;
                    }
                    if let Err(e) = stream.peer_addr() {
                        last = Some(match e.kind() {
                            ErrorKind::NotConnected => ProbeError::Refused,
                            _ => io_error("connect", &e),
                        });
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let took = started.elapsed();
                    return Ok((
                        Connection {
                            stream,
                            started,
                            deadline,
                            next_id: 1,
                        },
                        took,
                    ));
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    last = Some(Self::timeout_at(started, "connecting"));
                }
                Err(e) => last = Some(io_error("connect", &e)),
            }
        }
        Err(last.unwrap_or_else(|| Self::timeout_at(started, "connecting")))
    }

    fn timeout_at(started: Instant, stage: &str) -> ProbeError {
        ProbeError::Timeout {
            ms: started.elapsed().as_millis() as u64,
            stage: stage.to_string(),
        }
    }

    fn timeout(&self, stage: &str) -> ProbeError {
        Self::timeout_at(self.started, stage)
    }

    fn left(&self, stage: &str) -> Result<Duration, ProbeError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            Err(self.timeout(stage))
        } else {
            Ok(left)
        }
    }

    /// Sends `command` (which names the command first) to database `db`
    /// as `OP_MSG` and returns the reply document, `ok: 0` included.
    pub fn run(&mut self, db: &str, mut command: Document) -> Result<Document, ProbeError> {
        let name = first_key(&command);
        command.insert("$db", db);
        let id = self.take_id();
        let msg = wire::encode_op_msg(id, &command)?;
        self.round_trip(&name, id, &msg)
    }

    /// Sends `command` to `<db>.$cmd` as legacy `OP_QUERY`.
    pub fn run_legacy(&mut self, db: &str, command: Document) -> Result<Document, ProbeError> {
        let name = first_key(&command);
        let id = self.take_id();
        let msg = wire::encode_op_query(id, db, &command)?;
        self.round_trip(&name, id, &msg)
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn round_trip(&mut self, name: &str, id: i32, msg: &[u8]) -> Result<Document, ProbeError> {
        let sending = format!("sending `{name}`");
        let left = self.left(&sending)?;
        let _ = self.stream.set_write_timeout(Some(left));
        if let Err(e) = self.stream.write_all(msg) {
            return Err(match e.kind() {
                ErrorKind::TimedOut | ErrorKind::WouldBlock => self.timeout(&sending),
                _ => io_error(&sending, &e),
            });
        }
        let waiting = format!("waiting for the reply to `{name}`");
        let left = self.left(&waiting)?;
        let _ = self.stream.set_read_timeout(Some(left));
        let mut reader = DeadlineReader { conn: self };
        match wire::read_reply(&mut reader, id) {
            Ok(d) => Ok(d),
            Err(ReadError::Wire(w)) => Err(ProbeError::Wire(w)),
            Err(ReadError::Io(e)) => Err(match e.kind() {
                ErrorKind::TimedOut | ErrorKind::WouldBlock => self.timeout(&waiting),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => ProbeError::Wire(WireError::ClosedBeforeReply),
                _ => io_error(&waiting, &e),
            }),
        }
    }
}

/// Re-arms the read timeout before every read, so a peer that trickles
/// bytes cannot stretch the deadline.
struct DeadlineReader<'a> {
    conn: &'a mut Connection,
}

impl std::io::Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.conn.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(ErrorKind::TimedOut.into());
        }
        self.conn.stream.set_read_timeout(Some(left))?;
        std::io::Read::read(&mut self.conn.stream, buf)
    }
}

fn first_key(d: &Document) -> String {
    d.keys().next().cloned().unwrap_or_default()
}

/// `ok: 1` (as double, int or bool), else the error as [`ProbeError::Command`].
pub fn check_ok(command: &str, reply: &Document) -> Result<(), ProbeError> {
    let ok = match reply.get("ok") {
        Some(bson::Bson::Double(d)) => *d == 1.0,
        Some(bson::Bson::Int32(i)) => *i == 1,
        Some(bson::Bson::Int64(i)) => *i == 1,
        Some(bson::Bson::Boolean(b)) => *b,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(ProbeError::Command {
        command: command.to_string(),
        errmsg: reply
            .get_str("errmsg")
            .or_else(|_| reply.get_str("$err"))
            .unwrap_or(if reply.contains_key("ok") {
                "no error message"
            } else {
                "the reply has no `ok` field"
            })
            .to_string(),
        code: match reply.get("code") {
            Some(bson::Bson::Int32(c)) => Some(*c),
            Some(bson::Bson::Int64(c)) => Some(*c as i32),
            Some(bson::Bson::Double(c)) => Some(*c as i32),
            _ => None,
        },
    })
}
