//! What one walk saw of a repository, for the readers that come after it: a Kustomize layout
//! of thousands of roots is rendered by opening the same small files again and asking, path by
//! path, whether each is a file or a directory, which cost more than the walk itself. The
//! snapshot answers from memory what the walk saw (every directory and file it met, the text of
//! the small files it read, and which of a few words the large ones contain) and says "not
//! known" for everything else, which the caller then asks the disk: it never answers
//! differently from the disk as the walk found it.

use std::path::Path;

use super::walk::{key, PathMap, PathSet};

/// Files up to this size are kept whole: kustomizations, patches and most single-object
/// manifests are far smaller; large files (a Deployment with its environment) are not kept.
pub(crate) const SMALL: usize = 4 << 10;

/// What the walk knows of one file.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Met, not read (or not readable as UTF-8 text: reading it again says why).
    Listed,
    /// The text of a small file.
    Text(Box<str>),
    /// A large UTF-8 file: bit `i` set when it contains the snapshot's word `i`.
    Large(u32),
}

impl Seen {
    /// What a walk read: kept whole when small, else which of `words` (the first 32) it
    /// contains.
    pub(crate) fn of(bytes: &[u8], words: &[&str]) -> Seen {
        match std::str::from_utf8(bytes) {
            Err(_) => Seen::Listed,
            Ok(text) if text.len() <= SMALL => Seen::Text(text.into()),
            Ok(text) => Seen::Large(
                words
                    .iter()
                    .take(u32::BITS as usize)
                    .enumerate()
                    .filter(|(_, w)| super::contains(text.as_bytes(), w.as_bytes()))
                    .fold(0, |bits, (i, _)| bits | 1 << i),
            ),
        }
    }
}

/// Every directory and file one walk met (repository-relative), with what it read of them.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// By the bytes of repository-relative paths ([`key`]).
    dirs: PathSet<Box<[u8]>>,
    files: PathMap<Box<[u8]>, Seen>,
    /// The words [`Seen::Large`] records (at most 32).
    words: &'static [&'static str],
}

impl Snapshot {
    pub(crate) fn new(
        dirs: Vec<Box<[u8]>>,
        files: PathMap<Box<[u8]>, Seen>,
        words: &'static [&'static str],
    ) -> Snapshot {
        Snapshot {
            dirs: dirs.into_iter().collect(),
            files,
            words: &words[..words.len().min(u32::BITS as usize)],
        }
    }

    /// Is `rel` a directory? `None`: the walk did not meet it.
    pub(crate) fn is_dir(&self, rel: &Path) -> Option<bool> {
        if self.dirs.contains(key(rel)) {
            Some(true)
        } else if self.files.contains_key(key(rel)) {
            Some(false)
        } else {
            None
        }
    }

    /// Is `rel` a regular file? `None`: the walk did not meet it.
    pub(crate) fn is_file(&self, rel: &Path) -> Option<bool> {
        self.is_dir(rel).map(|d| !d)
    }

    /// The text of `rel`, when the walk kept it.
    pub(crate) fn text(&self, rel: &Path) -> Option<&str> {
        match self.files.get(key(rel)) {
            Some(Seen::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// Is it known that `rel`, a readable UTF-8 file, contains none of `words`? Only for a
    /// large file and words the snapshot records; `false` when not known.
    pub(crate) fn lacks_all(&self, rel: &Path, words: &[&str]) -> bool {
        let Some(Seen::Large(bits)) = self.files.get(key(rel)) else {
            return false;
        };
        words.iter().all(|w| {
            self.words
                .iter()
                .position(|x| x == w)
                .is_some_and(|i| bits & (1 << i) == 0)
        })
    }
}
