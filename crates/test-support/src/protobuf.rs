//! Malformed protobuf for fuzzing decoders: mutations aimed at a message's structure, and
//! protobuf-shaped noise.
//!
//! ```
//! use convscope_test_support::protobuf::{mutants, varint};
//!
//! // A message with field 1 = 150 and field 2 = "hi".
//! let mut msg = vec![0x08];
//! msg.extend(varint(150));
//! msg.extend([0x12, 2, b'h', b'i']);
//! let all: Vec<(Vec<u8>, String)> = mutants(7, &msg, 20).collect();
//! assert_eq!(all.len(), 20);
//! assert!(all.iter().any(|(bytes, _)| bytes != &msg));
//! ```

use crate::Rng;

/// `v` as a protobuf varint.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a varint at `*pos`, advancing it; `None` when the bytes end or run over 10 bytes.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Offsets of field keys and of length prefixes in a message, found by walking its structure
/// (descending into payloads that parse as messages). Mutating there hits a decoder's logic
/// instead of the megabytes of weights.
#[derive(Clone, Debug, Default)]
pub struct Landmarks {
    /// Offsets of field keys.
    pub keys: Vec<usize>,
    /// Offsets of the length prefixes of length-delimited fields.
    pub lengths: Vec<usize>,
}

impl Landmarks {
    /// The landmarks of `buf`, or `None` when it does not parse as a protobuf message.
    pub fn of(buf: &[u8]) -> Option<Landmarks> {
        let mut marks = Landmarks::default();
        walk(buf, 0, 0, &mut marks).then_some(marks)
    }
}

fn walk(buf: &[u8], base: usize, depth: usize, out: &mut Landmarks) -> bool {
    let mut found = Landmarks::default();
    let mut pos = 0;
    while pos < buf.len() {
        found.keys.push(base + pos);
        let Some(key) = read_varint(buf, &mut pos) else {
            return false;
        };
        match key & 7 {
            0 => {
                if read_varint(buf, &mut pos).is_none() {
                    return false;
                }
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                found.lengths.push(base + pos);
                let Some(len) = read_varint(buf, &mut pos) else {
                    return false;
                };
                let Some(end) = pos.checked_add(len as usize).filter(|&e| e <= buf.len()) else {
                    return false;
                };
                if depth < 12 && len > 0 {
                    walk(&buf[pos..end], base + pos, depth + 1, &mut found);
                }
                pos = end;
            }
            _ => return false,
        }
        if key >> 3 == 0 || pos > buf.len() {
            return false;
        }
    }
    out.keys.extend(found.keys);
    out.lengths.extend(found.lengths);
    true
}

/// Applies one random mutation to `data` (bit flips, truncation, an inserted varint, a length
/// prefix replaced by a huge value, a deleted run), aimed three times out of four at a
/// landmark. Returns a description for failure messages.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, marks: &Landmarks) -> String {
    let spot = |rng: &mut Rng, list: &[usize], len: usize| {
        if !list.is_empty() && rng.below(4) != 0 {
            list[rng.below(list.len())].min(len.saturating_sub(1))
        } else {
            rng.below(len)
        }
    };
    match rng.below(5) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = spot(rng, &marks.keys, data.len());
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            format!("flip {n} bits")
        }
        1 => {
            let at = spot(rng, &marks.keys, data.len());
            data.truncate(at);
            format!("truncate at {at}")
        }
        2 => {
            let at = spot(rng, &marks.keys, data.len());
            let v = varint(rng.next_u64() >> rng.below(64));
            let n = v.len();
            data.splice(at..at, v);
            format!("insert {n}-byte varint at {at}")
        }
        3 => {
            let at = spot(rng, &marks.lengths, data.len());
            let mut end = at;
            if read_varint(data, &mut end).is_none() {
                end = (at + 1).min(data.len());
            }
            let huge = [u64::MAX, 1 << 31, 1 << 40, u32::MAX as u64, rng.next_u64()][rng.below(5)];
            data.splice(at..end, varint(huge));
            format!("length at {at} := {huge}")
        }
        _ => {
            let at = spot(rng, &marks.keys, data.len());
            let end = (at + 1 + rng.below(64)).min(data.len());
            data.drain(at..end);
            format!("delete {at}..{end}")
        }
    }
}

/// `count` mutants of `original`, each with one to three [`mutate`] steps, with their
/// descriptions; the same `seed` gives the same mutants.
///
/// # Panics
/// When `original` does not parse as a protobuf message.
pub fn mutants(
    seed: u64,
    original: &[u8],
    count: usize,
) -> impl Iterator<Item = (Vec<u8>, String)> + '_ {
    let marks = Landmarks::of(original).expect("the original parses as a protobuf message");
    let mut rng = Rng::new(seed);
    (0..count).map(move |i| {
        let mut data = original.to_vec();
        let mut what = Vec::new();
        for _ in 0..1 + rng.below(3) {
            what.push(mutate(&mut rng, &mut data, &marks));
        }
        (data, format!("mutant {i}: {}", what.join(", ")))
    })
}

/// Random protobuf-looking bytes: plausible keys with random payloads, nested at random up to
/// six levels, with a length that lies one time in ten.
pub fn noise_message(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(8) {
        let field = 1 + rng.below(16) as u64;
        let wire = [0, 1, 2, 2, 2, 5, 3, 7][rng.below(8)];
        out.extend(varint(field << 3 | wire));
        match wire {
            0 => out.extend(varint(rng.next_u64() >> rng.below(64))),
            1 => out.extend(rng.bytes(8)),
            5 => out.extend(rng.bytes(4)),
            2 => {
                let body = if depth < 6 && rng.below(2) == 0 {
                    noise_message(rng, depth + 1)
                } else {
                    let n = rng.below(16);
                    rng.bytes(n)
                };
                let len = if rng.below(10) == 0 {
                    rng.next_u64() >> rng.below(64)
                } else {
                    body.len() as u64
                };
                out.extend(varint(len));
                out.extend(body);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_landmarks_are_found() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let bytes = varint(v);
            let mut pos = 0;
            assert_eq!(read_varint(&bytes, &mut pos), Some(v));
            assert_eq!(pos, bytes.len());
        }
        // field 1 varint, field 2 = message { field 1 varint }.
        let msg = [0x08, 0x01, 0x12, 0x02, 0x08, 0x05];
        let marks = Landmarks::of(&msg).unwrap();
        assert_eq!(marks.keys, [0, 2, 4]);
        assert_eq!(marks.lengths, [3]);
        assert!(Landmarks::of(&[0x0f]).is_none());
    }
}
