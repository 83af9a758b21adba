//! Reading tweet files: CSV with a header line, or JSON lines.
//!
//! A file is read one row at a time, so memory stays flat whatever its size.
//! A problem that concerns the whole file (it is empty, unreadable, or lacks
//! a column) is an [`InputError`]; a problem with one row is a [`BadRow`] that
//! names the line and the problem, and the caller decides whether to skip it
//! or stop (`--strict`).
//!
//! What a row must hold:
//! - `status_id` and `user_id`: integers from 0 to 2^63-1 (JSON: a number or
//!   a string of digits, as Twitter's `id_str`);
//! - `status_text`: valid UTF-8, not empty, without NUL bytes. Tabs, line
//!   breaks and other control characters are kept as they are: the tokenizer
//!   drops what it does not use, and the store keeps the text byte for byte;
//! - `created_at` (optional): empty, or a timestamp in one of the forms of
//!   [`parse_timestamp`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use toxstore::Tweet;

use crate::exit::InputError;

/// The format of a tweet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TweetFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl TweetFormat {
    /// Guesses the format from a file name: `.jsonl`, `.ndjson` and `.json`
    /// are JSON lines, anything else CSV.
    pub fn guess(path: &Path) -> TweetFormat {
        let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or("");
        match extension.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => TweetFormat::Jsonl,
            _ => TweetFormat::Csv,
        }
    }
}

/// Which column (CSV) or key (JSON; `a.b` reaches into nested objects) holds
/// each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// The status id's column.
    pub status_id: String,
    /// The user id's column.
    pub user_id: String,
    /// The text's column.
    pub status_text: String,
    /// The creation time's column.
    pub created_at: String,
    /// Whether a file without the creation time's column is an error (when
    /// the user named the column) or simply has no creation times.
    pub created_at_required: bool,
}

impl Default for ColumnMapping {
    fn default() -> Self {
        Self {
            status_id: "status_id".into(),
            user_id: "user_id".into(),
            status_text: "status_text".into(),
            created_at: "created_at".into(),
            created_at_required: false,
        }
    }
}

/// A row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The 1-based line where the row starts.
    pub line: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// One row of a tweet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A valid tweet.
    Tweet(Tweet),
    /// A row that is skipped (or fatal under `--strict`).
    Bad(BadRow),
}

/// A tweet file opened for reading, an iterator over its rows.
pub struct TweetFile {
    path: PathBuf,
    rows: Rows,
}

impl std::fmt::Debug for TweetFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TweetFile").field("path", &self.path).finish_non_exhaustive()
    }
}

enum Rows {
    Csv(CsvRows),
    Jsonl(JsonlRows),
}

impl TweetFile {
    /// Opens a tweet file, reading its header if it is a CSV file.
    pub fn open(path: &Path, format: TweetFormat, mapping: &ColumnMapping) -> Result<TweetFile, InputError> {
        let display = path.display();
        let file = File::open(path)
            .map_err(|source| InputError { message: format!("cannot open {display}"), source: Some(source) })?;
        let metadata = file
            .metadata()
            .map_err(|source| InputError { message: format!("cannot read {display}"), source: Some(source) })?;
        if metadata.is_dir() {
            return Err(InputError::new(format!("{display} is a folder, not a tweet file")));
        }
        if metadata.len() == 0 {
            let expected = match format {
                TweetFormat::Csv => format!("a header line ({}) and one row per tweet", mapping.required_columns()),
                TweetFormat::Jsonl => "one JSON object per line".to_owned(),
            };
            return Err(InputError::new(format!("{display} is empty (0 bytes): expected {expected}")));
        }
        let rows = match format {
            TweetFormat::Csv => Rows::Csv(CsvRows::new(path, file, mapping)?),
            TweetFormat::Jsonl => Rows::Jsonl(JsonlRows {
                reader: BufReader::with_capacity(1 << 16, file),
                line: 0,
                buffer: Vec::new(),
                mapping: mapping.clone(),
            }),
        };
        Ok(TweetFile { path: path.to_owned(), rows })
    }
}

impl Iterator for TweetFile {
    type Item = Result<Row, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.path;
        match &mut self.rows {
            Rows::Csv(rows) => rows.next_row(path),
            Rows::Jsonl(rows) => rows.next_row(path),
        }
    }
}

