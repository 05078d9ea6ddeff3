//! Walking a repository's files on every core: the `ignore` crate's parallel walker (as
//! ripgrep walks), `.git` skipped and `.gitignore` honoured (it reads the ignore files a
//! directory lists instead of probing four names in every directory). Each file is handed to
//! the visitor on the thread that found it, with that thread's scratch buffer, so reading and
//! filtering a 20,000-file monorepo run on all cores too. Results are sorted by path afterwards:
//! that is the order of a walk with sorted siblings, so nothing that reports or chooses depends
//! on the file system or on thread timing.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkState};

use super::ManifestError;

/// What a visitor makes of one file: `None` drops it.
pub(crate) type Visit<'a, T> = dyn Fn(&Path, &mut Vec<u8>) -> Option<T> + Sync + 'a;

/// Which files (by path) are visited at all.
pub(crate) type Wanted<'a> = dyn Fn(&Path) -> bool + Sync + 'a;

/// Found items, and walk errors with the path they concern (empty when unknown).
type Found<T> = (Vec<(PathBuf, T)>, Vec<(PathBuf, String)>);

/// Every directory, and every regular file a walk met but did not find (not wanted, or the
/// visitor dropped it), when asked for, by their paths' bytes relative to the walk's root
/// ([`key`]).
#[derive(Default)]
pub(crate) struct Listing {
    pub(crate) dirs: Vec<Box<[u8]>>,
    pub(crate) files: Vec<Box<[u8]>>,
}

/// A path's bytes: what listings and snapshots are keyed by (hashing a `Path` walks its
/// components, and a repository has tens of thousands).
pub(crate) fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// A fast hash of path bytes (FxHash's rotate-xor-multiply, eight bytes at a time). The keys
/// are the repository's own paths, so SipHash's defence against chosen keys buys nothing here,
/// and it was a tenth of assembling a large layout.
#[derive(Default, Clone, Copy)]
pub(crate) struct PathHasher(u64);

impl PathHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(b) ^ rest.len() as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Maps and sets keyed by path bytes ([`key`]), hashed with [`PathHasher`].
pub(crate) type PathMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<PathHasher>>;
pub(crate) type PathSet<K> =
    std::collections::HashSet<K, std::hash::BuildHasherDefault<PathHasher>>;

pub(crate) fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

/// Visit every file under `dir` that `wanted` selects (skipping `.git` and what `.gitignore`
/// ignores) on all cores; the kept results sorted by path. The first walk error by path
/// fails the walk, as the first one met in a sorted walk did.
pub(crate) fn files_with<T: Send>(
    dir: &Path,
    wanted: &Wanted<'_>,
    visit: &Visit<'_, T>,
) -> Result<Vec<(PathBuf, T)>, ManifestError> {
    let mut found = walk(dir, wanted, visit, None)?;
    sort_by_path(&mut found);
    Ok(found)
}

/// [`files_with`], unsorted (the caller sorts what it keeps), and the [`Listing`] of what
/// else the walk met.
pub(crate) fn files_listed<T: Send>(
    dir: &Path,
    wanted: &Wanted<'_>,
    visit: &Visit<'_, T>,
) -> Result<(Vec<(PathBuf, T)>, Listing), ManifestError> {
    let listing = Mutex::new(Listing::default());
    let found = walk(dir, wanted, visit, Some(&listing))?;
    Ok((
        found,
        listing.into_inner().unwrap_or_else(|p| p.into_inner()),
    ))
}

/// Sort by path as `Path` orders paths, component by component, without comparing components:
/// each path's bytes with the separator rewritten to the lowest byte sort in that order
/// (`a/x` before `a-b/x`), and comparing bytes is many times faster.
pub(crate) fn sort_by_path<T>(items: &mut [(PathBuf, T)]) {
    items.sort_by_cached_key(|(p, _)| {
        key(p)
            .iter()
            .map(|&c| if c == b'/' { 0 } else { c })
            .collect::<Vec<u8>>()
    });
}

