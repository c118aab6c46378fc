//! The files techctl keeps on the user's machine (`techctl dev`'s keys,
//! credentials and state): written whole or not at all, readable by the
//! user alone, and guarded by lock files.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Only the user may read or write what techctl keeps: the local signing
/// key and credentials are secrets.
const PRIVATE: u32 = 0o600;

/// Writes beside the file and renames, so a reader never sees half of it;
/// the data reaches the disk before the rename, and the file is the
/// user's alone whatever the umask.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // One partial file per writer: two processes writing at once each
    // rename a whole file, and the last one wins.
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let written = (|| {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(PRIVATE)
            .open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&partial, path)) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(())
}

/// Opens (making it if need be) a file that is only ever locked, never
/// written: its lock says who works on what it guards.
pub fn lock_file(path: &Path) -> std::io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE)
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_written_file_is_whole_the_user_s_alone_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        write_atomically(&path, "first").unwrap();
        write_atomically(&path, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keys.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, "old").unwrap();
        // A folder where the file should go: the rename fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomically(&blocked, "new").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert!(blocked.join("inside").is_dir());
    }

    #[test]
    fn a_lock_file_is_made_once_and_the_user_s_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.lock");
        let first = lock_file(&path).unwrap();
        first.try_lock().unwrap();
        let second = lock_file(&path).unwrap();
        assert!(second.try_lock().is_err(), "the lock is held");
        assert_eq!(mode(&path), 0o600);
    }
}
