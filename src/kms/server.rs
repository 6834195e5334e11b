//! `atrest kms serve`: LocalKms over HTTP, for programs in any language.
//!
//! Owns the sockets and threads only; what a request means is [`wire`](super::wire)'s
//! (and who it is from, [`Identities`](super::wire::Identities)'s). Plain HTTP, on
//! loopback unless the caller asks for another address.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
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
    /// threads until dropped. An address other than loopback is refused unless
    /// `allow_remote`: this is plain HTTP.
    pub fn start(listen: &str, endpoint: Endpoint, allow_remote: bool) -> std::io::Result<Self> {
        let wanted: Vec<SocketAddr> = listen
            .to_socket_addrs()
            .map_err(|e| std::io::Error::other(format!("cannot listen on {listen}: {e}")))?
            .collect();
        if !allow_remote && wanted.iter().any(|a| !a.ip().is_loopback()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{listen} is not a loopback address: the KMS speaks plain HTTP and would be reachable from other machines; listen on 127.0.0.1, or allow remote clients explicitly"),
            ));
        }
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
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let (method, uri) = (
        request.method().as_str().to_string(),
        request.url().to_string(),
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
    let response = if method != "POST" {
        wire::method_not_allowed(&method)
    } else if too_large {
        wire::too_large()
    } else {
        endpoint.handle(&Request {
            method: &method,
            uri: &uri,
            headers: &headers,
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
