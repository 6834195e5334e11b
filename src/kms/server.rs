//! `atrest kms serve`: LocalKms over HTTP, for programs in any language.
//!
//! Owns the sockets and threads only; what a request means is [`wire`](super::wire)'s.
//! Plain HTTP, meant for 127.0.0.1: signatures are not verified (see
//! [`Identities`](super::wire::Identities) for who a request calls as).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use super::wire::{self, Endpoint, Request, MAX_BODY_BYTES};

const WORKERS: usize = 4;

/// A running server; dropping it stops it.
pub struct KmsServer {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KmsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmsServer(http://{})", self.addr)
    }
}

impl KmsServer {
    /// Listens on `listen` (port 0 picks a free one) and serves `endpoint` from a few
    /// threads until dropped.
    pub fn start(listen: &str, endpoint: Endpoint) -> std::io::Result<Self> {
        let http = tiny_http::Server::http(listen)
            .map_err(|e| std::io::Error::other(format!("cannot listen on {listen}: {e}")))?;
        let addr = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other(format!("{listen} is not an IP address")))?;
        let http = Arc::new(http);
        let endpoint = Arc::new(endpoint);
        let workers = (0..WORKERS)
            .map(|_| {
                let (http, endpoint) = (http.clone(), endpoint.clone());
                std::thread::spawn(move || {
                    while let Ok(request) = http.recv() {
                        serve(&endpoint, request);
                    }
                })
            })
            .collect();
        Ok(KmsServer {
            http,
            addr,
            workers,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, what an SDK takes as its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blocks until the server stops (it stops only when dropped from another thread,
    /// or when the process ends).
    pub fn wait(mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for KmsServer {
    fn drop(&mut self) {
        for _ in 0..self.workers.len() {
            self.http.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn serve(endpoint: &Endpoint, mut request: tiny_http::Request) {
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let (target, content_type, authorization) = (
        header("X-Amz-Target"),
        header("Content-Type"),
        header("Authorization"),
    );
    let mut body = Zeroizing::new(Vec::new());
    let too_large = request.body_length().is_some_and(|n| n > MAX_BODY_BYTES);
    if !too_large {
        let limit = MAX_BODY_BYTES as u64 + 1;
        if request
            .as_reader()
            .take(limit)
            .read_to_end(&mut body)
            .is_err()
        {
            return; // the client went away mid-request
        }
    }
    let response = if *request.method() != tiny_http::Method::Post {
        wire::method_not_allowed(request.method().as_str())
    } else if too_large {
        wire::too_large()
    } else {
        endpoint.handle(&Request {
            target: target.as_deref(),
            content_type: content_type.as_deref(),
            authorization: authorization.as_deref(),
            body: &body,
        })
    };
    let mut headers = vec![
        ("Content-Type", response.content_type.to_string()),
        ("x-amzn-RequestId", wire::request_id()),
    ];
    if let Some(error) = &response.error_type {
        headers.push(("x-amzn-ErrorType", error.clone()));
    }
    let headers = headers
        .into_iter()
        .filter_map(|(name, value)| {
            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
        })
        .collect();
    // Served from the zeroizing buffer: the body may hold a plaintext.
    let _ = request.respond(tiny_http::Response::new(
        tiny_http::StatusCode(response.status),
        headers,
        &response.body[..],
        Some(response.body.len()),
        None,
    ));
}
