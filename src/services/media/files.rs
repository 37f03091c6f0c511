//! The file store: media and thumbnails on disk, addressed by the sha256 of their bytes
//! (`<storage.path>/media/ab/cd/<sha256>`), so identical files are stored once. A file is
//! written to `tmp/`, fsync'ed, renamed into place and its folder fsync'ed before the metadata
//! that names it is committed: an acknowledged upload survives a crash. Blocking calls.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

pub struct FileStore {
    root: PathBuf,
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileStore {
    /// Opens (creates) the store under `root`; leftovers of interrupted writes are removed.
    pub fn open(root: PathBuf) -> io::Result<Self> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(Self { root })
    }

    pub fn path_of(&self, sha256: &str) -> io::Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        Ok(self.root.join(&sha256[0..2]).join(&sha256[2..4]).join(sha256))
    }

    /// Stores `bytes` durably; returns their sha256.
    pub fn store(&self, bytes: &[u8]) -> io::Result<String> {
        let sha256 = sha256_hex(bytes);
        let path = self.path_of(&sha256)?;
        if path.is_file() && fs::metadata(&path)?.len() == bytes.len() as u64 {
            return Ok(sha256);
        }
        let dir = path.parent().expect("a file path has a parent");
        fs::create_dir_all(dir)?;
        let tmp = self.root.join("tmp").join(format!("{sha256}.{}", crate::util::random_string(8)));
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| sha256)
    }

    pub fn read(&self, sha256: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path_of(sha256)?)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_content_addressed_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("media")).unwrap();
        let sha = store.store(b"hello").unwrap();
        assert_eq!(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let path = store.path_of(&sha).unwrap();
        assert!(path.ends_with("2c/f2/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        assert_eq!(store.store(b"hello").unwrap(), sha);
        assert_eq!(store.read(&sha).unwrap(), b"hello");
        assert!(fs::read_dir(dir.path().join("media/tmp")).unwrap().next().is_none());
        assert!(store.path_of("../../etc/passwd").is_err());
    }
}
