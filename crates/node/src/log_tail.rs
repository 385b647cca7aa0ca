//! The whole lines a server program (vsftpd, the ADC client) appended to its log since the
//! last look: how the agent counts what those programs served.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Most log bytes read in one go (the rest waits for the next look).
pub const MAX_READ: u64 = 1 << 20;

/// Where the next look starts.
#[derive(Debug, Default)]
pub struct LogTail {
    offset: u64,
}

impl LogTail {
    /// From the log's current end: what was logged before the agent started is not counted
    /// again (the counters kept it).
    pub fn at_end(path: &Path) -> Self {
        LogTail { offset: std::fs::metadata(path).map_or(0, |m| m.len()) }
    }

    /// The whole lines added since the last look (none while there are none; a log that
    /// shrank was started again and is read from its start; a line longer than a read loses
    /// its first [`MAX_READ`] bytes).
    pub fn read_new(&mut self, path: &Path) -> Option<String> {
        let mut f = std::fs::File::open(path).ok()?;
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            self.offset = 0;
        }
        if len == self.offset {
            return None;
        }
        f.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut buf = Vec::new();
        f.take(MAX_READ).read_to_end(&mut buf).ok()?;
        let whole = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if buf.len() as u64 == MAX_READ => {
                self.offset += buf.len() as u64;
                return None;
            }
            None => return None,
        };
        self.offset += whole as u64;
        Some(String::from_utf8_lossy(&buf[..whole]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_whole_new_lines_are_read_once_and_a_restarted_log_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "before\n").unwrap();
        let mut t = LogTail::at_end(&path);
        assert_eq!(t.read_new(&path), None);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(t.read_new(&path).as_deref(), Some("one\n"));
        assert_eq!(t.read_new(&path), None, "half a line waits");
        f.write_all(b"o\n").unwrap();
        assert_eq!(t.read_new(&path).as_deref(), Some("two\n"));
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(t.read_new(&path).as_deref(), Some("new\n"));
        assert_eq!(LogTail::at_end(&dir.path().join("none")).read_new(&dir.path().join("none")), None);
    }

    #[test]
    fn a_line_longer_than_a_read_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "").unwrap();
        let mut t = LogTail::at_end(&path);
        let mut long = vec![b'x'; MAX_READ as usize + 10];
        long.extend_from_slice(b"\nnext\n");
        std::fs::write(&path, &long).unwrap();
        assert_eq!(t.read_new(&path), None);
        assert_eq!(t.read_new(&path).as_deref(), Some("xxxxxxxxxx\nnext\n"), "its rest reads as a line of its own");
    }
}