impl ColumnMapping {
    fn required_columns(&self) -> String {
        format!("{},{},{}", self.status_id, self.user_id, self.status_text)
    }
}

/// Counts the double quotes read through it. In a file quoted as RFC 4180
/// says, their number is even; an odd number at the end of the file means a
/// quoted field was never closed, and the csv reader has silently made the
/// rest of the file part of the last record.
struct QuoteCounter {
    file: File,
    quotes: u64,
    /// The bytes read from the start of the current record on (the csv
    /// reader reads ahead), for [`QuoteCounter::line_of`].
    window: std::collections::VecDeque<u8>,
    /// The offset in the file of `window`'s first byte.
    window_start: u64,
}

impl QuoteCounter {
    fn new(file: File) -> QuoteCounter {
        QuoteCounter { file, quotes: 0, window: Default::default(), window_start: 0 }
    }

    /// The line a record starts on, from the position the csv crate gives
    /// it. That position is where the reader resumed, before the line breaks
    /// it skips: the `\n` of a `\r\n` (it ends a record at the `\r`) and
    /// empty lines. Those are counted here. Calls must come in file order.
    fn line_of(&mut self, position: &csv::Position) -> u64 {
        let passed = usize::try_from(position.byte().saturating_sub(self.window_start)).unwrap_or(usize::MAX);
        self.window.drain(..passed.min(self.window.len()));
        self.window_start = self.window_start.max(position.byte());
        let skipped = self.window.iter().take_while(|&&byte| byte == b'\r' || byte == b'\n');
        position.line() + skipped.filter(|&&byte| byte == b'\n').count() as u64
    }
}

impl std::io::Read for QuoteCounter {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n_read = self.file.read(buffer)?;
        self.quotes += buffer[..n_read].iter().filter(|&&byte| byte == b'"').count() as u64;
        self.window.extend(&buffer[..n_read]);
        Ok(n_read)
    }
}

struct CsvRows {
    reader: csv::Reader<QuoteCounter>,
    record: csv::ByteRecord,
    /// The record after `record`, read ahead so that the last record can be
    /// checked for an unclosed quote before it is handed out.
    next_record: csv::ByteRecord,
    has_next: bool,
    deferred_error: Option<csv::Error>,
    n_fields: usize,
    status_id: usize,
    user_id: usize,
    status_text: usize,
    created_at: Option<usize>,
    names: [String; 4],
}

