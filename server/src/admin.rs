//! The admin listener (`--admin-listen`), served by loop 0 next to the API listener: plain
//! hyper connections without the API's turn batching, load shedding or credentials.

use std::rc::Rc;
use std::time::Duration;

use hyper::server::conn::http1;
use monoio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::metrics::ConnActivity;
use crate::state::LoopCtx;

/// Open admin connections beyond this are closed at once (scrapers and probes need few).
const MAX_ADMIN_CONNECTIONS: usize = 64;

pub async fn accept_loop(ctx: Rc<LoopCtx>, listener: std::net::TcpListener) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot serve the admin listener");
            return;
        }
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(quarry_runtime::LoopTimer::new(
            ctx.config.plumbing().coarse_timer,
        ))
        .header_read_timeout(ctx.config.header_read_timeout)
        .max_buf_size(16 << 10)
        .keep_alive(true);
    let builder = Rc::new(builder);
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let accepted = monoio::select! {
            _ = ctx.stop_accept.wait() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= MAX_ADMIN_CONNECTIONS {
            debug!("admin connection limit reached; closing");
            continue;
        }
        open.set(open.get() + 1);
        let (ctx, builder, open) = (ctx.clone(), builder.clone(), open.clone());
        monoio::spawn(async move {
            serve(ctx, builder, stream).await;
            open.set(open.get() - 1);
        });
    }
}

async fn serve(ctx: Rc<LoopCtx>, builder: Rc<http1::Builder>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(io) = quarry_runtime::event_loop::hyper_io(stream) else {
        return;
    };
    let activity = ConnActivity::new();
    let svc_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req| {
        crate::handlers::serve_admin(svc_ctx.clone(), activity.clone(), req)
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let idle = ctx.config.idle_timeout;
    monoio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "admin connection ended with an error");
            }
            return;
        }
        _ = ctx.close_conns.wait() => {}
        _ = monoio::time::sleep(idle) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = monoio::time::timeout(Duration::from_secs(1), conn).await;
}
