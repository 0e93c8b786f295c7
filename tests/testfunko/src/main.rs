//! The test funko: a small HTTP/1.1 server with keep-alive that tests and benchmarks run as a
//! funko. It has no dependencies so that it builds as a static executable in seconds and ships
//! `FROM scratch` (no registry is needed to make its image).
//!
//! Endpoints:
//! - `GET /ping`: `OK` (status from `TESTFUNKO_PING_STATUS`, default 200, to fake a bad release)
//! - `GET /whoami`: the container's hostname
//! - `/now`: the wall clock when the request was read, in microseconds since the epoch (when a
//!   queued call started its work, for the benchmark)
//! - `/echo`: method, path, query, headers and body as JSON
//! - `/status/<code>`: an empty response with that status
//! - `/sleep/<ms>`: waits, then answers `slept <ms>`
//! - `/peak`: the most `/sleep/` requests this instance has answered at once (a proxy's
//!   concurrency limit, seen from behind it)
//! - `/stream/<n>`: `n` chunks of a chunked response, flushed one by one 50 ms apart
//! - `/bytes/<n>`: `n` bytes of `x`
//! - `/file?path=<p>`: the content of a file (404 when it cannot be read)
//! - `/upgrade`: `101 Switching Protocols` (as a WebSocket server), then echoes raw bytes
//! - `/version`: the value of `TESTFUNKO_VERSION` (default `1`), to tell images apart
//! - `/print/<n>`: prints `n` numbered lines (`testfunko line <i> of <n>`) to stdout, for log tests
//! - `/cookies`: sets the admin's cookie name, a cookie of its own and `Service-Worker-Allowed`
//! - `/say/<word>`: prints `testfunko says <word>` to stdout
//! - `/drop-next`: `OK`, and the next request on this connection is read and then the connection
//!   closed without an answer (a kept-alive connection that a proxy finds closed)
//! - `/unframed/<n>`: `n` bytes with neither `Content-Length` nor chunks, delimited by closing
//!   the connection (as an HTTP/1.0 server answers)
//! - `/cut-chunked/<n>`: a chunked answer of `n` chunks without its last chunk, then the
//!   connection closes (an instance that dies while it streams)
//! - `/cut/<n>`: announces `2n` bytes, sends `n`, then closes the connection (an instance that
//!   dies mid-answer)
//! - `/flaky/<key>/<n>`: 503 the first `n` times `key` is asked for, then 200 (`ok after <n>
//!   failures`): a funko that fails, then recovers
//!
//! `HEAD` requests get the head of the `GET` answer, without its body.
//!
//! `TESTFUNKO_EXIT_CODE=<n>` makes it print a line and exit with that code at once (a release
//! that crashes at start, which a restart policy turns into a loop).
//! `TESTFUNKO_DELAY_MS` adds that much latency to every request but `/ping` (a slow instance).
//! `TESTFUNKO_HANG_UP=1` makes it read every request but `/ping` and close the connection
//! without an answer (an instance that dies under a request, while it still passes checks).
//! `TESTFUNKO_EAGER_UPGRADE=1` makes every connection an upgraded one whose `101` is sent as soon
//! as the connection is accepted, before the request is read (the fastest possible instance: the
//! answer is there before the proxy has finished sending), then echoes raw bytes.
//!
//! It listens on `0.0.0.0:$PORT` (default 3000). On SIGTERM it exits once the requests in flight
//! are answered (at most 5 s later), as a well-behaved funko should. `TESTFUNKO_DRAIN_MS` makes
//! it go on serving for that long after SIGTERM first (a funko with a long drain), so that a
//! proxy which routes to it after its stop, or after it has gone, is caught.

mod http;
mod signal;