impl CsvRows {
    fn new(path: &Path, file: File, mapping: &ColumnMapping) -> Result<CsvRows, InputError> {
        let display = path.display();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(QuoteCounter::new(file));
        let headers = reader.byte_headers().map_err(|error| csv_error(path, error))?.clone();
        let mut names = Vec::with_capacity(headers.len());
        for (idx, field) in headers.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| {
                InputError::new(format!("{display}:1: the header's column {} is not valid UTF-8", idx + 1))
            })?;
            let name = if idx == 0 { name.trim_start_matches('\u{feff}') } else { name };
            names.push(name.trim().to_owned());
        }
        if names.iter().all(String::is_empty) {
            return Err(InputError::new(format!(
                "{display}:1: the header line is empty: expected the columns {}",
                mapping.required_columns()
            )));
        }
        let find = |column: &str| names.iter().position(|name| name == column);
        let missing = |column: &str, flag: &str| {
            InputError::new(format!(
                "{display}:1: the header has no column {column:?} (columns: {}); name the right one with {flag}",
                names.join(",")
            ))
        };
        let status_id = find(&mapping.status_id).ok_or_else(|| missing(&mapping.status_id, "--status-id-column"))?;
        let user_id = find(&mapping.user_id).ok_or_else(|| missing(&mapping.user_id, "--user-id-column"))?;
        let status_text = find(&mapping.status_text).ok_or_else(|| missing(&mapping.status_text, "--text-column"))?;
        let created_at = find(&mapping.created_at);
        if created_at.is_none() && mapping.created_at_required {
            return Err(missing(&mapping.created_at, "--created-at-column"));
        }
        let mut next_record = csv::ByteRecord::new();
        let (has_next, deferred_error) = match reader.read_byte_record(&mut next_record) {
            Ok(has_next) => (has_next, None),
            Err(error) => (false, Some(error)),
        };
        Ok(CsvRows {
            reader,
            record: csv::ByteRecord::new(),
            next_record,
            has_next,
            deferred_error,
            n_fields: names.len(),
            status_id,
            user_id,
            status_text,
            created_at,
            names: [
                mapping.status_id.clone(),
                mapping.user_id.clone(),
                mapping.status_text.clone(),
                mapping.created_at.clone(),
            ],
        })
    }

    fn next_row(&mut self, path: &Path) -> Option<Result<Row, InputError>> {
        if !self.has_next {
            return self.deferred_error.take().map(|error| Err(csv_error(path, error)));
        }
        std::mem::swap(&mut self.record, &mut self.next_record);
        match self.reader.read_byte_record(&mut self.next_record) {
            Ok(has_next) => self.has_next = has_next,
            Err(error) => {
                self.has_next = false;
                self.deferred_error = Some(error);
            }
        }
        let line = self.record.position().map_or(0, |position| self.reader.get_mut().line_of(position));
        let unclosed_quote = !self.has_next
            && self.deferred_error.is_none()
            && self.reader.get_ref().quotes % 2 == 1
            && self.record.iter().any(|field| field.contains(&b'\n'));
        let parsed = if unclosed_quote {
            Err("a quoted field is never closed: it runs to the end of the file; check for an unbalanced quote"
                .to_owned())
        } else {
            self.parse_record()
        };
        Some(Ok(match parsed {
            Ok(tweet) => Row::Tweet(tweet),
            Err(problem) => Row::Bad(BadRow { line, problem }),
        }))
    }

    fn parse_record(&self) -> Result<Tweet, String> {
        let record = &self.record;
        if record.len() != self.n_fields {
            let spans_lines = record.iter().any(|field| field.contains(&b'\n'));
            let hint = if spans_lines {
                "; a quoted field runs over several lines: check for an unbalanced quote"
            } else {
                ""
            };
            return Err(format!("expected {} fields, found {}{hint}", self.n_fields, record.len()));
        }
        let field = |idx: usize| record.get(idx).unwrap_or_default();
        let [status_id_name, user_id_name, text_name, created_at_name] = &self.names;
        let status_id = parse_id(status_id_name, utf8_field(status_id_name, field(self.status_id))?)?;
        let user_id = parse_id(user_id_name, utf8_field(user_id_name, field(self.user_id))?)?;
        let status_text = check_text(text_name, utf8_field(text_name, field(self.status_text))?)?.to_owned();
        let created_at = match self.created_at {
            None => None,
            Some(idx) => parse_created_at(created_at_name, utf8_field(created_at_name, field(idx))?)?,
        };
        Ok(Tweet { status_id, user_id, status_text, created_at })
    }
}

fn csv_error(path: &Path, error: csv::Error) -> InputError {
    let line = error.position().map(csv::Position::line);
    let location = match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    };
    if !error.is_io_error() {
        return InputError::new(format!("{location}: {error}"));
    }
    match error.into_kind() {
        csv::ErrorKind::Io(source) => InputError { message: format!("cannot read {location}"), source: Some(source) },
        _ => InputError::new(format!("cannot read {location}")),
    }
}

struct JsonlRows {
    reader: BufReader<File>,
    line: u64,
    buffer: Vec<u8>,
    mapping: ColumnMapping,
}

impl JsonlRows {
    fn next_row(&mut self, path: &Path) -> Option<Result<Row, InputError>> {
        loop {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(InputError {
                        message: format!("cannot read {}:{}", path.display(), self.line + 1),
                        source: Some(source),
                    }));
                }
            }
            self.line += 1;
            let mut bytes = self.buffer.as_slice();
            if self.line == 1 {
                bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
            }
            while let [rest @ .., b'\n' | b'\r'] = bytes {
                bytes = rest;
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.line;
            return Some(Ok(match parse_json_line(bytes, &self.mapping) {
                Ok(tweet) => Row::Tweet(tweet),
                Err(problem) => Row::Bad(BadRow { line, problem }),
            }));
        }
    }
}

