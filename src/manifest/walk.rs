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

/// Every directory and every regular file a walk met (visited or not), when asked for.
#[derive(Default)]
pub(crate) struct Listing {
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) files: Vec<PathBuf>,
}

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
    walk(dir, wanted, visit, None)
}

/// [`files_with`], and the [`Listing`] of what the walk met.
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
            wanted,
            visit,
            sink: &sink,
            listing,
        });
    let (mut found, mut errors) = sink.into_inner().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        errors.sort();
        let (_, message) = errors.swap_remove(0);
        return Err(ManifestError::Walk {
            dir: dir.to_path_buf(),
            source: std::io::Error::other(message),
        });
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
    wanted: &'a Wanted<'v>,
    visit: &'a Visit<'v, T>,
    sink: &'a Mutex<Found<T>>,
    listing: Option<&'a Mutex<Listing>>,
}

impl<'s, T: Send> ParallelVisitorBuilder<'s> for Workers<'s, '_, T> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Worker {
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
                if self.listing.is_some() {
                    if file {
                        self.listed.files.push(e.path().to_path_buf());
                    } else if e.file_type().is_some_and(|t| t.is_dir()) {
                        self.listed.dirs.push(e.path().to_path_buf());
                    }
                }
                if file && (self.wanted)(e.path()) {
                    if let Some(item) = (self.visit)(e.path(), &mut self.buf) {
                        self.found.0.push((e.into_path(), item));
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
