//! Backend API JSON saved to files, read one element at a time.
//!
//! `GET /v1/users` answers a bare array; the organization endpoints answer
//! `{"data": [...], "total_count": N}`. Either shape is accepted for every
//! entity. The file is never loaded whole: it is read through a window of
//! 64 KiB that also holds the element being read, so memory holds one element
//! at a time. A byte scan finds where each element ends (strings, escapes and
//! nesting), then serde_json checks that element's text from the window
//! (`&RawValue`, borrowed, no copy) before it is handed over. Reading through
//! `serde_json::from_reader` instead went byte by byte through `io::Read` and
//! copied every element: staging 1,000,000 users spent about 40 % of its
//! time there.
//!
//! Each element is then read into its typed form; when that fails the error
//! names the element's JSON path down to the bad field
//! (`$[3].email_addresses[0].created_at`), found by `serde_path_to_error`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;

use super::ImportError;

/// Call `each(path, element)` for every element of the file's array, in order.
/// `path` is the element's JSON path (`$[i]` or `$.data[i]`). An error from
/// `each` stops the walk and is returned as is.
pub fn for_each_element(
    file: &Path,
    name: &str,
    mut each: impl FnMut(String, &RawValue) -> Result<(), ImportError>,
) -> Result<u64, ImportError> {
    let f = File::open(file).map_err(|e| ImportError::io(file, e))?;
    let mut window = Window::new(f);
    let mut count = 0;
    match top(&mut window, &mut each, &mut count) {
        Ok(()) => Ok(count),
        Err(Fail::Stop(e)) => Err(e),
        Err(Fail::Io(e)) => Err(ImportError::io(file, e)),
        Err(Fail::Syntax {
            line,
            column,
            message,
        }) => Err(ImportError::Input(format!(
            "{name}:{line}:{column}: not a JSON array or {{\"data\": [...]}} object: {message} ({count} element(s) read before it)"
        ))),
    }
}

/// serde_json appends " at line L column C"; the message leads with them already.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// Read one element into `T`; on failure, the path of the offending field.
pub fn typed<T: DeserializeOwned>(path: &str, raw: &RawValue) -> Result<T, (String, String)> {
    match serde_json::from_str::<T>(raw.get()) {
        Ok(v) => Ok(v),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let inner = e.path().to_string();
                    let at = if inner == "." || inner.is_empty() {
                        path.to_string()
                    } else if inner.starts_with('[') {
                        format!("{path}{inner}")
                    } else {
                        format!("{path}.{inner}")
                    };
                    Err((at, strip_position(&e.into_inner().to_string()).to_string()))
                }
            }
        }
    }
}

/// Why a walk over a file stopped.
enum Fail {
    /// `each` said so.
    Stop(ImportError),
    Io(io::Error),
    /// Not JSON, or not the expected shape: where (1-based) and what.
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::Io(e)
    }
}

/// Bytes read at a time.
const CHUNK: usize = 1 << 16;

