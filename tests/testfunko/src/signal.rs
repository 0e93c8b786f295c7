//! SIGTERM handling without dependencies: the handler only sets a flag (all a signal handler may
//! safely do), and a watcher thread runs the real shutdown.
//!
//! This matters because the test funko runs as PID 1 in its container, where the kernel ignores
//! SIGTERM unless a handler is installed, so `docker stop` would otherwise wait its full timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

static TERMINATING: AtomicBool = AtomicBool::new(false);

const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
}

extern "C" fn handle(_signum: i32) {
    TERMINATING.store(true, Ordering::SeqCst);
}

/// Runs `shutdown` on a background thread once SIGTERM arrives.
pub fn on_sigterm(shutdown: impl FnOnce() + Send + 'static) {
    // SAFETY: `handle` only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGTERM, handle);
    }
    thread::spawn(move || {
        while !TERMINATING.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
        shutdown();
    });
}
