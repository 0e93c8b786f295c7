//! The access log: one line per funko request (target `faaso::access`), in the same layout as
//! the gateway's other log lines:
//!
//! ```text
//! 2026-11-29T17:26:48.371416Z  INFO faaso::access: method=GET path=/funko/hello/ping funko="hello" instance="faaso-hello-ab12cd" status=200 duration_ms=0.930 bytes=2 request_id=13e7f0e7d5d537e5d1c140c0280f3b73 reused=true
//! ```
//!
//! It is written here rather than through `tracing`'s formatter, which costs more than the
//! rest of the gateway's own per-request work together. Each worker thread appends its lines
//! to a buffer of its own (no allocation, no float formatting, the date part of the timestamp
//! made once a second); a buffer goes to the log writer when it holds [`BATCH_BYTES`], and a
//! flusher thread sends whatever waits every [`FLUSH_INTERVAL`]. So under load one write
//! carries many lines, a line is at most [`FLUSH_INTERVAL`] late, and request threads never
//! wait on stderr. The writer is the same non-blocking writer as every other log line's
//! ([`install`]), so lines never interleave; [`flush`] sends what waits before the process
//! exits. The log filter still applies: `info,faaso::access=off` turns the access log off.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

/// A thread's buffer is sent once it holds this much.
pub const BATCH_BYTES: usize = 16 * 1024;
/// Longest a line waits in a buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The writer shared with the `tracing` subscriber; unset (tests), lines go to stderr.
static SINK: OnceLock<NonBlocking> = OnceLock::new();

/// Every thread's buffer, for the flusher and for [`flush`].
static BUFFERS: Mutex<Vec<Arc<Mutex<Buffer>>>> = Mutex::new(Vec::new());

/// Sends access log lines to `writer`, the non-blocking writer the log subscriber uses, and
/// starts the flusher thread.
pub fn install(writer: NonBlocking) {
    // A second install keeps the first writer: there is one log per process.
    if SINK.set(writer).is_ok() {
        let started = std::thread::Builder::new()
            .name("access log".to_string())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_INTERVAL);
                    flush();
                }
            });
        if let Err(err) = started {
            tracing::error!(error = %err, "cannot start the access log flusher; lines are sent in batches only");
        }
    }
}

/// Sends every thread's waiting lines to the log writer.
pub fn flush() {
    let buffers: Vec<Arc<Mutex<Buffer>>> = lock(&BUFFERS).clone();
    for buffer in buffers {
        let lines = std::mem::take(&mut lock(&buffer).lines);
        send(&lines);
        // The empty buffer left behind grows again on its thread; give this one back so the
        // thread keeps its capacity.
        let mut buffer = lock(&buffer);
        if buffer.lines.is_empty() {
            let mut lines = lines;
            lines.clear();
            buffer.lines = lines;
        }
    }
}

fn send(lines: &[u8]) {
    if lines.is_empty() {
        return;
    }
    // A log that cannot be written is not a reason to fail anything.
    let _ = match SINK.get() {
        Some(sink) => sink.clone().write_all(lines),
        None => std::io::stderr().write_all(lines),
    };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the log filter lets access log lines through.
pub fn enabled() -> bool {
    tracing::enabled!(target: "faaso::access", tracing::Level::INFO)
}

/// One finished request, as logged.
#[derive(Debug)]
pub struct Entry<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub funko: &'a str,
    pub instance: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub bytes: usize,
    pub request_id: &'a str,
    pub reused: bool,
}

/// One thread's waiting lines; locked by its thread for each line and by the flusher.
struct Buffer {
    lines: Vec<u8>,
    /// The second the cached date prefix is for, and the prefix (`2026-11-29T17:26:48.`).
    second: u64,
    prefix: [u8; 20],
}

thread_local! {
    static LOCAL: Arc<Mutex<Buffer>> = {
        let buffer = Arc::new(Mutex::new(Buffer {
            lines: Vec::with_capacity(BATCH_BYTES + 1024),
            second: u64::MAX,
            prefix: [0; 20],
        }));
        lock(&BUFFERS).push(Arc::clone(&buffer));
        buffer
    };
}

