//! The SMTP client dialogue (RFC 5321) and reply parsing.
//!
//! [`parse_reply`] is pure; [`send`] runs one transaction over a
//! [`Transport`]: greeting, EHLO (HELO if EHLO is refused), AUTH when
//! credentials are configured (PLAIN preferred, else LOGIN, from the EHLO
//! capabilities), MAIL FROM, RCPT TO for each recipient, DATA, QUIT.
//!
//! Every failure is a [`Failure`] that names the stage; it becomes a
//! [`DeliveryError`] with the server's reply text: 4xx replies and network
//! failures are retryable, 5xx replies permanent. Credentials never appear
//! in a message.

use crate::config::{Config, Server};
use crate::message::{self, Mail};
use crate::net::{NetError, Transport};
use base64::Engine;
use outpost_plugin_sdk::prelude::*;

/// RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; a server sending
/// far more is broken or hostile, so a reply is capped at this size.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// One server reply (possibly multi-line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// `550 5.1.1 no such user` (lines joined with " / ").
    pub fn text(&self) -> String {
        let t = self.lines.join(" / ");
        let t = t.trim();
        if t.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {t}", self.code)
        }
    }
}

/// A reply that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub String);

/// Parses one complete reply from the front of `buf`. `Ok(None)` means
/// more bytes are needed; on success also returns how many bytes it used.
/// Lines end in CRLF (a bare LF is accepted); continuation lines are
/// `250-text`, the last line `250 text` or just `250`.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, BadReply> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_REPLY_BYTES {
                return Err(BadReply(format!(
                    "reply longer than {MAX_REPLY_BYTES} bytes"
                )));
            }
            return Ok(None);
        };
        let raw = &buf[pos..pos + nl];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += nl + 1;
        let text = String::from_utf8_lossy(line);
        let bytes = text.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(BadReply(format!(
                "not an SMTP reply line: `{}`",
                cut(&text)
            )));
        }
        let this: u16 = text[..3].parse().expect("three digits");
        if !(200..=599).contains(&this) {
            return Err(BadReply(format!("reply code {this} out of range")));
        }
        if *code.get_or_insert(this) != this {
            return Err(BadReply(format!(
                "reply code changed from {} to {this} within a multi-line reply",
                code.unwrap_or(0)
            )));
        }
        let (last, rest) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &text[4..]),
            Some(b'-') => (false, &text[4..]),
            Some(_) => {
                return Err(BadReply(format!(
                    "not an SMTP reply line: `{}`",
                    cut(&text)
                )));
            }
        };
        lines.push(rest.to_string());
        if last {
            return Ok(Some((Reply { code: this, lines }, pos)));
        }
    }
}

fn cut(t: &str) -> String {
    t.chars().take(120).collect()
}

/// What EHLO told about the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Upper-case keywords (`AUTH`, `PIPELINING`, `8BITMIME`, ...).
    pub keywords: Vec<String>,
    /// Upper-case SASL mechanisms from `AUTH` (and the old `AUTH=` form).
    pub auth: Vec<String>,
}

impl Capabilities {
    /// From the lines of a 250 reply to EHLO (the first line is the
    /// server's greeting, not a capability).
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(first) = words.next() else { continue };
            let first = first.to_ascii_uppercase();
            let (keyword, inline) = match first.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (first, None),
            };
            if keyword == "AUTH" {
                caps.auth.extend(inline);
                caps.auth.extend(words.map(|w| w.to_ascii_uppercase()));
            }
            if !caps.keywords.contains(&keyword) {
                caps.keywords.push(keyword);
            }
        }
        caps.auth.dedup();
        caps
    }

    /// The mechanism to use: PLAIN if offered, else LOGIN.
    pub fn choose_auth(&self) -> Option<&'static str> {
        ["PLAIN", "LOGIN"]
            .into_iter()
            .find(|m| self.auth.iter().any(|a| a == m))
    }
}

/// Why a transaction failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The network failed during `stage`.
    Net {
        /// What the client was doing.
        stage: &'static str,
        /// What happened.
        error: NetError,
    },
    /// The server answered `reply` to `stage`, which is not success.
    Rejected {
        /// The command (without arguments that could hold secrets).
        stage: String,
        /// The server's answer.
        reply: Reply,
    },
    /// Some recipients were refused (`RCPT TO`).
    Recipients(Vec<(String, Reply)>),
    /// The server broke the protocol.
    Protocol(String),
    /// The server cannot do what the config needs.
    Unsupported(String),
}

