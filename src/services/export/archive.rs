//! The tar archive an export is written to: entries added from memory or from files, written to
//! `<out>.partial` and renamed into place (fsync'ed) only when complete, so a stopped export never
//! leaves a truncated archive under the asked name.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

pub struct Archive {
    builder: tar::Builder<BufWriter<File>>,
    partial: PathBuf,
    out: PathBuf,
    mtime: u64,
}

impl Archive {
    pub fn create(out: &Path) -> io::Result<Self> {
        if let Some(folder) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        let partial = out.with_extension("partial");
        let file = File::create(&partial)?;
        Ok(Self {
            builder: tar::Builder::new(BufWriter::new(file)),
            partial,
            out: out.to_owned(),
            mtime: crate::util::now_ms() / 1000,
        })
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        header
    }

    /// Adds `bytes` as the file `name` (a relative path).
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut header = self.header(bytes.len() as u64);
        self.builder.append_data(&mut header, name, bytes)
    }

    /// Adds the file at `source` as `name`.
    pub fn add_file(&mut self, name: &str, source: &Path) -> io::Result<()> {
        let file = File::open(source)?;
        let mut header = self.header(file.metadata()?.len());
        self.builder.append_data(&mut header, name, file)
    }

    /// Ends the archive and puts it in place; returns its size in bytes.
    pub fn finish(self) -> io::Result<u64> {
        let mut writer = self.builder.into_inner()?;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.out)?;
        Ok(std::fs::metadata(&self.out)?.len())
    }
}

/// A scratch file next to the archive (a large entry written as it is read), removed when dropped.
pub struct Scratch {
    pub path: PathBuf,
    pub writer: BufWriter<File>,
}

impl Scratch {
    pub fn beside(out: &Path, name: &str) -> io::Result<Self> {
        let path = out.with_extension(format!("{name}.tmp"));
        Ok(Self {
            writer: BufWriter::new(File::create(&path)?),
            path,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
