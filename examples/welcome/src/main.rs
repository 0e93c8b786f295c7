//! The quick start's funko: `GET /?name=you` answers `{"hello":"you"}`, `GET /ping` answers
//! `OK`. HTTP/1.1 with keep-alive, one thread per connection, no dependencies, so that it
//! builds as a static executable in seconds and runs `FROM scratch` (no registry needed).
//! On SIGTERM (it is PID 1 in its container) it exits at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn exit_now(_signum: i32) {
    // SAFETY: _exit is async-signal-safe; nothing needs flushing.
    unsafe { _exit(0) }
}

fn main() {
    // SAFETY: the handler only calls _exit.
    unsafe {
        signal(SIGTERM, exit_now);
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_string());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("port 3000 is free");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut body_length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                body_length = value.trim().parse().unwrap_or(0);
            }
        }
        // A body is read and ignored, so the next request starts where it should.
        if std::io::copy(&mut (&mut reader).take(body_length), &mut std::io::sink()).is_err() {
            return;
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = answer(target);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
            if body == "OK" {
                "text/plain"
            } else {
                "application/json"
            },
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The status line's tail and the body for a request target.
fn answer(target: &str) -> (&'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/ping" => ("200 OK", "OK".to_string()),
        "/" => {
            let name = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("name="))
                .filter(|name| {
                    !name.is_empty()
                        && name.len() <= 64
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or("world");
            ("200 OK", format!("{{\"hello\":\"{name}\"}}"))
        }
        _ => ("404 Not Found", "{\"error\":\"no such route\"}".to_string()),
    }
}
