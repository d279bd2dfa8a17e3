//! The conversation with one server: `hello` (legacy `isMaster` when the
//! server does not know it), optional SCRAM authentication, `ping`; and
//! what the `hello` answer says about the server's role.
//!
//! Only the host it is given is contacted: members, primaries or `me`
//! names in a reply are returned as data, never connected to (the caller
//! reports them; the sandbox would refuse them anyway).

use crate::connection::{Connection, ProbeError, check_ok};
use crate::scram::{self, Mechanism, ScramClient};
use crate::uri::{AuthMechanism, Credential, HostPort};
use bson::{Bson, Document, doc};
use std::time::{Duration, Instant};

/// Below this `maxWireVersion` (MongoDB 3.6) a server does not speak
/// `OP_MSG`, so every command goes as `OP_QUERY`.
const OP_MSG_WIRE_VERSION: i32 = 6;

/// `CommandNotFound`: the server does not know `hello`.
const COMMAND_NOT_FOUND: i32 = 59;

/// SASL round trips after `saslStart` before the exchange is abandoned
/// (SCRAM needs one, or two without `skipEmptyExchange`).
const MAX_SASL_CONTINUES: usize = 3;

/// What a server says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Replica-set primary.
    Primary,
    /// Replica-set secondary.
    Secondary,
    /// Replica-set arbiter.
    Arbiter,
    /// Not a replica-set member.
    Standalone,
    /// A sharded cluster's router.
    Mongos,
    /// A replica-set member in another state (starting up, recovering,
    /// hidden, or not yet initiated).
    Other,
}

impl Role {
    /// Lower-case name for messages and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Arbiter => "arbiter",
            Role::Standalone => "standalone",
            Role::Mongos => "mongos",
            Role::Other => "other",
        }
    }
}

/// The facts of one successful probe.
#[derive(Debug, Clone)]
pub struct ServerReport {
    /// Whom this is about.
    pub host: HostPort,
    /// TCP connect time.
    pub connect: Duration,
    /// Round trip of `hello`.
    pub hello_rtt: Duration,
    /// Time spent authenticating (client-side key derivation included).
    pub auth_time: Option<Duration>,
    /// Round trip of `ping`.
    pub ping_rtt: Duration,
    /// The role from `hello`.
    pub role: Role,
    /// `isWritablePrimary` (`ismaster` on old servers).
    pub writable: bool,
    /// `maxWireVersion`.
    pub max_wire_version: i32,
    /// `setName`.
    pub set_name: Option<String>,
    /// `primary` as the server names it.
    pub primary: Option<String>,
    /// `me` as the server names itself.
    pub me: Option<String>,
    /// `hosts`, `passives` and `arbiters` of the reply.
    pub members: Vec<String>,
    /// Whether the legacy `isMaster` handshake was used.
    pub legacy_hello: bool,
    /// The SCRAM mechanism used, if any.
    pub auth_mechanism: Option<&'static str>,
}

/// Everything `probe` needs besides the host.
pub struct ProbeOptions<'a> {
    /// Credentials to authenticate with.
    pub credential: Option<&'a Credential>,
    /// `appName` for the client metadata.
    pub app_name: Option<&'a str>,
    /// Fixed SCRAM nonce (tests); random when `None`.
    pub nonce: Option<&'a str>,
    /// `connectTimeoutMS`: a tighter limit for the TCP connect alone.
    pub connect_timeout: Option<Duration>,
}

