//! A scriptable HTTP/1.1 server on loopback for sensor tests: each test
//! gives a handler that maps the request to a reply (status, headers,
//! body, delay), and the server records every request (method, path,
//! headers, body) so a test can check what the plugin actually sent. The
//! same server runs over TLS with a certificate made by [`TestCa`].
//!
//! It is also the tests' one fault server: a [`Reply`] can hang up
//! without answering, never answer, trickle its body or stream an endless
//! one ([`Delivery`]). [`super::Target`] (the switchable up/down target of
//! the agent tests) and [`super::FaultyPeer`] (misbehaving federation
//! peers) are handlers on it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of a header (name lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a [`Reply`] goes out on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// The whole answer at once.
    #[default]
    Whole,
    /// No answer: the connection is closed at once.
    HangUp,
    /// No answer: the connection is held, its input read and discarded,
    /// until the client hangs up (or a minute passed).
    Silent,
    /// The head at once, then the body one byte per period.
    Trickle(Duration),
    /// A chunked body of this many bytes (64 KiB chunks of spaces, made on
    /// the fly, never allocated whole); `body` is ignored.
    Endless(usize),
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// How it is sent.
    pub delivery: Delivery,
}

impl Reply {
    /// `status` with a text body.
    pub fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            delivery: Delivery::Whole,
        }
    }
    /// Closes the connection without answering.
    pub fn hang_up() -> Reply {
        Reply::new(0, "").deliver(Delivery::HangUp)
    }
    /// Never answers; holds the connection until the client gives up.
    pub fn silent() -> Reply {
        Reply::new(0, "").deliver(Delivery::Silent)
    }
    /// Sends the answer as `d` says.
    pub fn deliver(mut self, d: Delivery) -> Reply {
        self.delivery = d;
        self
    }
    /// 200 with a JSON body.
    pub fn json(v: &serde_json::Value) -> Reply {
        Reply::new(200, &v.to_string()).header("content-type", "application/json")
    }
    /// A redirect.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status, "").header("location", location)
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Answers after `d`.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running server (threads end with the test process).
pub struct HttpServer {
    pub port: u16,
    tls: bool,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Bytes of answers written so far (heads included).
    sent: Arc<AtomicUsize>,
}

impl HttpServer {
    /// Plain HTTP on `127.0.0.1:0`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> HttpServer {
        Self::spawn(None, Arc::new(handler))
    }

    /// HTTPS on `127.0.0.1:0` presenting `cert`.
    pub fn start_tls(
        cert: &ServerCert,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        Self::spawn(Some(cert.config.clone()), Arc::new(handler))
    }

    /// Plain HTTP on `l` (a [`super::ReservedPort`] that refused
    /// connections before, say).
    pub fn on(
        l: TcpListener,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        Self::serve_on(l, None, Arc::new(handler))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> HttpServer {
        Self::serve_on(TcpListener::bind("127.0.0.1:0").unwrap(), tls, handler)
    }

    fn serve_on(
        l: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
    ) -> HttpServer {
        let port = l.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let sent: Arc<AtomicUsize> = Arc::default();
        let server = HttpServer {
            port,
            tls: tls.is_some(),
            requests: requests.clone(),
            sent: sent.clone(),
        };
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (handler, requests, tls, sent) =
                    (handler.clone(), requests.clone(), tls.clone(), sent.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        None => serve(s, &handler, &requests, &sent),
                        Some(cfg) => {
                            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            serve(
                                rustls::StreamOwned::new(conn, s),
                                &handler,
                                &requests,
                                &sent,
                            )
                        }
                    }
                });
            }
        });
        server
    }

    /// Bytes of answers written so far (heads included).
    pub fn bytes_sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// The counter behind [`HttpServer::bytes_sent`], to share.
    pub fn sent_counter(&self) -> Arc<AtomicUsize> {
        self.sent.clone()
    }

    /// `http(s)://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request, answers it, closes.
fn serve<S: Read + Write>(
    mut s: S,
    handler: &Handler,
    requests: &Mutex<Vec<Recorded>>,
    sent: &AtomicUsize,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut body = buf[head_end + 4..].to_vec();
    if chunked {
        body = match dechunk(&body, &mut s) {
            Ok(b) => b,
            Err(_) => return,
        };
    }
    while !chunked && body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Recorded {
        method,
        path,
        headers,
        body,
    };
    requests.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    // Models a slow server when the test asked for one (`Reply::delay`).
    std::thread::sleep(reply.delay);
    let mut send = |b: &[u8]| -> bool {
        let ok = s.write_all(b).and_then(|()| s.flush()).is_ok();
        if ok {
            sent.fetch_add(b.len(), Ordering::SeqCst);
        }
        ok
    };
    let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    match reply.delivery {
        Delivery::Endless(_) => head.push_str("transfer-encoding: chunked\r\n"),
        _ => head.push_str(&format!("content-length: {}\r\n", reply.body.len())),
    }
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    match reply.delivery {
        Delivery::Whole => {
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&reply.body);
            send(&bytes);
        }
        Delivery::HangUp => {}
        Delivery::Silent => {
            let mut buf = [0u8; 4096];
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            // Reads until the client hangs up; a read timeout only makes
            // it look at the deadline again.
            while std::time::Instant::now() < deadline {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        Delivery::Trickle(period) => {
            if !send(head.as_bytes()) {
                return;
            }
            for b in &reply.body {
                // Models a peer on a slow link: one byte per period.
                std::thread::sleep(period);
                if !send(&[*b]) {
                    return;
                }
            }
        }
        Delivery::Endless(total) => {
            if !send(head.as_bytes()) {
                return;
            }
            let piece = vec![b' '; 64 << 10];
            let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
            frame.extend_from_slice(&piece);
            frame.extend_from_slice(b"\r\n");
            let mut done = 0;
            while done < total {
                if !send(&frame) {
                    return;
                }
                done += piece.len();
            }
            send(b"0\r\n\r\n");
        }
    }
}

/// Reads a chunked body: `start` (what came with the head), then `s`.
fn dechunk<S: Read>(start: &[u8], s: &mut S) -> std::io::Result<Vec<u8>> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(start.chain(s));
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut data = vec![0; n + 2];
        r.read_exact(&mut data)?;
        if n == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&data[..n]);
    }
}

/// A throw-away certificate authority for TLS tests.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A server certificate with its key, ready for [`HttpServer::start_tls`].
pub struct ServerCert {
    config: Arc<rustls::ServerConfig>,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Outpost Test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA certificate as PEM (what `OUTPOST_CA_FILE` points at).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for `localhost` and `127.0.0.1` valid from a day ago
    /// until `valid_for` from now.
    pub fn server_cert(&self, valid_for: Duration) -> ServerCert {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + (now - Duration::from_secs(86_400));
        params.not_after = epoch + (now + valid_for);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        ServerCert {
            config: Arc::new(config),
            not_after: (now + valid_for).as_secs() as i64,
        }
    }
}
