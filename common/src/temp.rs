//! Temporary files that go away however the work that made them ends.

use std::path::{Path, PathBuf};

/// A path whose file is removed when this is dropped (an error, a cancelled future, a
/// panic): conversions leave nothing in their directory.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl TempPath {
    /// Takes charge of `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Keeps the file: the caller owns it from now on.
    pub fn keep(self) -> PathBuf {
        let mut me = std::mem::ManuallyDrop::new(self);
        std::mem::take(&mut me.0)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_removed_when_the_guard_is_dropped() {
        let p = std::env::temp_dir().join(format!("cinder-temp-path-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        let t = TempPath::new(&p);
        assert!(t.path().exists());
        drop(t);
        assert!(!p.exists());
        // A path never written is fine too.
        drop(TempPath::new(&p));
        // A kept one stays.
        std::fs::write(&p, b"x").unwrap();
        assert_eq!(TempPath::new(&p).keep(), p);
        assert!(p.exists());
        std::fs::remove_file(&p).unwrap();
    }
}
