//! Message framing of the MongoDB wire protocol: `OP_MSG` requests and
//! replies, the legacy `OP_QUERY` / `OP_REPLY` pair, and the limits that
//! keep a hostile or confused peer from making the sensor allocate or wait
//! without bound.
//!
//! Every message starts with a 16-byte header (`messageLength`,
//! `requestID`, `responseTo`, `opCode`, little-endian `int32`). A reply is
//! accepted only if its declared length is between [`HEADER_LEN`] plus the
//! smallest body and [`MAX_MESSAGE_LEN`], it answers our request id, and its
//! body is one well-formed BSON document where one is expected. Bytes that
//! look like text (an HTTP status line, an SMTP banner) are recognised and
//! reported as "not MongoDB" rather than as a huge length.
//!
//! This module owns encoding and decoding only; sockets and deadlines live
//! in `connection`.

use bson::Document;
use std::io::Read;

/// Size of the message header.
pub const HEADER_LEN: usize = 16;

/// The largest reply accepted: a maximal BSON document (16 MiB, the
/// server's `maxBsonObjectSize`) plus 16 KiB for the header, section kinds
/// and an optional checksum. A `hello` or `ping` reply is a few hundred
/// bytes, so anything near this is already suspicious, but a real server
/// never exceeds it for a single document.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024 + 16 * 1024;

/// The smallest reply: header, `OP_MSG` flags, section kind, empty
/// document.
pub const MIN_MESSAGE_LEN: usize = HEADER_LEN + 4 + 1 + 5;

/// `OP_REPLY`, the answer to `OP_QUERY`.
pub const OP_REPLY: i32 = 1;
/// `OP_QUERY`, used only for the legacy `isMaster` handshake.
pub const OP_QUERY: i32 = 2004;
/// `OP_COMPRESSED`; never negotiated by this sensor.
pub const OP_COMPRESSED: i32 = 2012;
/// `OP_MSG`, the message of every current server.
pub const OP_MSG: i32 = 2013;

/// `OP_MSG` flag: a CRC-32C follows the sections.
const FLAG_CHECKSUM_PRESENT: u32 = 1;
/// `OP_MSG` flag bits 0-15 a receiver must understand; only the checksum
/// bit is defined among them, so any other set bit is an error.
const FLAG_REQUIRED_MASK: u32 = 0xffff;

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The peer closed before sending anything.
    #[error("the server closed the connection without answering")]
    ClosedBeforeReply,
    /// The peer closed in the middle of a message.
    #[error("the server closed the connection after {got} of {expected} bytes of a reply")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
    /// The bytes are text, not a wire-protocol header.
    #[error("not a MongoDB server: it answered with text `{preview}`{hint}")]
    Text {
        /// The first printable bytes.
        preview: String,
        /// A guess at what answered.
        hint: &'static str,
    },
    /// The declared length is out of bounds.
    #[error("malformed reply: declared message length {0} is outside {min}..={max} bytes", min = MIN_MESSAGE_LEN, max = MAX_MESSAGE_LEN)]
    BadLength(i64),
    /// Not an answer to our request.
    #[error("malformed reply: it answers request {got}, not our request {expected}")]
    WrongResponseTo {
        /// `responseTo` of the reply.
        got: i32,
        /// Our `requestID`.
        expected: i32,
    },
    /// An op code this sensor did not ask for.
    #[error("malformed reply: unexpected opCode {0}")]
    UnexpectedOpCode(i32),
    /// The body does not parse.
    #[error("malformed reply: {0}")]
    Body(String),
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whole message length including the header.
    pub length: usize,
    /// Sender's id.
    pub request_id: i32,
    /// Id of the message this answers.
    pub response_to: i32,
    /// Kind of message.
    pub op_code: i32,
}

fn header_bytes(out: &mut Vec<u8>, request_id: i32, op_code: i32) {
    out.extend_from_slice(&0i32.to_le_bytes()); // length, patched later
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
}

fn patch_length(out: &mut [u8]) {
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
}

fn encode_doc(doc: &Document) -> Result<Vec<u8>, WireError> {
    doc.to_vec()
        .map_err(|e| WireError::Body(format!("cannot encode command: {e}")))
}

/// An `OP_MSG` with one body section (`kind 0`) holding `command`, which
/// must already contain `$db`.
pub fn encode_op_msg(request_id: i32, command: &Document) -> Result<Vec<u8>, WireError> {
    let doc = encode_doc(command)?;
    let mut out = Vec::with_capacity(HEADER_LEN + 5 + doc.len());
    header_bytes(&mut out, request_id, OP_MSG);
    out.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    out.push(0); // section kind 0: body
    out.extend_from_slice(&doc);
    patch_length(&mut out);
    Ok(out)
}

