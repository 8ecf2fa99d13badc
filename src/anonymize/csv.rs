//! RFC 4180 CSV, streaming: one record at a time from a reader (quoted fields may hold commas,
//! quotes and line breaks), and records written back quoted only where needed.

use std::io::{self, BufRead, Write};

/// Longest record, in bytes (a line past it is a broken record, not an out-of-memory).
pub const MAX_RECORD: usize = 1 << 20;

/// A record that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading failed.
    #[error("reading: {0}")]
    Io(#[from] io::Error),
    /// The record is malformed (the line number where it starts is given, never its content).
    #[error("line {line}: {reason}")]
    Malformed {
        /// 1-based line of the record's start.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads records from `input`.
pub struct Reader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
    /// Bytes consumed so far (for progress).
    pub position: u64,
}

impl<R: BufRead> Reader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> Self {
        Reader {
            input,
            line: 0,
            buf: Vec::new(),
            position: 0,
        }
    }

    /// The line the last record started on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next record, `None` at the end. A malformed record is an error, and reading goes
    /// on with the next line.
    pub fn record(&mut self) -> Option<Result<Vec<String>, CsvError>> {
        self.buf.clear();
        let start = self.line + 1;
        let mut state = Scan::Start;
        loop {
            let before = self.buf.len();
            match self.input.read_until(b'\n', &mut self.buf) {
                Err(e) => return Some(Err(e.into())),
                Ok(0) if before == 0 => return None,
                Ok(0) => break,
                Ok(n) => {
                    self.position += n as u64;
                    self.line += 1;
                }
            }
            for &b in &self.buf[before..] {
                state = state.next(b);
            }
            if self.buf.len() > MAX_RECORD {
                return Some(Err(CsvError::Malformed {
                    line: start,
                    reason: "record longer than 1 MiB",
                }));
            }
            if state != Scan::Quoted {
                break;
            }
        }
        if state == Scan::Quoted {
            return Some(Err(CsvError::Malformed {
                line: start,
                reason: "unterminated quoted field",
            }));
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            return Some(Err(CsvError::Malformed {
                line: start,
                reason: "not UTF-8",
            }));
        };
        Some(split(text).map_err(|reason| CsvError::Malformed {
            line: start,
            reason,
        }))
    }
}

/// Where a scan of a record's bytes is: only an open quoted field continues it past a line
/// break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Start,
    Unquoted,
    Quoted,
    /// Just after a quote closing a quoted field (another quote is an escaped one).
    Closed,
}

impl Scan {
    fn next(self, b: u8) -> Scan {
        match (self, b) {
            (Scan::Quoted, b'"') => Scan::Closed,
            (Scan::Quoted, _) => Scan::Quoted,
            (Scan::Start | Scan::Closed, b'"') => Scan::Quoted,
            (_, b',' | b'\n') => Scan::Start,
            _ => Scan::Unquoted,
        }
    }
}

fn split(text: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut at_start = true;
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                in_quotes = true;
                was_quoted = true;
                at_start = false;
            }
            '"' => return Err("a quote inside an unquoted field"),
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                was_quoted = false;
            }
            _ if was_quoted => return Err("text after a closing quote"),
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    fields.push(field);
    Ok(fields)
}

/// Writes `fields` as one record (quoted where needed) and a line break.
pub fn write_record<W: Write, S: AsRef<str>>(out: &mut W, fields: &[S]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let f = field.as_ref();
        if f.contains([',', '"', '\n', '\r']) {
            out.write_all(b"\"")?;
            out.write_all(f.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(f.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quotes_commas_and_line_breaks_and_recovers_from_broken_lines() {
        let text = "a,b,c\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n1,2\"3,4\n5,6,7\r\n";
        let mut r = Reader::new(text.as_bytes());
        assert_eq!(r.record().unwrap().unwrap(), ["a", "b", "c"]);
        assert_eq!(
            r.record().unwrap().unwrap(),
            ["x, y", "say \"hi\"", "two\nlines"]
        );
        assert!(matches!(
            r.record().unwrap(),
            Err(CsvError::Malformed { line: 4, .. })
        ));
        assert_eq!(r.record().unwrap().unwrap(), ["5", "6", "7"]);
        assert!(r.record().is_none());
        let mut r = Reader::new("a,\"open\n".as_bytes());
        assert!(matches!(
            r.record().unwrap(),
            Err(CsvError::Malformed { .. })
        ));
    }

    #[test]
    fn writes_what_it_reads() {
        let mut out = Vec::new();
        write_record(
            &mut out,
            &["plain", "with,comma", "with \"quote\"", "two\nlines"],
        )
        .unwrap();
        let mut r = Reader::new(&out[..]);
        assert_eq!(
            r.record().unwrap().unwrap(),
            ["plain", "with,comma", "with \"quote\"", "two\nlines"]
        );
    }
}
