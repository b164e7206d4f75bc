//! One event loop: a single-threaded monoio runtime, and its sockets as hyper I/O objects.
//!
//! monoio's FusionDriver uses io_uring where the kernel and seccomp allow it and falls back to
//! epoll otherwise; forcing epoll builds the LegacyDriver runtime instead. hyper polls its I/O
//! (`hyper::rt::Read`/`Write`), monoio's sockets complete owned-buffer operations: a socket goes
//! through `into_poll_io` and `monoio_compat::hyper::MonoioIo` before hyper gets it.

use std::future::Future;
use std::io;

use monoio::io::IntoPollIo;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use monoio_compat::hyper::MonoioIo;

/// A TCP connection as hyper reads and writes it.
pub type HyperTcp = MonoioIo<TcpStreamPoll>;

/// Hands an accepted connection to hyper's poll-based I/O.
pub fn hyper_io(stream: TcpStream) -> io::Result<HyperTcp> {
    Ok(MonoioIo::new(stream.into_poll_io()?))
}

/// Runs `fut` to completion on a new runtime on this thread, with monoio's timer enabled:
/// epoll when `force_epoll`, else io_uring when available (epoll otherwise). Fails only when
/// the runtime cannot be built.
pub fn block_on<F: Future>(force_epoll: bool, fut: F) -> io::Result<F::Output> {
    if force_epoll {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?;
        Ok(rt.block_on(fut))
    } else {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()?;
        Ok(rt.block_on(fut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::{Read, Write};
    use std::future::poll_fn;
    use std::pin::Pin;

    /// Bytes written through hyper's interface reach the peer, and the peer's reach hyper's
    /// read, on both drivers a loop can run.
    #[test]
    fn a_connection_carries_bytes_both_ways_on_both_drivers() {
        for force_epoll in [true, false] {
            block_on(force_epoll, async {
                let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let peer = std::thread::spawn(move || {
                    use std::io::{Read as _, Write as _};
                    let mut s = std::net::TcpStream::connect(addr).expect("connect");
                    let mut buf = [0u8; 4];
                    s.read_exact(&mut buf).expect("read");
                    s.write_all(b"pong").expect("write");
                    buf
                });
                let (stream, _) = listener.accept().await.expect("accept");
                let mut io = hyper_io(stream).expect("poll io");
                let mut sent = 0;
                while sent < 4 {
                    sent += poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &b"ping"[sent..]))
                        .await
                        .expect("write");
                }
                let mut got = Vec::new();
                while got.len() < 4 {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4];
                    let mut rb = hyper::rt::ReadBuf::uninit(&mut buf);
                    poll_fn(|cx| Pin::new(&mut io).poll_read(cx, rb.unfilled()))
                        .await
                        .expect("read");
                    let filled = rb.filled();
                    assert!(!filled.is_empty(), "early end of stream");
                    got.extend_from_slice(filled);
                }
                assert_eq!(got, b"pong");
                assert_eq!(&peer.join().expect("peer"), b"ping");
            })
            .expect("runtime");
        }
    }
}
