//! The surge benchmark's HTTP/1.1 client: keep-alive connections, one write
//! per request, the status line and headers parsed by `httparse`, the body
//! read by its length. Nothing else.
//!
//! Why not reqwest (which the other benchmarks use): at ten times capacity
//! the load generator shares the node's two cores, and reqwest spent about a
//! quarter of the machine building requests and parsing answers, which was
//! then missing from the node being measured. `wrk`, which the first
//! figures came from, works the same minimal way.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest head (status line and headers) an answer may have.
const MAX_HEAD: usize = 16 * 1024;

/// An answer: its status, its `Retry-After` and its body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// Connections to one server, reused while the server keeps them open.
#[derive(Debug)]
pub struct Wire {
    addr: SocketAddr,
    idle: Mutex<Vec<TcpStream>>,
}

impl Wire {
    pub fn new(addr: SocketAddr) -> Wire {
        Wire {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// POSTs `body` (JSON) to `path` with a bearer token. A kept-alive
    /// connection the server has meanwhile closed is replaced once.
    pub async fn post(&self, path: &str, token: &str, body: &[u8]) -> io::Result<Reply> {
        let mut request = Vec::with_capacity(256 + body.len());
        request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                self.addr,
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let mut stream = match reused {
            Some(s) => s,
            None => self.connect().await?,
        };
        let answer = match exchange(&mut stream, &request).await {
            Ok(answer) => answer,
            Err(e) if !fresh && is_stale(&e) => {
                stream = self.connect().await?;
                exchange(&mut stream, &request).await?
            }
            Err(e) => return Err(e),
        };
        let (reply, keep_alive) = answer;
        if keep_alive {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(stream);
        }
        Ok(reply)
    }

    fn take_idle(&self) -> Option<TcpStream> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// What a server's close of an idle connection looks like to the next request.
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Writes one request and reads its answer; says whether the connection may
/// carry another.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> io::Result<(Reply, bool)> {
    stream.write_all(request).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let (status, retry_after, length, chunked, close, head_len) = loop {
        read_more(stream, &mut buf).await?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let mut retry_after = None;
                let mut length = None;
                let mut chunked = false;
                let mut close = response.version == Some(0);
                for h in response.headers.iter() {
                    let value = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(
                            value
                                .parse::<usize>()
                                .map_err(|_| invalid("bad content-length"))?,
                        );
                    } else if h.name.eq_ignore_ascii_case("retry-after") {
                        retry_after = value.parse::<f64>().ok().map(Duration::from_secs_f64);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = value.eq_ignore_ascii_case("chunked");
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    }
                }
                break (status, retry_after, length, chunked, close, head_len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err(invalid("answer head too long")),
            Err(e) => return Err(invalid(format!("bad answer head: {e}"))),
        }
    };
    let mut rest = buf.split_off(head_len);
    let body = match (length, chunked) {
        (Some(length), _) => {
            read_at_least(stream, &mut rest, length).await?;
            rest.truncate(length);
            rest
        }
        (None, true) => read_chunked(stream, rest).await?,
        // No length: the body ends with the connection.
        (None, false) => {
            stream.read_to_end(&mut rest).await?;
            return Ok((
                Reply {
                    status,
                    retry_after,
                    body: rest,
                },
                false,
            ));
        }
    };
    Ok((
        Reply {
            status,
            retry_after,
            body,
        },
        !close,
    ))
}

async fn read_at_least(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    while buf.len() < n {
        read_more(stream, buf).await?;
    }
    Ok(())
}

/// Reads what the socket has into `buf`'s spare room, grown when short.
/// Read buffers on the stack of these functions were part of every
/// request's future (some 24 KB), and at 11,000 requests a second the
/// generator spent about half its CPU having the kernel zero fresh pages
/// for them (`clear_page_erms`), on the CPU it shares with PostgreSQL.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4 * 1024 {
        buf.reserve(16 * 1024);
    }
    if stream.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Decodes a chunked body whose first bytes are in `pending`.
async fn read_chunked(stream: &mut TcpStream, mut pending: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            let need = pending.len() + 1;
            read_at_least(stream, &mut pending, need).await?;
        };
        let size_text = std::str::from_utf8(&pending[..line_end]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        let start = line_end + 2;
        // The chunk, then its CRLF (after the last, empty chunk: the final CRLF).
        read_at_least(stream, &mut pending, start + size + 2).await?;
        body.extend_from_slice(&pending[start..start + size]);
        pending.drain(..start + size + 2);
        if size == 0 {
            return Ok(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request of a connection with the next
    /// canned answer, then closes when they run out.
    async fn serve(answers: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            for answer in answers {
                let mut seen = Vec::new();
                // Read one whole request: head, then its content-length.
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.expect("read");
                    seen.extend_from_slice(&chunk[..n]);
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                socket.write_all(answer.as_bytes()).await.expect("write");
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_lengths_chunks_and_retry_after_over_one_connection() {
        let addr = serve(vec![
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
        ])
        .await;
        let wire = Wire::new(addr);
        let first = wire.post("/graphql", "t", b"{}").await.expect("first");
        assert_eq!(first.status, 429);
        assert_eq!(first.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(first.body, b"{}");
        let second = wire.post("/graphql", "t", b"{}").await.expect("second");
        assert_eq!(
            (second.status, second.body.as_slice()),
            (200, &b"{\"a\":1}"[..])
        );
        let third = wire.post("/graphql", "t", b"{}").await.expect("third");
        assert_eq!(third.body, b"hello");
        assert!(
            wire.take_idle().is_none(),
            "a connection the server closes is not kept"
        );
    }
}
