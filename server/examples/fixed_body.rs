//! The one-core HTTP floor for the benchmarks in `bench/`: hyper 1.x on a monoio event loop
//! (the same runtime, glue and HTTP stack as `quarry-server`) answering every request with one
//! fixed body of `--body-bytes` bytes, whatever the path. Whatever `quarry-server` spends per
//! request above this server's CPU time is the cost of its own work (routing, lookup, encoding).
//!
//! ```text
//! cargo run --release -p quarry-server --example fixed_body -- --listen 127.0.0.1:8090 --body-bytes 230
//! ```
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use monoio::io::IntoPollIo as _;
use monoio::net::TcpListener;
use monoio_compat::hyper::{MonoioIo, MonoioTimer};

#[derive(Debug, Parser)]
#[command(
    about = "Serve one fixed body of N bytes over HTTP/1.1 on one thread (benchmark baseline)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Size of the response body in bytes.
    #[arg(long, default_value_t = 200)]
    body_bytes: usize,
    /// Content-Type of the response.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Use epoll instead of io_uring (as `quarry-server --force-epoll`).
    #[arg(long, env = "QUARRY_FORCE_EPOLL")]
    force_epoll: bool,
}

/// A body of exactly `len` bytes; valid JSON (`{"pad":"xxx"}`) whenever `len` allows it.
fn fixed_body(len: usize) -> Bytes {
    const HEAD: &[u8] = b"{\"pad\":\"";
    const TAIL: &[u8] = b"\"}";
    if len < HEAD.len() + TAIL.len() {
        return Bytes::from(vec![b' '; len]);
    }
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(HEAD);
    body.resize(len - TAIL.len(), b'x');
    body.extend_from_slice(TAIL);
    Bytes::from(body)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let body = fixed_body(args.body_bytes);
    let content_type = http::HeaderValue::from_str(&args.content_type)
        .with_context(|| format!("--content-type {:?}", args.content_type))?;
    eprintln!(
        "fixed_body: listening on {} ({} byte body)",
        args.listen, args.body_bytes
    );
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: keep serving the open connections.
                eprintln!("fixed_body: accept: {err}");
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = match stream.into_poll_io() {
            Ok(io) => MonoioIo::new(io),
            Err(err) => {
                eprintln!("fixed_body: into_poll_io: {err}");
                continue;
            }
        };
        let body = body.clone();
        let content_type = content_type.clone();
        monoio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, content_type.clone());
                async move { Ok::<_, Infallible>(response) }
            });
            // Connection errors (a client that goes away) end only that connection.
            let _ = http1::Builder::new()
                .timer(MonoioTimer)
                .serve_connection(io, service)
                .await;
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.force_epoll {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .context("building the epoll runtime")?;
        runtime.block_on(serve(args))
    } else {
        let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .context("building the runtime")?;
        runtime.block_on(serve(args))
    }
}
