//! The admin port (`--admin-listen`): `/metrics`, `/livez`, `/healthz`; never credentials.

use std::rc::Rc;

use http::{Method, Request};
use hyper::body::Incoming;

use super::{finish, probes, Serve};
use crate::error::ApiError;
use crate::metrics::{ConnActivity, RequestGuard};
use crate::routes::{match_path, Route};
use crate::state::LoopCtx;

/// The admin listener's hyper service; like `serve`, answered inside the call.
pub fn serve_admin(ctx: Rc<LoopCtx>, conn: Rc<ConnActivity>, req: Request<Incoming>) -> Serve {
    let mut guard = RequestGuard::new(ctx.clone(), conn);
    guard.log_access(&req);
    let is_head = req.method() == Method::HEAD;
    let result = match match_path(req.uri().path()) {
        Ok(route) if matches!(route, Route::Livez | Route::Healthz | Route::Metrics) => {
            guard.set_route(route.index());
            if req.method() != Method::GET && !is_head {
                Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
            } else {
                Ok(match route {
                    Route::Livez => probes::livez(&ctx),
                    Route::Healthz => probes::healthz(&ctx, true),
                    _ => probes::metrics(&ctx),
                })
            }
        }
        Ok(_) => Err(ApiError::RouteNotFound {
            path: req.uri().path().to_string(),
        }),
        Err(e) => Err(e),
    };
    drop(req);
    Serve::Ready(Some(finish(&ctx, result, is_head, guard)))
}
