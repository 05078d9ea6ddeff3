//! A fast reader for the plain block YAML nearly every manifest and kustomization is written
//! in: block mappings and sequences, plain and one-line quoted scalars, comments, blank lines
//! and `---` between documents, in ASCII. It builds exactly the [`Stream`] granit-parser's
//! events give (the same nodes in the same order, with the same spans, lines and columns), and
//! gives up (`None`) on anything else, which [`super::parse`] then hands to granit: flow
//! collections, anchors, aliases, tags, block and multi-line scalars, escapes, tabs, CRs,
//! non-ASCII text, directives, `...`, and every error. A 20,000-file Kustomize layout spends
//! most of its reading time parsing such files, and granit takes microseconds per line; the
//! edits splice bytes at these spans, so a test holds this reader equal to granit on every
//! corpus and fixture file and on generated documents.

use super::{Document, Node, NodeId, NodeKind, Stream, Style};

/// What the next line with content is.
#[derive(Clone, Copy)]
enum Next {
    Eof,
    /// A `---` line (a document start) beginning at this byte.
    DocStart(usize),
    /// A line whose content (after `indent` spaces) starts at byte `at`.
    Line {
        indent: usize,
        at: usize,
    },
}

struct Reader<'a> {
    src: &'a str,
    b: &'a [u8],
    /// Start of the current line.
    pos: usize,
    /// 1-based number of the current line.
    line: usize,
    stream: Stream,
    /// The entries of the collections being read, innermost last: each collection takes its
    /// own off the top when it ends, in one allocation of the right size.
    pairs: Vec<(NodeId, NodeId)>,
    items: Vec<NodeId>,
}

/// Parse `src` if it is in the subset this reader knows; `None` otherwise.
pub(super) fn parse(src: &str) -> Option<Stream> {
    let b = src.as_bytes();
    // About one node per `:` or `-` (a key and its value, an item): the arena is sized once.
    let mut marks = 0;
    for &c in b {
        if c >= 0x7f || (c < 0x20 && c != b'\n') {
            return None;
        }
        marks += usize::from(c == b':' || c == b'-');
    }
    let mut r = Reader {
        src,
        b,
        pos: 0,
        line: 1,
        stream: Stream {
            nodes: Vec::with_capacity(marks + 2),
            docs: Vec::new(),
        },
        pairs: Vec::new(),
        items: Vec::new(),
    };
    r.documents()?;
    Some(r.stream)
}

fn is_space(c: Option<&u8>) -> bool {
    matches!(c, None | Some(b' ') | Some(b'\n'))
}

