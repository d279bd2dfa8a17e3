//! TLS end to end (issue 21) and the HTTP server's limits (issue 17, point
//! 5): real agents with certificates made here by rcgen, a real rustls
//! client, agents federating over HTTPS with a private CA and mutual TLS,
//! pins, secrets by reference kept out of every output, a TCP relay that
//! records what crosses the wire, and slow clients against the API.

use crate::util::{Agent, Mode, Receiver, Target, http_get, outpost};
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Certificates.
// ---------------------------------------------------------------------------

/// A private CA.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A leaf certificate and its key, as PEM, and the certificate's DER.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Leaf {
    fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&self.der))
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `cn` (also a DNS SAN) and 127.0.0.1, for server
    /// and client use, valid from a day ago for a day (or expired an hour
    /// ago when `expired`).
    fn leaf_with(&self, cn: &str, sans: &[&str], expired: bool) -> Leaf {
        let mut names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        names.push(cn.to_string());
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let now = unix_now();
        let day = Duration::from_secs(86_400);
        if expired {
            params.not_before = epoch + (now - 2 * day);
            params.not_after = epoch + (now - Duration::from_secs(3600));
        } else {
            params.not_before = epoch + (now - day);
            params.not_after = epoch + (now + day);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn leaf(&self, cn: &str) -> Leaf {
        self.leaf_with(cn, &["127.0.0.1", "localhost"], false)
    }
}

// ---------------------------------------------------------------------------
// A rustls client.
// ---------------------------------------------------------------------------

fn client_config(ca: &str, identity: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some(l) => b
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from(l.der.clone())],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(l.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Each request sees the certificate served now.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// What one HTTPS exchange returned.
struct Reply {
    status: u16,
    body: String,
    /// The server's certificate (DER).
    cert: Vec<u8>,
}

/// One HTTP/1.0 exchange over TLS to 127.0.0.1:`port`.
fn https(
    cfg: &Arc<rustls::ClientConfig>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = Vec::new();
    if let Err(e) = s.write_all(req.as_bytes()).and_then(|()| s.write_all(body)) {
        // The server refused us with an alert and closed: the alert is
        // what a read reports.
        return Err(match s.read_to_end(&mut out) {
            Err(r) => r.to_string(),
            Ok(_) => e.to_string(),
        });
    }
    if let Err(e) = s.read_to_end(&mut out)
        && out.is_empty()
    {
        return Err(e.to_string());
    }
    let cert = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    Ok(Reply {
        status,
        body: body.to_string(),
        cert,
    })
}

fn https_get(cfg: &Arc<rustls::ClientConfig>, port: u16, path: &str) -> Reply {
    https(cfg, port, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `f` until it returns `Some` ([`Agent::wait_some`]); panics with `what` and
/// the agent's logs after `timeout`.
fn wait_for<T>(agent: &Agent, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    agent.wait_some(what, timeout, f)
}

/// Writes `leaf` as `<name>.pem`/`<name>.key` and the CA as `ca.pem` in
/// the agent's directory.
fn install(agent: &Agent, name: &str, leaf: &Leaf, ca: &Ca) {
    agent.write_file(&format!("{name}.pem"), &leaf.cert);
    agent.write_file(&format!("{name}.key"), &leaf.key);
    agent.write_file("ca.pem", &ca.pem);
}

fn tls_section(name: &str, extra: &str) -> String {
    format!("[agent.tls]\ncert_file = \"{name}.pem\"\nkey_file = \"{name}.key\"\n{extra}\n")
}

fn status_of(cfg: &Arc<rustls::ClientConfig>, port: u16) -> Value {
    let r = https_get(cfg, port, "/api/v1/status");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn peer<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["peers"].as_array()?.iter().find(|p| p["name"] == name)
}

fn peer_state(s: &Value, name: &str) -> (String, String) {
    peer(s, name)
        .map(|p| {
            (
                p["state"].as_str().unwrap_or("").to_string(),
                p["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

/// Waits until agent `a` (plain HTTP) sees peer `name` with `state` and a
/// reason containing `reason`.
fn wait_peer(a: &Agent, name: &str, state: &str, reason: &str) -> Value {
    a.wait_status(&format!("peer {name} {state} ({reason})"), WAIT, |s| {
        let (st, why) = peer_state(s, name);
        st == state && why.contains(reason)
    })
}

// ---------------------------------------------------------------------------
// The listener.
// ---------------------------------------------------------------------------

#[test]
fn an_https_agent_serves_status_and_page_over_http1_and_http2_and_refuses_plain_http() {
    let ca = Ca::new("Fleet CA");
    let mut a = Agent::new("edge-1");
    install(&a, "edge-1", &ca.leaf("edge-1"), &ca);
    a.launch(&tls_section("edge-1", "min_version = \"1.2\""));
    let cfg = client_config(&ca.pem, None, &[b"http/1.1"]);

    let s = status_of(&cfg, a.port);
    assert_eq!(s["agent"]["name"], "edge-1");
    let page = https_get(&cfg, a.port, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html"), "{}", page.body);
    assert!(
        a.logs()
            .contains(&format!("status at https://127.0.0.1:{}", a.port)),
        "public_url defaults to https://:\n{}",
        a.logs()
    );
    // `outpost status` reads it live over HTTPS (pinned to the agent's own
    // certificate), not from the database.
    let out = a.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("agent `edge-1` (live"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // HTTP/2 by ALPN, with a real HTTP/2 client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (version, code) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", a.port))
            .await
            .unwrap();
        let h2cfg = client_config(&ca.pem, None, &[b"h2"]);
        let tls = tokio_rustls::TlsConnector::from(h2cfg)
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://127.0.0.1:{}/api/v1/status", a.port))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        (resp.version(), resp.status().as_u16())
    });
    assert_eq!((version, code), (http::Version::HTTP_2, 200));

    // Plain HTTP to the TLS port gets no HTTP answer; the agent is fine.
    let (code, head, _) = http_get(&a.api("/api/v1/status"), &[]);
    assert_eq!(code, 0, "a plain request must not be answered: {head}");
    assert_eq!(status_of(&cfg, a.port)["agent"]["name"], "edge-1");
    // check-config loads the pair too.
    let out = outpost()
        .args(["check-config", "-c"])
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_certificate_swapped_on_disk_is_served_and_an_invalid_one_is_rejected() {
    let ca = Ca::new("Fleet CA");
    let first = ca.leaf("edge-1");
    let mut a = Agent::new("edge-1");
    install(&a, "edge-1", &first, &ca);
    a.launch(&tls_section("edge-1", ""));
    let cfg = client_config(&ca.pem, None, &[]);
    assert_eq!(https_get(&cfg, a.port, "/healthz").cert, first.der);

    // A renewed pair dropped in place is served without a restart (the
    // file watcher); one keep-alive connection is not needed for that.
    let second = ca.leaf("edge-1");
    std::fs::write(a.dir.path().join("edge-1.key"), &second.key).unwrap();
    std::fs::write(a.dir.path().join("edge-1.pem"), &second.cert).unwrap();
    wait_for(&a, "the new certificate served", WAIT, || {
        (https_get(&cfg, a.port, "/healthz").cert == second.der).then_some(())
    });

    // A key that does not belong to the certificate: rejected on SIGHUP,
    // the old pair stays, and the log says why.
    let other = ca.leaf("edge-1");
    std::fs::write(a.dir.path().join("edge-1.key"), &other.key).unwrap();
    a.signal(libc::SIGHUP);
    wait_for(&a, "the reload rejected", WAIT, || {
        a.logs()
            .contains(
                "TLS certificate reload rejected (SIGHUP), the old certificate stays: the key in",
            )
            .then_some(())
    });
    assert!(
        a.logs().contains("does not belong to the certificate"),
        "{}",
        a.logs()
    );
    assert_eq!(https_get(&cfg, a.port, "/healthz").cert, second.der);
    // Garbage is rejected the same way.
    std::fs::write(a.dir.path().join("edge-1.pem"), "not a certificate\n").unwrap();
    wait_for(&a, "garbage rejected", WAIT, || {
        a.logs().contains("no certificate in it").then_some(())
    });
    assert_eq!(https_get(&cfg, a.port, "/healthz").cert, second.der);
    assert_eq!(status_of(&cfg, a.port)["agent"]["name"], "edge-1");
}

// ---------------------------------------------------------------------------
// Federation over HTTPS, mutual TLS, pins.
// ---------------------------------------------------------------------------

fn quick_peer(name: &str, url: &str, tls: &str) -> String {
    format!(
        "[[peer]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\nstale_after_misses = 1\ntls = {{ {tls} }}\n"
    )
}

#[test]
fn two_agents_federate_over_https_with_mutual_tls_by_poll_and_by_push() {
    let ca = Ca::new("Fleet CA");
    // b: an mTLS listener, pushes to c; a polls b.
    let mut c = Agent::new("c");
    install(&c, "c", &ca.leaf("c"), &ca);
    c.write_file("push.token", "push-secret\n");
    c.launch(&format!(
        "{}\n[[peer]]\nname = \"b\"\ninterval = \"200ms\"\nstale_after_misses = 3\n[api]\npush_token_file = \"push.token\"\n",
        tls_section("c", "client_ca_file = \"ca.pem\"")
    ));
    let mut b = Agent::new("b");
    install(&b, "b", &ca.leaf("b"), &ca);
    b.launch(&format!(
        "{}\n[[push]]\nurl = \"https://127.0.0.1:{}\"\ntoken = \"push-secret\"\ninterval = \"200ms\"\ntls = {{ ca_file = \"ca.pem\", cert_file = \"b.pem\", key_file = \"b.key\" }}\n",
        tls_section("b", "client_ca_file = \"ca.pem\""),
        c.port
    ));
    let mut a = Agent::new("a");
    install(&a, "a", &ca.leaf("a"), &ca);
    a.launch(&quick_peer(
        "b",
        &format!("https://127.0.0.1:{}", b.port),
        "ca_file = \"ca.pem\", cert_file = \"a.pem\", key_file = \"a.key\"",
    ));
    // a is plain HTTP itself (it only polls over TLS).
    wait_peer(&a, "b", "fresh", "");
    let cc = client_config(&ca.pem, Some(&ca.leaf("test-reader")), &[]);
    wait_for(&c, "c sees b pushed", WAIT, || {
        (peer_state(&status_of(&cc, c.port), "b").0 == "fresh").then_some(())
    });
}

#[test]
fn mutual_tls_refuses_no_certificate_another_ca_and_another_agents_identity() {
    let ca = Ca::new("Fleet CA");
    let rogue = Ca::new("Rogue CA");
    let mut agg = Agent::new("agg");
    install(&agg, "agg", &ca.leaf("agg"), &ca);
    agg.write_file("push.token", "push-secret\n");
    agg.launch(&format!(
        "{}\n[[peer]]\nname = \"b\"\ninterval = \"1h\"\n[[peer]]\nname = \"c\"\ninterval = \"1h\"\n[api]\npush_token_file = \"push.token\"\n",
        tls_section("agg", "client_ca_file = \"ca.pem\"")
    ));
    // The CLI presents the agent's own certificate (from the fleet CA).
    let out = agg.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("agent `agg` (live"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc = |name: &str| {
        format!(
            r#"{{"schema_version":1,"agent":{{"name":"{name}","id":"id-{name}"}},"services":[]}}"#
        )
    };
    let push = |cfg: &Arc<rustls::ClientConfig>, name: &str| {
        https(
            cfg,
            agg.port,
            "POST",
            "/api/v1/push",
            &[
                ("authorization", "Bearer push-secret"),
                ("content-type", "application/json"),
            ],
            doc(name).as_bytes(),
        )
    };

    // No certificate, or one from another CA: the handshake is refused
    // (no HTTP answer at all), and nothing was taken as b's status.
    for who in [None, Some(rogue.leaf("b"))] {
        let cfg = client_config(&ca.pem, who.as_ref(), &[]);
        match push(&cfg, "b") {
            Err(_) => {}
            Ok(r) => panic!(
                "answered {} without a valid client certificate: {}",
                r.status, r.body
            ),
        }
    }
    let reader = client_config(&ca.pem, Some(&ca.leaf("reader")), &[]);
    assert_ne!(peer_state(&status_of(&reader, agg.port), "b").0, "fresh");
    // c's certificate pushing b's document: refused by name.
    let as_c = client_config(&ca.pem, Some(&ca.leaf("c")), &[]);
    let r = push(&as_c, "b").unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("the certificate names `c`"), "{}", r.body);
    // c speaking for itself, and b for itself, are accepted.
    assert_eq!(push(&as_c, "c").unwrap().status, 202);
    let as_b = client_config(&ca.pem, Some(&ca.leaf("b")), &[]);
    assert_eq!(push(&as_b, "b").unwrap().status, 202);
    // The bearer token still counts beside the certificate.
    let r = https(
        &as_b,
        agg.port,
        "POST",
        "/api/v1/push",
        &[("authorization", "Bearer wrong")],
        doc("b").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);

    // A polled agent whose certificate names someone else goes stale.
    let mut imp = Agent::new("b");
    install(&imp, "b", &ca.leaf("mallory"), &ca);
    imp.launch(&tls_section("b", ""));
    let mut a = Agent::new("a");
    install(&a, "a", &ca.leaf("a"), &ca);
    a.launch(&quick_peer(
        "b",
        &format!("https://127.0.0.1:{}", imp.port),
        "ca_file = \"ca.pem\", cert_file = \"a.pem\", key_file = \"a.key\"",
    ));
    wait_peer(
        &a,
        "b",
        "stale",
        "identity mismatch: the certificate names `mallory`",
    );
}

/// A TLS server on loopback that completes handshakes with `leaf` and
/// answers nothing: what a peer's certificate checks need.
fn handshake_only(leaf: &Leaf) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der.clone().into()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut conn = rustls::ServerConnection::new(cfg).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut s).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn peer_certificate_errors_say_which_check_failed_and_a_changed_pin_goes_stale() {
    let ca = Ca::new("Fleet CA");
    let rogue = Ca::new("Rogue CA");
    let expired = handshake_only(&ca.leaf_with("x", &["127.0.0.1"], true));
    let unknown = handshake_only(&rogue.leaf("x"));
    let wrong_name = handshake_only(&ca.leaf_with("elsewhere.example", &[], false));

    let pinned_leaf = ca.leaf("b");
    let mut b = Agent::new("b");
    install(&b, "b", &pinned_leaf, &ca);
    b.launch(&tls_section("b", ""));

    let mut a = Agent::new("a");
    a.write_file("ca.pem", &ca.pem);
    a.launch(&format!(
        "{}{}{}{}",
        quick_peer(
            "b",
            &format!("https://127.0.0.1:{}", b.port),
            &format!(
                "ca_file = \"ca.pem\", pin_sha256 = \"{}\"",
                pinned_leaf.sha256()
            )
        ),
        quick_peer(
            "expired",
            &format!("https://127.0.0.1:{expired}"),
            "ca_file = \"ca.pem\""
        ),
        quick_peer(
            "unknown",
            &format!("https://127.0.0.1:{unknown}"),
            "ca_file = \"ca.pem\""
        ),
        quick_peer(
            "named",
            &format!("https://127.0.0.1:{wrong_name}"),
            "ca_file = \"ca.pem\""
        ),
    ));
    wait_peer(&a, "expired", "stale", "certificate expired");
    wait_peer(&a, "unknown", "stale", "unknown issuer");
    wait_peer(&a, "named", "stale", "name mismatch");
    wait_peer(&a, "b", "fresh", "");

    // b renews its certificate (same CA, same names): a's pin no longer
    // matches.
    let renewed = ca.leaf("b");
    std::fs::write(b.dir.path().join("b.key"), &renewed.key).unwrap();
    std::fs::write(b.dir.path().join("b.pem"), &renewed.cert).unwrap();
    b.signal(libc::SIGHUP);
    let s = wait_peer(&a, "b", "stale", "pin mismatch");
    let (_, why) = peer_state(&s, "b");
    assert!(why.contains(&renewed.sha256()), "{why}");
}

// ---------------------------------------------------------------------------
// Secrets.
// ---------------------------------------------------------------------------

/// A TCP relay from a loopback port to `to` that records every byte in
/// both directions.
fn relay(to: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            let _ = to.shutdown(std::net::Shutdown::Write);
                            return;
                        }
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (port, seen)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_token_crossing_the_wire_between_agents_is_nowhere_in_a_capture() {
    const TOKEN: &str = "tok-9f27c1e8d54b4a0e";
    let ca = Ca::new("Fleet CA");
    let mut b = Agent::new("b");
    install(&b, "b", &ca.leaf("b"), &ca);
    b.write_file("read.token", &format!("{TOKEN}\n"));
    b.launch(&format!(
        "{}\n[api]\nread_token_file = \"read.token\"\n",
        tls_section("b", "")
    ));
    let (port, capture) = relay(b.port);
    let mut a = Agent::new("a");
    a.write_file("ca.pem", &ca.pem);
    a.launch(&format!(
        "{}token = \"{TOKEN}\"\n",
        quick_peer(
            "b",
            &format!("https://127.0.0.1:{port}"),
            "ca_file = \"ca.pem\""
        )
    ));
    // The token works (b requires it) and went through the relay.
    wait_peer(&a, "b", "fresh", "");
    let seen = capture.lock().unwrap().clone();
    assert!(
        seen.len() > 1000,
        "the relay saw the polls ({} bytes)",
        seen.len()
    );
    assert!(
        !contains(&seen, TOKEN),
        "the token crossed the wire in clear text"
    );
    assert!(
        !contains(&seen, "Bearer"),
        "an Authorization header crossed in clear text"
    );

    // The relay does see what is sent in clear: the same token over
    // plain HTTP through a second relay shows up.
    let (plain, capture) = relay(b.port);
    let _ = http_get(
        &format!("http://127.0.0.1:{plain}/api/v1/status"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
    );
    wait_for(&a, "the clear-text control captured", WAIT, || {
        contains(&capture.lock().unwrap(), TOKEN).then_some(())
    });
}

#[test]
fn secrets_by_env_and_file_resolve_and_stay_out_of_every_output() {
    const URL_SECRET: &str = "q-4b1f0c9e77a2";
    const HOOK_SECRET: &str = "hook-8e3d2a61c0f9";
    let ca = Ca::new("Fleet CA");
    let target = Target::start(Mode::Error);
    let rx = Receiver::start();
    let mut a = Agent::new("edge-1");
    install(&a, "edge-1", &ca.leaf("edge-1"), &ca);
    a.write_file(
        "sensor-url.secret",
        &format!("{}?k={URL_SECRET}\n", target.url()),
    );
    a.env.push((
        "OUTPOST_TEST_HOOK".into(),
        rx.url(&format!("/{HOOK_SECRET}")),
    ));
    let body = format!(
        r#"{tls}
[[sensor]]
name = "web"
plugin = "http"
interval = "200ms"
timeout = "150ms"
retry_interval = "100ms"
fail_after = 1
recover_after = 1
config = {{ url = {{ file = "sensor-url.secret" }} }}

[[notifier]]
name = "ops"
plugin = "webhook"
timeout = "2s"
config = {{ url = {{ env = "OUTPOST_TEST_HOOK" }} }}

[[escalation]]
name = "oncall"
targets = ["web"]
alert_after = "0s"
[[escalation.level]]
notify = ["ops"]
"#,
        tls = tls_section("edge-1", "")
    );
    a.launch(&body);
    // Both resolved: the sensor reaches its target (and fails there), the
    // alert reaches the hook's secret path, its ack link is https://.
    let hooks = rx.wait_for(&format!("/{HOOK_SECRET}"), 1, WAIT, &a);
    let alert = String::from_utf8_lossy(&hooks[0].body).into_owned();
    assert!(target.hits() > 0);
    assert!(
        alert.contains(&format!("https://127.0.0.1:{}/", a.port)),
        "ack links are https://: {alert}"
    );

    let cfg = client_config(&ca.pem, None, &[]);
    let mut outputs = vec![];
    for path in [
        "/api/v1/status",
        "/",
        "/metrics",
        "/api/v1/incidents",
        "/api/v1/sensors/web/history",
    ] {
        let r = https_get(&cfg, a.port, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        outputs.push((path.to_string(), r.body));
    }
    let check = outpost()
        .args(["check-config", "-c"])
        .arg(&a.config)
        .env("OUTPOST_TEST_HOOK", rx.url(&format!("/{HOOK_SECRET}")))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    outputs.push((
        "check-config".into(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ),
    ));
    for args in [&["incidents", "-v"][..], &["history", "web"][..]] {
        let out = a.cli(args);
        outputs.push((
            args.join(" "),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    outputs.push(("the log".into(), a.logs()));
    for (what, text) in &outputs {
        for secret in [URL_SECRET, HOOK_SECRET] {
            assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
        }
    }

    // check-config names a missing variable and an unreadable file with
    // file:line.
    let check = |env: bool| {
        let mut c = outpost();
        c.args(["check-config", "-c"]).arg(&a.config);
        if env {
            c.env("OUTPOST_TEST_HOOK", "http://127.0.0.1:9/x");
        }
        let out = c.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let text = std::fs::read_to_string(&a.config).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let err = check(false);
    assert!(
        err.contains(&format!("outpost.toml:{}:", line_of("OUTPOST_TEST_HOOK")))
            && err.contains("the environment variable `OUTPOST_TEST_HOOK` is not set"),
        "{err}"
    );
    std::fs::remove_file(a.dir.path().join("sensor-url.secret")).unwrap();
    let err = check(true);
    assert!(
        err.contains(&format!("outpost.toml:{}:", line_of("sensor-url.secret")))
            && err.contains("cannot read the secret file"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The server's limits (issue 17, point 5).
// ---------------------------------------------------------------------------

/// A canary sensor on an up target, every 200 ms.
fn canary(target: &Target) -> String {
    format!(
        "[[sensor]]\nname = \"canary\"\nplugin = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfail_after = 1\nrecover_after = 1\nconfig = {{ url = \"{}\" }}\n",
        target.url()
    )
}

/// Asserts the canary ran about every 200 ms over `since` and never failed.
fn assert_canary_kept_schedule(a: &Agent, target: &Target, since: Instant) {
    let times: Vec<Instant> = target.times().into_iter().filter(|t| *t >= since).collect();
    let span = since.elapsed();
    let expected = (span.as_millis() / 200) as usize;
    assert!(
        times.len() + 2 >= expected,
        "the canary ran {} times in {span:?} (expected about {expected})",
        times.len()
    );
    let gaps = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        gaps < Duration::from_millis(1000),
        "a canary gap of {gaps:?}"
    );
    let s = a.sensor("canary");
    assert_eq!(s["state"], "up", "{s}");
    let history = a.history("canary");
    let failed = history["results"]
        .as_array()
        .map(|h| h.iter().filter(|r| r["status"] != "ok").count())
        .unwrap_or(0);
    assert_eq!(failed, 0, "{history}");
}

fn read_eof(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    matches!(s.read(&mut b), Ok(0))
}

#[test]
fn half_open_and_slow_clients_do_not_block_the_api_and_are_closed_after_the_header_timeout() {
    let target = Target::start(Mode::Up);
    let mut a = Agent::new("slow");
    a.launch(&format!(
        "[agent.http]\nheader_timeout = \"1s\"\n\n{}",
        canary(&target)
    ));
    a.wait_sensor("canary", WAIT, |s| s["state"] == "up");
    let since = Instant::now();
    // 300 connections that send nothing, 100 that send half a head.
    let mut idle = vec![];
    for i in 0..400 {
        let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        if i >= 300 {
            s.write_all(b"GET /api/v1/status HTTP/1.1\r\nhost: x\r\nx-slow: ")
                .unwrap();
        }
        idle.push(s);
    }
    // A normal request is answered at once.
    let (code, _, body) = http_get(&a.api("/api/v1/status"), &[]);
    assert_eq!(code, 200, "{body}");
    // Each of them is closed by the server after the header timeout.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(read_eof(s), "a half-open connection was kept open");
    }
    assert_canary_kept_schedule(&a, &target, since);
}

#[test]
fn a_slow_request_body_is_cut_off_after_the_body_timeout() {
    let mut a = Agent::new("agg");
    a.write_file("push.token", "push-secret\n");
    a.launch("[agent.http]\nbody_timeout = \"1s\"\n\n[[peer]]\nname = \"b\"\ninterval = \"1h\"\n[api]\npush_token_file = \"push.token\"\n");
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.write_all(
        b"POST /api/v1/push HTTP/1.1\r\nhost: x\r\nauthorization: Bearer push-secret\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"schema",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[test]
fn beyond_the_connection_cap_new_connections_wait_while_a_canary_keeps_its_schedule() {
    let target = Target::start(Mode::Up);
    let mut a = Agent::new("capped");
    a.launch(&format!(
        "[agent.http]\nmax_connections = 8\nheader_timeout = \"30s\"\nidle_timeout = \"1s\"\n\n{}",
        canary(&target)
    ));
    a.wait_sensor("canary", WAIT, |s| s["state"] == "up");
    let since = Instant::now();
    let hold: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", a.port)).unwrap())
        .collect();
    // The ninth connects (the kernel's backlog) but is not served...
    let mut ninth = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    ninth
        .write_all(b"GET /healthz HTTP/1.0\r\nhost: x\r\n\r\n")
        .unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(
        ninth.read(&mut buf).is_err(),
        "a connection past the cap was served"
    );
    assert!(
        a.logs().contains("all 8 connections are in use"),
        "the cap is logged:\n{}",
        a.logs()
    );
    // ...until a slot frees.
    drop(hold);
    ninth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = ninth.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains(" 200 "));
    // A kept-alive connection is closed after the idle timeout (1 s), not
    // the header timeout (30 s).
    let mut ka = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    ka.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let n = ka.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    assert!(
        read_eof(&mut ka),
        "an idle keep-alive connection was kept open"
    );
    assert!(
        answered.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout"
    );
    assert_canary_kept_schedule(&a, &target, since);
}