fn parse_json_line(bytes: &[u8], mapping: &ColumnMapping) -> Result<Tweet, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|error| format!("the line is not valid UTF-8 (at byte {})", error.valid_up_to()))?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    let serde_json::Value::Object(_) = &value else {
        return Err(format!("expected a JSON object, found {}", json_kind(&value)));
    };
    let get = |key: &str| -> Option<&serde_json::Value> {
        key.split('.').try_fold(&value, |current, part| current.as_object()?.get(part))
    };
    let required = |key: &str| get(key).ok_or_else(|| format!("missing key {key:?}"));
    let status_id = json_id(&mapping.status_id, required(&mapping.status_id)?)?;
    let user_id = json_id(&mapping.user_id, required(&mapping.user_id)?)?;
    let status_text = match required(&mapping.status_text)? {
        serde_json::Value::String(text) => check_text(&mapping.status_text, text)?.to_owned(),
        other => {
            return Err(format!("{} is {}, expected a string", mapping.status_text, json_kind(other)));
        }
    };
    let created_at = match get(&mapping.created_at) {
        None if mapping.created_at_required => {
            return Err(format!("missing key {:?}", mapping.created_at));
        }
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => parse_created_at(&mapping.created_at, text)?,
        Some(serde_json::Value::Number(number)) => match number.as_i64() {
            Some(seconds) => Some(
                seconds
                    .checked_mul(1_000_000)
                    .ok_or_else(|| format!("{} {seconds} is out of range", mapping.created_at))?,
            ),
            None => {
                return Err(format!("{} {number} is not a whole number of seconds", mapping.created_at));
            }
        },
        Some(other) => {
            return Err(format!("{} is {}, expected a string", mapping.created_at, json_kind(other)));
        }
    };
    Ok(Tweet { status_id, user_id, status_text, created_at })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_id(name: &str, value: &serde_json::Value) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(id) if id >= 0 => Ok(id),
            Some(id) => Err(format!("{name} {id} is negative")),
            None => Err(format!("{name} {number} is not an integer from 0 to 2^63-1")),
        },
        serde_json::Value::String(text) => parse_id(name, text),
        other => Err(format!("{name} is {}, expected a number or a string of digits", json_kind(other))),
    }
}

fn utf8_field<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|error| format!("{name} is not valid UTF-8 (at byte {})", error.valid_up_to()))
}

fn parse_id(name: &str, text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{name} is empty"));
    }
    match trimmed.parse::<i64>() {
        Ok(id) if id >= 0 => Ok(id),
        Ok(id) => Err(format!("{name} {id} is negative")),
        Err(_) => Err(format!("{name} {} is not an integer from 0 to 2^63-1", shorten(trimmed, 40))),
    }
}

fn check_text<'a>(name: &str, text: &'a str) -> Result<&'a str, String> {
    if text.is_empty() {
        return Err(format!("{name} is empty"));
    }
    if let Some(position) = text.bytes().position(|byte| byte == 0) {
        return Err(format!("{name} contains a NUL byte (at byte {position})"));
    }
    Ok(text)
}

fn parse_created_at(name: &str, text: &str) -> Result<Option<i64>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    // BigQuery's TIMESTAMP range, 0001-01-01 to 9999-12-31, holds in every store.
    const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000_000..=253_402_300_799_999_999;
    if let Some(micros) = parse_timestamp(trimmed)
        && !TIMESTAMP_RANGE.contains(&micros)
    {
        return Err(format!("{name} {} is outside the years 0001 to 9999", shorten(trimmed, 40)));
    }
    parse_timestamp(trimmed).map(Some).ok_or_else(|| {
        format!(
            "{name} {} is not a timestamp (expected 2020-03-01T12:00:00Z, 2020-03-01 12:00:00+00:00, \
             Sun Mar 01 12:00:00 +0000 2020, or seconds since 1970)",
            shorten(trimmed, 40)
        )
    })
}

/// Shortens a value for a message, marking the cut.
pub fn shorten(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() { format!("{head:?}…") } else { format!("{head:?}") }
}

