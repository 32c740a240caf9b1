//! Bounded reading of the text files users hand to barsmith: ticker lists, scripts
//! (and the modules they import), and the CSV and JSON files primitives read.
//!
//! Every such file is read through [`read_text`] with the limits of its
//! [`InputKind`], so no input — `/dev/zero`, a FIFO, a binary pasted by mistake — can
//! make memory grow without bound: reading stops at the first line longer than the
//! line limit or the first byte past the size limit, with one line naming the file,
//! the limit and the fix. The limits are far above any real file of the kind.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// What a file is, which sets its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A universe: a CSV with a `ticker` column, or one symbol per line.
    Tickers,
    /// A Rhai script or module.
    Script,
    /// A CSV table read by a script (`read_csv`).
    Csv,
    /// A JSON document read by a script (`read_json`); may be a single line.
    Json,
}

impl InputKind {
    /// Largest file accepted, in bytes.
    pub fn max_bytes(self) -> u64 {
        match self {
            InputKind::Tickers => 64 * MIB,
            InputKind::Script => 4 * MIB,
            InputKind::Csv => 256 * MIB,
            InputKind::Json => 64 * MIB,
        }
    }

    /// Longest line accepted, in bytes (newline excluded).
    pub fn max_line(self) -> u64 {
        match self {
            InputKind::Tickers | InputKind::Script => 64 * KIB,
            InputKind::Csv => MIB,
            InputKind::Json => self.max_bytes(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            InputKind::Tickers => "a ticker file",
            InputKind::Script => "a script",
            InputKind::Csv => "a CSV file",
            InputKind::Json => "a JSON file",
        }
    }
}

/// Why a file could not be read as text of its kind.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Past the size or line-length limit of its kind.
    #[error("{}: {problem}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What is too large and what to do.
        problem: String,
    },
    /// Not UTF-8 text.
    #[error("{} is not UTF-8 text (byte {offset}): save it as UTF-8, or check the path", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
}

/// Reads `path` as UTF-8 text within the limits of `kind` (a leading BOM is kept;
/// callers that care strip it).
pub fn read_text(path: &Path, kind: InputKind) -> Result<String, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = file.take(kind.max_bytes() + 1);
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * KIB as usize];
    let mut lines = LineGauge::default();
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        if (bytes.len() + n) as u64 > kind.max_bytes() {
            return Err(too_large(path, kind, Limit::Size));
        }
        if let Some(line) = lines.feed(&chunk[..n], kind.max_line()) {
            return Err(too_large(path, kind, Limit::Line(line)));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(bytes).map_err(|e| InputError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Tracks line lengths across chunks.
#[derive(Default)]
struct LineGauge {
    /// Length of the line being read so far.
    current: u64,
    /// Newlines seen: the line being read is number `newlines + 1`.
    newlines: u64,
}

impl LineGauge {
    /// Feeds the next chunk; the number of the first line longer than `max`, if any.
    fn feed(&mut self, chunk: &[u8], max: u64) -> Option<u64> {
        for part in chunk.split_inclusive(|&b| b == b'\n') {
            let ends = part.last() == Some(&b'\n');
            self.current += (part.len() - usize::from(ends)) as u64;
            if self.current > max {
                return Some(self.newlines + 1);
            }
            if ends {
                self.current = 0;
                self.newlines += 1;
            }
        }
        None
    }
}

enum Limit {
    Size,
    Line(u64),
}

fn too_large(path: &Path, kind: InputKind, limit: Limit) -> InputError {
    let problem = match limit {
        Limit::Size => format!(
            "larger than the {} limit for {}: check the path (is it {}?), or split it",
            Bytes(kind.max_bytes()),
            kind.what(),
            kind.what()
        ),
        Limit::Line(n) => format!(
            "line {n} is longer than the {} limit for {}: check the path (is it {}?)",
            Bytes(kind.max_line()),
            kind.what(),
            kind.what()
        ),
    };
    InputError::TooLarge {
        path: path.to_path_buf(),
        problem,
    }
}

/// A byte count for people: `64 KiB`, `4 MiB`.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= MIB && self.0.is_multiple_of(MIB) {
            write!(f, "{} MiB", self.0 / MIB)
        } else if self.0 >= KIB && self.0.is_multiple_of(KIB) {
            write!(f, "{} KiB", self.0 / KIB)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// Checks a file against the size limit of `kind` before a third party reads it
/// whole (Rhai's module resolver): it must be a regular file within the limit.
pub fn check_size(path: &Path, kind: InputKind) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            problem: format!("not a regular file: {} must be a file", kind.what()),
        });
    }
    if meta.len() > kind.max_bytes() {
        return Err(too_large(path, kind, Limit::Size));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "ticker\nAAPL\n").unwrap();
        assert_eq!(read_text(&p, InputKind::Tickers).unwrap(), "ticker\nAAPL\n");
    }

    #[test]
    fn a_long_line_is_refused_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let long = "A".repeat(64 * 1024 + 1);
        std::fs::write(&p, format!("ticker\nAAPL\n{long}\n")).unwrap();
        let e = read_text(&p, InputKind::Tickers).unwrap_err().to_string();
        assert!(e.contains("line 3 is longer than the 64 KiB limit"), "{e}");
        // Exactly at the limit is fine.
        std::fs::write(&p, "A".repeat(64 * 1024)).unwrap();
        assert!(read_text(&p, InputKind::Tickers).is_ok());
    }

    #[test]
    fn dev_zero_stops_at_the_line_limit() {
        let e = read_text(Path::new("/dev/zero"), InputKind::Script).unwrap_err();
        assert!(e.to_string().contains("line 1 is longer"), "{e}");
        let e = read_text(Path::new("/dev/zero"), InputKind::Json).unwrap_err();
        assert!(
            e.to_string().contains("larger than the 64 MiB limit"),
            "{e}"
        );
    }

    #[test]
    fn a_file_too_large_is_refused_and_binary_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.rhai");
        let line = format!("{}\n", "x".repeat(1023));
        std::fs::write(&p, line.repeat(4 * 1024 + 1)).unwrap();
        let e = read_text(&p, InputKind::Script).unwrap_err().to_string();
        assert!(
            e.contains("larger than the 4 MiB limit for a script"),
            "{e}"
        );
        assert!(check_size(&p, InputKind::Script).is_err());
        std::fs::write(&p, [b'a', 0xff, b'\n']).unwrap();
        let e = read_text(&p, InputKind::Script).unwrap_err().to_string();
        assert!(e.contains("not UTF-8 text (byte 1)"), "{e}");
        assert!(check_size(Path::new("/dev/zero"), InputKind::Script).is_err());
    }
}
