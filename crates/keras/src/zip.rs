//! The few zip features a `.keras` archive uses: the central directory, stored and deflated
//! members, CRC-32 checks. Every offset and length is checked against the bytes present, so a
//! truncated or hostile archive gives [`Error::Zip`], never a panic or a huge allocation.

use std::io::Read;

use crate::error::{Error, Result};

const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const CENTRAL_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

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

fn truncated() -> Error {
    Error::Zip("the archive is truncated (its directory is missing or cut short)".into())
}

/// The archive's members.
pub(crate) fn entries(b: &[u8]) -> Result<Vec<Entry>> {
    // The end record is 22 bytes plus a comment of at most 65535.
    let lowest = b.len().saturating_sub(22 + 65535);
    let end = (lowest..=b.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(b, i) == Some(END_OF_CENTRAL_DIRECTORY))
        .ok_or_else(truncated)?;
    let count = u16_at(b, end + 10).ok_or_else(truncated)? as usize;
    let dir_offset = u32_at(b, end + 16).ok_or_else(truncated)? as usize;
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
        if compressed == u32::MAX || size == u32::MAX || local_offset == u32::MAX {
            return Err(Error::Zip(
                "ZIP64 archives (members over 4 GiB) are not supported".into(),
            ));
        }
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method,
            crc,
            compressed: compressed as usize,
            size: size as usize,
            local_offset: local_offset as usize,
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
                .take(e.size as u64 + 1)
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
