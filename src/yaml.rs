//! A YAML span tree: every node of every document with its exact byte range in the source.
//!
//! Serde round trips lose comments, quoting and layout, so edits are made by splicing bytes at
//! spans this tree reports. The tree is built from granit-parser's events (the parser behind
//! serde-saphyr), which carry byte offsets; it is read-only and does no I/O. Aliases stay
//! visible as `Alias` nodes so that an edit never silently changes a value shared by an anchor.

use std::ops::Range;

mod fast;

/// Index of a node in `Stream::nodes`.
pub(crate) type NodeId = usize;

/// How a scalar was written; an edit keeps the style of the value it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        value: String,
        style: Style,
        /// A tag such as `!!str` was written before the value.
        tagged: bool,
    },
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
    /// `*name`: refers to the anchored node.
    Alias(NodeId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// Bytes of the node's content. For quoted scalars this includes the quotes; for block
    /// collections it runs from the first key or item to where the parser closed it.
    pub span: Range<usize>,
    /// 1-based line of the span start.
    pub line: usize,
    /// 0-based column (in characters) of the span start.
    pub col: usize,
    /// Flow collection (`{...}` / `[...]`).
    pub flow: bool,
    /// The node carries an anchor (`&name`).
    pub anchored: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position in the stream, as people count documents.
    pub index: usize,
    pub root: Option<NodeId>,
    /// 1-based line where the document's content starts.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    pub nodes: Vec<Node>,
    pub docs: Vec<Document>,
}

/// The source is not YAML this parser accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Characters (not bytes) to a byte offset, for markers that lack a byte offset.
fn byte_at(src: &str, marker: &granit_parser::Marker) -> usize {
    marker.byte_offset().unwrap_or_else(|| {
        src.char_indices()
            .nth(marker.index())
            .map(|(b, _)| b)
            .unwrap_or(src.len())
    })
}

enum Open {
    Seq(NodeId, Vec<NodeId>),
    Map(NodeId, Vec<NodeId>),
}

/// Parse every document of `src` into one arena: plain block YAML by [`fast`], the rest by
/// granit-parser (both give the same stream where both read).
pub fn parse(src: &str) -> Result<Stream, ParseError> {
    match fast::parse(src) {
        Some(stream) => Ok(stream),
        None => parse_events(src),
    }
}

