//! A tiny HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz`, shared by the
//! controller and the speaker.
//!
//! It reads one request line per connection, answers, and closes the connection: enough
//! for Prometheus and kubelet probes, and no web framework. Only `GET` and `HEAD` are
//! served.
//!
//! - `/healthz` (also `/livez`): 200 while the process runs.
//! - `/readyz`: 200 while [`Readiness::is_ready`]; what "ready" means is the program's
//!   business.
//! - `/metrics`: OpenMetrics text from an [`Exposition`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Something that renders its metrics for `/metrics`, on every scrape.
pub trait Exposition: Send + Sync {
    /// OpenMetrics text (see [`CONTENT_TYPE`]), e.g. [`encode`] of a registry.
    fn encode(&self) -> String;
}

/// OpenMetrics text of every metric in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would only drop the output.
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// Whether `/readyz` answers 200.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Which paths a listener serves.
#[derive(Clone)]
pub struct Routes {
    /// `/metrics`, if set.
    pub metrics: Option<Arc<dyn Exposition>>,
    /// `/healthz` and `/readyz`, if set.
    pub health: Option<Readiness>,
}

/// A response: status code, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }
}

impl Routes {
    /// The answer to `method path` (path may carry a query string, which is ignored).
    pub fn respond(&self, method: &str, path: &str) -> Response {
        if method != "GET" && method != "HEAD" {
            return Response::text(405, "method not allowed\n");
        }
        let path = path.split(['?', '#']).next().unwrap_or(path);
        match (path, &self.metrics, &self.health) {
            ("/metrics", Some(m), _) => Response {
                status: 200,
                content_type: CONTENT_TYPE,
                body: m.encode(),
            },
            ("/healthz" | "/livez", _, Some(_)) => Response::text(200, "ok\n"),
            ("/readyz", _, Some(r)) if r.is_ready() => Response::text(200, "ok\n"),
            ("/readyz", _, Some(_)) => Response::text(503, "not ready\n"),
            _ => Response::text(404, "not found\n"),
        }
    }
}

/// Binds `metrics_addr` (`/metrics`) and `health_addr` (`/healthz`, `/readyz`) and serves
/// them in tasks of the current runtime; one listener serves both when the addresses are
/// equal. Abort the returned tasks to stop serving.
pub async fn start(
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    metrics: Arc<dyn Exposition>,
    readiness: Readiness,
) -> Result<Vec<JoinHandle<()>>, BindError> {
    let bind_at = |addr| async move {
        bind(addr)
            .await
            .map_err(|source| BindError { addr, source })
    };
    let mut listeners = Vec::new();
    if metrics_addr == health_addr {
        let routes = Routes {
            metrics: Some(metrics),
            health: Some(readiness),
        };
        listeners.push((bind_at(health_addr).await?, routes));
    } else {
        let m = bind_at(metrics_addr).await?;
        let h = bind_at(health_addr).await?;
        listeners.push((
            m,
            Routes {
                metrics: Some(metrics),
                health: None,
            },
        ));
        listeners.push((
            h,
            Routes {
                metrics: None,
                health: Some(readiness),
            },
        ));
    }
    Ok(listeners
        .into_iter()
        .map(|(l, routes)| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, metrics = routes.metrics.is_some(), health = routes.health.is_some(), "serving http");
            }
            tokio::spawn(serve(l, routes))
        })
        .collect())
}

/// An address [`start`] could not listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (port 0 picks a free port; see the returned listener's `local_addr`).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `routes` on `listener` until the task is dropped. Connection errors are
/// logged at debug level and never end the server.
pub async fn serve(listener: TcpListener, routes: Routes) {
    let routes = Arc::new(routes);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let routes = routes.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &routes).await {
                        tracing::debug!(%peer, error = %e, "http connection");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting an http connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

const MAX_REQUEST: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

async fn handle(stream: TcpStream, routes: &Routes) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&stream)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request timed out",
            ));
        }
    };
    let (method, response) = match parse_request_line(&head) {
        Some((method, path)) => (method, routes.respond(method, path)),
        None => ("GET", Response::text(400, "bad request\n")),
    };
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason,
        response.content_type,
        response.body.len()
    );
    if method != "HEAD" {
        out.push_str(&response.body);
    }
    write_all(&stream, out.as_bytes()).await
}

// Plain readiness-based I/O: tokio's `io-util` feature is not enabled in this workspace.

async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until the end of the request head (or `MAX_REQUEST` bytes, or EOF).
async fn read_head(stream: &TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = read_some(stream, &mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n")
            || buf.windows(2).any(|w| w == b"\n\n")
            || buf.len() >= MAX_REQUEST
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `GET /path HTTP/1.1` → `("GET", "/path")`.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?;
    let path = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return None;
    }
    Some((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line() {
        assert_eq!(
            parse_request_line("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/healthz"))
        );
        assert_eq!(parse_request_line("GET healthz HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line("garbage\r\n"), None);
        assert_eq!(parse_request_line(""), None);
    }

    #[test]
    fn routes() {
        let ready = Readiness::default();
        let r = Routes {
            metrics: None,
            health: Some(ready.clone()),
        };
        assert_eq!(r.respond("GET", "/healthz").status, 200);
        assert_eq!(r.respond("GET", "/readyz").status, 503);
        ready.set(true);
        assert_eq!(r.respond("GET", "/readyz?verbose").status, 200);
        assert_eq!(r.respond("GET", "/metrics").status, 404);
        assert_eq!(r.respond("POST", "/healthz").status, 405);
    }
}
