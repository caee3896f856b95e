//! Files that hold secrets (the database, the secret key, the outbox of
//! sign-in codes) are readable by their owner only: created so, and
//! tightened on start when an older version left them open to others.

use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) owner-only, or tightens it if it exists.
pub fn create_dir_owner_only(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Writes `bytes` to a new file that only its owner can read; fails if it exists.
pub fn write_new_owner_only(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path` unless it exists, atomically: the file appears
/// whole or not at all, so a process racing to create the same file either
/// wins or finds the winner's complete file. `Ok(false)` when it existed.
pub fn publish_new_owner_only(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.new", std::process::id()));
    let staging = std::path::PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    write_new_owner_only(&staging, bytes)?;
    // A hard link never replaces an existing file, unlike a rename.
    let published = match std::fs::hard_link(&staging, path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    };
    std::fs::remove_file(&staging)?;
    published
}

/// Makes an existing file owner-only; a missing file is left missing.
pub fn restrict_to_owner(path: &Path) -> io::Result<()> {
    match set_mode(path, FILE_MODE) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes the SQLite database owner-only before SQLite opens it: SQLite gives
/// its `-wal` and `-shm` files the mode of the database file.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    let name = path.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        create_dir_owner_only(dir)?;
    }
    if !path.exists() {
        return write_new_owner_only(path, b"");
    }
    restrict_to_owner(path)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = name.to_os_string();
        side.push(suffix);
        restrict_to_owner(Path::new(&side))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