impl Reader<'_> {
    fn line_end(&self, from: usize) -> usize {
        self.b[from..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.b.len(), |i| from + i)
    }

    /// Move to the start of the next line.
    fn next_line(&mut self) {
        let end = self.line_end(self.pos);
        if end < self.b.len() {
            self.pos = end + 1;
            self.line += 1;
        } else {
            self.pos = end;
        }
    }

    /// Skip blank and comment lines; what the next line with content is. Lines starting with
    /// `---` or `...` other than a plain document start, and directives, are not read.
    fn peek(&mut self) -> Option<Next> {
        loop {
            if self.pos >= self.b.len() {
                return Some(Next::Eof);
            }
            let end = self.line_end(self.pos);
            let line = &self.b[self.pos..end];
            let indent = line.iter().take_while(|&&c| c == b' ').count();
            let rest = &line[indent..];
            if rest.is_empty() || rest[0] == b'#' {
                if end >= self.b.len() {
                    self.pos = end;
                    return Some(Next::Eof);
                }
                self.next_line();
                continue;
            }
            if indent == 0 {
                if let Some(tail) = line.strip_prefix(b"---") {
                    // `---` alone, or before spaces and a comment; anything else is content
                    // this reader leaves to granit.
                    let start = match tail.iter().find(|&&c| c != b' ') {
                        None => true,
                        Some(b'#') => tail[0] == b' ',
                        Some(_) => false,
                    };
                    return start.then_some(Next::DocStart(self.pos));
                }
                if line.starts_with(b"...") || line[0] == b'%' {
                    return None;
                }
            }
            return Some(Next::Line {
                indent,
                at: self.pos + indent,
            });
        }
    }

    fn col(&self, at: usize) -> usize {
        at - self.pos
    }

    /// Where the next token starts: the content of the next line with some, or the end.
    fn next_token(&mut self) -> Option<usize> {
        Some(match self.peek()? {
            Next::Eof => self.b.len(),
            Next::DocStart(at) | Next::Line { at, .. } => at,
        })
    }

    fn push(&mut self, kind: NodeKind, start: usize, end: usize, col: usize) -> NodeId {
        self.stream.nodes.push(Node {
            kind,
            span: start..end,
            line: self.line,
            col,
            flow: false,
            anchored: false,
        });
        self.stream.nodes.len() - 1
    }

    /// An empty value: granit's `~` scalar of no width at `at`, which lies on `line` at
    /// column `col` (not always the current line: it can be the line of a `---` or a key).
    fn null(&mut self, at: usize, line: usize, col: usize) -> NodeId {
        self.stream.nodes.push(Node {
            kind: NodeKind::Scalar {
                value: "~".into(),
                style: Style::Plain,
                tagged: false,
            },
            span: at..at,
            line,
            col,
            flow: false,
            anchored: false,
        });
        self.stream.nodes.len() - 1
    }

    fn documents(&mut self) -> Option<()> {
        loop {
            let (line, root) = match self.peek()? {
                Next::Eof => return Some(()),
                Next::DocStart(at) => {
                    let line = self.line;
                    self.next_line();
                    match self.peek()? {
                        Next::Line { indent, at } => (line, self.block(indent, at)?),
                        // An empty document: its null sits after the `---`.
                        Next::Eof | Next::DocStart(_) => (line, self.null(at + 3, line, 3)),
                    }
                }
                Next::Line { indent, at } => (self.line, self.block(indent, at)?),
            };
            if let Next::Line { .. } = self.peek()? {
                return None;
            }
            let index = self.stream.docs.len() + 1;
            self.stream.docs.push(Document {
                index,
                root: Some(root),
                line,
            });
        }
    }

    fn is_entry(&self, at: usize) -> bool {
        self.b[at] == b'-' && is_space(self.b.get(at + 1))
    }

    /// A block collection whose first content is at `at` (column `indent`) on the current
    /// line.
    fn block(&mut self, indent: usize, at: usize) -> Option<NodeId> {
        if self.is_entry(at) {
            self.seq(indent, at, false)
        } else {
            self.key_colon(at)?;
            self.map(indent, at)
        }
    }

    /// If a mapping key starts at `at`: the end of its text (before any spaces) and the
    /// byte after its `:`.
    fn key_colon(&self, at: usize) -> Option<(usize, usize)> {
        let end = self.line_end(at);
        let c = self.b[at];
        if c == b'"' || c == b'\'' {
            let close = self.quote_end(at, end)?;
            return (self.b.get(close) == Some(&b':') && is_space(self.b.get(close + 1)))
                .then_some((close, close + 1));
        }
        if !plain_start(self.b, at) {
            return None;
        }
        let mut i = at;
        while i < end {
            match self.b[i] {
                b':' if is_space(self.b.get(i + 1)) => {
                    let mut e = i;
                    while self.b[e - 1] == b' ' {
                        e -= 1;
                    }
                    return (i - at <= 1000 && !self.b[at..e].iter().any(|c| b",[]{}".contains(c)))
                        .then_some((e, i + 1));
                }
                b'#' if self.b[i - 1] == b' ' => return None,
                _ => i += 1,
            }
        }
        None
    }

    /// The byte after the closing quote of the one-line quoted scalar opening at `at`.
    fn quote_end(&self, at: usize, end: usize) -> Option<usize> {
        let q = self.b[at];
        let mut i = at + 1;
        while i < end {
            let c = self.b[i];
            if c == b'\\' && q == b'"' {
                return None;
            }
            if c == q {
                if q == b'\'' && self.b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Some(i + 1);
            }
            i += 1;
        }
        None
    }

    /// The scalar node of the quoted or plain scalar `at..end` (already checked).
    fn scalar(&mut self, at: usize, end: usize) -> NodeId {
        let text = &self.src[at..end];
        let (value, style) = match self.b[at] {
            b'\'' => (
                text[1..text.len() - 1].replace("''", "'"),
                Style::SingleQuoted,
            ),
            b'"' => (text[1..text.len() - 1].to_string(), Style::DoubleQuoted),
            _ => (text.to_string(), Style::Plain),
        };
        let kind = NodeKind::Scalar {
            value,
            style,
            tagged: false,
        };
        let col = self.col(at);
        self.push(kind, at, end, col)
    }

    /// The end of a scalar value written at `at` to the end of its line, with nothing but a
    /// comment after it.
    fn value_end(&self, at: usize) -> Option<usize> {
        let end = self.line_end(at);
        let c = self.b[at];
        let stop = if c == b'"' || c == b'\'' {
            let close = self.quote_end(at, end)?;
            let rest = &self.b[close..end];
            let after = rest.iter().position(|&c| c != b' ').map(|i| rest[i]);
            return match after {
                None => Some(close),
                Some(b'#') if rest[0] == b' ' => Some(close),
                Some(_) => None,
            };
        } else {
            if !plain_start(self.b, at) {
                return None;
            }
            let mut i = at;
            loop {
                if i == end || (self.b[i] == b'#' && self.b[i - 1] == b' ') {
                    break i;
                }
                if self.b[i] == b':' && is_space(self.b.get(i + 1)) {
                    return None;
                }
                i += 1;
            }
        };
        let mut e = stop;
        while self.b[e - 1] == b' ' {
            e -= 1;
        }
        Some(e)
    }

    /// Where the content after `from` starts on its line (past spaces; the line's end when
    /// there is none), and where the line ends.
    fn content(&self, from: usize) -> (usize, usize) {
        let end = self.line_end(from);
        let spaces = self.b[from..end].iter().take_while(|&&c| c == b' ').count();
        (from + spaces, end)
    }

    /// A block mapping whose first key is at `at` (column `indent`) on the current line.
    fn map(&mut self, indent: usize, at: usize) -> Option<NodeId> {
        let col = self.col(at);
        let id = self.push(NodeKind::Map(Vec::new()), at, at, col);
        let base = self.pairs.len();
        let mut at = at;
        loop {
            let (key_end, after) = self.key_colon(at)?;
            let key = self.scalar(at, key_end);
            let (v, end) = self.content(after);
            let value = if v == end || self.b[v] == b'#' {
                // granit places it at the colon.
                let null_at = after - 1;
                let null_col = self.col(null_at);
                let null_line = self.line;
                self.next_line();
                match self.peek()? {
                    Next::Line { indent: i, at: a } if i > indent => self.block(i, a)?,
                    Next::Line { indent: i, at: a } if i == indent && self.is_entry(a) => {
                        self.seq(i, a, true)?
                    }
                    _ => self.null(null_at, null_line, null_col),
                }
            } else {
                self.line_scalar(v, indent)?
            };
            self.pairs.push((key, value));
            match self.peek()? {
                Next::Line { indent: i, at: a } if i == indent && !self.is_entry(a) => at = a,
                Next::Line { indent: i, .. } if i >= indent => return None,
                _ => break,
            }
        }
        let pairs = self.pairs.split_off(base);
        self.close(id, NodeKind::Map(pairs))
    }

    /// A block sequence whose first `-` is at `at` (column `indent`) on the current line;
    /// `indentless` when it is a mapping value written at its key's column.
    fn seq(&mut self, indent: usize, at: usize, indentless: bool) -> Option<NodeId> {
        // An indentless sequence starts where its first item does: its content on the line
        // of the `-`, else the end of that line (after any comment), as granit has it.
        let start = if indentless {
            match self.content(at + 1) {
                (first, end) if first == end || self.b[first] == b'#' => end,
                (first, _) => first,
            }
        } else {
            at
        };
        let col = self.col(start);
        let id = self.push(NodeKind::Seq(Vec::new()), start, start, col);
        let base = self.items.len();
        let mut at = at;
        loop {
            let (v, end) = self.content(at + 1);
            let item = if v == end || self.b[v] == b'#' {
                // granit places it at the end of the line (after any comment).
                let null_at = end;
                let null_col = self.col(end);
                let null_line = self.line;
                self.next_line();
                match self.peek()? {
                    Next::Line { indent: i, at: a } if i > indent => self.block(i, a)?,
                    _ => self.null(null_at, null_line, null_col),
                }
            } else if self.is_entry(v) {
                return None;
            } else if self.key_colon(v).is_some() {
                let c = self.col(v);
                self.map(c, v)?
            } else {
                self.line_scalar(v, indent)?
            };
            self.items.push(item);
            match self.peek()? {
                Next::Line { indent: i, at: a } if i == indent && self.is_entry(a) => at = a,
                Next::Line { indent: i, .. } if i == indent && indentless => break,
                Next::Line { indent: i, .. } if i >= indent => return None,
                _ => break,
            }
        }
        let items = self.items.split_off(base);
        self.close(id, NodeKind::Seq(items))
    }

    /// A scalar written at `at` to the end of its line, in a collection at column `indent`:
    /// a more indented line after it would continue it, which this reader leaves to granit.
    fn line_scalar(&mut self, at: usize, indent: usize) -> Option<NodeId> {
        let end = self.value_end(at)?;
        let n = self.scalar(at, end);
        self.next_line();
        match self.peek()? {
            Next::Line { indent: i, .. } if i > indent => None,
            _ => Some(n),
        }
    }

    /// A collection's entries, and its end: where the next token starts, as granit has it.
    fn close(&mut self, id: NodeId, kind: NodeKind) -> Option<NodeId> {
        let end = self.next_token()?;
        let node = &mut self.stream.nodes[id];
        node.kind = kind;
        node.span.end = end;
        Some(id)
    }
}

/// Can a plain scalar start at `at`? Not with an indicator, but `-` before a non-space.
fn plain_start(b: &[u8], at: usize) -> bool {
    match b[at] {
        b'-' => !is_space(b.get(at + 1)),
        c => !b"?:,[]{}#&*!|>'\"%@` ".contains(&c),
    }
}

#[cfg(test)]
mod tests;
