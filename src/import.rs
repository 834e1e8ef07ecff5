//! CSV subscriber import: streams a file, validates each row into an
//! [`ImportRow`], merges duplicates, and hands batches to the store. Memory
//! stays flat whatever the file size.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::bad_input;
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::safe_text::from_spreadsheet;
use crate::store::subscribers::{ImportRow, UpsertCounts, IMPORT_BATCH_ROWS};
use crate::store::{Store, StoreResult};

/// A row that was skipped, with its 1-based line number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub reason: String,
}

/// `LINE: rejected: REASON`, with the reason made safe for a terminal (it
/// may quote the file's content).
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: rejected: {}",
            self.line,
            crate::safe_text::for_terminal(&self.reason)
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub counts: UpsertCounts,
    pub rejected: u64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "imported {}, updated {}, unchanged {}, rejected {}",
            c.inserted, c.updated, c.unchanged, self.rejected
        )?;
        if c.merged > 0 {
            write!(f, " ({} duplicate rows merged)", c.merged)?;
        }
        Ok(())
    }
}

/// How each CSV column is used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Email,
    Name,
    Status,
    /// A JSON object merged into the attributes (as `export` writes it).
    Attributes,
    /// Bookkeeping columns from an export; ignored on the way back in.
    Ignored,
    /// Anything else becomes a string attribute under this key.
    Attribute(String),
}

fn classify(header: &str) -> Column {
    match header.trim().to_ascii_lowercase().as_str() {
        "email" | "e-mail" | "email_address" => Column::Email,
        "name" => Column::Name,
        "status" => Column::Status,
        "attributes" => Column::Attributes,
        "id" | "created_at" | "updated_at" | "unsubscribed_at" => Column::Ignored,
        _ => Column::Attribute(header.trim().to_string()),
    }
}

/// When a header without an `email` column is one field holding another
/// common delimiter next to `email`, say which `--delimiter` to pass.
fn delimiter_hint(headers: &csv::StringRecord, delimiter: u8) -> String {
    let [only] = headers.iter().collect::<Vec<_>>()[..] else {
        return String::new();
    };
    [b';', b'\t', b'|', b',']
        .into_iter()
        .filter(|d| *d != delimiter)
        .find(|d| {
            only.split(char::from(*d))
                .any(|h| classify(h) == Column::Email)
        })
        .map(|d| {
            let shown = if d == b'\t' {
                "\\t".to_string()
            } else {
                char::from(d).to_string()
            };
            format!("; the header looks `{shown}`-separated: pass --delimiter '{shown}'")
        })
        .unwrap_or_default()
}

/// Import `path` into `store`. Rejected rows are passed to `on_reject` as
/// they are met (and skipped); the valid rows are written in batched
/// transactions. A file that is not CSV or has no `email` column is a
/// [`crate::error::BadInput`] and nothing is written.
pub async fn import_csv(
    store: &Store,
    path: &Path,
    on_reject: impl FnMut(&Rejection),
) -> anyhow::Result<ImportReport> {
    import_csv_with(store, path, b',', on_reject).await
}

/// [`import_csv`] with another field delimiter (e.g. `b';'`, as spreadsheet
/// programs write CSV in many locales).
pub async fn import_csv_with(
    store: &Store,
    path: &Path,
    delimiter: u8,
    on_reject: impl FnMut(&Rejection),
) -> anyhow::Result<ImportReport> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| bad_input!("{shown}: cannot open: {e}"))?;
    import_reader_with(store, &shown, file, delimiter, on_reject).await
}

/// [`import_csv`] on any reader; `source` names it in messages.
pub async fn import_reader(
    store: &Store,
    source: &str,
    input: impl Read,
    on_reject: impl FnMut(&Rejection),
) -> anyhow::Result<ImportReport> {
    import_reader_with(store, source, input, b',', on_reject).await
}

