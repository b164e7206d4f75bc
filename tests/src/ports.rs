//! Ports for child processes (moto, nginx, quarry-server) that tests start on 127.0.0.1.
//! Also compiled into the server's and the ETL's integration tests (`#[path]`), which start
//! such children themselves.

use std::net::TcpListener;

/// A port for a child process to listen on: distinct within this test process (tests run in
/// parallel threads), below the kernel's ephemeral range (32768 and up by default, where
/// `bind(0)` and outgoing connections take theirs), and free when chosen. A port from
/// `bind(0)` could be handed to a parallel test before the child bound it, and the test would
/// then talk to the other test's server.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries of one run start at different places (they also run one after another).
    let start = std::process::id() % SPAN;
    loop {
        let port = LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
