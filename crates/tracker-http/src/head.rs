//! Where HTTP/1.1 request heads end in a byte stream, found without parsing them: the clock and
//! size limits of [`crate::server`] run on this, below hyper, which parses the heads itself.
//!
//! A head is everything from the first byte after the previous head (or the connection's
//! start) to the blank line that follows its request line. Blank lines *before* a request line
//! (RFC 9112 section 2.2 lets servers skip them) belong to the head they precede: they neither
//! end a head nor start a fresh one, so a client that sends only `\r\n`, forever, is one
//! unfinished head that the header timeout and the size limit both see.

/// Scans bytes as they are read; only newlines are looked at (memchr), so the cost is a fraction
/// of hyper's own parse.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadScanner {
    /// Bytes of the current unfinished head, leading blank lines included; 0 between heads.
    head_bytes: usize,
    /// Bytes of the current line so far (since the last `\n`).
    line_len: usize,
    /// The last byte scanned (`\r` matters when a `\r\n` is split across reads).
    last: u8,
    /// Whether the current head has a non-blank line (its request line) yet.
    started: bool,
    /// Heads ended so far.
    completed: u64,
}

impl HeadScanner {
    /// Feeds bytes; false as soon as the current head exceeds `max` bytes (the scanner should
    /// then be dropped with its connection). A head ends at a blank line (`\r\n` or a bare
    /// `\n`) after its request line.
    pub fn feed(&mut self, new: &[u8], max: usize) -> bool {
        let mut rest = new;
        while !rest.is_empty() {
            let Some(off) = memchr::memchr(b'\n', rest) else {
                self.head_bytes += rest.len();
                self.line_len += rest.len();
                self.last = rest[rest.len() - 1];
                return self.head_bytes <= max;
            };
            self.head_bytes += off + 1;
            if self.head_bytes > max {
                return false;
            }
            let line = self.line_len + off;
            let before = if off > 0 { rest[off - 1] } else { self.last };
            self.line_len = 0;
            self.last = b'\n';
            let blank = line == 0 || (line == 1 && before == b'\r');
            if !blank {
                self.started = true;
            } else if self.started {
                self.head_bytes = 0;
                self.started = false;
                self.completed += 1;
            }
            rest = &rest[off + 1..];
        }
        true
    }

    /// Bytes of the unfinished head (0 between heads).
    pub fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    /// Heads ended so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }
}

#[cfg(test)]
mod tests {
    use super::HeadScanner;

    const TWO: &[u8] =
        b"GET /announce?a=1 HTTP/1.1\r\nhost: x\r\n\r\nGET /scrape HTTP/1.1\n\nGET /x";

    #[test]
    fn head_ends_are_found_across_every_split() {
        for split in 0..=TWO.len() {
            let mut s = HeadScanner::default();
            assert!(s.feed(&TWO[..split], 1000));
            assert!(s.feed(&TWO[split..], 1000));
            assert_eq!(s.head_bytes(), b"GET /x".len(), "split at {split}");
            assert_eq!(s.completed(), 2, "split at {split}");
        }
        // Byte by byte.
        let mut s = HeadScanner::default();
        for b in TWO {
            assert!(s.feed(std::slice::from_ref(b), 1000));
        }
        assert_eq!(s.head_bytes(), 6);
        assert_eq!(s.completed(), 2);
    }

    #[test]
    fn limit_counts_only_the_current_head() {
        let mut s = HeadScanner::default();
        let head = b"GET / HTTP/1.1\r\nh: v\r\n\r\n";
        for _ in 0..100 {
            assert!(s.feed(head, head.len()));
        }
        assert!(!s.feed(&[b'a'; 30], 29));
        let mut s = HeadScanner::default();
        assert!(s.feed(&[b'a'; 29], 30));
        assert!(s.feed(b"\r", 30));
        assert!(!s.feed(b"\nb", 30));
        // A lone \r inside a line does not end anything.
        let mut s = HeadScanner::default();
        assert!(s.feed(b"a\rb\n\rc\n", 100));
        assert_eq!(s.head_bytes(), 7);
    }

    #[test]
    fn blank_lines_alone_never_end_a_head_and_count_towards_its_size() {
        let mut s = HeadScanner::default();
        for _ in 0..1000 {
            assert!(s.feed(b"\r\n", 1 << 20));
        }
        assert_eq!(s.completed(), 0);
        assert_eq!(s.head_bytes(), 2000);
        assert!(!s.feed(b"\n", 2000), "blank lines fill the head limit");
        // Leading blank lines then a request: one head.
        let mut s = HeadScanner::default();
        assert!(s.feed(b"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n", 100));
        assert_eq!((s.completed(), s.head_bytes()), (1, 0));
    }
}
