//! The few zip features a `.keras` archive uses: the central directory, stored and deflated
//! members, CRC-32 checks, and the ZIP64 records Python's `zipfile` writes for archives or
//! members past 4 GiB (or 65,535 members). Every offset and length is checked against the bytes
//! present, so a truncated or hostile archive gives [`Error::Zip`], never a panic or a huge
//! allocation.

use std::io::Read;

use crate::error::{Error, Result};

const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const CENTRAL_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// The id of the extra field that holds a member's 64-bit sizes and offset.
const ZIP64_EXTRA: u16 = 0x0001;
/// A 32-bit field that says "see the ZIP64 record".
const SEE_ZIP64: u32 = u32::MAX;

/// The signature every zip archive (a `.keras` file) starts with.
pub(crate) const MAGIC: &[u8] = b"PK\x03\x04";

/// One member of the archive, as the central directory describes it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    method: u16,
    crc: u32,
    compressed: usize,
    size: usize,
    local_offset: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A 64-bit count or offset as `usize`, `None` past the address space.
fn u64_usize(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64_at(b, at)?).ok()
}

fn truncated() -> Error {
    Error::Zip("the archive is truncated (its directory is missing or cut short)".into())
}

/// Where the central directory is and how many entries it has: from the end record, or from
/// the ZIP64 end record its locator (the 20 bytes before the end record) points at.
fn directory(b: &[u8]) -> Result<(usize, usize)> {
    // The end record is 22 bytes plus a comment of at most 65535.
    let lowest = b.len().saturating_sub(22 + 65535);
    let end = (lowest..=b.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(b, i) == Some(END_OF_CENTRAL_DIRECTORY))
        .ok_or_else(truncated)?;
    let count = u16_at(b, end + 10).ok_or_else(truncated)? as usize;
    let offset = u32_at(b, end + 16).ok_or_else(truncated)?;
    let locator = end.checked_sub(20);
    if locator.and_then(|at| u32_at(b, at)) != Some(ZIP64_LOCATOR) {
        if offset == SEE_ZIP64 {
            return Err(Error::Zip(
                "its end record refers to a ZIP64 record that is missing".into(),
            ));
        }
        return Ok((offset as usize, count));
    }
    let bad64 = |what: &str| Error::Zip(format!("its ZIP64 end record {what}"));
    let at = locator
        .and_then(|l| u64_usize(b, l + 8))
        .ok_or_else(|| bad64("is not where its locator says"))?;
    // The record (56 bytes) lies before the locator; anywhere else it is made up.
    if locator.is_none_or(|l| at.checked_add(56).is_none_or(|e| e > l))
        || u32_at(b, at) != Some(ZIP64_END_OF_CENTRAL_DIRECTORY)
    {
        return Err(bad64("is not where its locator says"));
    }
    let count = u64_usize(b, at + 32).ok_or_else(|| bad64("is cut short"))?;
    let offset = u64_usize(b, at + 48).ok_or_else(|| bad64("is cut short"))?;
    if offset >= at {
        return Err(bad64("puts the directory past its own start"));
    }
    Ok((offset, count))
}

/// The 64-bit values of a central entry's ZIP64 extra field, for the fields (uncompressed
/// size, compressed size, local header offset, in this order) whose 32-bit value is
/// [`SEE_ZIP64`]; the others keep their 32-bit values.
fn zip64_fields(extra: &[u8], fields: [u32; 3], name: &str) -> Result<[usize; 3]> {
    let missing = || {
        Error::Zip(format!(
            "the ZIP64 sizes of '{name}' are missing or cut short"
        ))
    };
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at).ok_or_else(missing)?;
        let len = u16_at(extra, at + 2).ok_or_else(missing)? as usize;
        let body = extra.get(at + 4..at + 4 + len).ok_or_else(missing)?;
        if id == ZIP64_EXTRA {
            let mut out = [0; 3];
            let mut next = 0;
            for (o, &f) in out.iter_mut().zip(&fields) {
                *o = if f == SEE_ZIP64 {
                    let v = u64_usize(body, next).ok_or_else(missing)?;
                    next += 8;
                    v
                } else {
                    f as usize
                };
            }
            return Ok(out);
        }
        at += 4 + len;
    }
    Err(missing())
}

