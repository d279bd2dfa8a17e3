//! Time-series blocks: the compact layout of raw results (schema V3).
//!
//! A sensor's in-order results (each newer than every result stored before
//! it) are appended to its *open block*, one `result_blocks` row keyed
//! `(sensor_id, first_ms)` whose `data` blob holds the results
//! delta-encoded against their predecessor in the block. The writer keeps
//! each sensor's open block in memory and rewrites its row once per batch,
//! in the batch's transaction (like the rollups), so every committed result
//! is in a committed block. A block is closed (a new one started) once its
//! data reaches [`BLOCK_MAX_BYTES`], which keeps the row inside one b-tree
//! page (no overflow pages). Blocks of a sensor therefore never overlap and
//! are ordered by `first_ms`, which lets history reads stop early.
//!
//! Results arriving out of order (not newer than the sensor's latest) and
//! results of V2 databases stay plain `results` rows; readers merge both.
//!
//! # Entry encoding
//!
//! Each entry is, relative to the previous entry of the block (the first
//! one relative to `first_ms` with a previous interval of 0):
//!
//! * `varint(zigzag(Δt − previous Δt))`: 0 (one byte) at a steady interval;
//! * a flags byte: bits 0-2 the `results.status` value (status code |
//!   maintenance bit), [`F_MSG_SAME`], [`F_NO_METRICS`], [`F_NAMES_SAME`],
//!   [`F_KINDS_SAME`]; bit 7 is reserved (0);
//! * `varint(message id)` unless `F_MSG_SAME`;
//! * `varint(latency µs)`;
//! * metrics unless `F_NO_METRICS`: `varint(n)` and `n` `varint(name id)`
//!   unless `F_NAMES_SAME` (same names, in order, as the previous entry
//!   with metrics), then `n` 4-bit value kinds (two per byte) unless
//!   `F_KINDS_SAME`, then each value's payload by kind (see [`Kind`]).
//!
//! A typical HTTP check (steady interval, same message, latency metric
//! equal to the latency column, other metrics unchanged) costs 4 bytes.

use crate::codec::{get_varint, put_varint};
use crate::error::{Result, StoreError};

/// A block is closed once its data is this large; an entry that would
/// take it past this starts a new block instead. Together with the key
/// columns this stays under SQLite's ~1,000-byte local payload limit of a
/// `WITHOUT ROWID` row on 4 KiB pages, so blocks never use overflow pages,
/// and an open block rewritten every batch costs little.
pub(crate) const BLOCK_MAX_BYTES: usize = 800;

/// Flag: same message id as the previous entry.
pub(crate) const F_MSG_SAME: u8 = 1 << 3;
/// Flag: the result has no metrics.
pub(crate) const F_NO_METRICS: u8 = 1 << 4;
/// Flag: same metric names (ids, in order) as the previous entry with metrics.
pub(crate) const F_NAMES_SAME: u8 = 1 << 5;
/// Flag: same value kinds as the previous entry with metrics.
pub(crate) const F_KINDS_SAME: u8 = 1 << 6;
const F_STATUS: u8 = 0b111;
const F_RESERVED: u8 = 1 << 7;

/// Value kinds of a metric in a block entry (4 bits each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Bit-identical to the same metric of the previous entry (only with
    /// `F_NAMES_SAME`); no payload.
    Same = 0,
    /// Equals `latency_us / 1000` (a `latency_ms` metric); no payload.
    LatencyMs = 1,
    /// Integral: zigzag varint.
    Int = 2,
    /// `n / 10`, `n / 100`, `n / 1000` (bit-exact): zigzag varint of `n`.
    Dec1 = 3,
    Dec2 = 4,
    Dec3 = 5,
    /// Exactly representable as f32: 4 bytes.
    F32 = 6,
    /// Anything else: 8 bytes.
    F64 = 7,
}

impl Kind {
    fn from_u8(k: u8) -> Result<Kind> {
        Ok(match k {
            0 => Kind::Same,
            1 => Kind::LatencyMs,
            2 => Kind::Int,
            3 => Kind::Dec1,
            4 => Kind::Dec2,
            5 => Kind::Dec3,
            6 => Kind::F32,
            7 => Kind::F64,
            _ => return Err(StoreError::Corrupt(format!("unknown block value kind {k}"))),
        })
    }
}

