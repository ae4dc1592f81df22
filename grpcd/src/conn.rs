//! The accepted TCP connections (issue 16, small calls): TCP_NODELAY, and small writes gathered
//! until the connection is flushed, so that a unary response goes out in one segment.
//!
//! h2 (under tonic) writes a DATA payload of more than 256 bytes separately from its frame
//! buffer when the socket supports vectored writes, and must flush it before it can encode the
//! trailers: a 50-asset portfolio's ~0.9 KB response went out as two segments (HEADERS + DATA,
//! then the 10-byte trailers), each waking the client. Reporting no vectored-write support makes
//! h2 copy payloads up to 1 KiB into its buffer (then HEADERS, DATA and trailers are one write),
//! and this wrapper gathers the pieces h2 writes between two flushes (up to `GATHER` bytes; a
//! larger payload goes out together with what is gathered in one `writev`), so no response is
//! split into more writes than before.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Writes are gathered up to this many bytes before they go to the socket.
const GATHER: usize = 64 << 10;

pub struct Conn {
    inner: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    pub fn new(inner: TcpStream) -> Self {
        Conn {
            inner,
            pending: Vec::new(),
        }
    }

    /// Writes the gathered bytes (all of them, or Pending with the waker registered).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.len() + data.len() <= GATHER {
            this.pending.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        // a large write: what is gathered goes first, in the same writev where possible
        loop {
            if this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
            let slices = [IoSlice::new(&this.pending), IoSlice::new(data)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let gathered = this.pending.len();
            this.pending.drain(..n.min(gathered));
            if n > gathered {
                return Poll::Ready(Ok(n - gathered));
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false // see the module comment: h2 then copies payloads up to 1 KiB into its buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_writes_wait_for_the_flush_and_large_ones_keep_their_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (sock, _) = listener.accept().await.unwrap();
        let mut c = Conn::new(sock);
        assert!(!c.is_write_vectored());
        let big: Vec<u8> = (0..3 * GATHER as u32).map(|i| (i % 251) as u8).collect();
        let mut want = Vec::new();
        c.write_all(b"headers").await.unwrap();
        assert_eq!(c.pending, b"headers", "gathered, not sent");
        want.extend_from_slice(b"headers");
        c.write_all(&big).await.unwrap(); // goes out with what was gathered
        want.extend_from_slice(&big);
        c.write_all(b"trailers").await.unwrap();
        want.extend_from_slice(b"trailers");
        c.flush().await.unwrap();
        assert!(c.pending.is_empty());
        c.write_all(b"last").await.unwrap();
        want.extend_from_slice(b"last");
        c.shutdown().await.unwrap(); // flushes what is gathered
        assert_eq!(client.await.unwrap(), want);
    }
}