/// A window over the file: `buf[pos..]` is read and not consumed yet. The
/// bytes before `buf[0]` are gone; `line` and `column` say where `buf[0]` is.
struct Window {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    line: u64,
    column: u64,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Window {
    fn new(file: File) -> Window {
        Window {
            file,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    /// Drop the consumed bytes and read more after the rest. False at the end
    /// of the file. Offsets relative to `pos` stay valid.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            let gone = &self.buf[..self.pos];
            match memchr::memrchr(b'\n', gone) {
                Some(last) => {
                    self.line += memchr::memchr_iter(b'\n', gone).count() as u64;
                    self.column = (gone.len() - last) as u64;
                }
                None => self.column += gone.len() as u64,
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.file.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        Ok(n > 0)
    }

    /// Skip white space; the next byte, not consumed, or `None` at the end.
    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !is_space(b) {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Where `buf[pos + rel]` is in the file (1-based line and column).
    fn locate(&self, rel: usize) -> (u64, u64) {
        let upto = &self.buf[..(self.pos + rel).min(self.buf.len())];
        match memchr::memrchr(b'\n', upto) {
            Some(last) => (
                self.line + memchr::memchr_iter(b'\n', upto).count() as u64,
                (upto.len() - last) as u64,
            ),
            None => (self.line, self.column + upto.len() as u64),
        }
    }

    fn syntax(&self, rel: usize, message: impl Into<String>) -> Fail {
        let (line, column) = self.locate(rel);
        Fail::Syntax {
            line,
            column,
            message: message.into(),
        }
    }

    /// A serde_json error about the text at `buf[pos..]`, placed in the file.
    fn json_error(&self, e: &serde_json::Error) -> Fail {
        let (line, column) = self.locate(0);
        let (line, column) = if e.line() <= 1 {
            (line, column + (e.column() as u64).saturating_sub(1))
        } else {
            (line + e.line() as u64 - 1, e.column() as u64)
        };
        Fail::Syntax {
            line,
            column,
            message: strip_position(&e.to_string()).to_string(),
        }
    }

    /// The length of the JSON value that starts at `pos` (after [`peek`]).
    /// Only strings, escapes and nesting are followed; serde_json checks the
    /// text itself. At the end of the file, whatever is left.
    fn value_len(&mut self) -> io::Result<usize> {
        let scalar = !matches!(self.buf.get(self.pos), Some(b'{' | b'[' | b'"'));
        let mut i = 0usize;
        let mut depth = 0u32;
        let mut in_string = false;
        loop {
            while self.pos + i < self.buf.len() {
                let rest = &self.buf[self.pos + i..];
                if in_string {
                    // Jump to the next quote or backslash.
                    match memchr::memchr2(b'"', b'\\', rest) {
                        None => i += rest.len(),
                        Some(k) if rest[k] == b'\\' => {
                            if k + 1 >= rest.len() {
                                // The escaped byte is not read yet.
                                i += k;
                                break;
                            }
                            i += k + 2;
                        }
                        Some(k) => {
                            i += k + 1;
                            in_string = false;
                            if depth == 0 {
                                return Ok(i);
                            }
                        }
                    }
                    continue;
                }
                let b = rest[0];
                i += 1;
                if scalar {
                    if is_space(b) || matches!(b, b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':') {
                        return Ok(i - 1);
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(i);
                        }
                    }
                    _ => {}
                }
            }
            if !self.fill()? {
                return Ok(self.buf.len() - self.pos);
            }
        }
    }

    /// The next value as checked JSON text; consumed after `then` has it.
    fn value<T>(
        &mut self,
        then: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, Fail> {
        let len = self.value_len()?;
        if len == 0 {
            return Err(self.syntax(0, "expected a value"));
        }
        match then(&self.buf[self.pos..self.pos + len]) {
            Ok(v) => {
                self.pos += len;
                Ok(v)
            }
            Err(e) => Err(self.json_error(&e)),
        }
    }
}

type Each<'a> = dyn FnMut(String, &RawValue) -> Result<(), ImportError> + 'a;

/// The whole file: an array, or an object with a `data` array, then nothing.
fn top(w: &mut Window, each: &mut Each<'_>, count: &mut u64) -> Result<(), Fail> {
    match w.peek()? {
        Some(b'[') => {
            w.pos += 1;
            elements(w, "$", each, count)?;
        }
        Some(b'{') => {
            w.pos += 1;
            object(w, each, count)?;
        }
        Some(_) => {
            return Err(w.syntax(0, "expected a JSON array, or an object with a `data` array"));
        }
        None => return Err(w.syntax(0, "EOF while parsing a value")),
    }
    match w.peek()? {
        None => Ok(()),
        Some(_) => Err(w.syntax(0, "trailing characters")),
    }
}

/// The elements of an array whose `[` is consumed, through its `]`.
fn elements(
    w: &mut Window,
    prefix: &str,
    each: &mut Each<'_>,
    count: &mut u64,
) -> Result<(), Fail> {
    if w.peek()? == Some(b']') {
        w.pos += 1;
        return Ok(());
    }
    loop {
        if w.peek()?.is_none() {
            return Err(w.syntax(0, "EOF while parsing a list"));
        }
        let len = w.value_len()?;
        if len == 0 {
            return Err(w.syntax(0, "expected a value"));
        }
        let text = &w.buf[w.pos..w.pos + len];
        match serde_json::from_slice::<&RawValue>(text) {
            Ok(raw) => each(format!("{prefix}[{count}]"), raw).map_err(Fail::Stop)?,
            Err(e) => return Err(w.json_error(&e)),
        }
        w.pos += len;
        *count += 1;
        match w.peek()? {
            Some(b',') => {
                w.pos += 1;
                if w.peek()? == Some(b']') {
                    return Err(w.syntax(0, "trailing comma"));
                }
            }
            Some(b']') => {
                w.pos += 1;
                return Ok(());
            }
            Some(_) => return Err(w.syntax(0, "expected `,` or `]`")),
            None => return Err(w.syntax(0, "EOF while parsing a list")),
        }
    }
}

/// The members of an object whose `{` is consumed, through its `}`: the
/// elements of the first `data` array, every other value checked and skipped.
fn object(w: &mut Window, each: &mut Each<'_>, count: &mut u64) -> Result<(), Fail> {
    let mut seen = false;
    if w.peek()? == Some(b'}') {
        w.pos += 1;
    } else {
        loop {
            match w.peek()? {
                Some(b'"') => {}
                Some(_) => return Err(w.syntax(0, "key must be a string")),
                None => return Err(w.syntax(0, "EOF while parsing an object")),
            }
            let key: String = w.value(|t| serde_json::from_slice(t))?;
            match w.peek()? {
                Some(b':') => w.pos += 1,
                Some(_) => return Err(w.syntax(0, "expected `:`")),
                None => return Err(w.syntax(0, "EOF while parsing an object")),
            }
            match w.peek()? {
                Some(b'[') if key == "data" && !seen => {
                    seen = true;
                    w.pos += 1;
                    elements(w, "$.data", each, count)?;
                }
                Some(_) if key == "data" && !seen => {
                    return Err(w.syntax(0, "expected an array under `data`"));
                }
                Some(_) => {
                    w.value(|t| serde_json::from_slice::<IgnoredAny>(t))?;
                }
                None => return Err(w.syntax(0, "EOF while parsing a value")),
            }
            match w.peek()? {
                Some(b',') => w.pos += 1,
                Some(b'}') => {
                    w.pos += 1;
                    break;
                }
                Some(_) => return Err(w.syntax(0, "expected `,` or `}`")),
                None => return Err(w.syntax(0, "EOF while parsing an object")),
            }
        }
    }
    if !seen {
        return Err(w.syntax(0, "the object has no `data` array"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn collect(text: &str) -> Result<Vec<(String, String)>, ImportError> {
        let f = file(text);
        let mut out = Vec::new();
        for_each_element(f.path(), "x.json", |path, raw| {
            out.push((path, raw.get().to_string()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn bare_arrays_and_data_objects_both_stream() {
        let a = collect(r#"[{"id":"a"}, {"id":"b"}]"#).unwrap();
        assert_eq!(a[1], ("$[1]".to_string(), r#"{"id":"b"}"#.to_string()));
        let d = collect(r#"{"total_count": 2, "data": [{"id":"a"},{"id":"b"}], "x": 1}"#).unwrap();
        assert_eq!(d[0].0, "$.data[0]");
        assert_eq!(d.len(), 2);
        assert!(collect("[]").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = collect("[{\"id\":\"a\"},\n {\"id\": }]")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.json:2:"), "{err}");
        assert!(err.contains("1 element(s) read"), "{err}");
        let err = collect(r#"{"total_count": 0}"#).unwrap_err().to_string();
        assert!(err.contains("no `data` array"), "{err}");
        assert!(collect(r#""text""#).is_err());
    }

    /// Elements cross the 64 KiB window's edges anywhere: inside strings,
    /// between an escape and its byte, between elements; each comes out whole,
    /// with its own text.
    #[test]
    fn elements_cross_the_window_edge_whole() {
        let mut elements = Vec::new();
        for i in 0..3_000 {
            // Quotes, backslashes, brackets and braces inside strings, and a
            // pad that moves every boundary by a different amount.
            let pad = "x".repeat(i % 97);
            elements.push(format!(
                r#"{{"id":"user_{i}","s":"a \" ] }} [ {{ \\ {pad}","n":[{i},{{"k":[]}}],"u":"\u00e9"}}"#
            ));
        }
        elements.push("17".into());
        elements.push(r#""a string""#.into());
        elements.push("null".into());
        let text = format!("[\n  {}\n]\n", elements.join(",\n  "));
        assert!(text.len() > 3 * CHUNK, "{}", text.len());
        let got = collect(&text).unwrap();
        assert_eq!(got.len(), elements.len());
        for (i, ((path, raw), want)) in got.iter().zip(&elements).enumerate() {
            assert_eq!(path, &format!("$[{i}]"));
            assert_eq!(raw, want);
        }
        // The same elements under `data`, with keys around it.
        let wrapped = format!(
            r#"{{"before": {{"data": [1]}}, "data": [{}], "total_count": {}, "after": "]"}}"#,
            elements.join(","),
            elements.len()
        );
        let got = collect(&wrapped).unwrap();
        assert_eq!(got.len(), elements.len());
        assert_eq!(got[2999].0, "$.data[2999]");
        assert_eq!(got[2999].1, elements[2999]);
    }

    /// A broken element deep in a file is placed on its own line and column.
    #[test]
    fn errors_past_the_first_window_name_their_line() {
        let mut lines = vec!["[".to_string()];
        for i in 0..5_000 {
            lines.push(format!(
                r#"  {{"id": "user_{i}", "pad": "{}"}},"#,
                "y".repeat(40)
            ));
        }
        lines.push(r#"  {"id": "user_x", "bad": tru},"#.into());
        lines.push(r#"  {"id": "user_y"}"#.into());
        lines.push("]".into());
        let err = collect(&lines.join("\n")).unwrap_err().to_string();
        // Line 5,002 of the file: `[` is line 1, then 5,000 good elements.
        assert!(err.starts_with("x.json:5002:"), "{err}");
        assert!(err.contains("5000 element(s) read"), "{err}");
        let column: u64 = err.split(':').nth(2).unwrap().parse().unwrap();
        assert!((28..=32).contains(&column), "{err}");
    }

    #[test]
    fn malformed_arrays_and_objects_are_refused() {
        for (text, says) in [
            ("[1,]", "trailing comma"),
            ("[1 2]", "expected `,` or `]`"),
            ("[1", "EOF while parsing a list"),
            (r#"[{"id": "a"]"#, ""),
            (r#"[{"id": "a"}"#, "EOF while parsing a list"),
            (r#"[{"id": "a}]"#, "EOF"),
            ("[] []", "trailing characters"),
            ("[,1]", "expected a value"),
            (r#"{"data": 5}"#, "expected an array under `data`"),
            (r#"{"data": [1], "x": }"#, "expected a value"),
            (r#"{"data": [1] "x": 1}"#, "expected `,` or `}`"),
            (r#"{data: [1]}"#, "key must be a string"),
            ("", "EOF while parsing a value"),
            ("\u{feff}[1]", "expected a JSON array"),
            ("{}", "no `data` array"),
        ] {
            let err = collect(text).map(|v| v.len()).unwrap_err().to_string();
            assert!(err.starts_with("x.json:1:"), "{text:?}: {err}");
            assert!(err.contains(says), "{text:?}: {err}");
        }
        // A later `data` key is not read twice.
        let got = collect(r#"{"data": [1, 2], "data": [3]}"#).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn an_error_from_each_stops_the_walk_as_it_is() {
        let f = file("[1, 2, 3]");
        let mut seen = 0;
        let err = for_each_element(f.path(), "x.json", |_, _| {
            seen += 1;
            if seen == 2 {
                return Err(ImportError::Input("stop here".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "stop here");
        assert_eq!(seen, 2);
    }

    #[test]
    fn typed_errors_name_the_json_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: i64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        let raw = RawValue::from_string(r#"{"items":[{"n":1},{"n":"two"}]}"#.into()).unwrap();
        let (path, message) = typed::<Outer>("$[7]", &raw).unwrap_err();
        assert_eq!(path, "$[7].items[1].n");
        assert!(message.contains("invalid type"), "{message}");
    }
}