/// Integral values up to 2^53 round-trip exactly through i64 and f64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// One raw result as stored (ids interned by the writer).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Raw {
    pub at_ms: i64,
    /// `Status::code() | MAINT_BIT` when in maintenance.
    pub status: i64,
    pub latency_us: i64,
    /// `messages.id`, 0 = empty message.
    pub message_id: i64,
    /// `(metric name id, value)`; empty = none.
    pub metrics: Vec<(i64, f64)>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn latency_ms(latency_us: i64) -> f64 {
    latency_us as f64 / 1000.0
}

fn exact_int(v: f64) -> Option<i64> {
    (v.abs() <= MAX_EXACT_INT && ((v as i64) as f64).to_bits() == v.to_bits()).then_some(v as i64)
}

/// The smallest exact kind of `v` (not `Same`).
fn kind_of(v: f64, latency_us: i64) -> (Kind, i64) {
    if v.to_bits() == latency_ms(latency_us).to_bits() {
        return (Kind::LatencyMs, 0);
    }
    if let Some(n) = exact_int(v) {
        return (Kind::Int, n);
    }
    for (kind, scale) in [
        (Kind::Dec1, 10.0),
        (Kind::Dec2, 100.0),
        (Kind::Dec3, 1000.0),
    ] {
        let n = (v * scale).round();
        if let Some(n) = exact_int(n)
            && (n as f64 / scale).to_bits() == v.to_bits()
        {
            return (kind, n);
        }
    }
    if f64::from(v as f32).to_bits() == v.to_bits() {
        return (Kind::F32, 0);
    }
    (Kind::F64, 0)
}

/// Decoder/encoder state: the previous entry.
#[derive(Debug, Clone, Default)]
struct Prev {
    at_ms: i64,
    delta: i64,
    message_id: i64,
    names: Vec<i64>,
    kinds: Vec<Kind>,
    values: Vec<f64>,
}

/// A block being built (the writer's open block) or decoded.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u32,
    pub data: Vec<u8>,
    prev: Prev,
}

impl Block {
    /// An empty block whose first result will be at `first_ms`.
    pub(crate) fn new(first_ms: i64) -> Block {
        Block {
            first_ms,
            last_ms: first_ms,
            count: 0,
            data: Vec::new(),
            prev: Prev {
                at_ms: first_ms,
                ..Prev::default()
            },
        }
    }

    /// Encodes `rows` (ascending, distinct times) as one block; `None` if empty.
    pub(crate) fn encode_all(rows: &[Raw]) -> Option<Block> {
        let mut b = Block::new(rows.first()?.at_ms);
        for r in rows {
            b.push(r);
        }
        Some(b)
    }

    /// Rebuilds a stored block (with its encoder state, so it can be
    /// appended to) and returns its results too.
    pub(crate) fn load(first_ms: i64, data: Vec<u8>) -> Result<(Block, Vec<Raw>)> {
        let mut b = Block::new(first_ms);
        let rows = b.decode_into(&data)?;
        b.data = data;
        b.count = rows.len() as u32;
        b.last_ms = rows.last().map_or(first_ms, |r| r.at_ms);
        Ok((b, rows))
    }

    /// Results of a stored block, oldest first.
    pub(crate) fn decode(first_ms: i64, data: &[u8]) -> Result<Vec<Raw>> {
        Block::new(first_ms).decode_into(data)
    }

    /// Appends `r` (newer than `last_ms`) unless that would take the block
    /// past [`BLOCK_MAX_BYTES`]; an empty block takes any result. Returns
    /// whether it was appended (if not, the block is unchanged: full).
    pub(crate) fn try_push(&mut self, r: &Raw) -> bool {
        if self.count == 0 {
            self.push(r);
            return true;
        }
        let (saved, len, last) = (self.prev.clone(), self.data.len(), self.last_ms);
        self.push(r);
        if self.data.len() <= BLOCK_MAX_BYTES {
            return true;
        }
        self.data.truncate(len);
        self.prev = saved;
        self.last_ms = last;
        self.count -= 1;
        false
    }

    /// Appends `r`, which must be newer than every result in the block.
    pub(crate) fn push(&mut self, r: &Raw) {
        debug_assert!(self.count == 0 || r.at_ms > self.last_ms);
        let mut enc = Encoder(std::mem::take(&mut self.prev));
        enc.encode_entry(&mut self.data, r);
        self.prev = enc.0;
        self.last_ms = r.at_ms;
        self.count += 1;
    }