/// [`parse`] through granit-parser's events, for any YAML.
pub(crate) fn parse_events(src: &str) -> Result<Stream, ParseError> {
    use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

    let mut stream = Stream::default();
    let mut parser = Parser::new_from_str(src);
    let mut stack: Vec<Open> = Vec::new();
    // Anchor ids are per document in the parser; map them to nodes.
    let mut anchors: std::collections::HashMap<usize, NodeId> = Default::default();
    let mut doc_root: Option<NodeId> = None;
    let mut doc_line = 1;

    fn attach(stack: &mut [Open], root: &mut Option<NodeId>, id: NodeId) {
        match stack.last_mut() {
            Some(Open::Seq(_, items)) | Some(Open::Map(_, items)) => items.push(id),
            None => *root = Some(id),
        }
    }

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| ParseError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let start = byte_at(src, &span.start);
        let end = byte_at(src, &span.end);
        let line = span.start.line();
        let col = span.start.col();
        match event {
            Event::DocumentStart(..) => {
                doc_root = None;
                anchors.clear();
                doc_line = line;
            }
            Event::DocumentEnd => {
                let index = stream.docs.len() + 1;
                stream.docs.push(Document {
                    index,
                    root: doc_root.take(),
                    line: doc_line,
                });
            }
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    ScalarStyle::Literal => Style::Literal,
                    ScalarStyle::Folded => Style::Folded,
                };
                let id = stream.nodes.len();
                stream.nodes.push(Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        style,
                        tagged: tag.is_some(),
                    },
                    span: start..end,
                    line,
                    col,
                    flow: false,
                    anchored: anchor != 0,
                });
                if anchor != 0 {
                    anchors.insert(anchor, id);
                }
                attach(&mut stack, &mut doc_root, id);
            }
            Event::Alias(anchor) => {
                let target = anchors.get(&anchor).copied().ok_or_else(|| ParseError {
                    line,
                    col: col + 1,
                    message: "alias to an unknown anchor".into(),
                })?;
                let id = stream.nodes.len();
                stream.nodes.push(Node {
                    kind: NodeKind::Alias(target),
                    span: start..end,
                    line,
                    col,
                    flow: false,
                    anchored: false,
                });
                attach(&mut stack, &mut doc_root, id);
            }
            Event::SequenceStart(style, anchor, _) | Event::MappingStart(style, anchor, _) => {
                let is_map = matches!(event, Event::MappingStart(..));
                let id = stream.nodes.len();
                stream.nodes.push(Node {
                    kind: if is_map {
                        NodeKind::Map(Vec::new())
                    } else {
                        NodeKind::Seq(Vec::new())
                    },
                    span: start..end,
                    line,
                    col,
                    flow: style == StructureStyle::Flow,
                    anchored: anchor != 0,
                });
                if anchor != 0 {
                    anchors.insert(anchor, id);
                }
                attach(&mut stack, &mut doc_root, id);
                stack.push(if is_map {
                    Open::Map(id, Vec::new())
                } else {
                    Open::Seq(id, Vec::new())
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else {
                    return Err(ParseError {
                        line,
                        col: col + 1,
                        message: "unbalanced collection end".into(),
                    });
                };
                let (id, kind) = match open {
                    Open::Seq(id, items) => (id, NodeKind::Seq(items)),
                    Open::Map(id, items) => {
                        let pairs = items.chunks(2).filter_map(|c| match c {
                            [k, v] => Some((*k, *v)),
                            _ => None,
                        });
                        (id, NodeKind::Map(pairs.collect()))
                    }
                };
                let node = &mut stream.nodes[id];
                node.kind = kind;
                node.span.end = end.max(node.span.start);
            }
            _ => {}
        }
    }
    Ok(stream)
}

/// Writes JSON text while building the nodes `parse` would read from it.
struct JsonWriter {
    text: String,
    stream: Stream,
    line: usize,
    /// Characters since the start of the line (columns count characters).
    col: usize,
}

impl JsonWriter {
    fn push(&mut self, s: &str) {
        match s.rfind('\n') {
            Some(nl) => {
                self.line += s.matches('\n').count();
                self.col = s[nl + 1..].chars().count();
            }
            None => self.col += s.chars().count(),
        }
        self.text.push_str(s);
    }

    fn node(
        &mut self,
        kind: NodeKind,
        start: usize,
        line: usize,
        col: usize,
        flow: bool,
    ) -> NodeId {
        self.stream.nodes.push(Node {
            kind,
            span: start..self.text.len(),
            line,
            col,
            flow,
            anchored: false,
        });
        self.stream.nodes.len() - 1
    }

    fn scalar(&mut self, value: String, json: &str, style: Style) -> NodeId {
        let (start, line, col) = (self.text.len(), self.line, self.col);
        self.push(json);
        let kind = NodeKind::Scalar {
            value,
            style,
            tagged: false,
        };
        self.node(kind, start, line, col, false)
    }

