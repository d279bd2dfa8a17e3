//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! The agent performs the request (with its own TLS stack) after checking
//! the target against the plugin's network allow-list; a denied host comes
//! back as [`HttpError::Denied`]. Redirects are followed here, in the guest,
//! when asked, so every hop passes the allow-list again.
//!
//! Natively (unit tests) every request fails with [`HttpError::Unavailable`].

use std::time::{Duration, Instant};

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ... (any token is accepted).
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header name/value pairs.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Time allowed for the whole exchange, body included.
    pub timeout: Duration,
    /// Follow up to this many redirects (0 = return the 3xx response).
    pub max_redirects: u32,
    /// Stop reading the body after this many bytes (the response is marked
    /// truncated).
    pub max_body_bytes: usize,
}

impl Request {
    /// A GET with a 10 s timeout, no redirects and a 1 MiB body cap.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A POST of `body` with the given content type.
    pub fn post(url: impl Into<String>, content_type: &str, body: Vec<u8>) -> Self {
        let mut r = Self::new("POST", url);
        r.headers.push(("content-type".into(), content_type.into()));
        r.body = body;
        r
    }

    /// A request with any method.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(10),
            max_redirects: 0,
            max_body_bytes: 1 << 20,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header name/value pairs (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body (up to the request's cap).
    pub body: Vec<u8>,
    /// The body was longer than the cap.
    pub truncated: bool,
    /// The URL that answered (differs from the request's after redirects).
    pub final_url: String,
    /// Time to the response head, first hop to last.
    pub time_to_headers: Duration,
    /// Redirects followed.
    pub redirects: u32,
}

impl Response {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL cannot be used.
    BadUrl(String),
    /// The agent's allow-list does not include this host.
    Denied(String),
    /// Nothing listens there.
    ConnectionRefused(String),
    /// The exchange took longer than the request's timeout.
    Timeout(Duration),
    /// DNS lookup failed.
    Dns(String),
    /// TLS handshake or certificate problem.
    Tls(String),
    /// Any other transport or protocol error.
    Transport(String),
    /// Not running inside the agent (native unit tests).
    Unavailable,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadUrl(m) => write!(f, "invalid URL: {m}"),
            HttpError::Denied(h) => {
                write!(f, "host {h} is not in this plugin's network allow-list")
            }
            HttpError::ConnectionRefused(h) => write!(f, "connection refused by {h}"),
            HttpError::Timeout(d) => write!(f, "timed out after {} ms", d.as_millis()),
            HttpError::Dns(m) => write!(f, "DNS lookup failed: {m}"),
            HttpError::Tls(m) => write!(f, "TLS error: {m}"),
            HttpError::Transport(m) => write!(f, "{m}"),
            HttpError::Unavailable => {
                write!(f, "wasi:http is only available inside the Outpost agent")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// The parts of a URL the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default if not written).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            HttpError::BadUrl(format!(
                "`{url}` has no scheme; write http://... or https://..."
            ))
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => {
                return Err(HttpError::BadUrl(format!(
                    "scheme `{other}` is not supported (use http or https)"
                )));
            }
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..split];
        let mut path = rest[split..].split('#').next().unwrap_or("").to_string();
        if path.is_empty() || path.starts_with('?') {
            path.insert(0, '/');
        }
        let authority = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| HttpError::BadUrl(format!("`{url}`: unterminated IPv6 literal")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p
                    .parse()
                    .map_err(|_| HttpError::BadUrl(format!("`{url}`: bad port `{p}`")))?,
                None => default_port,
            };
            (h.to_string(), port)
        } else if let Some((h, p)) = authority.rsplit_once(':') {
            let port = p
                .parse()
                .map_err(|_| HttpError::BadUrl(format!("`{url}`: bad port `{p}`")))?;
            (h.to_string(), port)
        } else {
            (authority.to_string(), default_port)
        };
        if host.is_empty() {
            return Err(HttpError::BadUrl(format!("`{url}` has no host")));
        }
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path_and_query: path,
        })
    }

    /// `host:port` as written in an HTTP authority (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves a `Location` header against this URL.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(0)];
            format!("{dir}{location}")
        };
        Ok(Url {
            path_and_query: path,
            ..self.clone()
        })
    }
}

