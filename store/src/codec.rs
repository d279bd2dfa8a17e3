//! Compact binary encodings stored in BLOB columns: metrics of a result and
//! latency histograms of a rollup. Both are sequences of LEB128 varints so a
//! typical value costs one or two bytes.

use crate::error::{Result, StoreError};

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| StoreError::Corrupt("truncated varint".into()))?;
        *pos += 1;
        if shift >= 64 {
            return Err(StoreError::Corrupt("varint too long".into()));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8]> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| StoreError::Corrupt("truncated value".into()))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

/// Value kinds of the metrics blob (low two bits of each entry's tag).
const KIND_INT: u64 = 0; // zigzag varint: integral values (counts, codes, bytes)
const KIND_F32: u64 = 1; // 4 bytes: values exactly representable as f32
const KIND_F64: u64 = 2; // 8 bytes: everything else

/// Integral values up to 2^53 round-trip exactly through i64 and f64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Encodes `(metric name id, value)` pairs. Each entry is
/// `varint(name_id << 2 | kind)` followed by the value in the smallest exact
/// form: a zigzag varint for integral values, an f32, or an f64. Encoding is
/// lossless (bit-exact, including -0.0 and NaN payloads).
pub(crate) fn encode_metrics(metrics: &[(i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(metrics.len() * 4);
    for &(id, v) in metrics {
        let tag = (id as u64) << 2;
        if v.abs() <= MAX_EXACT_INT && ((v as i64) as f64).to_bits() == v.to_bits() {
            put_varint(&mut out, tag | KIND_INT);
            put_varint(&mut out, zigzag(v as i64));
        } else if f64::from(v as f32).to_bits() == v.to_bits() {
            put_varint(&mut out, tag | KIND_F32);
            out.extend_from_slice(&(v as f32).to_le_bytes());
        } else {
            put_varint(&mut out, tag | KIND_F64);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

pub(crate) fn decode_metrics(buf: &[u8]) -> Result<Vec<(i64, f64)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = get_varint(buf, &mut pos)?;
        let id = (tag >> 2) as i64;
        let v = match tag & 3 {
            KIND_INT => unzigzag(get_varint(buf, &mut pos)?) as f64,
            KIND_F32 => f64::from(f32::from_le_bytes(
                take(buf, &mut pos, 4)?.try_into().expect("4 bytes"),
            )),
            KIND_F64 => f64::from_le_bytes(take(buf, &mut pos, 8)?.try_into().expect("8 bytes")),
            k => return Err(StoreError::Corrupt(format!("unknown metric kind {k}"))),
        };
        out.push((id, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p).unwrap(), v);
            assert_eq!(p, b.len());
        }
        assert!(get_varint(&[0x80], &mut 0).is_err());
    }

    #[test]
    fn metrics_roundtrip_bit_exact_and_compact() {
        let m = vec![
            (1, 200.0),
            (2, -3.0),
            (3, 0.5),
            (4, 0.1),
            (5, -0.0),
            (6, f64::NAN),
            (7, f64::INFINITY),
            (300, 1e300),
            (8, 12_345_678_901.0),
        ];
        let b = encode_metrics(&m);
        let d = decode_metrics(&b).unwrap();
        assert_eq!(d.len(), m.len());
        for ((ia, a), (ib, bv)) in m.iter().zip(&d) {
            assert_eq!(ia, ib);
            assert_eq!(a.to_bits(), bv.to_bits(), "{a} vs {bv}");
        }
        // An integral metric with a small name id costs 3 bytes.
        assert_eq!(encode_metrics(&[(1, 200.0)]).len(), 3);
        assert_eq!(encode_metrics(&[(1, 0.5)]).len(), 5);
        assert!(decode_metrics(&[0x03]).is_err());
        assert!(decode_metrics(&[0x06, 1, 2]).is_err());
    }
}
