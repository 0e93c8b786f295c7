//! Where an HTTP/1.x request head ends (pure): the gateway reads each request head itself, so
//! that the whole head has one deadline (`header_timeout`) and one size limit, and hands the
//! bytes to Pingora's parser only once they are complete.
//!
//! The rule is the parser's (httparse): empty lines before the request line are skipped, a line
//! ends with `\n` or `\r\n`, and the head ends at the first empty line. Checking it costs one
//! `memchr` pass over bytes that just arrived.
//!
//! Pipelined requests are cut apart here too ([`split_pipelined`]), only where the head alone
//! says where its request ends: the parser would otherwise see the next requests as bytes it
//! over-read and close the connection after the first answer.

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

/// Splits pipelined requests: when `buf` starts with a whole head of a request that has no
/// body (no `Content-Length`, no `Transfer-Encoding`, no `Upgrade`, not `CONNECT`), the
/// bytes after it are the next request's, returned apart so that they wait for this one's
/// answer. Anything else stays whole: its body, or what follows it, is for the parser, which
/// then closes the connection rather than guess where the next request starts.
pub fn split_pipelined(buf: &mut bytes::BytesMut) -> Option<bytes::BytesMut> {
    let end = head_end(buf, 0)?;
    if end == buf.len() || !has_no_body(&buf[..end]) {
        return None;
    }
    Some(buf.split_off(end))
}

/// Whether a complete request head says its request has no body, and is not one whose
/// connection becomes something else (an upgrade, a tunnel). Conservative: a header it does
/// not read the value of (any `Content-Length`, even 0) counts as a body.
fn has_no_body(head: &[u8]) -> bool {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let Some(request_line) = lines.next() else {
        return false;
    };
    let method = request_line
        .split(|&b| b == b' ')
        .next()
        .unwrap_or_default();
    if method.eq_ignore_ascii_case(b"CONNECT") || method == b"PRI" {
        return false;
    }
    lines.all(|line| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let name = name.trim_ascii();
        !(name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> (String, Option<String>) {
        let mut buf = bytes::BytesMut::from(input);
        let rest = split_pipelined(&mut buf);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&buf), rest.as_deref().map(text))
    }

    #[test]
    fn requests_without_a_body_are_split_from_what_follows() {
        let one = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let two = "GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTT";
        assert_eq!(
            split(format!("{one}{two}").as_bytes()),
            (one.to_string(), Some(two.to_string()))
        );
        // Alone, or not yet whole: nothing to split.
        assert_eq!(split(one.as_bytes()), (one.to_string(), None));
        assert_eq!(split(b"GET /a HTTP/1.1\r\nHo").1, None);
        let bare_lf = "\r\nHEAD / HTTP/1.0\nX-A: b\n\n";
        assert_eq!(
            split(format!("{bare_lf}GET").as_bytes()),
            (bare_lf.to_string(), Some("GET".to_string()))
        );
    }

    #[test]
    fn a_body_an_upgrade_or_a_tunnel_keeps_the_bytes_whole() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\ncontent-length : 0\r\n\r\nGET",
            "POST / HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: chunked\r\n\r\n3\r\nabc",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x01",
            "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n\x16\x03",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(split(head.as_bytes()), (head.to_string(), None), "{head:?}");
        }
    }

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