impl Failure {
    /// The delivery error the agent records.
    pub fn into_delivery(self, server: &Server) -> DeliveryError {
        match self {
            Failure::Net { stage, error } => {
                let permanent = matches!(error, NetError::Denied(_));
                let msg = match (&error, stage) {
                    (NetError::Denied(_) | NetError::Refused(_), _) => {
                        format!("cannot send mail via {server}: {error}")
                    }
                    (NetError::Timeout, _) => {
                        format!(
                            "SMTP server {server} did not answer in time (waiting for: {stage})"
                        )
                    }
                    _ => format!("SMTP with {server} failed during {stage}: {error}"),
                };
                if permanent {
                    DeliveryError::permanent(msg)
                } else {
                    DeliveryError::retry(msg)
                }
            }
            Failure::Rejected { stage, reply } => classify(
                reply.code,
                format!("SMTP server {server} answered {} to {stage}", reply.text()),
            ),
            Failure::Recipients(refused) => {
                let any_temporary = refused.iter().any(|(_, r)| r.code < 500);
                let list: Vec<String> = refused
                    .iter()
                    .map(|(to, r)| format!("<{to}>: {}", r.text()))
                    .collect();
                let msg = format!(
                    "SMTP server {server} refused {} recipient(s), nothing was sent: {}",
                    refused.len(),
                    list.join("; ")
                );
                if any_temporary {
                    DeliveryError::retry(msg)
                } else {
                    DeliveryError::permanent(msg)
                }
            }
            Failure::Protocol(m) => {
                DeliveryError::retry(format!("SMTP server {server} broke the protocol: {m}"))
            }
            Failure::Unsupported(m) => {
                DeliveryError::permanent(format!("SMTP server {server}: {m}"))
            }
        }
    }
}

/// 4xx → retryable, 5xx → permanent; anything else unexpected at that
/// point is treated as a transient protocol hiccup.
pub fn classify(code: u16, message: String) -> DeliveryError {
    if (500..600).contains(&code) {
        DeliveryError::permanent(message)
    } else {
        DeliveryError::retry(message)
    }
}

/// One SMTP connection.
struct Session<T: Transport> {
    conn: T,
    buf: Vec<u8>,
}