    fn decode_into(&mut self, buf: &[u8]) -> Result<Vec<Raw>> {
        let mut pos = 0;
        let mut out = Vec::new();
        let p = &mut self.prev;
        while pos < buf.len() {
            let dod = unzigzag(get_varint(buf, &mut pos)?);
            let delta = p
                .delta
                .checked_add(dod)
                .ok_or_else(|| StoreError::Corrupt("block time overflow".into()))?;
            let at_ms = p
                .at_ms
                .checked_add(delta)
                .ok_or_else(|| StoreError::Corrupt("block time overflow".into()))?;
            let flags = *buf
                .get(pos)
                .ok_or_else(|| StoreError::Corrupt("truncated block entry".into()))?;
            pos += 1;
            if flags & F_RESERVED != 0 {
                return Err(StoreError::Corrupt("reserved block flag set".into()));
            }
            let message_id = if flags & F_MSG_SAME != 0 {
                p.message_id
            } else {
                get_varint(buf, &mut pos)? as i64
            };
            let latency_us = get_varint(buf, &mut pos)? as i64;
            let mut metrics = Vec::new();
            if flags & F_NO_METRICS == 0 {
                let names_same = flags & F_NAMES_SAME != 0;
                if !names_same {
                    let n = get_varint(buf, &mut pos)? as usize;
                    if n > buf.len() {
                        return Err(StoreError::Corrupt("block metric count".into()));
                    }
                    p.names.clear();
                    for _ in 0..n {
                        p.names.push(get_varint(buf, &mut pos)? as i64);
                    }
                }
                let n = p.names.len();
                if flags & F_KINDS_SAME == 0 {
                    p.kinds.clear();
                    for i in 0..n {
                        let byte = *buf
                            .get(pos + i / 2)
                            .ok_or_else(|| StoreError::Corrupt("truncated block kinds".into()))?;
                        p.kinds.push(Kind::from_u8(if i % 2 == 0 {
                            byte & 15
                        } else {
                            byte >> 4
                        })?);
                    }
                    pos += n.div_ceil(2);
                } else if p.kinds.len() != n {
                    return Err(StoreError::Corrupt("block kinds do not match names".into()));
                }
                let mut values = Vec::with_capacity(n);
                for (i, kind) in p.kinds.iter().enumerate() {
                    let v = match kind {
                        Kind::Same => {
                            if !names_same {
                                return Err(StoreError::Corrupt(
                                    "repeated value without names".into(),
                                ));
                            }
                            *p.values.get(i).ok_or_else(|| {
                                StoreError::Corrupt("repeated value missing".into())
                            })?
                        }
                        Kind::LatencyMs => latency_ms(latency_us),
                        Kind::Int => unzigzag(get_varint(buf, &mut pos)?) as f64,
                        Kind::Dec1 => unzigzag(get_varint(buf, &mut pos)?) as f64 / 10.0,
                        Kind::Dec2 => unzigzag(get_varint(buf, &mut pos)?) as f64 / 100.0,
                        Kind::Dec3 => unzigzag(get_varint(buf, &mut pos)?) as f64 / 1000.0,
                        Kind::F32 => {
                            let b = take(buf, &mut pos, 4)?;
                            f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        }
                        Kind::F64 => {
                            let b = take(buf, &mut pos, 8)?;
                            f64::from_le_bytes(b.try_into().expect("8 bytes"))
                        }
                    };
                    values.push(v);
                }
                metrics = p
                    .names
                    .iter()
                    .copied()
                    .zip(values.iter().copied())
                    .collect();
                p.values = values;
            }
            p.at_ms = at_ms;
            p.delta = delta;
            p.message_id = message_id;
            out.push(Raw {
                at_ms,
                status: i64::from(flags & F_STATUS),
                latency_us,
                message_id,
                metrics,
            });
        }
        Ok(out)
    }
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8]> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| StoreError::Corrupt("truncated block value".into()))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

struct Encoder(Prev);