/// Parses a timestamp into microseconds since 1970-01-01T00:00:00Z.
///
/// Accepted forms: `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]]` with an
/// optional zone (`Z`, ` UTC`, `+HH:MM`, `+HHMM`, `+HH`; none means UTC), the
/// Twitter API form `Sun Mar 01 12:00:00 +0000 2020`, and a plain number of
/// seconds since 1970. Dates and times are read by jiff (its ISO 8601 /
/// RFC 3339 parser); a fraction finer than a microsecond is cut off, and a
/// leap second (`:60`) reads as `:59`, as jiff reads it.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse::<i64>().ok()?.checked_mul(1_000_000);
    }
    if let Some(micros) = parse_twitter_timestamp(text) {
        return Some(micros);
    }
    // BigQuery writes ` UTC`; jiff's parser knows only numeric offsets and Z.
    let text = ["UTC", "GMT"].iter().find_map(|zone| text.strip_suffix(zone)).map_or(text, str::trim_end);
    let pieces = jiff::fmt::temporal::Pieces::parse(text).ok()?;
    let offset = match pieces.offset() {
        None | Some(jiff::fmt::temporal::PiecesOffset::Zulu) => jiff::tz::Offset::UTC,
        Some(jiff::fmt::temporal::PiecesOffset::Numeric(numeric)) => numeric.offset(),
        Some(_) => return None,
    };
    // A named time zone (`[Europe/Paris]`) would need a time zone database.
    if pieces.time_zone_annotation().is_some() {
        return None;
    }
    let datetime = pieces.date().to_datetime(pieces.time().unwrap_or(jiff::civil::Time::midnight()));
    micros_since_1970(datetime, offset)
}

/// Microseconds since 1970-01-01T00:00:00Z of a civil time at an offset.
/// Computed on civil times, not through `jiff::Timestamp`, whose range
/// stops a day short of 9999-12-31 (so that every offset fits), which
/// BigQuery's TIMESTAMP reaches.
fn micros_since_1970(datetime: jiff::civil::DateTime, offset: jiff::tz::Offset) -> Option<i64> {
    let since = datetime.duration_since(jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0));
    let micros = since.as_micros() - i128::from(offset.seconds()) * 1_000_000;
    i64::try_from(micros).ok()
}

