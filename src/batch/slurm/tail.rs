//! Following a job's output file as it grows: a Slurm job writes its stdout and stderr
//! to files in the run folder (on the shared filesystem), and the supervisor reads
//! them as it would read a local worker's pipes.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a reader waits for more output before looking again.
const WAIT: Duration = Duration::from_millis(50);

/// A `Read` over a file another machine appends to. At the end of the file it waits
/// for more until `ended` is set (the job is over), then reads what is left and
/// reports the end. The file may appear only when the job starts.
pub(crate) struct Tail {
    path: PathBuf,
    file: Option<File>,
    ended: Arc<AtomicBool>,
}

impl Tail {
    /// Follows `path` until `ended` is set.
    pub(crate) fn new(path: PathBuf, ended: Arc<AtomicBool>) -> Tail {
        Tail {
            path,
            file: None,
            ended,
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        match &mut self.file {
            Some(f) => f.read(buf),
            None => Ok(0),
        }
    }
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Read the flag first: output written before the job ended is then
            // found by the read that follows.
            let ended = self.ended.load(Ordering::SeqCst);
            let n = self.read_some(buf)?;
            if n > 0 || ended || buf.is_empty() {
                return Ok(n);
            }
            std::thread::sleep(WAIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn follows_a_growing_file_until_the_end_is_announced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let ended = Arc::new(AtomicBool::new(false));
        let reader = Tail::new(path.clone(), ended.clone());
        let lines = std::thread::spawn(move || {
            BufReader::new(reader)
                .lines()
                .collect::<io::Result<Vec<String>>>()
        });
        // The file does not exist yet (a pending job), then grows in two writes.
        std::thread::sleep(Duration::from_millis(120));
        let mut f = File::create(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        std::thread::sleep(Duration::from_millis(120));
        f.write_all(b"o\nthree\n").unwrap();
        ended.store(true, Ordering::SeqCst);
        let lines = lines.join().unwrap().unwrap();
        assert_eq!(lines, ["one", "two", "three"]);
    }

    #[test]
    fn a_job_that_never_wrote_ends_with_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let ended = Arc::new(AtomicBool::new(true));
        let mut reader = Tail::new(dir.path().join("never"), ended);
        let mut text = String::new();
        assert_eq!(reader.read_to_string(&mut text).unwrap(), 0);
    }
}