/// An `OP_QUERY` of `command` on `<db>.$cmd`, asking for one document.
pub fn encode_op_query(
    request_id: i32,
    db: &str,
    command: &Document,
) -> Result<Vec<u8>, WireError> {
    let doc = encode_doc(command)?;
    let mut out = Vec::with_capacity(HEADER_LEN + 32 + doc.len());
    header_bytes(&mut out, request_id, OP_QUERY);
    out.extend_from_slice(&0i32.to_le_bytes()); // flags
    out.extend_from_slice(db.as_bytes());
    out.extend_from_slice(b".$cmd\0");
    out.extend_from_slice(&0i32.to_le_bytes()); // numberToSkip
    out.extend_from_slice(&(-1i32).to_le_bytes()); // numberToReturn: one, close cursor
    out.extend_from_slice(&doc);
    patch_length(&mut out);
    Ok(out)
}

/// Decodes a header; rejects text and impossible lengths.
pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
    if let Some(text) = text_preview(b) {
        return Err(text);
    }
    let i = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let length = i(0);
    if length < MIN_MESSAGE_LEN as i32 || length as i64 > MAX_MESSAGE_LEN as i64 {
        return Err(WireError::BadLength(length as i64));
    }
    Ok(Header {
        length: length as usize,
        request_id: i(4),
        response_to: i(8),
        op_code: i(12),
    })
}

/// If the first bytes are printable ASCII, the peer speaks a text protocol.
fn text_preview(b: &[u8]) -> Option<WireError> {
    let printable = |c: &u8| c.is_ascii_graphic() || *c == b' ' || *c == b'\r' || *c == b'\n';
    // Eight printable bytes in a row never start a MongoDB header: the
    // length would be at least 0x20202020 (538 MB), above any limit.
    if b.len() < 8 || !b[..8].iter().all(printable) {
        return None;
    }
    let line: String = b
        .iter()
        .take_while(|c| printable(c) && **c != b'\r' && **c != b'\n')
        .map(|&c| c as char)
        .collect();
    let hint = if line.starts_with("HTTP/") {
        " (an HTTP server is listening on this port)"
    } else if line.starts_with("220") || line.starts_with("SSH-") || line.starts_with("+OK") {
        " (another service is listening on this port)"
    } else {
        ""
    };
    Some(WireError::Text {
        preview: line,
        hint,
    })
}

/// Reads one BSON document that must span `bytes` exactly.
fn exact_document(bytes: &[u8], what: &str) -> Result<Document, WireError> {
    if bytes.len() < 5 {
        return Err(WireError::Body(format!(
            "{what}: {} bytes cannot hold a BSON document",
            bytes.len()
        )));
    }
    let declared = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if declared < 5 || declared as usize != bytes.len() {
        return Err(WireError::Body(format!(
            "{what}: BSON document declares {declared} bytes but {} are there",
            bytes.len()
        )));
    }
    Document::from_reader(bytes).map_err(|e| WireError::Body(format!("{what}: invalid BSON: {e}")))
}

/// Decodes the body of a reply (everything after the header) into the
/// command's reply document.
pub fn decode_reply(header: &Header, body: &[u8]) -> Result<Document, WireError> {
    match header.op_code {
        OP_MSG => {
            if body.len() < 5 {
                return Err(WireError::Body("OP_MSG too short".into()));
            }
            let flags = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            if flags & FLAG_REQUIRED_MASK & !FLAG_CHECKSUM_PRESENT != 0 {
                return Err(WireError::Body(format!(
                    "OP_MSG has unknown required flag bits {flags:#x}"
                )));
            }
            let mut end = body.len();
            if flags & FLAG_CHECKSUM_PRESENT != 0 {
                // The CRC is not verified: TCP already checksums, and a
                // corrupt document still fails to parse.
                end = end
                    .checked_sub(4)
                    .filter(|&e| e >= 5)
                    .ok_or_else(|| WireError::Body("OP_MSG checksum missing".into()))?;
            }
            let mut sections = &body[4..end];
            let mut doc = None;
            while !sections.is_empty() {
                let kind = sections[0];
                let rest = &sections[1..];
                let take = |rest: &[u8]| -> Result<usize, WireError> {
                    if rest.len() < 4 {
                        return Err(WireError::Body("OP_MSG section truncated".into()));
                    }
                    let n = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                    if n < 5 || n as usize > rest.len() {
                        return Err(WireError::Body(format!(
                            "OP_MSG section declares {n} bytes but {} remain",
                            rest.len()
                        )));
                    }
                    Ok(n as usize)
                };
                match kind {
                    0 => {
                        let n = take(rest)?;
                        if doc.is_some() {
                            return Err(WireError::Body("OP_MSG has two body sections".into()));
                        }
                        doc = Some(exact_document(&rest[..n], "OP_MSG body")?);
                        sections = &rest[n..];
                    }
                    // A document sequence: not used in command replies we
                    // ask for; skipped whole.
                    1 => {
                        let n = take(rest)?;
                        sections = &rest[n..];
                    }
                    k => {
                        return Err(WireError::Body(format!(
                            "OP_MSG has unknown section kind {k}"
                        )));
                    }
                }
            }
            doc.ok_or_else(|| WireError::Body("OP_MSG without a body section".into()))
        }
        OP_REPLY => {
            // responseFlags(4) cursorID(8) startingFrom(4) numberReturned(4)
            if body.len() < 20 {
                return Err(WireError::Body("OP_REPLY too short".into()));
            }
            let flags = i32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            let returned = i32::from_le_bytes([body[16], body[17], body[18], body[19]]);
            if returned != 1 {
                return Err(WireError::Body(format!(
                    "OP_REPLY returns {returned} documents, expected 1"
                )));
            }
            let doc = exact_document(&body[20..], "OP_REPLY document")?;
            const QUERY_FAILURE: i32 = 2;
            if flags & QUERY_FAILURE != 0 {
                let err = doc.get_str("$err").unwrap_or("query failure");
                let mut d = Document::new();
                d.insert("ok", 0.0);
                d.insert("errmsg", err.to_string());
                return Ok(d);
            }
            Ok(doc)
        }
        OP_COMPRESSED => Err(WireError::Body(
            "the server sent OP_COMPRESSED although no compression was negotiated".into(),
        )),
        other => Err(WireError::UnexpectedOpCode(other)),
    }
}

