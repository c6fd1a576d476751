//! Splitting a pipe into lines.
//!
//! Reads go into one growing buffer, 64 KiB at a time; complete lines are
//! split off without copying (each line is a [`Bytes`] view into the read
//! buffer). Only `\n` ends a line: `\r`, CRLF and invalid UTF-8 pass through
//! untouched, so carriage-return progress bars stay one line with their `\r`s.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest line kept whole; longer lines are cut into pieces this size.
pub const MAX_LINE: usize = 64 * 1024;

/// How much room each read gets.
const READ_SIZE: usize = 64 * 1024;

/// Below this much free room the buffer gets a fresh [`READ_SIZE`] block, so
/// small reads share one allocation instead of pinning one block each.
const MIN_SPARE: usize = 8 * 1024;

/// One line, or one piece of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The bytes, without the `\n`.
    pub bytes: Bytes,
    /// A piece of a longer line, or the unterminated end of the stream.
    pub partial: bool,
}

/// Reads lines from a pipe in large chunks.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    max_line: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that cuts lines at [`MAX_LINE`].
    pub fn new(reader: R) -> Self {
        Self::with_max_line(reader, MAX_LINE)
    }

    /// A reader that cuts lines at `max_line` bytes (at least 1).
    pub fn with_max_line(reader: R, max_line: usize) -> Self {
        LineReader {
            reader,
            buf: BytesMut::with_capacity(READ_SIZE),
            max_line: max_line.max(1),
            eof: false,
        }
    }

    /// Reads once and appends the lines that read completed to `out` (maybe
    /// none). At end of file, appends the unterminated rest as a partial
    /// line and returns `false`; after that it keeps returning `false`.
    ///
    /// # Errors
    ///
    /// A read error from the pipe. `Interrupted` is retried.
    pub async fn read_lines(&mut self, out: &mut Vec<Line>) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.buf.capacity() - self.buf.len() < MIN_SPARE {
            self.buf.reserve(READ_SIZE);
        }
        let n = loop {
            match self.reader.read_buf(&mut self.buf).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.eof = true;
            if !self.buf.is_empty() {
                out.push(Line {
                    bytes: self.buf.split().freeze(),
                    partial: true,
                });
            }
            return Ok(false);
        }
        split_lines(&mut self.buf, self.max_line, out);
        Ok(true)
    }
}

/// Moves every complete line out of `buf` into `out`, then cuts the
/// unterminated rest into partial pieces while it is at least `max_line`.
fn split_lines(buf: &mut BytesMut, max_line: usize, out: &mut Vec<Line>) {
    if let Some(last) = memchr::memrchr(b'\n', buf) {
        let chunk = buf.split_to(last + 1).freeze();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &chunk) {
            while end - start > max_line {
                out.push(Line {
                    bytes: chunk.slice(start..start + max_line),
                    partial: true,
                });
                start += max_line;
            }
            out.push(Line {
                bytes: chunk.slice(start..end),
                partial: false,
            });
            start = end + 1;
        }
    }
    while buf.len() >= max_line {
        out.push(Line {
            bytes: buf.split_to(max_line).freeze(),
            partial: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn all_lines(input: &[u8], max_line: usize) -> Vec<(Vec<u8>, bool)> {
        let mut reader = LineReader::with_max_line(input, max_line);
        let mut out = Vec::new();
        while reader.read_lines(&mut out).await.unwrap() {}
        out.into_iter()
            .map(|l| (l.bytes.to_vec(), l.partial))
            .collect()
    }

    fn full(s: &[u8]) -> (Vec<u8>, bool) {
        (s.to_vec(), false)
    }

    #[tokio::test]
    async fn splits_on_newline_only_keeping_cr_and_invalid_utf8() {
        let input = b"a\r\nb\xff\xfe\n10%\r50%\r100%\n\n\nlast";
        assert_eq!(
            all_lines(input, MAX_LINE).await,
            vec![
                full(b"a\r"),
                full(b"b\xff\xfe"),
                full(b"10%\r50%\r100%"),
                full(b""),
                full(b""),
                (b"last".to_vec(), true),
            ]
        );
    }

    #[tokio::test]
    async fn empty_input_gives_no_lines() {
        assert!(all_lines(b"", MAX_LINE).await.is_empty());
        assert_eq!(all_lines(b"\n", MAX_LINE).await, vec![full(b"")]);
    }

    #[tokio::test]
    async fn long_line_is_cut_into_partial_pieces() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let lines = all_lines(&input, MAX_LINE).await;
        let shape: Vec<(usize, bool)> = lines.iter().map(|(b, p)| (b.len(), *p)).collect();
        assert_eq!(
            shape,
            vec![(MAX_LINE, true), (MAX_LINE, true), (10, false), (4, false)]
        );
        let joined: Vec<u8> = lines[..3].iter().flat_map(|(b, _)| b.clone()).collect();
        assert_eq!(joined, input[..MAX_LINE * 2 + 10]);
    }

    #[tokio::test]
    async fn lines_spanning_reads_are_joined() {
        let (rx, mut tx) = tokio::io::simplex(16);
        let writer = tokio::spawn(async move {
            for piece in [&b"hel"[..], b"lo\nwor", b"ld\n", b"tail"] {
                tx.write_all(piece).await.unwrap();
                tx.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            tx.shutdown().await.unwrap();
        });
        let mut reader = LineReader::new(rx);
        let mut out = Vec::new();
        let read_all = async { while reader.read_lines(&mut out).await.unwrap() {} };
        let (w, ()) = tokio::join!(writer, read_all);
        w.unwrap();
        let got: Vec<_> = out.iter().map(|l| (&l.bytes[..], l.partial)).collect();
        assert_eq!(
            got,
            vec![(&b"hello"[..], false), (b"world", false), (b"tail", true)]
        );
    }

    #[tokio::test]
    async fn small_max_line_cuts_unterminated_rest() {
        assert_eq!(
            all_lines(b"abcdefg\nhi", 3).await,
            vec![
                (b"abc".to_vec(), true),
                (b"def".to_vec(), true),
                full(b"g"),
                (b"hi".to_vec(), true),
            ]
        );
    }

    #[tokio::test]
    async fn reading_after_eof_stays_at_eof() {
        let mut reader = LineReader::new(&b"x"[..]);
        let mut out = Vec::new();
        while reader.read_lines(&mut out).await.unwrap() {}
        assert!(!reader.read_lines(&mut out).await.unwrap());
        assert_eq!(out.len(), 1);
    }
}