/// Probes one server before `deadline`.
pub fn probe(
    host: &HostPort,
    opts: &ProbeOptions<'_>,
    deadline: Instant,
) -> Result<ServerReport, ProbeError> {
    let connect_deadline = opts
        .connect_timeout
        .map_or(deadline, |t| deadline.min(Instant::now() + t));
    let (mut conn, connect) = Connection::open(host, connect_deadline, deadline)?;
    let t = Instant::now();
    let (hello, legacy_hello, mut conn) = match conn.run("admin", hello_command(opts, "hello")) {
        Ok(reply) if !is_unknown_command(&reply) => (reply, false, conn),
        Ok(_) => (
            conn.run_legacy("admin", hello_command(opts, "isMaster"))?,
            true,
            conn,
        ),
        // A server older than 3.6 closes the connection on OP_MSG: retry
        // once with the legacy handshake on a new connection.
        Err(ProbeError::Wire(crate::wire::WireError::ClosedBeforeReply)) => {
            let first = ProbeError::Wire(crate::wire::WireError::ClosedBeforeReply);
            let Ok((mut c2, _)) = Connection::open(host, connect_deadline, deadline) else {
                return Err(first);
            };
            match c2.run_legacy("admin", hello_command(opts, "isMaster")) {
                Ok(r) => (r, true, c2),
                Err(_) => return Err(first),
            }
        }
        Err(e) => return Err(e),
    };
    let hello_rtt = t.elapsed();
    let hello_name = if legacy_hello { "isMaster" } else { "hello" };
    check_ok(hello_name, &hello)?;

    let max_wire_version = int(&hello, "maxWireVersion").unwrap_or(0);
    let legacy_ops = max_wire_version < OP_MSG_WIRE_VERSION;
    let run = |conn: &mut Connection, db: &str, cmd: Document| {
        if legacy_ops {
            conn.run_legacy(db, cmd)
        } else {
            conn.run(db, cmd)
        }
    };

    let mut auth_time = None;
    let mut auth_mechanism = None;
    if let Some(cred) = opts.credential {
        let t = Instant::now();
        let mech = choose_mechanism(cred, &hello)?;
        authenticate(&mut conn, cred, mech, opts.nonce, &run)?;
        auth_time = Some(t.elapsed());
        auth_mechanism = Some(mech.name());
    }

    let t = Instant::now();
    let pong = run(&mut conn, "admin", doc! {"ping": 1i32})?;
    let ping_rtt = t.elapsed();
    check_ok("ping", &pong)?;

    let writable = flag(&hello, "isWritablePrimary") || flag(&hello, "ismaster");
    let set_name = string(&hello, "setName");
    let role = if hello.get_str("msg").ok() == Some("isdbgrid") {
        Role::Mongos
    } else if set_name.is_some() {
        if writable {
            Role::Primary
        } else if flag(&hello, "secondary") {
            Role::Secondary
        } else if flag(&hello, "arbiterOnly") {
            Role::Arbiter
        } else {
            Role::Other
        }
    } else if flag(&hello, "isreplicaset") {
        Role::Other
    } else {
        Role::Standalone
    };
    let mut members = Vec::new();
    for key in ["hosts", "passives", "arbiters"] {
        if let Ok(a) = hello.get_array(key) {
            members.extend(a.iter().filter_map(|b| b.as_str().map(str::to_string)));
        }
    }
    Ok(ServerReport {
        host: host.clone(),
        connect,
        hello_rtt,
        auth_time,
        ping_rtt,
        role,
        writable,
        max_wire_version,
        set_name,
        primary: string(&hello, "primary"),
        me: string(&hello, "me"),
        members,
        legacy_hello,
        auth_mechanism,
    })
}

fn hello_command(opts: &ProbeOptions<'_>, name: &str) -> Document {
    let mut cmd = doc! { name: 1i32, "helloOk": true };
    let mut client = doc! {
        "driver": {"name": "outpost-mongo-sensor", "version": env!("CARGO_PKG_VERSION")},
        "os": {"type": "wasi"},
    };
    if let Some(app) = opts.app_name {
        client.insert("application", doc! {"name": app});
    }
    cmd.insert("client", client);
    if let Some(c) = opts.credential
        && c.mechanism == AuthMechanism::Negotiate
    {
        cmd.insert("saslSupportedMechs", format!("{}.{}", c.source, c.username));
    }
    cmd
}

fn is_unknown_command(reply: &Document) -> bool {
    if check_ok("hello", reply).is_ok() {
        return false;
    }
    int(reply, "code") == Some(COMMAND_NOT_FOUND)
        || reply
            .get_str("errmsg")
            .is_ok_and(|m| m.contains("no such command") || m.contains("no such cmd"))
}

fn choose_mechanism(cred: &Credential, hello: &Document) -> Result<Mechanism, ProbeError> {
    Ok(match cred.mechanism {
        AuthMechanism::ScramSha1 => Mechanism::Sha1,
        AuthMechanism::ScramSha256 => Mechanism::Sha256,
        AuthMechanism::Negotiate => match hello.get_array("saslSupportedMechs") {
            Ok(mechs) => {
                let has = |m: &str| mechs.iter().any(|b| b.as_str() == Some(m));
                if has("SCRAM-SHA-256") {
                    Mechanism::Sha256
                } else if has("SCRAM-SHA-1") {
                    Mechanism::Sha1
                } else {
                    let names: Vec<&str> = mechs.iter().filter_map(Bson::as_str).collect();
                    return Err(auth_error(
                        cred,
                        "SCRAM",
                        format!(
                            "the user's mechanisms are [{}]; this sensor supports SCRAM-SHA-256 and SCRAM-SHA-1",
                            names.join(", ")
                        ),
                    ));
                }
            }
            // No list (unknown user, or a server before 4.0): SCRAM-SHA-1,
            // as the MongoDB authentication spec prescribes.
            Err(_) => Mechanism::Sha1,
        },
    })
}

fn auth_error(cred: &Credential, mechanism: &'static str, message: String) -> ProbeError {
    ProbeError::Auth {
        mechanism,
        user: cred.username.clone(),
        source_db: cred.source.clone(),
        message,
    }
}

