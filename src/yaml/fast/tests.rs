//! The fast reader against granit: wherever it reads a text, the stream must be the one
//! granit's events give, node for node (spans, lines, columns, styles); elsewhere it must give
//! up. Over the shared corpus and every fixture of the repository, over generated documents
//! in the shapes and corners of the subset, and over a table of the corners by hand.

use std::path::{Path, PathBuf};

use super::super::parse_events;
use super::parse;

/// granit gives up on a long run of comment lines where a value could still follow ("too
/// many buffered comments"); the text is YAML all the same, and kustomize reads it.
fn granit_limit(e: &crate::yaml::ParseError) -> bool {
    e.message.contains("too many buffered comments")
}

/// `Ok(true)`: read, and as granit reads it; `Ok(false)`: left to granit.
fn same_as_granit(src: &str) -> Result<bool, String> {
    let Some(fast) = parse(src) else {
        return Ok(false);
    };
    match parse_events(src) {
        Ok(slow) if slow == fast => Ok(true),
        Err(e) if granit_limit(&e) => Ok(true),
        Ok(slow) => Err(format!(
            "read differently from granit:\n{src:?}\ngranit: {slow:#?}\nfast: {fast:#?}"
        )),
        Err(e) => Err(format!("granit refuses ({e}) what was read:\n{src:?}")),
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml") | Some("yml")
        ) || p.file_name().is_some_and(|n| n == "Kustomization")
        {
            out.push(p);
        }
    }
}

#[test]
fn corpus_and_fixture_files_read_as_granit_reads_them() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = here.join("../shared/corpus");
    assert!(
        corpus.is_dir(),
        "{} is missing: the shared corpus sits beside the repository",
        corpus.display()
    );
    let mut files = Vec::new();
    for dir in [
        corpus,
        here.join("tests"),
        here.join("examples"),
        here.join("workflows"),
    ] {
        yaml_files(&dir, &mut files);
    }
    let (mut read, mut left) = (0, 0);
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        match same_as_granit(&text) {
            Ok(true) => read += 1,
            Ok(false) => left += 1,
            Err(e) => panic!("{}: {e}", f.display()),
        }
    }
    // Most real files are plain block YAML: a reader that gave up on them all would pass
    // the comparison and speed nothing up.
    assert!(files.len() > 1000, "only {} files found", files.len());
    assert!(
        read > 3 * left,
        "read {read} of {} files, left {left} to granit",
        files.len()
    );
}

/// The corners by hand: each is read (and equal to granit), or left to granit.
#[test]
fn corners_are_read_as_granit_reads_them_or_left() {
    let read = [
        "",
        "# only a comment\n",
        "a: 1",
        "a: 1\n",
        "\n# c\n\na: 1\n",
        "a:\n",
        "a:   # c\nb: 2\n",
        "'a': 'it''s'\n\"b\": \"x # y\"\n",
        "a : b\n",
        "a: b # c\n",
        "a: b#c\n",
        "a: x:y\n",
        "a: http://h/p?q=1,2\n",
        "a: -1\n",
        "k:\n- x\n- y: 1\n  z: 2\nj: 3\n",
        "k:\n-\n  x: 1\n-   # c\n- \nj: 3\n",
        "k:\n  - x\n  -\n    - y\n",
        "- a: 1\n  b: 2\n- c: 3\n-\n- \n  # z\n",
        "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
        "---\n",
        "---\n---\n",
        "--- # c\na: 1\n---   \nb: 2\n",
        "a: 1\n---\n- x\n",
        "  a: 1\n  b: 2\n",
        "a:\n  # c\n\n  b: 1\n# d\n",
        "apiVersion: v1\nkind: Kustomization\nresources:\n  - ../../base\npatches:\n  - path: patch.yaml\n    target:\n      kind: Ingress\n",
    ];
    for src in read {
        assert_eq!(same_as_granit(src), Ok(true), "{src:?}");
    }
    let left = [
        "a: {b: 1}\n",
        "a: [1, 2]\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: |\n  text\n",
        "a: >-\n  text\n",
        "a: b\n  c\n",
        "a: \"x\\ty\"\n",
        "a: 'x\n  y'\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: é\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n",
        "--- a\n",
        "? a\n: b\n",
        "- - x\n",
        "a: b: c\n",
        "a:\n  b\n",
        "a: 1\n- x\n",
        "- x\na: 1\n",
        "{a,b}: 1\n",
    ];
    for src in left {
        assert_eq!(same_as_granit(src), Ok(false), "{src:?}");
    }
}

