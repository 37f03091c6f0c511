//! Typed key encodings. Strings end with 0xFF (a byte UTF-8 never contains), so that ordered scans
//! over a prefix never mix `@a` with `@ab`; numbers are 8-byte big-endian, so keys sort numerically.

pub const SEP: u8 = 0xFF;

#[derive(Debug, Default, Clone)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new() -> Self {
        Self(Vec::with_capacity(48))
    }

    pub fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(SEP);
        self
    }

    pub fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

impl From<Key> for Vec<u8> {
    fn from(key: Key) -> Self {
        key.0
    }
}

/// Reads a key written with [`Key`], part by part.
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    pub fn str(&mut self) -> Option<&'a str> {
        let end = self.rest.iter().position(|b| *b == SEP)?;
        let (s, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        std::str::from_utf8(s).ok()
    }

    pub fn u64(&mut self) -> Option<u64> {
        let (n, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*n))
    }
}

pub fn u64_from(bytes: &[u8]) -> Option<u64> {
    bytes.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort() {
        let key = Key::new().str("@alice:x").u64(42).str("").build();
        let mut r = KeyReader::new(&key);
        assert_eq!(r.str(), Some("@alice:x"));
        assert_eq!(r.u64(), Some(42));
        assert_eq!(r.str(), Some(""));
        assert!(Key::new().u64(2).build() < Key::new().u64(256).build());
        let a = Key::new().str("@a").build();
        let ab = Key::new().str("@ab").build();
        assert!(!ab.starts_with(&a));
    }
}
