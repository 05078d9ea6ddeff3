//! `--output json`: one document on stdout at the end of a run.

use super::*;

/// The machine-readable report: everything collected, one JSON document on `finish`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub(crate) struct JsonDocument {
    pub stages: Vec<JsonStage>,
    /// Progress that came outside any stage.
    pub messages: Vec<String>,
    pub outputs: BTreeMap<&'static str, String>,
    pub tables: Vec<Table>,
    pub errors: Vec<JsonError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JsonStage {
    pub name: String,
    pub outcome: Option<Outcome>,
    pub progress: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JsonError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl JsonDocument {
    pub fn render(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|source| ReportError::Json { source })
    }
}

pub(crate) struct Json<W: Write + Send> {
    out: W,
    tokens: Vec<Token>,
    doc: JsonDocument,
    finished: bool,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Json {
            out,
            tokens: Vec::new(),
            doc: JsonDocument::default(),
            finished: false,
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Values are scrubbed as they arrive: a token inside the serialised text could be
    /// escaped differently and slip past a later search.
    fn clean(&self, s: &str) -> String {
        redacted(&self.tokens, s)
    }

    fn open_stage(&mut self) -> Option<&mut JsonStage> {
        self.doc.stages.last_mut().filter(|s| s.outcome.is_none())
    }
}

impl<W: Write + Send> Report for Json<W> {
    fn mask(&mut self, token: &Token) -> Result<(), ReportError> {
        remember(&mut self.tokens, token);
        Ok(())
    }
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError> {
        let name = self.clean(stage);
        self.doc.stages.push(JsonStage {
            name,
            outcome: None,
            progress: Vec::new(),
        });
        Ok(())
    }
    fn progress(&mut self, message: &str) -> Result<(), ReportError> {
        let message = self.clean(message);
        match self.open_stage() {
            Some(stage) => stage.progress.push(message),
            None => self.doc.messages.push(message),
        }
        Ok(())
    }
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError> {
        let name = self.clean(stage);
        match self.doc.stages.iter_mut().rev().find(|s| s.name == name) {
            Some(s) => s.outcome = Some(outcome),
            None => self.doc.stages.push(JsonStage {
                name,
                outcome: Some(outcome),
                progress: Vec::new(),
            }),
        }
        Ok(())
    }
    fn group(&mut self, _name: &str) -> Result<(), ReportError> {
        Ok(())
    }
    fn end_group(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError> {
        let value = self.clean(value);
        self.doc.outputs.insert(key.name(), value);
        Ok(())
    }
    fn summary_table(&mut self, table: &Table) -> Result<(), ReportError> {
        let t = Table {
            title: self.clean(&table.title),
            columns: table.columns.iter().map(|c| self.clean(c)).collect(),
            rows: table
                .rows
                .iter()
                .map(|r| r.iter().map(|c| self.clean(c)).collect())
                .collect(),
        };
        self.doc.tables.push(t);
        Ok(())
    }
    fn error_at(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: &str,
    ) -> Result<(), ReportError> {
        let e = JsonError {
            file: self.clean(&file.to_string_lossy()),
            line,
            col,
            message: self.clean(message),
        };
        self.doc.errors.push(e);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let text = self.doc.render()?;
        emit(&mut self.out, "stdout", &self.tokens, &text)
    }
}