/// A tiny deterministic generator (xorshift), so a failure names a seed to replay.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn spaces(&mut self, out: &mut String, n: usize) {
        out.extend(std::iter::repeat_n(' ', n));
    }

    /// Words that are plain scalars, and some that are not, or only in some places.
    fn word(&mut self, key: bool) -> String {
        const PLAIN: &[&str] = &[
            "a",
            "name",
            "Ingress",
            "app.kubernetes.io/name",
            "x-y",
            "1",
            "-1",
            "true",
            "v1",
            "0.5",
            "a b",
            "a,b",
            "a#b",
            "a:b",
            "http://x.y/z",
            "~",
            "null",
        ];
        const ODD: &[&str] = &[
            "", "[x", "x]", "{y", "x:", "?x", ":x", "@x", "%x", "-", "#", "a #b", "a: b", "a'b",
            "'", "\"", "\\", "\t", "é", "...", "---", "-x", " a", "a ",
        ];
        let w = if self.chance(85) {
            self.pick(PLAIN)
        } else {
            self.pick(ODD)
        };
        match self.below(10) {
            0 => format!("'{}'", w.replace('\'', "''")),
            1 if !w.contains(['"', '\\']) => format!("\"{w}\""),
            2 if !key => format!("{w} {}", self.pick(PLAIN)),
            _ if w.is_empty() => "x".into(),
            _ => w.to_string(),
        }
    }

    fn comment(&mut self) -> &'static str {
        match self.below(16) {
            0 => " # c",
            1 => "  #c",
            2 => "   ",
            3 => "#c",
            _ => "",
        }
    }

    /// Blank and comment lines, sometimes.
    fn filler(&mut self, out: &mut String) {
        while self.chance(15) {
            match self.below(4) {
                0 => out.push('\n'),
                1 => {
                    let n = self.below(6) as usize;
                    self.spaces(out, n);
                    out.push_str("# note\n");
                }
                2 => out.push_str("   \n"),
                _ => out.push_str("#\n"),
            }
        }
    }

    /// A block mapping at column `col`; its first key continues the current line when
    /// `inline` (after `- `).
    fn map(&mut self, out: &mut String, col: usize, inline: bool, depth: u32) {
        for i in 0..1 + self.below(4) {
            if i > 0 || !inline {
                self.filler(out);
                self.spaces(out, col);
            }
            let key = self.word(true);
            out.push_str(&key);
            if self.chance(5) {
                out.push(' ');
            }
            out.push(':');
            self.value(out, col, depth);
        }
    }

    fn seq(&mut self, out: &mut String, col: usize, depth: u32) {
        for _ in 0..1 + self.below(4) {
            self.filler(out);
            self.spaces(out, col);
            out.push('-');
            match self.below(10) {
                k if depth < 4 && k < 3 => {
                    let sp = 1 + self.below(3) as usize;
                    self.spaces(out, sp);
                    self.map(out, col + 1 + sp, true, depth + 1);
                }
                k if depth < 4 && k < 5 => {
                    out.push_str(self.comment());
                    out.push('\n');
                    let ind = col + 1 + self.below(3) as usize;
                    if self.chance(50) {
                        self.map(out, ind, false, depth + 1);
                    } else {
                        self.seq(out, ind, depth + 1);
                    }
                }
                5 => {
                    if self.chance(50) {
                        out.push(' ');
                    }
                    out.push_str(self.comment());
                    out.push('\n');
                }
                6 if self.chance(10) => out.push_str(" - x\n"),
                _ => {
                    out.push(' ');
                    let w = self.word(false);
                    out.push_str(&w);
                    out.push_str(self.comment());
                    out.push('\n');
                }
            }
        }
    }

    /// What follows a key's colon: a nested block, nothing, or a scalar.
    fn value(&mut self, out: &mut String, col: usize, depth: u32) {
        match self.below(10) {
            k if depth < 4 && k < 3 => {
                out.push_str(self.comment());
                out.push('\n');
                let ind = col + 1 + self.below(3) as usize;
                self.map(out, ind, false, depth + 1);
            }
            k if depth < 4 && k < 5 => {
                out.push_str(self.comment());
                out.push('\n');
                // An indentless sequence half the time.
                let ind = if self.chance(50) {
                    col
                } else {
                    col + 1 + self.below(3) as usize
                };
                self.seq(out, ind, depth + 1);
            }
            5 => {
                out.push_str(self.comment());
                out.push('\n');
            }
            6 => {
                out.push(' ');
                let w = self.word(false);
                out.push_str(&w);
                out.push('\n');
                if self.chance(5) {
                    out.push_str("   more\n");
                }
            }
            _ => {
                let n = 1 + self.below(2) as usize;
                self.spaces(out, n);
                let w = self.word(false);
                out.push_str(&w);
                out.push_str(self.comment());
                out.push('\n');
            }
        }
    }

    fn stream(&mut self) -> String {
        let mut out = String::new();
        for d in 0..self.below(4).max(1) {
            self.filler(&mut out);
            if d > 0 || self.chance(40) {
                let marker = self.pick(&[
                    "---\n",
                    "---\n",
                    "---\n",
                    "---  \n",
                    "--- # x\n",
                    "---x\n",
                    "--- a\n",
                ]);
                out.push_str(marker);
            }
            self.filler(&mut out);
            match self.below(10) {
                0 => {}
                1..=6 => {
                    let col = if self.chance(10) { 2 } else { 0 };
                    self.map(&mut out, col, false, 0);
                }
                _ => self.seq(&mut out, 0, 0),
            }
        }
        self.filler(&mut out);
        if self.chance(20) && out.ends_with('\n') {
            out.pop();
        }
        // Now and then one byte changed, for the texts just outside the subset.
        if self.chance(5) && !out.is_empty() {
            let mut b = out.into_bytes();
            let i = self.below(b.len() as u64) as usize;
            b[i] = self
                .pick(&[" ", "-", ":", "#", "\n", "'", "x", "\"", "["])
                .as_bytes()[0];
            out = String::from_utf8(b).unwrap_or_default();
        }
        out
    }
}

#[test]
fn generated_documents_read_as_granit_reads_them() {
    let mut read = 0;
    for seed in 1..=4u64 {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15 ^ seed);
        for i in 0..5000 {
            let src = g.stream();
            match same_as_granit(&src) {
                Ok(r) => read += usize::from(r),
                Err(e) => panic!("seed {seed}, stream {i}: {e}"),
            }
        }
    }
    // The generator aims at the subset: a fair share must be read, or this compares nothing.
    assert!(read > 3000, "only {read} of 20000 generated streams read");
}