/// Adds one access log line (sent with the next batch).
pub fn write(entry: &Entry<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    LOCAL.with(|buffer| {
        let mut buffer = lock(buffer);
        let buffer = &mut *buffer;
        if buffer.second != now.as_secs() {
            buffer.second = now.as_secs();
            buffer.prefix = date_prefix(now.as_secs());
        }
        let line = &mut buffer.lines;
        line.extend_from_slice(&buffer.prefix);
        push_padded(line, u64::from(now.subsec_micros()), 6);
        line.extend_from_slice(b"Z  INFO faaso::access: method=");
        line.extend_from_slice(entry.method.as_bytes());
        line.extend_from_slice(b" path=");
        line.extend_from_slice(entry.path.as_bytes());
        line.extend_from_slice(b" funko=");
        push_quoted(line, entry.funko);
        line.extend_from_slice(b" instance=");
        push_quoted(line, entry.instance);
        line.extend_from_slice(b" status=");
        push_u64(line, u64::from(entry.status));
        line.extend_from_slice(b" duration_ms=");
        let micros = entry.duration.as_micros().min(u128::from(u64::MAX)) as u64;
        push_u64(line, micros / 1000);
        line.push(b'.');
        push_padded(line, micros % 1000, 3);
        line.extend_from_slice(b" bytes=");
        push_u64(line, entry.bytes as u64);
        line.extend_from_slice(b" request_id=");
        line.extend_from_slice(entry.request_id.as_bytes());
        line.extend_from_slice(if entry.reused {
            b" reused=true\n"
        } else {
            b" reused=false\n"
        });
        if line.len() >= BATCH_BYTES {
            send(line);
            line.clear();
        }
    });
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time in seconds (UTC).
fn date_prefix(unix_seconds: u64) -> [u8; 20] {
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; 20];
    let mut text = Vec::with_capacity(20);
    push_padded(&mut text, year, 4);
    text.push(b'-');
    push_padded(&mut text, month, 2);
    text.push(b'-');
    push_padded(&mut text, day, 2);
    text.push(b'T');
    push_padded(&mut text, second_of_day / 3600, 2);
    text.push(b':');
    push_padded(&mut text, second_of_day / 60 % 60, 2);
    text.push(b':');
    push_padded(&mut text, second_of_day % 60, 2);
    text.push(b'.');
    out.copy_from_slice(&text[..20]);
    out
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar;
/// H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `value` with leading zeros to `width` digits.
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let start = out.len();
    push_u64(out, value);
    let len = out.len() - start;
    if len < width {
        out.splice(start..start, std::iter::repeat_n(b'0', width - len));
    }
}

/// A string in double quotes, as `tracing` writes a `?`-formatted string (`"` and `\` escaped,
/// control characters as `\u{..}`).
fn push_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    if text
        .bytes()
        .all(|b| b != b'"' && b != b'\\' && !b.is_ascii_control())
    {
        out.extend_from_slice(text.as_bytes());
    } else {
        let _ = write!(out, "{}", text.escape_debug());
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_for_a_batch_or_a_flush() {
        let entry = Entry {
            method: "GET",
            path: "/funko/hello/ping?x=1",
            funko: "hello",
            instance: "faaso-hello-abc123",
            status: 200,
            duration: Duration::from_micros(1_204),
            bytes: 2,
            request_id: "abc",
            reused: true,
        };
        write(&entry);
        let waiting = LOCAL.with(|buffer| String::from_utf8(lock(buffer).lines.clone()).unwrap());
        let line = waiting.lines().last().unwrap();
        assert!(
            line.ends_with(
                "Z  INFO faaso::access: method=GET path=/funko/hello/ping?x=1 funko=\"hello\" \
                 instance=\"faaso-hello-abc123\" status=200 duration_ms=1.204 bytes=2 \
                 request_id=abc reused=true"
            ),
            "{line}"
        );
        assert_eq!(line.len(), 27 + line.split_once("Z ").unwrap().1.len() + 1);
        flush();
        LOCAL.with(|buffer| assert!(lock(buffer).lines.is_empty()));
    }

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(&date_prefix(0), b"1970-01-01T00:00:00.");
        assert_eq!(&date_prefix(951_782_400), b"2000-02-29T00:00:00.");
        assert_eq!(&date_prefix(1_795_965_408), b"2026-11-29T15:16:48.");
        assert_eq!(&date_prefix(4_102_444_799), b"2099-12-31T23:59:59.");
    }

    #[test]
    fn numbers_and_quotes() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_padded(&mut out, 42, 6);
        out.push(b' ');
        push_padded(&mut out, 1234567, 3);
        out.push(b' ');
        push_quoted(&mut out, "plain");
        push_quoted(&mut out, "a\"b\\c\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"0 18446744073709551615 000042 1234567 "plain""a\"b\\c\n""#
        );
    }
}