/// [`import_reader`] with another field delimiter.
pub async fn import_reader_with(
    store: &Store,
    source: &str,
    input: impl Read,
    delimiter: u8,
    mut on_reject: impl FnMut(&Rejection),
) -> anyhow::Result<ImportReport> {
    let shown = source;
    let mut input = BufReader::with_capacity(1 << 16, input);
    let head = input
        .fill_buf()
        .with_context(|| format!("reading {shown}"))?;
    if head.contains(&0) {
        return Err(bad_input!("{shown}: not a CSV file (binary content)"));
    }
    // The csv reader ends a CRLF record at its `\r` and counts the `\n` into
    // the next record, so in a CRLF file (Excel, RFC 4180) every record's
    // line is reported one low: shift it to the physical line it starts on.
    let crlf_shift = u64::from(
        head.iter()
            .position(|b| *b == b'\n')
            .is_some_and(|i| i > 0 && head[i - 1] == b'\r'),
    );
    let capped = LineCap::new(input);
    let overlong = capped.overlong.clone();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::Headers)
        .from_reader(capped);
    let headers = reader
        .headers()
        .map_err(|e| bad_input!("{shown}:1: not a CSV header row: {e}"))?
        .clone();
    if overlong.lock().expect("not poisoned").contains(&1) {
        return Err(bad_input!(
            "{shown}:1: the header row is longer than {} KiB",
            MAX_RECORD_BYTES / 1024
        ));
    }
    if headers.len() > MAX_COLUMNS {
        return Err(bad_input!(
            "{shown}:1: the header has {} columns; at most {MAX_COLUMNS} are allowed",
            headers.len()
        ));
    }
    let columns: Vec<Column> = headers.iter().map(classify).collect();
    let Some(email_at) = columns.iter().position(|c| *c == Column::Email) else {
        return Err(bad_input!(
            "{shown}:1: no `email` column in the header (found: {}){}",
            headers.iter().collect::<Vec<_>>().join(", "),
            delimiter_hint(&headers, delimiter)
        ));
    };
    let mut seen = HashSet::with_capacity(headers.len());
    for h in headers.iter() {
        if !seen.insert(h.to_lowercase()) {
            return Err(bad_input!(
                "{shown}:1: column `{h}` appears twice in the header"
            ));
        }
    }

    let import_start = store.max_subscriber_id().await?;
    let mut report = ImportReport::default();
    let mut batch = Batch::default();
    let mut record = csv::StringRecord::new();
    let mut writing: Option<tokio::task::JoinHandle<StoreResult<UpsertCounts>>> = None;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line() + crlf_shift);
                // Physical lines of this record: from its start to the next
                // record's.
                let next = reader.position().line() + crlf_shift;
                let truncated = overlong
                    .lock()
                    .expect("not poisoned")
                    .range(line..next.max(line + 1))
                    .next()
                    .is_some();
                let parsed =
                    if truncated || record.as_byte_record().as_slice().len() > MAX_RECORD_BYTES {
                        Err(format!(
                            "the row is longer than {} KiB",
                            MAX_RECORD_BYTES / 1024
                        ))
                    } else {
                        parse_row(&record, &columns, email_at, headers.len())
                    };
                match parsed {
                    Ok(row) => batch.push(row, &mut report.counts),
                    Err(reason) => {
                        report.rejected += 1;
                        on_reject(&Rejection { line, reason });
                    }
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() + crlf_shift);
                match e.kind() {
                    csv::ErrorKind::Io(_) => {
                        return Err(anyhow::Error::new(e).context(format!("reading {shown}")))
                    }
                    _ => {
                        report.rejected += 1;
                        on_reject(&Rejection {
                            line,
                            reason: format!("not valid CSV: {e}"),
                        });
                    }
                }
            }
        }
        if batch.rows.len() >= IMPORT_BATCH_ROWS {
            // Write this batch while the next one is parsed: at most one
            // write in flight, so batches still commit in file order.
            if let Some(previous) = writing.take() {
                report.counts += previous.await??;
            }
            let rows = batch.take_rows();
            let store = store.clone();
            writing = Some(tokio::spawn(async move {
                store.upsert_import_batch(&rows, import_start).await
            }));
        }
    }
    if let Some(previous) = writing.take() {
        report.counts += previous.await??;
    }
    report.counts += store.upsert_import_batch(&batch.rows, import_start).await?;
    Ok(report)
}

/// Rows waiting to be written, unique by address (case-insensitive).
#[derive(Default)]
struct Batch {
    rows: Vec<ImportRow>,
    index: HashMap<String, usize>,
}