impl Encoder {
    fn encode_entry(&mut self, out: &mut Vec<u8>, r: &Raw) {
        let p = &mut self.0;
        let delta = r.at_ms.wrapping_sub(p.at_ms);
        put_varint(out, zigzag(delta.wrapping_sub(p.delta)));
        let status = (r.status as u8) & F_STATUS;
        let mut flags = status;
        let msg_same = r.message_id == p.message_id;
        if msg_same {
            flags |= F_MSG_SAME;
        }
        let latency = r.latency_us.max(0);
        if r.metrics.is_empty() {
            flags |= F_NO_METRICS;
            out.push(flags);
            if !msg_same {
                put_varint(out, r.message_id as u64);
            }
            put_varint(out, latency as u64);
        } else {
            let names_same = r.metrics.len() == p.names.len()
                && r.metrics.iter().zip(&p.names).all(|((id, _), n)| id == n);
            let mut kinds = Vec::with_capacity(r.metrics.len());
            let mut ints = Vec::with_capacity(r.metrics.len());
            for (i, &(_, v)) in r.metrics.iter().enumerate() {
                if names_same && p.values[i].to_bits() == v.to_bits() {
                    kinds.push(Kind::Same);
                    ints.push(0);
                } else {
                    let (k, n) = kind_of(v, latency);
                    kinds.push(k);
                    ints.push(n);
                }
            }
            let kinds_same = kinds == p.kinds;
            if names_same {
                flags |= F_NAMES_SAME;
            }
            if kinds_same {
                flags |= F_KINDS_SAME;
            }
            out.push(flags);
            if !msg_same {
                put_varint(out, r.message_id as u64);
            }
            put_varint(out, latency as u64);
            if !names_same {
                put_varint(out, r.metrics.len() as u64);
                for &(id, _) in &r.metrics {
                    put_varint(out, id as u64);
                }
            }
            if !kinds_same {
                for pair in kinds.chunks(2) {
                    let hi = pair.get(1).map_or(0, |k| *k as u8);
                    out.push(pair[0] as u8 | hi << 4);
                }
            }
            for ((&(_, v), k), n) in r.metrics.iter().zip(&kinds).zip(&ints) {
                match k {
                    Kind::Same | Kind::LatencyMs => {}
                    Kind::Int | Kind::Dec1 | Kind::Dec2 | Kind::Dec3 => put_varint(out, zigzag(*n)),
                    Kind::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
                    Kind::F64 => out.extend_from_slice(&v.to_le_bytes()),
                }
            }
            if !names_same {
                p.names = r.metrics.iter().map(|m| m.0).collect();
            }
            p.kinds = kinds;
            p.values = r.metrics.iter().map(|m| m.1).collect();
        }
        p.at_ms = r.at_ms;
        p.delta = delta;
        p.message_id = r.message_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        at_ms: i64,
        status: i64,
        latency_us: i64,
        message_id: i64,
        metrics: &[(i64, f64)],
    ) -> Raw {
        Raw {
            at_ms,
            status,
            latency_us,
            message_id,
            metrics: metrics.to_vec(),
        }
    }