/// MongoDB's SCRAM-SHA-1 password: hex MD5 of `user:mongo:password`.
fn mongo_sha1_password(user: &str, password: &str) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(format!("{user}:mongo:{password}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn authenticate(
    conn: &mut Connection,
    cred: &Credential,
    mech: Mechanism,
    nonce: Option<&str>,
    run: &dyn Fn(&mut Connection, &str, Document) -> Result<Document, ProbeError>,
) -> Result<(), ProbeError> {
    let fail = |m: String| auth_error(cred, mech.name(), m);
    let password = match mech {
        Mechanism::Sha256 => scram::saslprep(&cred.password).map_err(|e| fail(e.to_string()))?,
        Mechanism::Sha1 => mongo_sha1_password(&cred.username, &cred.password),
    };
    let nonce = match nonce {
        Some(n) => n.to_string(),
        None => scram::random_nonce().map_err(fail)?,
    };
    let client = ScramClient::new(mech, &cred.username, &password, &nonce);
    let db = cred.source.as_str();
    let reply = run(
        conn,
        db,
        doc! {
            "saslStart": 1i32,
            "mechanism": mech.name(),
            "payload": binary(client.client_first()),
            "autoAuthorize": 1i32,
            "options": {"skipEmptyExchange": true},
        },
    )?;
    let server_first = sasl_payload(&reply).map_err(&fail)?;
    let conversation = reply
        .get("conversationId")
        .cloned()
        .unwrap_or(Bson::Int32(1));
    let fin = client
        .client_final(&server_first)
        .map_err(|e| fail(e.to_string()))?;
    let reply = run(
        conn,
        db,
        doc! {"saslContinue": 1i32, "conversationId": conversation.clone(), "payload": binary(fin.message.clone())},
    )?;
    let server_final = sasl_payload(&reply).map_err(&fail)?;
    fin.verify(&server_final).map_err(|e| fail(e.to_string()))?;
    let mut done = flag(&reply, "done");
    let mut rounds = 0;
    while !done {
        rounds += 1;
        if rounds > MAX_SASL_CONTINUES {
            return Err(fail(
                "the server did not finish the SASL conversation".into(),
            ));
        }
        let reply = run(
            conn,
            db,
            doc! {"saslContinue": 1i32, "conversationId": conversation.clone(), "payload": binary(String::new())},
        )?;
        sasl_payload(&reply).map_err(&fail)?;
        done = flag(&reply, "done");
    }
    Ok(())
}

fn binary(s: String) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: s.into_bytes(),
    })
}

/// The payload of a SASL reply, or the server's error message.
fn sasl_payload(reply: &Document) -> Result<String, String> {
    if let Err(ProbeError::Command { errmsg, code, .. }) = check_ok("sasl", reply) {
        return Err(match code {
            Some(c) => format!("{errmsg} (code {c})"),
            None => errmsg,
        });
    }
    let bytes = match reply.get("payload") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        Some(Bson::String(s)) => s.clone().into_bytes(),
        _ => return Err("the SASL reply has no binary `payload`".into()),
    };
    String::from_utf8(bytes).map_err(|_| "the SASL payload is not UTF-8".to_string())
}

fn flag(d: &Document, key: &str) -> bool {
    match d.get(key) {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(i)) => *i != 0,
        Some(Bson::Int64(i)) => *i != 0,
        Some(Bson::Double(f)) => *f != 0.0,
        _ => false,
    }
}

fn int(d: &Document, key: &str) -> Option<i32> {
    match d.get(key)? {
        Bson::Int32(i) => Some(*i),
        Bson::Int64(i) => i32::try_from(*i).ok(),
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 1e9 => Some(*f as i32),
        _ => None,
    }
}

fn string(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_password_digest_matches_mongodb() {
        // The MongoDB SCRAM-SHA-1 spec example: user "user", password "pencil".
        assert_eq!(
            mongo_sha1_password("user", "pencil"),
            "1c33006ec1ffd90f9cadcbcc0e118200"
        );
    }

    #[test]
    fn mechanism_negotiation() {
        let cred = Credential {
            username: "u".into(),
            password: "p".into(),
            source: "admin".into(),
            mechanism: AuthMechanism::Negotiate,
        };
        let pick = |d: Document| choose_mechanism(&cred, &d);
        assert_eq!(
            pick(doc! {"saslSupportedMechs": ["SCRAM-SHA-1", "SCRAM-SHA-256"]}).unwrap(),
            Mechanism::Sha256
        );
        assert_eq!(
            pick(doc! {"saslSupportedMechs": ["SCRAM-SHA-1"]}).unwrap(),
            Mechanism::Sha1
        );
        assert_eq!(pick(doc! {}).unwrap(), Mechanism::Sha1);
        let e = pick(doc! {"saslSupportedMechs": ["PLAIN"]})
            .unwrap_err()
            .to_string();
        assert!(e.contains("[PLAIN]"), "{e}");
    }

    #[test]
    fn unknown_command_detection() {
        assert!(is_unknown_command(
            &doc! {"ok": 0.0, "errmsg": "no such command: 'hello'", "code": 59i32}
        ));
        assert!(is_unknown_command(
            &doc! {"ok": 0.0, "errmsg": "no such cmd: hello"}
        ));
        assert!(!is_unknown_command(
            &doc! {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18i32}
        ));
        assert!(!is_unknown_command(&doc! {"ok": 1.0}));
    }
}