/// Sends a request and reads the response, following redirects if asked.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    let started = Instant::now();
    let mut url = Url::parse(&req.url)?;
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    let mut redirects = 0;
    loop {
        let remaining = req
            .timeout
            .checked_sub(started.elapsed())
            .ok_or(HttpError::Timeout(req.timeout))?;
        let mut resp = imp::send_once(
            &method,
            &url,
            &req.headers,
            &body,
            remaining,
            req.max_body_bytes,
        )
        .map_err(|e| match e {
            HttpError::Timeout(_) => HttpError::Timeout(req.timeout),
            other => other,
        })?;
        let is_redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
        if is_redirect
            && redirects < req.max_redirects
            && let Some(loc) = resp.header("location")
        {
            url = url.join(loc)?;
            redirects += 1;
            if resp.status == 303
                || ((resp.status == 301 || resp.status == 302) && method == "POST")
            {
                method = "GET".into();
                body.clear();
            }
            continue;
        }
        resp.final_url = format!("{}://{}{}", url.scheme, url.authority(), url.path_and_query);
        resp.redirects = redirects;
        return Ok(resp);
    }
}

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::*;
    pub fn send_once(
        _method: &str,
        _url: &Url,
        _headers: &[(String, String)],
        _body: &[u8],
        _timeout: Duration,
        _max_body: usize,
    ) -> Result<Response, HttpError> {
        Err(HttpError::Unavailable)
    }
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::*;
    use wasi::http::outgoing_handler;
    use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasi::io::poll;
    use wasi::io::streams::StreamError;

    fn map_error(code: ErrorCode, url: &Url, timeout: Duration) -> HttpError {
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied(url.authority()),
            ErrorCode::ConnectionRefused => HttpError::ConnectionRefused(url.authority()),
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout => HttpError::Timeout(timeout),
            ErrorCode::DnsError(p) => {
                HttpError::Dns(format!("{}: {}", url.host, p.rcode.unwrap_or_default()))
            }
            ErrorCode::DnsTimeout => HttpError::Dns(format!("{}: timed out", url.host)),
            ErrorCode::DestinationNotFound => HttpError::Dns(format!("{}: not found", url.host)),
            ErrorCode::TlsProtocolError => HttpError::Tls("protocol error".into()),
            ErrorCode::TlsCertificateError => {
                HttpError::Tls("certificate not valid for this host".into())
            }
            ErrorCode::TlsAlertReceived(a) => HttpError::Tls(format!(
                "alert received: {}",
                a.alert_message.unwrap_or_default()
            )),
            ErrorCode::InternalError(Some(m)) => HttpError::Transport(m),
            other => HttpError::Transport(format!("{other:?}")),
        }
    }

    /// Waits for `p` or the `deadline` pollable; false on timeout. One
    /// deadline pollable serves a whole request: each host call and each
    /// host timer costs, and a check makes several waits.
    fn wait(p: &wasi::io::poll::Pollable, deadline: &wasi::io::poll::Pollable) -> bool {
        poll::poll(&[p, deadline]).contains(&0)
    }

    pub fn send_once(
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, HttpError> {
        let started = Instant::now();
        let deadline = wasi::clocks::monotonic_clock::subscribe_duration(
            timeout.as_nanos().min(u64::MAX as u128) as u64,
        );
        let entries: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&entries)
            .map_err(|e| HttpError::BadUrl(format!("bad header: {e:?}")))?;
        // Every call below crosses into the host, which costs about a
        // microsecond: what the defaults already say (method GET, no body,
        // the host's timeouts, bounded by `deadline` here) is not sent.
        let req = OutgoingRequest::new(fields);
        let m = match method.to_ascii_uppercase().as_str() {
            "GET" => None,
            "HEAD" => Some(Method::Head),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            "PATCH" => Some(Method::Patch),
            "OPTIONS" => Some(Method::Options),
            other => Some(Method::Other(other.to_string())),
        };
        if let Some(m) = m {
            req.set_method(&m)
                .map_err(|_| HttpError::BadUrl(format!("bad method `{method}`")))?;
        }
        let scheme = if url.scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        };
        req.set_scheme(Some(&scheme))
            .map_err(|_| HttpError::BadUrl("bad scheme".into()))?;
        req.set_authority(Some(&url.authority()))
            .map_err(|_| HttpError::BadUrl(format!("bad host `{}`", url.host)))?;
        req.set_path_with_query(Some(&url.path_and_query))
            .map_err(|_| HttpError::BadUrl(format!("bad path `{}`", url.path_and_query)))?;
        let out_body = if body.is_empty() {
            None
        } else {
            Some(
                req.body()
                    .map_err(|_| HttpError::Transport("request body unavailable".into()))?,
            )
        };
        // No request options: waits below end at `deadline`, and dropping
        // the pending response cancels the host's request.
        let fut = outgoing_handler::handle(req, None).map_err(|e| map_error(e, url, timeout))?;
        if let Some(out_body) = out_body {
            let written = {
                let stream = out_body
                    .write()
                    .map_err(|_| HttpError::Transport("request body stream unavailable".into()))?;
                body.chunks(4096).try_for_each(|chunk| {
                    stream
                        .blocking_write_and_flush(chunk)
                        .map_err(|e| format!("writing request body: {e:?}"))
                })
            };
            if let Err(text) = written {
                // The host closes the body stream when the request itself
                // failed (a denied host, a refused connection, ...): the
                // reason is in the response future, not in the stream error.
                drop(out_body);
                if wait(&fut.subscribe(), &deadline)
                    && let Some(Ok(Err(code))) = fut.get()
                {
                    return Err(map_error(code, url, timeout));
                }
                return Err(HttpError::Transport(text));
            }
            OutgoingBody::finish(out_body, None).map_err(|e| map_error(e, url, timeout))?;
        }

        if !wait(&fut.subscribe(), &deadline) {
            return Err(HttpError::Timeout(timeout));
        }
        let resp = match fut.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(code))) => return Err(map_error(code, url, timeout)),
            Some(Err(())) => return Err(HttpError::Transport("response already taken".into())),
            None => return Err(HttpError::Timeout(timeout)),
        };
        let time_to_headers = started.elapsed();
        let status = resp.status();
        let headers = resp
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = resp
            .consume()
            .map_err(|_| HttpError::Transport("response body unavailable".into()))?;
        let stream = incoming
            .stream()
            .map_err(|_| HttpError::Transport("response body stream unavailable".into()))?;
        let mut data = Vec::new();
        let mut truncated = false;
        let readable = stream.subscribe();
        loop {
            // Read first: a small body usually arrived with the headers,
            // and an empty read costs less than a poll.
            match stream.read(64 * 1024) {
                Ok(chunk) if chunk.is_empty() => {
                    if !wait(&readable, &deadline) {
                        return Err(HttpError::Timeout(timeout));
                    }
                }
                Ok(chunk) => {
                    if data.len() + chunk.len() > max_body {
                        data.extend_from_slice(&chunk[..max_body - data.len()]);
                        truncated = true;
                        break;
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(HttpError::Transport(format!(
                        "reading response body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
        drop(readable);
        drop(stream);
        Ok(Response {
            status,
            headers,
            body: data,
            truncated,
            final_url: String::new(),
            time_to_headers,
            redirects: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("https://Example.com/a/b?c=1#frag").unwrap();
        assert_eq!(
            (
                u.scheme.as_str(),
                u.host.as_str(),
                u.port,
                u.path_and_query.as_str()
            ),
            ("https", "example.com", 443, "/a/b?c=1")
        );
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.path_and_query.as_str()), (8080, "/"));
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:9".to_string())
        );
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("example.com").is_err());
        assert!(Url::parse("http://:80/").is_err());
    }

    #[test]
    fn joins_locations() {
        let u = Url::parse("http://h:1/a/b?q").unwrap();
        assert_eq!(u.join("/c").unwrap().path_and_query, "/c");
        assert_eq!(u.join("d").unwrap().path_and_query, "/a/d");
        assert_eq!(u.join("https://o/x").unwrap().authority(), "o:443");
        assert_eq!(u.join("//o:5/x").unwrap().authority(), "o:5");
    }
}