    fn string(&mut self, s: &str) -> NodeId {
        let (start, line, col) = (self.text.len(), self.line, self.col);
        self.text.push('"');
        // JSON's escapes (quote, backslash, control characters), and `\u` for what YAML does
        // not allow raw (DEL, C1 controls), so the text is both JSON and YAML.
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let esc = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                '\u{8}' => "\\b",
                '\u{c}' => "\\f",
                '\0'..='\u{1f}'
                | '\u{7f}'..='\u{84}'
                | '\u{86}'..='\u{9f}'
                | '\u{fffe}'
                | '\u{ffff}' => "",
                _ => continue,
            };
            self.text.push_str(&s[plain..i]);
            if esc.is_empty() {
                self.text.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                self.text.push_str(esc);
            }
            plain = i + c.len_utf8();
        }
        self.text.push_str(&s[plain..]);
        self.text.push('"');
        // A JSON string is one line: its columns are its characters.
        self.col += self.text[start..].chars().count();
        self.node(
            NodeKind::Scalar {
                value: s.to_string(),
                style: Style::DoubleQuoted,
                tagged: false,
            },
            start,
            line,
            col,
            false,
        )
    }

    fn value(&mut self, v: &serde_json::Value) -> NodeId {
        use serde_json::Value;
        let (start, line, col) = (self.text.len(), self.line, self.col);
        match v {
            Value::String(s) => self.string(s),
            Value::Null | Value::Bool(_) | Value::Number(_) => {
                let json = v.to_string();
                self.scalar(json.clone(), &json, Style::Plain)
            }
            Value::Array(items) => {
                // The node is pushed first, as `parse` numbers a collection before its items.
                let id = self.node(NodeKind::Seq(Vec::new()), start, line, col, true);
                self.push("[");
                let mut ids = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    ids.push(self.value(item));
                }
                self.push("]");
                self.close(id, NodeKind::Seq(ids));
                id
            }
            Value::Object(map) => {
                let id = self.node(NodeKind::Map(Vec::new()), start, line, col, true);
                self.push("{");
                let mut pairs = Vec::with_capacity(map.len());
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    let key = self.string(k);
                    self.push(":");
                    pairs.push((key, self.value(v)));
                }
                self.push("}");
                self.close(id, NodeKind::Map(pairs));
                id
            }
        }
    }

    fn close(&mut self, id: NodeId, kind: NodeKind) {
        let end = self.text.len();
        let node = &mut self.stream.nodes[id];
        node.kind = kind;
        node.span.end = end;
    }
}

/// JSON documents as one YAML text (compact JSON, `---` between, a newline at the end) and
/// the stream [`parse`] reads from that text, built without parsing it: rendered objects are
/// handed to the routers this way, and parsing the text back was most of the time `plan`
/// spent on a large Kustomize layout. A unit test holds it to `parse`.
pub(crate) fn from_json<'v>(
    values: impl IntoIterator<Item = &'v serde_json::Value>,
) -> (String, Stream) {
    // Sized for a few small objects (a root's Ingresses), so most renderings grow neither.
    let mut w = JsonWriter {
        text: String::with_capacity(1 << 10),
        stream: Stream {
            nodes: Vec::with_capacity(64),
            docs: Vec::new(),
        },
        line: 1,
        col: 0,
    };
    for (i, v) in values.into_iter().enumerate() {
        // A document's line is where it starts: its `---` after the first.
        let line = if i > 0 {
            w.push("\n---\n");
            w.line - 1
        } else {
            w.line
        };
        let root = w.value(v);
        let index = w.stream.docs.len() + 1;
        w.stream.docs.push(Document {
            index,
            root: Some(root),
            line,
        });
    }
    w.push("\n");
    (w.text, w.stream)
}

impl Stream {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Follow aliases to the node that holds the value.
    pub fn resolve(&self, mut id: NodeId) -> NodeId {
        // Aliases can only point backwards, so this terminates.
        while let NodeKind::Alias(target) = self.nodes[id].kind {
            id = target;
        }
        id
    }

    /// The scalar text of a node (through aliases), if it is a scalar.
    pub fn str(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Entries of a mapping node (through aliases).
    pub fn entries(&self, id: NodeId) -> &[(NodeId, NodeId)] {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Items of a sequence node (through aliases).
    pub fn items(&self, id: NodeId) -> &[NodeId] {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Seq(items) => items,
            _ => &[],
        }
    }

    pub(crate) fn is_map(&self, id: NodeId) -> bool {
        matches!(self.nodes[self.resolve(id)].kind, NodeKind::Map(_))
    }

    /// The value under `key` in a mapping. With a duplicated key the last one wins, as in
    /// the Go YAML decoder the Kubernetes tools use.
    pub fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.entry(map, key).map(|(_, v)| v)
    }

    /// The (key, value) entry under `key`.
    pub fn entry(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        self.entries(map)
            .iter()
            .rev()
            .find(|(k, _)| self.str(*k) == Some(key))
            .copied()
    }

    /// Walk a path of mapping keys.
    pub fn path(&self, mut id: NodeId, keys: &[&str]) -> Option<NodeId> {
        for key in keys {
            id = self.get(id, key)?;
        }
        Some(id)
    }

