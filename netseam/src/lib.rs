//! The one seam between the relay (and its simulators) and the network: listen, accept with
//! the peer's address, dial. Production uses [`TcpNetwork`]; [`MemNetwork`] is an in-memory
//! network whose addresses and ports are handed out in order, so that scenarios run
//! deterministically on a paused clock. [`tls::TlsNetwork`] dials through TLS, for the
//! programs that connect to a relay's TLS ports.

pub mod tls;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The stream as its concrete type, for what only some transports can tell.
    fn as_any(&self) -> &dyn std::any::Any;
}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Tells how many bytes written to a TCP connection its peer has not acknowledged yet: what a
/// sender must be ready to send again if the connection fails. Over TLS the socket counts
/// record bytes, which do not map one to one onto what was written to the stream; there the
/// probe is all or nothing: what was written (and flushed) counts as acknowledged only once
/// every byte of the socket is.
#[derive(Debug)]
pub struct AckProbe {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    /// TLS between the writer and the socket.
    whole_only: bool,
}

impl AckProbe {
    /// A probe of `stream`, when the transport can tell (TCP on Linux, also under the TLS of
    /// this crate and of the relay's ports); `None` otherwise, and then a byte counts as
    /// delivered once written. The probe is used only while the stream is open: the caller
    /// keeps both together.
    pub fn of(stream: &dyn Stream) -> Option<AckProbe> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let any = stream.as_any();
            if let Some(tcp) = any.downcast_ref::<tokio::net::TcpStream>() {
                return Some(AckProbe {
                    fd: tcp.as_raw_fd(),
                    whole_only: false,
                });
            }
            let inner: &dyn Stream = if let Some(tls) =
                any.downcast_ref::<tokio_rustls::server::TlsStream<BoxStream>>()
            {
                &**tls.get_ref().0
            } else if let Some(tls) =
                any.downcast_ref::<tokio_rustls::client::TlsStream<BoxStream>>()
            {
                &**tls.get_ref().0
            } else {
                return None;
            };
            let tcp = inner.as_any().downcast_ref::<tokio::net::TcpStream>()?;
            Some(AckProbe {
                fd: tcp.as_raw_fd(),
                whole_only: true,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = stream;
            None
        }
    }

    /// Of the `written` bytes written to the stream and flushed, how many the peer has not
    /// acknowledged yet (sent or not); `None` when the socket cannot say (closed).
    #[allow(unsafe_code)]
    pub fn unacknowledged(&self, written: u64) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            let mut queued: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (SIOCOUTQ on a TCP socket) writes one int through the pointer,
            // which points at `queued`; `fd` belongs to a stream the caller still holds open.
            let rc = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut queued) };
            if rc != 0 {
                return None;
            }
            let queued = queued.max(0) as u64;
            Some(match self.whole_only {
                false => queued.min(written),
                true if queued == 0 => 0,
                true => written,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = written;
            None
        }
    }
}

pub type BoxStream = Box<dyn Stream>;

/// A bound listener.
#[async_trait]
pub trait Listener: Send + 'static {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Where connections come from.
#[async_trait]
pub trait Network: Send + Sync + 'static {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>>;
    /// Dials `host:port` (a name or an address) from `source` when given.
    async fn connect_from(
        &self,
        source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream>;

    async fn connect(&self, host: &str, port: u16) -> io::Result<BoxStream> {
        self.connect_from(None, host, port).await
    }
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
        let socket = tcp_socket(addr.ip())?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Box::new(TcpListen(socket.listen(1024)?)))
    }

    async fn connect_from(
        &self,
        source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream> {
        let stream = match source {
            None => tokio::net::TcpStream::connect((host, port)).await?,
            Some(ip) => {
                let target = tokio::net::lookup_host((host, port))
                    .await?
                    .find(|a| a.is_ipv4() == ip.is_ipv4())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no address of that family")
                    })?;
                let socket = tcp_socket(ip)?;
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(target).await?
            }
        };
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}

/// A TCP socket of `ip`'s family.
fn tcp_socket(ip: IpAddr) -> io::Result<tokio::net::TcpSocket> {
    match ip {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
}

/// Bytes a connection of the in-memory network buffers in each direction.
const MEM_BUFFER: usize = 64 * 1024;

/// An in-memory network: listeners by address, connections as in-memory pipes. Ports of
/// `bind(…:0)` and of dialling sides are handed out in order from 40000, so the same steps
/// give the same addresses every run.
#[derive(Clone, Default)]
pub struct MemNetwork {
    state: Arc<Mutex<MemState>>,
}

#[derive(Default)]
struct MemState {
    listeners: BTreeMap<SocketAddr, tokio::sync::mpsc::UnboundedSender<(BoxStream, SocketAddr)>>,
    next_port: u16,
}

impl MemState {
    fn port(&mut self) -> u16 {
        if self.next_port < 40000 {
            self.next_port = 40000;
        }
        self.next_port += 1;
        self.next_port
    }
}

struct MemListener {
    addr: SocketAddr,
    incoming: tokio::sync::mpsc::UnboundedReceiver<(BoxStream, SocketAddr)>,
    net: MemNetwork,
}

impl Drop for MemListener {
    fn drop(&mut self) {
        self.net.lock().listeners.remove(&self.addr);
    }
}

#[async_trait]
impl Listener for MemListener {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        self.incoming
            .recv()
            .await
            .ok_or_else(|| io::Error::other("listener closed"))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl MemNetwork {
    pub fn new() -> MemNetwork {
        MemNetwork::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Network for MemNetwork {
    async fn bind(&self, mut addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        let mut st = self.lock();
        if addr.port() == 0 {
            addr.set_port(st.port());
        }
        if st.listeners.contains_key(&addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        st.listeners.insert(addr, tx);
        Ok(Box::new(MemListener {
            addr,
            incoming: rx,
            net: self.clone(),
        }))
    }

    async fn connect_from(
        &self,
        source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("unknown host {host}")))?;
        let mut st = self.lock();
        let target = SocketAddr::new(ip, port);
        let any = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port);
        let listener = st
            .listeners
            .get(&target)
            .or_else(|| st.listeners.get(&any))
            .cloned()
            .ok_or(io::ErrorKind::ConnectionRefused)?;
        let from = SocketAddr::new(source.unwrap_or(IpAddr::from([127, 0, 0, 1])), st.port());
        let (near, far) = tokio::io::duplex(MEM_BUFFER);
        listener
            .send((Box::new(far), from))
            .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        Ok(Box::new(near))
    }
}