fn walk<T: Send>(
    dir: &Path,
    wanted: &Wanted<'_>,
    visit: &Visit<'_, T>,
    listing: Option<&Mutex<Listing>>,
) -> Result<Vec<(PathBuf, T)>, ManifestError> {
    let sink: Mutex<Found<T>> = Mutex::new((Vec::new(), Vec::new()));
    ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build_parallel()
        .visit(&mut Workers {
            root: dir,
            wanted,
            visit,
            sink: &sink,
            listing,
        });
    let (found, mut errors) = sink.into_inner().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        errors.sort();
        let (_, message) = errors.swap_remove(0);
        return Err(ManifestError::Walk {
            dir: dir.to_path_buf(),
            source: std::io::Error::other(message),
        });
    }
    Ok(found)
}

/// Read a whole file into `buf`, reused across files. Through `take`: `File::read_to_end`
/// first asks the file's size (a `statx` and an `lseek` per file, a third of the system calls
/// of a small file); the generic loop just fills the reused buffer until end of file.
pub(crate) fn read_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let file = std::fs::File::open(path)?;
    file.take(u64::MAX).read_to_end(buf).map(|_| ())
}

struct Workers<'a, 'v, T> {
    root: &'a Path,
    wanted: &'a Wanted<'v>,
    visit: &'a Visit<'v, T>,
    sink: &'a Mutex<Found<T>>,
    listing: Option<&'a Mutex<Listing>>,
}

impl<'s, T: Send> ParallelVisitorBuilder<'s> for Workers<'s, '_, T> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Worker {
            root: self.root,
            wanted: self.wanted,
            visit: self.visit,
            sink: self.sink,
            buf: Vec::with_capacity(64 << 10),
            found: (Vec::new(), Vec::new()),
            listing: self.listing,
            listed: Listing::default(),
        })
    }
}

/// One walking thread: what it found stays local until the thread ends.
struct Worker<'a, 'v, T> {
    root: &'a Path,
    wanted: &'a Wanted<'v>,
    visit: &'a Visit<'v, T>,
    sink: &'a Mutex<Found<T>>,
    buf: Vec<u8>,
    found: Found<T>,
    listing: Option<&'a Mutex<Listing>>,
    listed: Listing,
}

impl<T: Send> ParallelVisitor for Worker<'_, '_, T> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        match entry {
            Ok(e) => {
                let file = e.file_type().is_some_and(|t| t.is_file());
                let rel = |e: &DirEntry| -> Box<[u8]> {
                    key(e.path().strip_prefix(self.root).unwrap_or(e.path())).into()
                };
                if file && (self.wanted)(e.path()) {
                    if let Some(item) = (self.visit)(e.path(), &mut self.buf) {
                        self.found.0.push((e.into_path(), item));
                        return WalkState::Continue;
                    }
                }
                // What was visited is in `found`; the listing has the rest.
                if self.listing.is_some() {
                    if file {
                        self.listed.files.push(rel(&e));
                    } else if e.file_type().is_some_and(|t| t.is_dir()) {
                        self.listed.dirs.push(rel(&e));
                    }
                }
            }
            Err(err) => {
                let path = error_path(&err).map(Path::to_path_buf).unwrap_or_default();
                self.found.1.push((path, err.to_string()));
            }
        }
        WalkState::Continue
    }
}

impl<T> Drop for Worker<'_, '_, T> {
    fn drop(&mut self) {
        let (found, errors) = std::mem::take(&mut self.found);
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        sink.0.extend(found);
        sink.1.extend(errors);
        drop(sink);
        if let Some(listing) = self.listing {
            let listed = std::mem::take(&mut self.listed);
            let mut all = listing.lock().unwrap_or_else(|p| p.into_inner());
            all.dirs.extend(listed.dirs);
            all.files.extend(listed.files);
        }
    }
}

/// The path an `ignore` error concerns, if it names one.
fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;

/// `f` over contiguous parts of `items`, one part per core, the results in the items' order.
/// Each part is one call, so `f` can keep state across neighbouring items (Kustomize roots
/// beside each other share their bases).
pub(crate) fn par_chunks<T: Sync, U: Send>(
    items: &[T],
    f: impl Fn(&[T]) -> Vec<U> + Sync,
) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Small inputs are not worth a thread.
    let part = items.len().div_ceil(threads).max(64);
    if items.len() <= part {
        return f(items);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = items.chunks(part).map(|p| scope.spawn(|| f(p))).collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// `f` over `items` on every core, the results in the items' order.
pub(crate) fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    par_chunks(items, |part| part.iter().map(&f).collect())
}
