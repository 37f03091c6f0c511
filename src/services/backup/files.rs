//! Copying a folder tree of immutable files (media are named by the sha256 of their bytes) into a
//! backup, or back: a file already at the target with the same size is not copied again, so a
//! second backup into the same folder copies only what is new. Each copy is written beside its
//! target, fsync'ed and renamed into place. Blocking calls.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// What [`copy_tree`] did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct CopyReport {
    pub files: u64,
    pub copied: u64,
    pub bytes_copied: u64,
}

/// Copies every file under `from` (except the top-level folders named in `skip`) to the same
/// place under `to`, calling `progress(done, total)` as it goes. A missing `from` is empty.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &[&str],
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<CopyReport> {
    let mut files = Vec::new();
    if from.is_dir() {
        list_files(from, from, skip, &mut files)?;
    }
    let total = files.len() as u64;
    let mut report = CopyReport {
        files: total,
        ..Default::default()
    };
    progress(0, total);
    for (n, relative) in files.iter().enumerate() {
        let source = from.join(relative);
        let target = to.join(relative);
        let size = fs::metadata(&source)?.len();
        let present = fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == size);
        if !present {
            copy_durably(&source, &target)?;
            report.copied += 1;
            report.bytes_copied += size;
        }
        progress(n as u64 + 1, total);
    }
    Ok(report)
}

fn list_files(root: &Path, dir: &Path, skip: &[&str], out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if dir == root && skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        if kind.is_dir() {
            list_files(root, &path, skip, out)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).map_err(io::Error::other)?;
            out.push(relative.to_owned());
        }
    }
    Ok(())
}

fn copy_durably(source: &Path, target: &Path) -> io::Result<()> {
    let folder = target
        .parent()
        .ok_or_else(|| io::Error::other("a file to copy has no folder"))?;
    fs::create_dir_all(folder)?;
    let partial = target.with_extension("partial");
    fs::copy(source, &partial)?;
    fs::File::open(&partial)?.sync_all()?;
    fs::rename(&partial, target)?;
    fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_new_files_only_and_skips_named_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::create_dir_all(from.join("ab/cd")).unwrap();
        fs::create_dir_all(from.join("tmp")).unwrap();
        fs::write(from.join("ab/cd/one"), b"1").unwrap();
        fs::write(from.join("two"), b"22").unwrap();
        fs::write(from.join("tmp/partial"), b"x").unwrap();
        let mut seen = Vec::new();
        let first = copy_tree(&from, &to, &["tmp"], &mut |d, t| seen.push((d, t))).unwrap();
        assert_eq!((first.files, first.copied, first.bytes_copied), (2, 2, 3));
        assert_eq!(seen.last(), Some(&(2, 2)));
        assert_eq!(fs::read(to.join("ab/cd/one")).unwrap(), b"1");
        assert!(!to.join("tmp").exists());
        fs::write(from.join("three"), b"333").unwrap();
        let second = copy_tree(&from, &to, &["tmp"], &mut |_, _| {}).unwrap();
        assert_eq!((second.files, second.copied), (3, 1));
        let none = copy_tree(&dir.path().join("absent"), &to, &[], &mut |_, _| {}).unwrap();
        assert_eq!(none.files, 0);
    }
}
