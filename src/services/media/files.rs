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

/// In a group of processes, a file of `tmp/` this old is the leftover of an interrupted write (an
/// upload being received is written to without pauses this long).
pub const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileStore {
    /// Opens (creates) the store under `root`; leftovers of interrupted writes in `tmp/` are
    /// removed. `shared`: other processes of a group use the folder too and may be writing
    /// there now: only leftovers older than [`LEFTOVER_AGE`] go (a restarting process removed
    /// the whole folder under the others' uploads, and two starting together failed when one
    /// removed it under the other).
    pub fn open(root: PathBuf, shared: bool) -> io::Result<Self> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp)?;
        let now = std::time::SystemTime::now();
        for entry in fs::read_dir(&tmp)? {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if shared {
                let modified = match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => modified,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if now.duration_since(modified).unwrap_or_default() < LEFTOVER_AGE {
                    continue;
                }
            }
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(Self { root })
    }

    pub fn path_of(&self, sha256: &str) -> io::Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        Ok(self
            .root
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256))
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
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{sha256}.{}", crate::util::random_string(8)));
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

    /// A new path in `tmp/` for an upload received piece by piece (see [`Staged`]).
    pub fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("upload.{}", crate::util::random_string(16)))
    }

    /// Moves a received and fsync'ed upload into place (or drops it when the same content is
    /// stored already), then fsyncs its folder; its sha256.
    pub fn store_staged(&self, staged: &Staged) -> io::Result<String> {
        let path = self.path_of(&staged.sha256)?;
        if path.is_file() && fs::metadata(&path)?.len() == staged.size {
            return Ok(staged.sha256.clone());
        }
        let dir = path.parent().expect("a file path has a parent");
        fs::create_dir_all(dir)?;
        fs::rename(&staged.path, &path)?;
        sync_dir(dir)?;
        Ok(staged.sha256.clone())
    }

    pub fn read(&self, sha256: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path_of(sha256)?)
    }
}

/// An upload written to a file of `tmp/` as it was received (its sha256 and size computed on the
/// way) and fsync'ed; removed when dropped unless [`FileStore::store_staged`] moved it into place.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Receives an upload into a file of `tmp/`: the bytes are hashed and counted as they arrive and
/// written in pieces of at most [`WRITE_PIECE`] bytes on the blocking pool; more than `limit` bytes
/// is an error (the file is removed).
pub struct Receiver {
    path: PathBuf,
    file: Option<File>,
    buffer: Vec<u8>,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

/// What is held in memory at most before it is written.
pub const WRITE_PIECE: usize = 256 * 1024;

/// What can stop a [`Receiver`].
#[derive(Debug)]
pub enum ReceiveError {
    TooLarge,
    Io(io::Error),
}

impl Receiver {
    pub async fn create(path: PathBuf, limit: u64) -> io::Result<Self> {
        let file = blocking({
            let path = path.clone();
            move || File::create(path)
        })
        .await?;
        Ok(Self {
            path,
            file: Some(file),
            buffer: Vec::new(),
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ReceiveError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(ReceiveError::TooLarge);
        }
        self.hasher.update(chunk);
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= WRITE_PIECE {
            self.write_buffer().await.map_err(ReceiveError::Io)?;
        }
        Ok(())
    }

    async fn write_buffer(&mut self) -> io::Result<()> {
        let mut file = self.file.take().ok_or_else(|| io::Error::other("closed"))?;
        let piece = std::mem::take(&mut self.buffer);
        let (file, written) = blocking(move || {
            let written = file.write_all(&piece);
            Ok((file, written))
        })
        .await?;
        self.file = Some(file);
        written
    }

    /// Writes what is left and fsyncs the file: the upload, ready for [`FileStore::store_staged`].
    pub async fn finish(mut self) -> io::Result<Staged> {
        self.write_buffer().await?;
        let file = self.file.take().ok_or_else(|| io::Error::other("closed"))?;
        blocking(move || file.sync_all()).await?;
        let sha256 = std::mem::take(&mut self.hasher)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Staged {
            path: std::mem::take(&mut self.path),
            sha256,
            size: self.size,
        })
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> io::Result<R> + Send + 'static,
) -> io::Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // An upload not finished (refused, too large, interrupted) leaves nothing behind.
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
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
        let store = FileStore::open(dir.path().join("media"), false).unwrap();
        let sha = store.store(b"hello").unwrap();
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let path = store.path_of(&sha).unwrap();
        assert!(
            path.ends_with(
                "2c/f2/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            )
        );
        assert_eq!(store.store(b"hello").unwrap(), sha);
        assert_eq!(store.read(&sha).unwrap(), b"hello");
        assert!(
            fs::read_dir(dir.path().join("media/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(store.path_of("../../etc/passwd").is_err());
    }

    fn leftover(root: &Path, name: &str, age: std::time::Duration) -> PathBuf {
        let path = root.join("tmp").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - age)
            .unwrap();
        path
    }

    #[test]
    fn leftovers_are_removed_at_open_and_in_a_group_only_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        let fresh = leftover(&root, "fresh", std::time::Duration::from_secs(5));
        let old = leftover(&root, "old", LEFTOVER_AGE * 2);
        // In a group, another process may be writing the fresh one now.
        FileStore::open(root.clone(), true).unwrap();
        assert!(fresh.exists() && !old.exists());
        // Alone, every leftover is from an interrupted write.
        FileStore::open(root.clone(), false).unwrap();
        assert!(!fresh.exists());
    }

    #[test]
    fn processes_of_a_group_start_together() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        for round in 0..10 {
            for n in 0..400 {
                leftover(&root, &format!("{round}-{n}"), LEFTOVER_AGE * 2);
            }
            let opened: Vec<io::Result<FileStore>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..6)
                    .map(|_| scope.spawn(|| FileStore::open(root.clone(), true)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for result in opened {
                result.unwrap();
            }
            assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
        }
    }
}
