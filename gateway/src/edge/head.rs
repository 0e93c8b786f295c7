//! Where an HTTP/1.x request head ends (pure): the gateway reads each request head itself, so
//! that the whole head has one deadline (`header_timeout`) and one size limit, and hands the
//! bytes to Pingora's parser only once they are complete.
//!
//! The rule is the parser's (httparse): empty lines before the request line are skipped, a line
//! ends with `\n` or `\r\n`, and the head ends at the first empty line. Checking it costs one
//! `memchr` pass over bytes that just arrived.

/// The largest request head accepted (request line and headers); a larger one gets 431. A
/// browser's head with its cookies is a few KiB; nginx's default limit is 4 x 8 KiB.
pub const MAX_HEAD: usize = 64 * 1024;

/// The index just past the end of the request head at the start of `buf`, if it is complete.
/// `scanned` is how many bytes an earlier call already looked at (0 for the first).
pub fn head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    // A line end split over two reads: look again at the last two bytes seen.
    let from = scanned.saturating_sub(2).max(start);
    for at in memchr::memchr_iter(b'\n', &buf[from..]) {
        let at = from + at;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_heads_end_after_their_empty_line() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(head_end(get, 0), Some(get.len()));
        let with_body = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(head_end(with_body, 0), Some(with_body.len() - 3));
        let bare_lf = b"GET / HTTP/1.0\n\nrest";
        assert_eq!(head_end(bare_lf, 0), Some(16));
        let mixed = b"GET / HTTP/1.1\nHost: a\r\n\n";
        assert_eq!(head_end(mixed, 0), Some(mixed.len()));
        let leading_blank = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(head_end(leading_blank, 0), Some(leading_blank.len()));
    }

    #[test]
    fn partial_heads_are_not_complete() {
        for partial in [
            &b""[..],
            b"\r\n\r\n",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n",
        ] {
            assert_eq!(
                head_end(partial, 0),
                None,
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
    }

    #[test]
    fn any_split_into_two_reads_finds_the_same_end() {
        let head = b"GET /funko/x/y HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nBODY";
        let end = head_end(head, 0);
        for split in 0..head.len() {
            let first = head_end(&head[..split], 0);
            let found = first.or_else(|| head_end(head, split));
            assert_eq!(found, end, "split at {split}");
        }
    }
}
