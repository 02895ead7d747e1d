//! The one seam between the relay and the network: listen, accept with the peer's address,
//! dial. Production uses [`TcpNetwork`]; a simulated network can be plugged in instead so that
//! scenarios run deterministically.

use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// A bound listener.
#[async_trait]
pub trait Listener: Send + 'static {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Where the relay gets its connections from.
#[async_trait]
pub trait Network: Send + Sync + 'static {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>>;
    async fn connect(&self, host: &str, port: u16) -> io::Result<BoxStream>;
}

/// The operating system's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpNetwork;

struct TcpListen(tokio::net::TcpListener);

#[async_trait]
impl Listener for TcpListen {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Frames are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok((Box::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[async_trait]
impl Network for TcpNetwork {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Box::new(TcpListen(socket.listen(1024)?)))
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<BoxStream> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}