impl<T: Transport> Session<T> {
    fn read(&mut self, stage: &'static str) -> Result<Reply, Failure> {
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => self
                    .conn
                    .recv(&mut self.buf)
                    .map_err(|error| Failure::Net { stage, error })?,
                Err(BadReply(m)) => return Err(Failure::Protocol(m)),
            }
        }
    }

    /// Sends `line` + CRLF and reads the reply to `stage`.
    fn command(&mut self, line: &str, stage: &'static str) -> Result<Reply, Failure> {
        let mut data = Vec::with_capacity(line.len() + 2);
        data.extend_from_slice(line.as_bytes());
        data.extend_from_slice(b"\r\n");
        self.conn
            .send(&data)
            .map_err(|error| Failure::Net { stage, error })?;
        self.read(stage)
    }

    /// A command that must get one of `ok` codes.
    fn expect(&mut self, line: &str, stage: &'static str, ok: &[u16]) -> Result<Reply, Failure> {
        let r = self.command(line, stage)?;
        if ok.contains(&r.code) {
            Ok(r)
        } else {
            Err(Failure::Rejected {
                stage: stage.to_string(),
                reply: r,
            })
        }
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Runs one mail transaction for `mail` over `conn`.
pub fn send<T: Transport>(conn: T, config: &Config, mail: &Mail) -> Result<(), Failure> {
    let mut s = Session {
        conn,
        buf: Vec::new(),
    };
    let greeting = s.read("the greeting")?;
    if greeting.code != 220 {
        return Err(Failure::Rejected {
            stage: "the connection (greeting)".into(),
            reply: greeting,
        });
    }
    let helo = config.helo();
    let ehlo = s.command(&format!("EHLO {helo}"), "EHLO")?;
    let caps = match ehlo.code {
        250 => Capabilities::from_ehlo(&ehlo),
        // Command unrecognised / not implemented: an RFC 821 server.
        500 | 502 | 504 | 550 => {
            s.expect(&format!("HELO {helo}"), "HELO", &[250])?;
            Capabilities::default()
        }
        _ => {
            return Err(Failure::Rejected {
                stage: "EHLO".into(),
                reply: ehlo,
            });
        }
    };

    if let (Some(user), Some(pass)) = (&config.username, &config.password) {
        authenticate(&mut s, &caps, user, pass)?;
    }

    s.expect(&format!("MAIL FROM:<{}>", mail.from), "MAIL FROM", &[250])?;
    let mut refused = Vec::new();
    for to in &mail.recipients {
        let r = s.command(&format!("RCPT TO:<{to}>"), "RCPT TO")?;
        if !matches!(r.code, 250 | 251) {
            refused.push((to.clone(), r));
        }
    }
    if !refused.is_empty() {
        let _ = s.command("QUIT", "QUIT");
        return Err(Failure::Recipients(refused));
    }
    s.expect("DATA", "DATA", &[354])?;
    let body = message::dot_stuff(&mail.data);
    s.conn.send(&body).map_err(|error| Failure::Net {
        stage: "sending the message",
        error,
    })?;
    let r = s.read("the end of DATA")?;
    if r.code != 250 {
        return Err(Failure::Rejected {
            stage: "the message (end of DATA)".into(),
            reply: r,
        });
    }
    // The mail is accepted; a failing QUIT changes nothing about that.
    let _ = s.command("QUIT", "QUIT");
    Ok(())
}

fn authenticate<T: Transport>(
    s: &mut Session<T>,
    caps: &Capabilities,
    user: &str,
    pass: &str,
) -> Result<(), Failure> {
    let Some(mech) = caps.choose_auth() else {
        let offered = if caps.auth.is_empty() {
            "none".to_string()
        } else {
            caps.auth.join(" ")
        };
        return Err(Failure::Unsupported(format!(
            "`username` is set but the server offers no AUTH PLAIN or LOGIN (offered: {offered}); \
             servers often offer AUTH only after STARTTLS, which this plugin cannot do"
        )));
    };
    let done = |r: Reply, stage: &str| {
        if r.code == 235 {
            Ok(())
        } else {
            Err(Failure::Rejected {
                stage: format!("{stage} (authentication failed for `{user}`)"),
                reply: r,
            })
        }
    };
    if mech == "PLAIN" {
        let token = b64(format!("\0{user}\0{pass}").as_bytes());
        let r = s.command(&format!("AUTH PLAIN {token}"), "AUTH PLAIN")?;
        return done(r, "AUTH PLAIN");
    }
    let r = s.command("AUTH LOGIN", "AUTH LOGIN")?;
    if r.code != 334 {
        return done(r, "AUTH LOGIN");
    }
    let r = s.command(&b64(user.as_bytes()), "AUTH LOGIN (user name)")?;
    if r.code != 334 {
        return done(r, "AUTH LOGIN");
    }
    let r = s.command(&b64(pass.as_bytes()), "AUTH LOGIN (password)")?;
    done(r, "AUTH LOGIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(Reply, usize)>, BadReply> {
        parse_reply(s.as_bytes())
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, used) = parse("220 mail.example.com ESMTP ready\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.code, r.lines.as_slice(), used),
            (220, &["mail.example.com ESMTP ready".to_string()][..], 34)
        );
        let text = "250-mail.example.com\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\nEXTRA";
        let (r, used) = parse(text).unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines.len(), 4);
        assert_eq!(&text[used..], "EXTRA");
        let (r, _) = parse("354\r\n").unwrap().unwrap();
        assert_eq!((r.code, r.text()), (354, "354".to_string()));
        let (r, _) = parse("250 ok\n").unwrap().unwrap();
        assert_eq!(r.text(), "250 ok");
    }

    #[test]
    fn incomplete_replies_need_more() {
        assert_eq!(parse("250-first\r\n250 sec").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("25").unwrap(), None);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse("hello\r\n").is_err());
        assert!(
            parse("250-a\r\n251 b\r\n")
                .unwrap_err()
                .0
                .contains("changed")
        );
        assert!(parse("250x\r\n").is_err());
        assert!(parse("100 x\r\n").is_err());
        assert!(parse_reply(&vec![b'2'; MAX_REPLY_BYTES + 1]).is_err());
    }

    #[test]
    fn capabilities_and_auth_choice() {
        let (r, _) = parse("250-mx\r\n250-SIZE 100\r\n250-AUTH LOGIN PLAIN\r\n250 HELP\r\n")
            .unwrap()
            .unwrap();
        let c = Capabilities::from_ehlo(&r);
        assert_eq!(c.keywords, vec!["SIZE", "AUTH", "HELP"]);
        assert_eq!(c.choose_auth(), Some("PLAIN"));
        let (r, _) = parse("250-mx\r\n250 AUTH=LOGIN CRAM-MD5\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(Capabilities::from_ehlo(&r).choose_auth(), Some("LOGIN"));
        let (r, _) = parse("250-mx\r\n250 AUTH CRAM-MD5\r\n").unwrap().unwrap();
        assert_eq!(Capabilities::from_ehlo(&r).choose_auth(), None);
    }

    fn server() -> Server {
        Server {
            host: "mx".into(),
            port: 25,
        }
    }

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    #[test]
    fn retry_classification() {
        let e = Failure::Rejected {
            stage: "RCPT TO".into(),
            reply: reply(451, "4.3.0 try later"),
        }
        .into_delivery(&server());
        assert!(
            !e.permanent && e.message.contains("451 4.3.0 try later"),
            "{}",
            e.message
        );
        let e = Failure::Rejected {
            stage: "AUTH PLAIN".into(),
            reply: reply(535, "5.7.8 bad credentials"),
        }
        .into_delivery(&server());
        assert!(
            e.permanent && e.message.contains("535 5.7.8 bad credentials"),
            "{}",
            e.message
        );
        let e = Failure::Recipients(vec![
            ("a@x".into(), reply(550, "no such user")),
            ("b@x".into(), reply(450, "busy")),
        ])
        .into_delivery(&server());
        assert!(
            !e.permanent && e.message.contains("<a@x>: 550 no such user"),
            "{}",
            e.message
        );
        let e =
            Failure::Recipients(vec![("a@x".into(), reply(550, "no"))]).into_delivery(&server());
        assert!(e.permanent);
        let e = Failure::Net {
            stage: "connect",
            error: NetError::Refused("mx:25".into()),
        }
        .into_delivery(&server());
        assert!(
            !e.permanent && e.message.contains("refused"),
            "{}",
            e.message
        );
        let e = Failure::Net {
            stage: "connect",
            error: NetError::Denied("mx:25".into()),
        }
        .into_delivery(&server());
        assert!(
            e.permanent && e.message.contains("allow-list"),
            "{}",
            e.message
        );
        let e = Failure::Net {
            stage: "the end of DATA",
            error: NetError::Timeout,
        }
        .into_delivery(&server());
        assert!(
            !e.permanent && e.message.contains("end of DATA"),
            "{}",
            e.message
        );
    }

    /// A transport that plays back canned server output and records what
    /// the client sent: exercises the dialogue order without a network.
    struct Script {
        replies: std::collections::VecDeque<&'static str>,
        sent: Vec<String>,
    }

    impl Transport for &mut Script {
        fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
            self.sent.push(String::from_utf8_lossy(data).into_owned());
            Ok(())
        }
        fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
            match self.replies.pop_front() {
                Some(r) => {
                    buf.extend_from_slice(r.as_bytes());
                    Ok(())
                }
                None => Err(NetError::Closed),
            }
        }
    }

    fn config(auth: bool) -> Config {
        let mut v = serde_json::json!({"smtp": "smtp://mx", "from": "o@example.com", "to": ["a@example.com"]});
        if auth {
            v["username"] = "u".into();
            v["password"] = "p".into();
        }
        outpost_plugin_sdk::parse_config(&v.to_string()).unwrap()
    }

    fn mail() -> Mail {
        Mail {
            from: "o@example.com".into(),
            recipients: vec!["a@example.com".into()],
            data: ".x\r\n".into(),
        }
    }

    #[test]
    fn helo_fallback_and_auth_login_dialogue() {
        let mut script = Script {
            replies: ["220 mx\r\n", "502 no EHLO\r\n", "250 mx\r\n"].into(),
            sent: vec![],
        };
        // HELO gives no capabilities, so AUTH is impossible and said so.
        let err = send(&mut script, &config(true), &mail()).unwrap_err();
        assert!(
            matches!(err, Failure::Unsupported(ref m) if m.contains("STARTTLS")),
            "{err:?}"
        );
        assert_eq!(
            script.sent,
            vec!["EHLO localhost\r\n", "HELO localhost\r\n"]
        );

        let mut script = Script {
            replies: [
                "220 mx\r\n",
                "250-mx\r\n250 AUTH LOGIN\r\n",
                "334 VXNlcm5hbWU6\r\n",
                "334 UGFzc3dvcmQ6\r\n",
                "235 ok\r\n",
                "250 ok\r\n",
                "250 ok\r\n",
                "354 go\r\n",
                "250 queued\r\n",
                "221 bye\r\n",
            ]
            .into(),
            sent: vec![],
        };
        send(&mut script, &config(true), &mail()).unwrap();
        assert_eq!(
            script.sent,
            vec![
                "EHLO localhost\r\n",
                "AUTH LOGIN\r\n",
                "dQ==\r\n",
                "cA==\r\n",
                "MAIL FROM:<o@example.com>\r\n",
                "RCPT TO:<a@example.com>\r\n",
                "DATA\r\n",
                "..x\r\n.\r\n",
                "QUIT\r\n",
            ]
        );
    }

    #[test]
    fn refused_recipient_stops_before_data() {
        let mut script = Script {
            replies: [
                "220 mx\r\n",
                "250 mx\r\n",
                "250 ok\r\n",
                "451 4.7.1 later\r\n",
                "221 bye\r\n",
            ]
            .into(),
            sent: vec![],
        };
        let err = send(&mut script, &config(false), &mail()).unwrap_err();
        assert!(
            matches!(err, Failure::Recipients(ref r) if r[0].1.code == 451),
            "{err:?}"
        );
        assert!(!script.sent.iter().any(|s| s.starts_with("DATA")));
    }
}
