//! `atrest kms serve`: LocalKms over HTTP, for programs in any language.
//!
//! Owns nothing but the binding of [`wire`](super::wire)'s endpoint to atrest's HTTP
//! server ([`crate::http`]): what a request means is the endpoint's, the sockets, keep-alive
//! and slow clients the server's. Plain HTTP, on loopback unless the caller asks otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use super::wire::{self, Endpoint, MAX_BODY_BYTES};
use crate::http::{Handler, HttpServer, Request, Response};

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct KmsServer {
    http: HttpServer,
}

impl Handler for Endpoint {
    fn handle(&self, request: &Request<'_>) -> Response {
        if request.method != "POST" {
            return wire::method_not_allowed(request.method);
        }
        Endpoint::handle(self, request)
    }

    fn max_body(&self) -> usize {
        MAX_BODY_BYTES
    }

    fn too_large(&self) -> Response {
        wire::too_large()
    }
}

impl KmsServer {
    /// Listens on `listen` (port 0 picks a free one) and serves `endpoint` until dropped.
    /// An address other than loopback is refused unless `allow_remote`: this is plain
    /// HTTP.
    pub fn start(listen: &str, endpoint: Endpoint, allow_remote: bool) -> std::io::Result<Self> {
        Ok(KmsServer {
            http: HttpServer::start(listen, allow_remote, Arc::new(endpoint))?,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// `http://ADDR`, what an SDK takes as its endpoint URL.
    pub fn url(&self) -> String {
        self.http.url()
    }

    /// Blocks until the server stops (when the process ends).
    pub fn wait(self) {
        self.http.wait();
    }
}
