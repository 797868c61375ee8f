//! Protobuf wire format: a bounds-checked reader over a byte slice and an append-only writer.
//!
//! The reader never allocates on its own. Callers only allocate after a length has been
//! checked against the bytes that are actually left, so memory stays proportional to the
//! input no matter what a corrupt length prefix claims.

use crate::error::{Error, Result};

/// Longest valid varint: ten 7-bit groups cover 64 bits.
const MAX_VARINT_LEN: usize = 10;

/// The wire types this crate understands. Groups (3 and 4) are deprecated and never used by
/// ONNX, so they are rejected rather than skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    I64,
    Len,
    I32,
}

impl WireType {
    fn describe(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::I64 => "64-bit",
            WireType::Len => "length-delimited",
            WireType::I32 => "32-bit",
        }
    }
}

/// Sequential reader over one message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Message name used in error messages.
    context: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], context: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            context,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self) -> Error {
        Error::Truncated {
            context: self.context,
        }
    }

    pub(crate) fn malformed(&self, detail: impl Into<String>) -> Error {
        Error::Malformed {
            context: self.context,
            detail: detail.into(),
        }
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.truncated());
            };
            self.pos += 1;
            // The tenth byte may only carry the 64th bit; anything more would be silently lost.
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(self.malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn fixed32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Payload of a length-delimited field, borrowed from the input.
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        // A length that does not even fit in usize certainly exceeds what is left.
        let len = usize::try_from(len).map_err(|_| self.truncated())?;
        self.take(len)
    }

    /// Next field key, or `None` at the end of the message.
    pub(crate) fn key(&mut self) -> Result<Option<(u32, WireType)>> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.malformed(format!("invalid field number {field}")));
        }
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::I64,
            2 => WireType::Len,
            5 => WireType::I32,
            3 | 4 => {
                return Err(self.malformed(format!(
                    "field {field} uses protobuf groups, which ONNX never does"
                )))
            }
            other => {
                return Err(self.malformed(format!("field {field} has invalid wire type {other}")))
            }
        };
        Ok(Some((field as u32, wire_type)))
    }

    /// Skips the value of a field this crate does not model.
    pub(crate) fn skip(&mut self, wire_type: WireType) -> Result<()> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::I64 => self.take(8).map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::I32 => self.take(4).map(drop),
        }
    }

    /// Errors unless a known field arrived with the wire type its declaration implies.
    pub(crate) fn expect(&self, field: u32, got: WireType, want: WireType) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(self.malformed(format!(
                "field {field} has {} wire type, expected {}",
                got.describe(),
                want.describe()
            )))
        }
    }

    // --- typed scalar fields -------------------------------------------------------------

    pub(crate) fn int64(&mut self, field: u32, wt: WireType) -> Result<i64> {
        self.expect(field, wt, WireType::Varint)?;
        Ok(self.varint()? as i64)
    }

    /// Protobuf int32 and enum values travel as sign-extended varints; keeping the low 32 bits
    /// is what every protobuf runtime does.
    pub(crate) fn int32(&mut self, field: u32, wt: WireType) -> Result<i32> {
        self.expect(field, wt, WireType::Varint)?;
        Ok(self.varint()? as i32)
    }

    pub(crate) fn float(&mut self, field: u32, wt: WireType) -> Result<f32> {
        self.expect(field, wt, WireType::I32)?;
        Ok(f32::from_bits(self.fixed32()?))
    }

    pub(crate) fn bytes(&mut self, field: u32, wt: WireType) -> Result<&'a [u8]> {
        self.expect(field, wt, WireType::Len)?;
        self.len_delimited()
    }

    /// ONNX names are meant to be UTF-8, but proto2 does not enforce it, so invalid bytes are
    /// replaced instead of failing the whole model over a cosmetic name.
    pub(crate) fn string(&mut self, field: u32, wt: WireType) -> Result<String> {
        Ok(String::from_utf8_lossy(self.bytes(field, wt)?).into_owned())
    }

    // --- repeated numeric fields ---------------------------------------------------------
    //
    // Writers may use packed or unpacked encoding for any repeated scalar, and a parser must
    // accept both (and even a mix of the two for one field).

    pub(crate) fn push_varints<T>(
        &mut self,
        field: u32,
        wt: WireType,
        out: &mut Vec<T>,
        conv: impl Fn(u64) -> T,
    ) -> Result<()> {
        match wt {
            WireType::Varint => out.push(conv(self.varint()?)),
            WireType::Len => {
                let mut packed = Reader::new(self.len_delimited()?, self.context);
                while !packed.is_empty() {
                    out.push(conv(packed.varint()?));
                }
            }
            _ => self.expect(field, wt, WireType::Varint)?,
        }
        Ok(())
    }

    pub(crate) fn push_fixed32<T>(
        &mut self,
        field: u32,
        wt: WireType,
        out: &mut Vec<T>,
        conv: impl Fn(u32) -> T,
    ) -> Result<()> {
        match wt {
            WireType::I32 => out.push(conv(self.fixed32()?)),
            WireType::Len => {
                let data = self.len_delimited()?;
                if data.len() % 4 != 0 {
                    return Err(self.malformed(format!(
                        "packed field {field} has {} bytes, not a multiple of 4",
                        data.len()
                    )));
                }
                out.reserve(data.len() / 4);
                out.extend(
                    data.chunks_exact(4)
                        .map(|c| conv(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
                );
            }
            _ => self.expect(field, wt, WireType::I32)?,
        }
        Ok(())
    }

    pub(crate) fn push_fixed64<T>(
        &mut self,
        field: u32,
        wt: WireType,
        out: &mut Vec<T>,
        conv: impl Fn(u64) -> T,
    ) -> Result<()> {
        match wt {
            WireType::I64 => out.push(conv(self.fixed64()?)),
            WireType::Len => {
                let data = self.len_delimited()?;
                if data.len() % 8 != 0 {
                    return Err(self.malformed(format!(
                        "packed field {field} has {} bytes, not a multiple of 8",
                        data.len()
                    )));
                }
                out.reserve(data.len() / 8);
                out.extend(data.chunks_exact(8).map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    conv(u64::from_le_bytes(a))
                }));
            }
            _ => self.expect(field, wt, WireType::I64)?,
        }
        Ok(())
    }
}

