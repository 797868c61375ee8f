//! The access token, as Jupyter does it: a random secret in the URL the server prints; every
//! request must carry it, as `?token=` or as `Authorization: Bearer <token>`.

use std::io::Read;

/// A fresh random token: 32 hexadecimal digits (128 bits) from the operating system's
/// generator, or, where there is none, from the standard library's randomly keyed hasher.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_os {
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token at all: 401.
    Missing,
    /// A token that is not the server's: 403.
    Wrong,
}

/// Checks the token of a request: `query` is the raw query string, `authorization` the
/// `Authorization` header.
///
/// ```
/// use convscope_viewer::auth::{check, Refusal};
///
/// assert_eq!(check("s3cret", Some("layer=a&token=s3cret"), None), Ok(()));
/// assert_eq!(check("s3cret", None, Some("Bearer s3cret")), Ok(()));
/// assert_eq!(check("s3cret", Some("layer=a"), None), Err(Refusal::Missing));
/// assert_eq!(check("s3cret", Some("token=guess"), None), Err(Refusal::Wrong));
/// ```
pub fn check(token: &str, query: Option<&str>, authorization: Option<&str>) -> Result<(), Refusal> {
    let from_header = authorization.and_then(|h| h.strip_prefix("Bearer ").map(str::trim));
    let from_query = query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    match from_header.or(from_query) {
        None => Err(Refusal::Missing),
        Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::Wrong),
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hexadecimal() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_prefix_or_an_empty_token_is_wrong() {
        assert_eq!(check("abcd", Some("token=abc"), None), Err(Refusal::Wrong));
        assert_eq!(check("abcd", Some("token="), None), Err(Refusal::Wrong));
        assert_eq!(
            check("abcd", None, Some("Basic abcd")),
            Err(Refusal::Missing)
        );
        assert_eq!(
            check("abcd", Some("xtoken=abcd"), None),
            Err(Refusal::Missing)
        );
    }
}