/// Reads one reply to `request_id` from `r`. I/O errors (timeouts) are
/// returned as `Err(Ok(io))` so the caller can say which stage timed out;
/// protocol errors as `Err(Err(wire))`.
pub fn read_reply<R: Read>(r: &mut R, request_id: i32) -> Result<Document, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(r, &mut head)?;
    if got == 0 {
        return Err(ReadError::Wire(WireError::ClosedBeforeReply));
    }
    if got < HEADER_LEN {
        if let Some(text) = text_preview(&head[..got]) {
            return Err(ReadError::Wire(text));
        }
        return Err(ReadError::Wire(WireError::Truncated {
            got,
            expected: HEADER_LEN,
        }));
    }
    let header = match parse_header(&head) {
        Err(WireError::Text { .. }) => return Err(ReadError::Wire(text_reply(r, &head))),
        other => other?,
    };
    if header.response_to != request_id {
        return Err(ReadError::Wire(WireError::WrongResponseTo {
            got: header.response_to,
            expected: request_id,
        }));
    }
    if header.op_code != OP_MSG && header.op_code != OP_REPLY && header.op_code != OP_COMPRESSED {
        return Err(ReadError::Wire(WireError::UnexpectedOpCode(header.op_code)));
    }
    let mut body = vec![0u8; header.length - HEADER_LEN];
    let got = read_full(r, &mut body)?;
    if got < body.len() {
        return Err(ReadError::Wire(WireError::Truncated {
            got: HEADER_LEN + got,
            expected: header.length,
        }));
    }
    Ok(decode_reply(&header, &body)?)
}

/// The longest text line quoted from a non-MongoDB peer.
const MAX_PREVIEW: usize = 120;