    /// A plain JSON-like value of a node, for semantic comparison. Scalars stay strings with
    /// their plain/quoted distinction, which is what matters for Kubernetes string fields.
    pub fn to_value(&self, id: NodeId) -> serde_json::Value {
        use serde_json::Value;
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Scalar { value, style, .. } => match style {
                Style::Plain => Value::String(format!("plain:{value}")),
                _ => Value::String(format!("str:{value}")),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(|i| self.to_value(*i)).collect()),
            NodeKind::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match self.str(*k) {
                        Some(s) => s.to_string(),
                        None => self.to_value(*k).to_string(),
                    };
                    m.insert(key, self.to_value(*v));
                }
                Value::Object(m)
            }
            NodeKind::Alias(_) => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_is_what_parse_reads_from_its_text() {
        let docs = [
            serde_json::json!({"apiVersion": "v1", "kind": "Ingress", "metadata": {"name": "é-x", "annotations": {"a/b": "10", "q": "say \"hi\"\n\ttab\u{1} back\\slash\r\u{8}\u{c}\u{1f}\u{7f} ünï"}}, "spec": {"rules": [{"host": "h", "n": 3, "f": 1.5, "t": true, "z": null, "e": [], "m": {}}]}}),
            serde_json::json!({"kind": "Service", "list": [[1, "2"], {"k": ["ünï", -7]}]}),
            serde_json::json!("just a string"),
            serde_json::json!([]),
        ];
        for n in 0..=docs.len() {
            let (text, built) = from_json(docs.iter().take(n));
            let parsed = parse(&text).unwrap();
            assert_eq!(built, parsed, "{n} documents: {text}");
        }
    }

    #[test]
    fn spans_cover_quotes_and_survive_bom_and_crlf() {
        let src = "\u{feff}# c\r\nmetadata:\r\n  name: \"x\"\r\n  w: '10'  \r\n---\r\nkind: X\r\n";
        let s = parse(src).unwrap();
        assert_eq!(s.docs.len(), 2);
        let root = s.docs[0].root.unwrap();
        let name = s.path(root, &["metadata", "name"]).unwrap();
        assert_eq!(&src[s.node(name).span.clone()], "\"x\"");
        let w = s.path(root, &["metadata", "w"]).unwrap();
        assert_eq!(&src[s.node(w).span.clone()], "'10'");
        assert_eq!(s.str(w), Some("10"));
        let kind = s.get(s.docs[1].root.unwrap(), "kind").unwrap();
        assert_eq!(s.node(kind).line, 6);
        assert_eq!(s.docs[1].index, 2);
    }

    #[test]
    fn multibyte_text_before_a_value_keeps_byte_offsets() {
        let src = "a: \"привет\" # коммент\nb: 5\n";
        let s = parse(src).unwrap();
        let b = s.get(s.docs[0].root.unwrap(), "b").unwrap();
        assert_eq!(&src[s.node(b).span.clone()], "5");
    }

    #[test]
    fn aliases_resolve_but_stay_visible() {
        let s = parse("a: &x 5\nb: *x\n").unwrap();
        let root = s.docs[0].root.unwrap();
        let b = s.get(root, "b").unwrap();
        assert!(matches!(s.node(b).kind, NodeKind::Alias(_)));
        assert_eq!(s.str(b), Some("5"));
        assert!(s.node(s.get(root, "a").unwrap()).anchored);
    }

    #[test]
    fn broken_yaml_is_an_error_with_a_position() {
        let err = parse("a: [1, 2\nb: {{ .Values.x }}\n").unwrap_err();
        assert!(err.line >= 1, "{err}");
    }

    #[test]
    fn flow_map_end_is_the_closing_brace() {
        let src = "m: {a: \"1\"}\n";
        let s = parse(src).unwrap();
        let m = s.get(s.docs[0].root.unwrap(), "m").unwrap();
        assert!(s.node(m).flow);
        assert_eq!(&src[s.node(m).span.end - 1..s.node(m).span.end], "}");
    }
}