/// The archive's members.
pub(crate) fn entries(b: &[u8]) -> Result<Vec<Entry>> {
    let (dir_offset, count) = directory(b)?;
    let mut at = dir_offset;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        if u32_at(b, at) != Some(CENTRAL_ENTRY) {
            return Err(truncated());
        }
        let field = |off: usize| u16_at(b, at + off).ok_or_else(truncated);
        let word = |off: usize| u32_at(b, at + off).ok_or_else(truncated);
        let (method, crc) = (field(10)?, word(16)?);
        let (compressed, size) = (word(20)?, word(24)?);
        let (name_len, extra_len, comment_len) = (
            field(28)? as usize,
            field(30)? as usize,
            field(32)? as usize,
        );
        let local_offset = word(42)?;
        let name = b.get(at + 46..at + 46 + name_len).ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let extra = b
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(truncated)?;
        let [size, compressed, local_offset] =
            if [size, compressed, local_offset].contains(&SEE_ZIP64) {
                zip64_fields(extra, [size, compressed, local_offset], &name)?
            } else {
                [size as usize, compressed as usize, local_offset as usize]
            };
        out.push(Entry {
            name,
            method,
            crc,
            compressed,
            size,
            local_offset,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// The member called `name`, decompressed and checked against its CRC-32.
pub(crate) fn read(b: &[u8], entries: &[Entry], name: &str) -> Result<Vec<u8>> {
    let e = entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| Error::Zip(format!("it has no '{name}'")))?;
    let at = e.local_offset;
    if u32_at(b, at) != Some(LOCAL_HEADER) {
        return Err(Error::Zip(format!("the header of '{name}' is corrupt")));
    }
    let name_len = u16_at(b, at + 26).ok_or_else(truncated)? as usize;
    let extra_len = u16_at(b, at + 28).ok_or_else(truncated)? as usize;
    let start = at + 30 + name_len + extra_len;
    let data = start
        .checked_add(e.compressed)
        .and_then(|end| b.get(start..end))
        .ok_or_else(|| Error::Zip(format!("'{name}' is cut short")))?;
    let out = match e.method {
        0 => data.to_vec(),
        8 => {
            // The declared size bounds the allocation; a member that inflates past it is corrupt.
            let mut out = Vec::with_capacity(e.size.min(data.len().saturating_mul(1032)));
            flate2::read::DeflateDecoder::new(data)
                .take((e.size as u64).saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|err| Error::Zip(format!("'{name}' does not inflate: {err}")))?;
            out
        }
        m => {
            return Err(Error::Zip(format!(
                "'{name}' uses compression method {m}; only stored and deflated members are read"
            )))
        }
    };
    if out.len() != e.size {
        return Err(Error::Zip(format!(
            "'{name}' holds {} bytes, not the {} its directory says",
            out.len(),
            e.size
        )));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if crc.sum() != e.crc {
        return Err(Error::Zip(format!("'{name}' fails its CRC-32 check")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_members_and_bad_methods_are_named() {
        // One stored member "a" holding "hi", written out by hand.
        let mut zip = Vec::new();
        zip.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        zip.extend_from_slice(&[20, 0, 0, 0, 9, 0, 0, 0, 0, 0]); // method 9 (deflate64)
        let mut crc = flate2::Crc::new();
        crc.update(b"hi");
        zip.extend_from_slice(&crc.sum().to_le_bytes());
        zip.extend_from_slice(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
        zip.extend_from_slice(b"ahi");
        let dir = zip.len() as u32;
        zip.extend_from_slice(&CENTRAL_ENTRY.to_le_bytes());
        zip.extend_from_slice(&[20, 0, 20, 0, 0, 0, 9, 0, 0, 0, 0, 0]);
        zip.extend_from_slice(&crc.sum().to_le_bytes());
        zip.extend_from_slice(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0]);
        zip.extend_from_slice(&[0; 12]);
        zip.extend_from_slice(&0u32.to_le_bytes());
        zip.extend_from_slice(b"a");
        let dir_len = zip.len() as u32 - dir;
        zip.extend_from_slice(&END_OF_CENTRAL_DIRECTORY.to_le_bytes());
        zip.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
        zip.extend_from_slice(&dir_len.to_le_bytes());
        zip.extend_from_slice(&dir.to_le_bytes());
        zip.extend_from_slice(&[0, 0]);
        let e = entries(&zip).unwrap();
        assert_eq!(e.len(), 1);
        let err = read(&zip, &e, "a").unwrap_err().to_string();
        assert!(err.contains("compression method 9"), "{err}");
        let err = read(&zip, &e, "config.json").unwrap_err().to_string();
        assert!(err.contains("no 'config.json'"), "{err}");
        for cut in 0..zip.len() {
            assert!(entries(&zip[..cut])
                .and_then(|e| read(&zip[..cut], &e, "a"))
                .is_err());
        }
    }
}