use std::io::{self, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use http::{Request, Response};

/// Requests being answered right now; SIGTERM waits for this to drop to zero.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// `/sleep/<ms>` requests being answered now, and the most there were at once (`/peak`).
static SLEEPING: AtomicUsize = AtomicUsize::new(0);
static PEAK_SLEEPING: AtomicUsize = AtomicUsize::new(0);
/// `/flaky/<key>/<n>`: how often each key was asked for.
static FLAKY: std::sync::Mutex<Option<std::collections::HashMap<String, usize>>> =
    std::sync::Mutex::new(None);

fn main() {
    if let Some(code) = std::env::var("TESTFUNKO_EXIT_CODE")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        eprintln!("testfunko: exiting with code {code} as asked");
        std::process::exit(code);
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_string());
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("testfunko: cannot listen on port {port}: {err}");
            std::process::exit(1);
        }
    };
    signal::on_sigterm(|| {
        eprintln!("testfunko: SIGTERM, draining");
        if let Some(drain) = std::env::var("TESTFUNKO_DRAIN_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
        {
            thread::sleep(Duration::from_millis(drain));
        }
        for _ in 0..500 {
            if IN_FLIGHT.load(Ordering::SeqCst) == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        std::process::exit(0);
    });
    eprintln!("testfunko: listening on 0.0.0.0:{port}");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                thread::spawn(move || {
                    // A client that goes away mid-request is not our error to report.
                    let _ = serve_connection(stream);
                });
            }
            Err(err) => eprintln!("testfunko: accept failed: {err}"),
        }
    }
}

/// Answers requests on one connection until the client closes it or asks to.
fn serve_connection(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    if std::env::var_os("TESTFUNKO_EAGER_UPGRADE").is_some() {
        writer.write_all(SWITCHING_PROTOCOLS)?;
        writer.flush()?;
        // The request's head, read only now, is not needed; what follows it is echoed.
        http::read_request(&mut reader)?;
        return io::copy(&mut reader, &mut writer).map(|_| ());
    }
    let mut drop_next = false;
    loop {
        let Some(request) = http::read_request(&mut reader)? else {
            return Ok(());
        };
        if drop_next || (hangs_up() && request.path() != "/ping") {
            return Ok(());
        }
        http::HEAD_ONLY.set(request.method == "HEAD");
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let result = answer(&request, &mut writer);
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        result?;
        let path = request.path();
        if !request.keep_alive()
            || path.starts_with("/unframed/")
            || path.starts_with("/cut/")
            || path.starts_with("/cut-chunked/")
        {
            return Ok(());
        }
        drop_next = path == "/drop-next";
    }
}