/// Reads the rest of a text peer's first line (bounded) for the message.
fn text_reply<R: Read>(r: &mut R, head: &[u8]) -> WireError {
    let mut line = head.to_vec();
    let mut byte = [0u8; 1];
    while line.len() < MAX_PREVIEW && !line.contains(&b'\n') {
        match r.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    text_preview(&line).unwrap_or(WireError::Body("unreadable text reply".into()))
}

/// A failed read: the socket or the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed (timeout, reset).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid reply.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Reads until `buf` is full or the peer closes; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if n > 0 && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Bson, doc};

    fn reply_msg(request_id: i32, response_to: i32, d: &Document) -> Vec<u8> {
        let mut m = encode_op_msg(request_id, d).unwrap();
        m[8..12].copy_from_slice(&response_to.to_le_bytes());
        m
    }

    #[test]
    fn op_msg_round_trip() {
        let d = doc! {
            "hello": 1i32, "helloOk": true, "$db": "admin",
            "client": {"driver": {"name": "outpost", "version": "0.1"}},
            "hosts": ["a:1", "b:2"], "n": 1.5f64, "big": 1i64 << 40,
            "bin": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 255] }),
            "nothing": Bson::Null,
        };
        let m = reply_msg(9, 42, &d);
        assert_eq!(
            i32::from_le_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_le_bytes(m[12..16].try_into().unwrap()), OP_MSG);
        let got = read_reply(&mut &m[..], 42).unwrap();
        assert_eq!(got, d);
    }

    #[test]
    fn op_query_layout_and_op_reply_decoding() {
        let q = encode_op_query(7, "admin", &doc! {"isMaster": 1i32}).unwrap();
        assert_eq!(i32::from_le_bytes(q[12..16].try_into().unwrap()), OP_QUERY);
        assert_eq!(&q[20..31], b"admin.$cmd\0");
        assert_eq!(i32::from_le_bytes(q[35..39].try_into().unwrap()), -1);

        let d = doc! {"ismaster": true, "maxWireVersion": 5i32, "ok": 1.0};
        let bytes = d.to_vec().unwrap();
        let mut r = Vec::new();
        header_bytes(&mut r, 100, OP_REPLY);
        r[8..12].copy_from_slice(&7i32.to_le_bytes());
        r.extend_from_slice(&0i32.to_le_bytes());
        r.extend_from_slice(&0i64.to_le_bytes());
        r.extend_from_slice(&0i32.to_le_bytes());
        r.extend_from_slice(&1i32.to_le_bytes());
        r.extend_from_slice(&bytes);
        patch_length(&mut r);
        assert_eq!(read_reply(&mut &r[..], 7).unwrap(), d);
    }

    #[test]
    fn checksum_and_sequence_sections_are_handled() {
        let d = doc! {"ok": 1.0};
        let mut m = reply_msg(1, 5, &d);
        m[16..20].copy_from_slice(&1u32.to_le_bytes());
        // A kind-1 section before the checksum.
        let seq = doc! {"x": 1i32}.to_vec().unwrap();
        m.push(1);
        m.extend_from_slice(&((4 + 2 + seq.len()) as i32).to_le_bytes());
        m.extend_from_slice(b"d\0");
        m.extend_from_slice(&seq);
        m.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        patch_length(&mut m);
        assert_eq!(read_reply(&mut &m[..], 5).unwrap(), d);
    }

    fn wire_err(bytes: &[u8], id: i32) -> WireError {
        match read_reply(&mut &bytes[..], id) {
            Err(ReadError::Wire(w)) => w,
            other => panic!("expected a wire error, got {other:?}"),
        }
    }

    #[test]
    fn length_limits() {
        let mut h = [0u8; HEADER_LEN];
        for bad in [0i32, 15, 16, 20, -1, i32::MAX, (MAX_MESSAGE_LEN + 1) as i32] {
            h[..4].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(wire_err(&h, 0), WireError::BadLength(bad as i64), "{bad}");
        }
        // The limit itself is accepted as a header (the body then is missing).
        h[..4].copy_from_slice(&(MAX_MESSAGE_LEN as i32).to_le_bytes());
        h[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
        assert!(matches!(
            wire_err(&h, 0),
            WireError::Truncated { got: 16, .. }
        ));
    }

    #[test]
    fn text_and_closed_peers() {
        let e = wire_err(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 1);
        assert_eq!(
            e.to_string(),
            "not a MongoDB server: it answered with text `HTTP/1.1 400 Bad Request` (an HTTP server is listening on this port)"
        );
        assert!(matches!(
            wire_err(b"220 mail ESMTP\r\n", 1),
            WireError::Text { .. }
        ));
        assert_eq!(wire_err(b"", 1), WireError::ClosedBeforeReply);
        assert!(matches!(
            wire_err(&[1, 2, 3], 1),
            WireError::Truncated {
                got: 3,
                expected: 16
            }
        ));
    }

    #[test]
    fn malformed_bodies() {
        let good = reply_msg(1, 3, &doc! {"ok": 1.0});
        assert!(matches!(
            wire_err(&good, 4),
            WireError::WrongResponseTo {
                got: 3,
                expected: 4
            }
        ));
        let mut bad_op = good.clone();
        bad_op[12..16].copy_from_slice(&2004i32.to_le_bytes());
        assert_eq!(wire_err(&bad_op, 3), WireError::UnexpectedOpCode(2004));
        // Document length disagreeing with the section.
        let mut short = good.clone();
        short[21..25].copy_from_slice(&100i32.to_le_bytes());
        assert!(matches!(wire_err(&short, 3), WireError::Body(_)));
        // Garbage inside the document: an element type that does not exist.
        let mut garbage = good.clone();
        garbage[25] = 0x77;
        assert!(matches!(wire_err(&garbage, 3), WireError::Body(m) if m.contains("BSON")));
        // Unknown section kind.
        let mut kind = good.clone();
        kind[20] = 9;
        assert!(matches!(wire_err(&kind, 3), WireError::Body(m) if m.contains("section kind 9")));
        // Body cut short by a closing peer.
        assert!(matches!(
            wire_err(&good[..good.len() - 2], 3),
            WireError::Truncated { .. }
        ));
        // Random bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut m = good.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                let i = 16 + (x as usize >> 8) % (m.len() - 16);
                m[i] = (x >> 16) as u8;
            }
            let _ = read_reply(&mut &m[..], 3);
        }
    }
}