impl Batch {
    fn push(&mut self, row: ImportRow, counts: &mut UpsertCounts) {
        let key = row.email.as_ref().to_lowercase();
        match self.index.get(&key) {
            Some(&at) => {
                counts.merged += 1;
                let kept = &mut self.rows[at];
                if row.name.is_some() {
                    kept.name = row.name;
                }
                if row.status != SubscriberStatus::Active {
                    kept.status = row.status;
                }
                kept.attributes.extend(row.attributes);
            }
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// Hand over the rows and start an empty batch.
    fn take_rows(&mut self) -> Vec<ImportRow> {
        self.index.clear();
        std::mem::replace(&mut self.rows, Vec::with_capacity(IMPORT_BATCH_ROWS))
    }
}

fn parse_row(
    record: &csv::StringRecord,
    columns: &[Column],
    email_at: usize,
    width: usize,
) -> Result<ImportRow, String> {
    if record.len() != width {
        return Err(format!(
            "has {} fields, the header has {width}",
            record.len()
        ));
    }
    let email = SubscriberEmail::parse(from_spreadsheet(&record[email_at]))
        .map_err(|e| format!("email: {e}"))?;
    let mut row = ImportRow {
        email,
        name: None,
        status: SubscriberStatus::Active,
        attributes: serde_json::Map::new(),
    };
    for (column, value) in columns.iter().zip(record.iter()) {
        // Undo the formula guard `export` adds (`'=…` → `=…`).
        let value = from_spreadsheet(value).trim();
        match column {
            Column::Email | Column::Ignored => {}
            Column::Name => {
                row.name =
                    SubscriberName::parse_optional(value).map_err(|e| format!("name: {e}"))?;
            }
            Column::Status => {
                if !value.is_empty() {
                    row.status = value
                        .to_ascii_lowercase()
                        .parse()
                        .map_err(|e: String| format!("status: {e}"))?;
                }
            }
            Column::Attributes => {
                if !value.is_empty() {
                    match serde_json::from_str::<serde_json::Value>(value) {
                        Ok(serde_json::Value::Object(map)) => row.attributes.extend(map),
                        _ => return Err("attributes: not a JSON object".to_string()),
                    }
                }
            }
            Column::Attribute(key) => {
                if !value.is_empty() {
                    if value.chars().any(|c| c.is_control() && c != '\t') {
                        return Err(format!("{key}: contains a control character"));
                    }
                    row.attributes
                        .insert(key.clone(), serde_json::Value::String(value.to_string()));
                }
            }
        }
    }
    Ok(row)
}

/// The longest row (in bytes) an import accepts; a longer one is rejected
/// with its line number, and memory stays flat however long it is.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// The most columns a header may have.
pub const MAX_COLUMNS: usize = 1000;

/// A reader that passes at most [`MAX_RECORD_BYTES`] of any physical line to
/// the CSV parser and drops the rest of that line, noting its number, so a
/// huge field never reaches memory and the row holding it can be rejected.
/// When the dropped part holds an odd number of quotes, one quote stands in
/// for them, so the parser's quoting state at the end of the line (and so
/// where the next row starts) is the same as with the whole line.
struct LineCap<R> {
    inner: R,
    /// 1-based number of the line being read.
    line: u64,
    /// Bytes of the current line seen so far.
    seen: usize,
    /// Quotes dropped from the current line, odd or even.
    odd_quotes: bool,
    /// Line numbers that were cut.
    overlong: Arc<Mutex<BTreeSet<u64>>>,
}

impl<R> LineCap<R> {
    fn new(inner: R) -> LineCap<R> {
        LineCap {
            inner,
            line: 1,
            seen: 0,
            odd_quotes: false,
            overlong: Arc::default(),
        }
    }
}

impl<R: BufRead> Read for LineCap<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let available = self.inner.fill_buf()?;
            if available.is_empty() || out.is_empty() {
                return Ok(0);
            }
            let mut taken = 0; // bytes consumed from `available`
            let mut written = 0; // bytes written to `out`
            while taken < available.len() && written < out.len() {
                // Within the cap, pass the run up to the next line break in
                // one copy (the import's common case).
                if self.seen < MAX_RECORD_BYTES {
                    let rest = &available[taken..];
                    let room = (out.len() - written)
                        .min(MAX_RECORD_BYTES - self.seen)
                        .min(rest.len());
                    let run = rest[..room]
                        .iter()
                        .position(|&b| b == b'\n')
                        .unwrap_or(room);
                    if run > 0 {
                        out[written..written + run].copy_from_slice(&rest[..run]);
                        written += run;
                        taken += run;
                        self.seen += run;
                        continue;
                    }
                }
                let b = available[taken];
                if b == b'\n' {
                    if self.odd_quotes {
                        out[written] = b'"';
                        written += 1;
                        self.odd_quotes = false;
                        continue; // the newline goes out next, room permitting
                    }
                    out[written] = b;
                    written += 1;
                    self.line += 1;
                    self.seen = 0;
                } else {
                    self.seen += 1;
                    if self.seen <= MAX_RECORD_BYTES {
                        out[written] = b;
                        written += 1;
                    } else {
                        if self.seen == MAX_RECORD_BYTES + 1 {
                            self.overlong
                                .lock()
                                .expect("not poisoned")
                                .insert(self.line);
                        }
                        if b == b'"' {
                            self.odd_quotes = !self.odd_quotes;
                        }
                    }
                }
                taken += 1;
            }
            self.inner.consume(taken);
            if written > 0 {
                return Ok(written);
            }
        }
    }
}