    fn assert_same(a: &[Raw], b: &[Raw]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(
                (
                    x.at_ms,
                    x.status,
                    x.latency_us,
                    x.message_id,
                    x.metrics.len()
                ),
                (
                    y.at_ms,
                    y.status,
                    y.latency_us,
                    y.message_id,
                    y.metrics.len()
                )
            );
            for (m, n) in x.metrics.iter().zip(&y.metrics) {
                assert_eq!(m.0, n.0);
                assert_eq!(m.1.to_bits(), n.1.to_bits(), "{} vs {}", m.1, n.1);
            }
        }
    }

    #[test]
    fn roundtrip_bit_exact_with_every_kind_and_flag() {
        let rows = vec![
            raw(
                1_000,
                0,
                1_234,
                1,
                &[(1, 1.234), (2, 200.0), (3, 2.0), (4, 0.0)],
            ),
            raw(
                2_000,
                0,
                2_500,
                1,
                &[(1, 2.5), (2, 200.0), (3, 2.0), (4, 0.0)],
            ),
            raw(
                3_001,
                2 | 4,
                0,
                7,
                &[(1, 0.0), (2, 503.0), (3, 2.0), (4, 0.0)],
            ),
            raw(3_500, 3, 9, 0, &[]),
            raw(
                4_000,
                1,
                12,
                0,
                &[(9, 0.1), (8, -0.25), (7, 1.005), (6, 0.5)],
            ),
            raw(
                5_000,
                0,
                12,
                0,
                &[(9, f64::NAN), (8, -0.0), (7, 1e300), (6, f64::INFINITY)],
            ),
            raw(
                6_000,
                0,
                12,
                0,
                &[(9, f64::NAN), (8, -0.0), (7, 1e300), (6, -12.5)],
            ),
            raw(6_001, 0, i64::from(u32::MAX), 300, &[(1, -3.0)]),
            raw(7_000, 0, 1, 0, &[]),
            raw(i64::MAX / 2, 0, 1, 0, &[(1, 12_345_678_901.0), (2, 0.001)]),
        ];
        let b = Block::encode_all(&rows).unwrap();
        assert_eq!((b.first_ms, b.last_ms, b.count), (1_000, i64::MAX / 2, 10));
        assert_same(&Block::decode(b.first_ms, &b.data).unwrap(), &rows);
        // Loading restores the encoder state: appending continues the stream.
        let (mut l, got) = Block::load(b.first_ms, b.data.clone()).unwrap();
        assert_same(&got, &rows);
        let more = raw(
            i64::MAX / 2 + 1_000,
            0,
            1,
            0,
            &[(1, 12_345_678_901.0), (2, 0.001)],
        );
        l.push(&more);
        let mut all = rows.clone();
        all.push(more);
        assert_same(&Block::decode(l.first_ms, &l.data).unwrap(), &all);
        assert_eq!(l.count, 11);
    }

    #[test]
    fn typical_http_result_costs_four_bytes() {
        let mut b = Block::new(0);
        let metrics =
            |lat: i64, code: f64| vec![(1, lat as f64 / 1000.0), (2, code), (3, 2.0), (4, 0.0)];
        b.push(&raw(0, 0, 1_234, 1, &metrics(1_234, 200.0)));
        b.push(&raw(1_000, 0, 1_000, 1, &metrics(1_000, 200.0)));
        let first = b.data.len();
        for i in 2..=101 {
            b.push(&raw(
                i * 1_000,
                0,
                800 + i * 37,
                1,
                &metrics(800 + i * 37, 200.0),
            ));
        }
        assert_eq!(b.data.len() - first, 100 * 4);
        // A failure changes message, status and one metric: a few bytes more.
        let before = b.data.len();
        b.push(&raw(102_000, 2, 4_000, 2, &metrics(4_000, 503.0)));
        assert!(b.data.len() - before <= 9, "{}", b.data.len() - before);
    }

    #[test]
    fn try_push_limits_block_size_and_leaves_a_full_block_unchanged() {
        let mut b = Block::new(0);
        let big: Vec<(i64, f64)> = (0..200).map(|i| (i, 0.123_456_789 + i as f64)).collect();
        assert!(
            b.try_push(&raw(0, 0, 1, 0, &big)),
            "an empty block takes anything"
        );
        assert!(b.data.len() > BLOCK_MAX_BYTES);
        let full = b.data.clone();
        assert!(!b.try_push(&raw(1, 0, 1, 0, &[(1, 0.3)])));
        assert_eq!((b.data.clone(), b.count, b.last_ms), (full, 1, 0));
        let mut b = Block::new(0);
        let mut t = 0;
        while b.try_push(&raw(t, 0, 5_000 + t / 60_000 % 7, 3, &[(1, 0.5)])) {
            t += 60_000;
        }
        assert!(b.data.len() <= BLOCK_MAX_BYTES && b.data.len() > BLOCK_MAX_BYTES - 8);
        // The state was restored: appending elsewhere still decodes right.
        let rows = Block::decode(0, &b.data).unwrap();
        assert_eq!(rows.len() as u32, b.count);
        assert_eq!(rows.last().unwrap().at_ms, b.last_ms);
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let b = Block::encode_all(&[raw(0, 0, 1, 5, &[(1, 0.5), (2, 7.0)])]).unwrap();
        for cut in 0..b.data.len() {
            let _ = Block::decode(0, &b.data[..cut]);
        }
        assert!(Block::decode(0, &[0, F_RESERVED, 0]).is_err());
        // Kind 15 does not exist.
        assert!(Block::decode(0, &[0, 0, 0, 0, 1, 1, 0x0f]).is_err());
        // A repeated value with no previous entry.
        assert!(Block::decode(0, &[0, F_NAMES_SAME | F_KINDS_SAME, 0, 0]).is_ok());
        assert!(Block::decode(0, &[0, 0, 0, 0, 1, 1, 0x00]).is_err());
        let mut rng = 12345u64;
        for _ in 0..2_000 {
            let len = (rng % 24) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (rng >> 33) as u8
                })
                .collect();
            let _ = Block::decode(0, &buf);
        }
    }
}