/// Appends protobuf fields to a byte buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

fn encode_varint(mut v: u64, out: &mut [u8; MAX_VARINT_LEN]) -> usize {
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

impl Writer {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn varint(&mut self, v: u64) {
        let mut tmp = [0u8; MAX_VARINT_LEN];
        let n = encode_varint(v, &mut tmp);
        self.buf.extend_from_slice(&tmp[..n]);
    }

    fn key(&mut self, field: u32, wt: WireType) {
        let code = match wt {
            WireType::Varint => 0,
            WireType::I64 => 1,
            WireType::Len => 2,
            WireType::I32 => 5,
        };
        self.varint((u64::from(field) << 3) | code);
    }

    /// Writes an int64 (or sign-extended int32/enum) field unconditionally.
    pub(crate) fn int64(&mut self, field: u32, v: i64) {
        self.key(field, WireType::Varint);
        self.varint(v as u64);
    }

    /// Proto2 optional scalars: a zero value is indistinguishable from "unset" for ONNX, so
    /// it is left out like the reference implementation does for unset fields.
    pub(crate) fn int64_nonzero(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.int64(field, v);
        }
    }

    pub(crate) fn float(&mut self, field: u32, v: f32) {
        self.key(field, WireType::I32);
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, WireType::Len);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn string_nonempty(&mut self, field: u32, v: &str) {
        if !v.is_empty() {
            self.bytes(field, v.as_bytes());
        }
    }

    /// Writes a length-delimited field whose body is produced by `body`.
    ///
    /// The body is written in place and the length prefix inserted afterwards, so a large
    /// tensor is not copied into a temporary buffer at every nesting level.
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        self.key(field, WireType::Len);
        let start = self.buf.len();
        body(self);
        let len = self.buf.len() - start;
        let mut tmp = [0u8; MAX_VARINT_LEN];
        let n = encode_varint(len as u64, &mut tmp);
        self.buf.splice(start..start, tmp[..n].iter().copied());
    }

    /// Unpacked repeated varints, the default encoding of proto2 `repeated int64`.
    pub(crate) fn repeated_int64(&mut self, field: u32, values: &[i64]) {
        for &v in values {
            self.int64(field, v);
        }
    }

    /// Unpacked repeated floats, the default encoding of proto2 `repeated float`.
    pub(crate) fn repeated_float(&mut self, field: u32, values: &[f32]) {
        for &v in values {
            self.float(field, v);
        }
    }

    pub(crate) fn packed_varints(
        &mut self,
        field: u32,
        values: impl ExactSizeIterator<Item = u64>,
    ) {
        if values.len() == 0 {
            return;
        }
        self.message(field, |w| {
            for v in values {
                w.varint(v);
            }
        });
    }

    pub(crate) fn packed_fixed32(
        &mut self,
        field: u32,
        values: impl ExactSizeIterator<Item = u32>,
    ) {
        if values.len() == 0 {
            return;
        }
        self.key(field, WireType::Len);
        self.varint(values.len() as u64 * 4);
        for v in values {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    pub(crate) fn packed_fixed64(
        &mut self,
        field: u32,
        values: impl ExactSizeIterator<Item = u64>,
    ) {
        if values.len() == 0 {
            return;
        }
        self.key(field, WireType::Len);
        self.varint(values.len() as u64 * 8);
        for v in values {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut w = Writer::default();
        w.varint(v);
        w.into_bytes()
    }

    #[test]
    fn varint_round_trip_and_canonical_length() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            i64::MAX as u64,
            u64::MAX,
        ] {
            let b = varint_bytes(v);
            assert_eq!(Reader::new(&b, "t").varint().unwrap(), v);
        }
        assert_eq!(varint_bytes(300), [0xac, 0x02]);
        assert_eq!(varint_bytes(u64::MAX).len(), 10);
        // Negative int64 values always take ten bytes.
        assert_eq!(varint_bytes(-1i64 as u64).len(), 10);
    }

    #[test]
    fn varint_rejects_truncation_and_overflow() {
        assert!(matches!(
            Reader::new(&[0x80, 0x80], "t").varint(),
            Err(Error::Truncated { .. })
        ));
        let too_long = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&too_long, "t").varint(),
            Err(Error::Malformed { .. })
        ));
        let mut overflow = [0xffu8; 10];
        overflow[9] = 0x02;
        assert!(Reader::new(&overflow, "t").varint().is_err());
        // Non-canonical but valid: padding with continuation bytes.
        assert_eq!(Reader::new(&[0x81, 0x80, 0x00], "t").varint().unwrap(), 1);
    }

    #[test]
    fn keys_reject_groups_bad_wire_types_and_field_zero() {
        for bad in [[0x0b], [0x0c], [0x0e], [0x0f], [0x02]] {
            assert!(Reader::new(&bad, "t").key().is_err(), "{bad:?}");
        }
        let mut r = Reader::new(&[0x0a], "t");
        assert_eq!(r.key().unwrap(), Some((1, WireType::Len)));
        assert_eq!(r.key().unwrap(), None);
    }

    #[test]
    fn length_prefix_beyond_input_is_truncated_not_allocated() {
        let mut b = vec![0x0a];
        b.extend(varint_bytes(u64::MAX));
        let mut r = Reader::new(&b, "t");
        r.key().unwrap();
        assert!(matches!(r.len_delimited(), Err(Error::Truncated { .. })));
    }

    #[test]
    fn skip_handles_all_wire_types() {
        let mut w = Writer::default();
        w.int64(1, -5);
        w.float(2, 1.5);
        w.packed_fixed64(3, [7u64].into_iter());
        w.bytes(4, b"abc");
        w.key(5, WireType::I64);
        w.buf.extend_from_slice(&[0; 8]);
        let b = w.into_bytes();
        let mut r = Reader::new(&b, "t");
        let mut n = 0;
        while let Some((_, wt)) = r.key().unwrap() {
            r.skip(wt).unwrap();
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn packed_and_unpacked_are_both_accepted() {
        let mut w = Writer::default();
        w.repeated_int64(1, &[1, -2]);
        w.packed_varints(1, [3u64, 4].into_iter());
        let b = w.into_bytes();
        let mut r = Reader::new(&b, "t");
        let mut out = Vec::new();
        while let Some((f, wt)) = r.key().unwrap() {
            r.push_varints(f, wt, &mut out, |v| v as i64).unwrap();
        }
        assert_eq!(out, [1, -2, 3, 4]);
    }

    #[test]
    fn packed_fixed_width_must_be_a_multiple() {
        let mut w = Writer::default();
        w.bytes(4, &[0; 6]);
        let b = w.into_bytes();
        let mut r = Reader::new(&b, "t");
        let (f, wt) = r.key().unwrap().unwrap();
        let mut out: Vec<u32> = Vec::new();
        assert!(matches!(
            r.push_fixed32(f, wt, &mut out, |v| v),
            Err(Error::Malformed { .. })
        ));
        let mut r = Reader::new(&b, "t");
        let (f, wt) = r.key().unwrap().unwrap();
        let mut out: Vec<u64> = Vec::new();
        assert!(r.push_fixed64(f, wt, &mut out, |v| v).is_err());
    }

    #[test]
    fn wrong_wire_type_for_known_field_is_malformed() {
        let mut r = Reader::new(&[], "t");
        assert!(r.int64(1, WireType::Len).is_err());
        assert!(r.float(1, WireType::Varint).is_err());
        let mut out: Vec<u32> = Vec::new();
        assert!(r
            .push_fixed32(1, WireType::Varint, &mut out, |v| v)
            .is_err());
    }

    #[test]
    fn nested_message_length_is_inserted_correctly() {
        let big = vec![0xabu8; 300];
        let mut w = Writer::default();
        w.message(7, |w| {
            w.bytes(9, &big);
            w.message(1, |_| {});
        });
        let b = w.into_bytes();
        let mut r = Reader::new(&b, "t");
        assert_eq!(r.key().unwrap(), Some((7, WireType::Len)));
        let body = r.len_delimited().unwrap();
        assert!(r.is_empty());
        let mut inner = Reader::new(body, "t");
        assert_eq!(inner.key().unwrap(), Some((9, WireType::Len)));
        assert_eq!(inner.len_delimited().unwrap(), &big[..]);
        assert_eq!(inner.key().unwrap(), Some((1, WireType::Len)));
        assert_eq!(inner.len_delimited().unwrap(), &[] as &[u8]);
        assert!(inner.is_empty());
    }
}
