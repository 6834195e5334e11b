//! The HTTP/1.1 server under every atrest server: hyper on a small tokio runtime of its
//! own, so embedders need no runtime. Keep-alive, concurrent connections (bounded), and
//! clients too slow to send their headers or body are cut off instead of holding a worker.
//! A [`Handler`] answers each request on the blocking pool (handlers take file locks and
//! write files). Loopback only unless the caller asks otherwise.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};
use zeroize::Zeroizing;

use super::{Request, Response};

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 512;
/// How long a client may take to send its request headers, then its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What answers a server's requests. `handle` gets a body of at most `max_body` bytes;
/// a larger one is answered by `too_large` without reading it all.
pub trait Handler: Send + Sync + 'static {
    /// The answer to one request; never panics, whatever the bytes.
    fn handle(&self, request: &Request<'_>) -> Response;
    /// The largest body `handle` takes.
    fn max_body(&self) -> usize;
    /// The answer to a body over [`Handler::max_body`].
    fn too_large(&self) -> Response;
}

/// A running server; dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpServer(http://{})", self.addr)
    }
}

impl HttpServer {
    /// Listens on `listen` (port 0 picks a free one) and serves `handler` until dropped.
    /// An address other than loopback is refused (`PermissionDenied`) unless
    /// `allow_remote`: this is plain HTTP.
    pub fn start(
        listen: &str,
        allow_remote: bool,
        handler: Arc<dyn Handler>,
    ) -> std::io::Result<Self> {
        let wanted: Vec<SocketAddr> = listen
            .to_socket_addrs()
            .map_err(|e| std::io::Error::other(format!("cannot listen on {listen}: {e}")))?
            .collect();
        if !allow_remote && wanted.iter().any(|a| !a.ip().is_loopback()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{listen} is not a loopback address: the server speaks plain HTTP and would be reachable from other machines; listen on 127.0.0.1, or allow remote clients explicitly"),
            ));
        }
        let listener = std::net::TcpListener::bind(wanted.as_slice()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("atrest-http")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("atrest-http-accept".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let accepting = tokio::spawn(accept(listener, handler));
                            // Until dropped (or the sender is gone): then every
                            // connection is cancelled with the runtime.
                            let _ = stopped.await;
                            accepting.abort();
                        }
                        Err(e) => eprintln!("atrest: the HTTP server could not start: {e}"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, what a client takes as its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blocks until the server stops (when the process ends: nothing else stops a server
    /// being waited on).
    pub fn wait(mut self) {
        let stop = self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(stop);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, handler: Arc<dyn Handler>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(handler.clone(), request));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

/// One request: its body read within the size and time limits, answered by the handler
/// on the blocking pool.
async fn respond(
    handler: Arc<dyn Handler>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let max = handler.max_body();
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(to_hyper(handler.too_large()));
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Zeroizing::new(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(to_hyper(handler.too_large()))
        }
        // The client went away or stalled mid-body: nobody is left to answer.
        _ => return Ok(empty(408)),
    };
    let method = parts.method.as_str().to_string();
    let uri = parts.uri.to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let answered = tokio::task::spawn_blocking(move || {
        handler.handle(&Request {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
        })
    })
    .await;
    Ok(match answered {
        Ok(response) => to_hyper(response),
        Err(_) => empty(500),
    })
}

/// A body hyper sends straight from the zeroizing buffer, which is wiped when hyper
/// drops it.
struct SecretBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SecretBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header(hyper::header::CONTENT_TYPE, response.content_type);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from_owner(SecretBody(response.body))))
        .unwrap_or_else(|_| empty(500))
}

fn empty(status: u16) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