fn parse_twitter_timestamp(text: &str) -> Option<i64> {
    // "Sun Mar 01 12:00:00 +0000 2020". The weekday is left out: a wrong one
    // (jiff would refuse it) says nothing about the time.
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, rest @ ..] = parts.as_slice() else {
        return None;
    };
    if rest.len() != 5 {
        return None;
    }
    let parsed = jiff::fmt::strtime::parse("%b %d %H:%M:%S %z %Y", rest.join(" ")).ok()?;
    micros_since_1970(parsed.to_datetime().ok()?, parsed.offset()?)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read(name: &str, content: &[u8]) -> Result<Vec<Row>, InputError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::File::create(&path).and_then(|mut file| file.write_all(content)).expect("write");
        let file = TweetFile::open(&path, TweetFormat::guess(&path), &ColumnMapping::default())?;
        file.collect()
    }

    fn tweet(status_id: i64, user_id: i64, text: &str) -> Row {
        Row::Tweet(Tweet { status_id, user_id, status_text: text.into(), created_at: None })
    }

    fn problem(rows: &[Row], idx: usize) -> (u64, String) {
        match &rows[idx] {
            Row::Bad(bad) => (bad.line, bad.problem.clone()),
            Row::Tweet(tweet) => panic!("row {idx} is a tweet: {tweet:?}"),
        }
    }

    #[test]
    fn csv_rows_keep_text_exactly_and_report_bad_lines() {
        let rows = read(
            "t.csv",
            b"status_id,user_id,status_text\n1,7,\"hi, \"\"you\"\"\n\tthere \"\n-2,7,x\nabc,7,x\n3,7,\n4,7\n5,8,a\0b\n6,9,\xff\xfe\n",
        )
        .expect("rows");
        assert_eq!(rows[0], tweet(1, 7, "hi, \"you\"\n\tthere "));
        assert_eq!(problem(&rows, 1), (4, "status_id -2 is negative".into()));
        assert_eq!(problem(&rows, 2).1, "status_id \"abc\" is not an integer from 0 to 2^63-1");
        assert_eq!(problem(&rows, 3).1, "status_text is empty");
        assert_eq!(problem(&rows, 4).1, "expected 3 fields, found 2");
        assert_eq!(problem(&rows, 5).1, "status_text contains a NUL byte (at byte 1)");
        assert_eq!(problem(&rows, 6), (9, "status_text is not valid UTF-8 (at byte 0)".into()));
        assert_eq!(rows.len(), 7);
    }

    #[test]
    fn csv_file_problems_are_input_errors() {
        let empty = read("t.csv", b"").expect_err("empty");
        assert!(empty.message.contains("is empty (0 bytes)"), "{}", empty.message);
        let missing = read("t.csv", b"id,user_id,status_text\n1,2,x\n").expect_err("missing column");
        assert!(missing.message.contains("no column \"status_id\""), "{}", missing.message);
        assert!(missing.message.contains("--status-id-column"), "{}", missing.message);
        assert_eq!(read("t.csv", b"status_id,user_id,status_text\n").expect("header only"), Vec::new());
    }

    #[test]
    fn unbalanced_quote_is_one_bad_row_with_a_hint() {
        let rows = read("t.csv", b"status_id,user_id,status_text\n1,2,\"open\n3,4,x\n").expect("rows");
        assert_eq!(rows.len(), 1);
        let (line, message) = problem(&rows, 0);
        assert_eq!(line, 2);
        assert!(message.contains("unbalanced quote"), "{message}");
    }

    #[test]
    fn json_lines_accept_strings_numbers_and_nested_keys() {
        let rows = read(
            "t.jsonl",
            b"{\"status_id\":\"12\",\"user_id\":3,\"status_text\":\"a\\u0009b\",\"created_at\":\"2020-03-01T12:00:00Z\"}\n\n[1]\n{\"status_id\":1}\nnot json\n{\"status_id\":1,\"user_id\":2,\"status_text\":\"x\\u0000\"}\n",
        )
        .expect("rows");
        assert_eq!(
            rows[0],
            Row::Tweet(Tweet {
                status_id: 12,
                user_id: 3,
                status_text: "a\tb".into(),
                created_at: Some(1_583_064_000_000_000)
            })
        );
        assert_eq!(problem(&rows, 1), (3, "expected a JSON object, found an array".into()));
        assert_eq!(problem(&rows, 2), (4, "missing key \"user_id\"".into()));
        assert!(problem(&rows, 3).1.starts_with("not valid JSON"));
        assert!(problem(&rows, 4).1.contains("NUL"));
    }

    #[test]
    fn timestamps() {
        let check = |text: &str, expected: Option<i64>| assert_eq!(parse_timestamp(text), expected, "{text}");
        check("1970-01-01", Some(0));
        check("2020-03-01T12:00:00Z", Some(1_583_064_000_000_000));
        check("2020-03-01 12:00:00", Some(1_583_064_000_000_000));
        check("2020-03-01 13:30:00+01:30", Some(1_583_064_000_000_000));
        check("2020-03-01 12:00:00.25 UTC", Some(1_583_064_000_250_000));
        check("Sun Mar 01 12:00:00 +0000 2020", Some(1_583_064_000_000_000));
        check("1583064000", Some(1_583_064_000_000_000));
        check("2020-02-30", None);
        check("2020-03-01T25:00:00", None);
        check("yesterday", None);
        check("2020-03-01T12:00:00.1234567Z", Some(1_583_064_000_123_456));
        check("2020-03-01T13:00:00+0100", Some(1_583_064_000_000_000));
        check("2020-03-01T13:00+01", Some(1_583_064_000_000_000));
        check("2020-03-01T12:00:00GMT", Some(1_583_064_000_000_000));
        check("Mon Mar 01 12:00:00 +0100 2020", Some(1_583_060_400_000_000));
        check("Sun Feb 30 12:00:00 +0000 2020", None);
        check("2020-03-01T12:00:00[Europe/Paris]", None);
        assert_eq!(
            parse_created_at("created_at", "999999999999"),
            Err("created_at \"999999999999\" is outside the years 0001 to 9999".to_owned())
        );
        assert_eq!(parse_created_at("created_at", "9999-12-31T23:59:59Z"), Ok(Some(253_402_300_799_000_000)));
        assert_eq!(parse_created_at("created_at", " "), Ok(None));
    }
}