/// Routes one request and writes its response.
fn answer(request: &Request, out: &mut TcpStream) -> io::Result<()> {
    let path = request.path();
    if let Some(delay) = delay().filter(|_| path != "/ping") {
        thread::sleep(delay);
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let head = segments.next().unwrap_or("");
    let arg = segments.next().unwrap_or("");
    match head {
        "ping" => {
            let status = std::env::var("TESTFUNKO_PING_STATUS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            Response::new(status).body("OK").write(out)
        }
        "whoami" => Response::new(200).body(&hostname()).write(out),
        "now" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            Response::new(200).body(&now.to_string()).write(out)
        }
        "drop-next" => Response::new(200).body("OK").write(out),
        "unframed" => match arg.parse::<usize>() {
            Ok(n) if n <= 1 << 30 => {
                out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")?;
                out.write_all("x".repeat(n).as_bytes())?;
                out.flush()
            }
            _ => Response::new(400).body("bad byte count").write(out),
        },
        "cut" => match arg.parse::<usize>() {
            Ok(n) if n <= 1 << 30 => {
                write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 * n)?;
                out.write_all("x".repeat(n).as_bytes())?;
                out.flush()
            }
            _ => Response::new(400).body("bad byte count").write(out),
        },
        "cut-chunked" => match arg.parse::<usize>() {
            Ok(n) if n <= 1_000 => {
                out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                for i in 0..n {
                    let chunk = format!("chunk {i}\n");
                    write!(out, "{:x}\r\n{chunk}\r\n", chunk.len())?;
                }
                out.flush()
            }
            _ => Response::new(400).body("bad chunk count").write(out),
        },
        "version" => {
            let version = std::env::var("TESTFUNKO_VERSION").unwrap_or_else(|_| "1".into());
            Response::new(200).body(&version).write(out)
        }
        "upgrade" => upgrade_echo(out),
        "print" => match arg.parse::<usize>() {
            Ok(n) if n <= 100_000 => {
                let mut stdout = io::stdout().lock();
                for i in 1..=n {
                    writeln!(stdout, "testfunko line {i} of {n}")?;
                }
                stdout.flush()?;
                Response::new(200).body(&format!("printed {n}")).write(out)
            }
            _ => Response::new(400).body("bad line count").write(out),
        },
        "cookies" => Response::new(200)
            .header("Set-Cookie", "faaso_session=forged; Path=/admin")
            .header("Set-Cookie", "theirs=1; Path=/")
            .header("Service-Worker-Allowed", "/")
            .body("cookies")
            .write(out),
        "say" => {
            println!("testfunko says {arg}");
            Response::new(200).body(arg).write(out)
        }
        "echo" => Response::new(200)
            .header("Content-Type", "application/json")
            .body(&request.to_json())
            .write(out),
        "status" => match arg.parse::<u16>() {
            Ok(code) if (200..600).contains(&code) => Response::new(code).write(out),
            _ => Response::new(400).body("bad status code").write(out),
        },
        "sleep" => match arg.parse::<u64>() {
            Ok(ms) => {
                let now = SLEEPING.fetch_add(1, Ordering::SeqCst) + 1;
                PEAK_SLEEPING.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(ms));
                SLEEPING.fetch_sub(1, Ordering::SeqCst);
                Response::new(200).body(&format!("slept {ms}")).write(out)
            }
            Err(_) => Response::new(400).body("bad milliseconds").write(out),
        },
        "stream" => match arg.parse::<usize>() {
            Ok(n) => stream_chunks(n, out),
            Err(_) => Response::new(400).body("bad chunk count").write(out),
        },
        "bytes" => match arg.parse::<usize>() {
            Ok(n) if n <= 1 << 30 => Response::new(200).body(&"x".repeat(n)).write(out),
            _ => Response::new(400).body("bad byte count").write(out),
        },
        // Fails (503) the first <n> times a key is asked for, then answers 200 with the count.
        "flaky" => match arg
            .split_once('/')
            .map(|(key, n)| (key, n.parse::<usize>()))
        {
            Some((key, Ok(failures))) => {
                let seen = {
                    let mut counts = FLAKY.lock().unwrap_or_else(|p| p.into_inner());
                    let count = counts
                        .get_or_insert_default()
                        .entry(key.to_string())
                        .or_default();
                    *count += 1;
                    *count
                };
                if seen <= failures {
                    Response::new(503)
                        .body(&format!("failure {seen}"))
                        .write(out)
                } else {
                    Response::new(200)
                        .header("Content-Type", "text/plain")
                        .body(&format!("ok after {failures} failures"))
                        .write(out)
                }
            }
            _ => Response::new(400)
                .body("expected /flaky/<key>/<n>")
                .write(out),
        },
        "peak" => Response::new(200)
            .body(&PEAK_SLEEPING.load(Ordering::SeqCst).to_string())
            .write(out),
        "file" => match request.query_param("path") {
            Some(file) => match std::fs::read(&file) {
                Ok(content) => Response::new(200).body_bytes(content).write(out),
                Err(err) => Response::new(404)
                    .body(&format!("{file}: {err}"))
                    .write(out),
            },
            None => Response::new(400).body("missing ?path=").write(out),
        },
        _ => Response::new(404)
            .body(&format!("no such endpoint: {path}"))
            .write(out),
    }
}

/// Switches protocols (as a WebSocket server would) and echoes raw bytes until the client
/// closes: enough to show that a proxy passes upgraded connections through.
const SWITCHING_PROTOCOLS: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

fn upgrade_echo(out: &mut TcpStream) -> io::Result<()> {
    out.write_all(SWITCHING_PROTOCOLS)?;
    out.flush()?;
    let mut input = out.try_clone()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = io::Read::read(&mut input, &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed"));
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// Whether requests other than `/ping` are closed without an answer (`TESTFUNKO_HANG_UP`).
fn hangs_up() -> bool {
    static HANGS_UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HANGS_UP.get_or_init(|| std::env::var_os("TESTFUNKO_HANG_UP").is_some())
}

/// Extra latency for every request except `/ping`, from `TESTFUNKO_DELAY_MS` (a slow instance).
fn delay() -> Option<Duration> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var("TESTFUNKO_DELAY_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
    })
}

/// Writes `n` chunks, flushing each one, so a proxy that buffers is caught by the timing.
fn stream_chunks(n: usize, out: &mut TcpStream) -> io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    for i in 0..n {
        let chunk = format!("chunk {i}\n");
        write!(out, "{:x}\r\n{chunk}\r\n", chunk.len())?;
        out.flush()?;
        if i + 1 < n {
            thread::sleep(Duration::from_millis(50));
        }
    }
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

/// The container's hostname, which Docker sets to the container's short id.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}
