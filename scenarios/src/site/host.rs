//! A relay's host on the in-memory network: every connection the relay accepts or dials goes
//! through it, so the world can stall the host (its I/O held both ways, as a stopped process's
//! sockets are, while its clock runs on) or kill it (every connection reset, nothing accepted
//! or dialled again), and see each link the relay dials as it is made.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use netseam::{BoxStream, Listener, MemNetwork, Network};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Called with the address the relay dialled, once the connection is made.
pub type OnDial = Arc<dyn Fn(SocketAddr) + Send + Sync>;

/// What the world does to a host.
pub struct HostState {
    killed: CancellationToken,
    /// While stalled: cancelled when the stall ends.
    stall: Mutex<Option<CancellationToken>>,
}

impl HostState {
    fn new() -> Arc<HostState> {
        Arc::new(HostState {
            killed: CancellationToken::new(),
            stall: Mutex::new(None),
        })
    }

    pub fn kill(&self) {
        self.killed.cancel();
        self.resume();
    }

    pub fn killed(&self) -> bool {
        self.killed.is_cancelled()
    }

    pub fn stall(&self) {
        let mut stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
        stall.get_or_insert_with(CancellationToken::new);
    }

    pub fn resume(&self) {
        if let Some(t) = self.stall.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.cancel();
        }
    }

    fn stalled(&self) -> Option<CancellationToken> {
        self.stall.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits while stalled; an error once killed.
    async fn pass(&self) -> io::Result<()> {
        loop {
            if self.killed() {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            match self.stalled() {
                None => return Ok(()),
                Some(t) => tokio::select! {
                    _ = t.cancelled() => {}
                    _ = self.killed.cancelled() => {}
                },
            }
        }
    }
}

/// The network as the relay on this host reaches it.
#[derive(Clone)]
pub struct Host {
    net: MemNetwork,
    /// The address the relay dials from.
    pub ip: IpAddr,
    pub state: Arc<HostState>,
    on_dial: OnDial,
}

impl Host {
    pub fn new(net: MemNetwork, ip: IpAddr, on_dial: OnDial) -> Host {
        Host {
            net,
            ip,
            state: HostState::new(),
            on_dial,
        }
    }
}

struct HostListener {
    inner: Box<dyn Listener>,
    state: Arc<HostState>,
}

#[async_trait]
impl Listener for HostListener {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        loop {
            let (stream, peer) = self.inner.accept().await?;
            // A dead host resets every connection that reaches it.
            if self.state.killed() {
                continue;
            }
            return Ok((HostStream::boxed(stream, self.state.clone()), peer));
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[async_trait]
impl Network for Host {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        let inner = self.net.bind(addr).await?;
        Ok(Box::new(HostListener {
            inner,
            state: self.state.clone(),
        }))
    }

    async fn connect_from(
        &self,
        _source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream> {
        self.state.pass().await?;
        let stream = self.net.connect_from(Some(self.ip), host, port).await?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            (self.on_dial)(SocketAddr::new(ip, port));
        }
        Ok(HostStream::boxed(stream, self.state.clone()))
    }
}

type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One direction's waits on the host: a split stream's reader and writer are different tasks,
/// and a future remembers only the last task that polled it, so each direction has its own.
struct Gate {
    killed: Wait,
    resumed: Option<Wait>,
}

impl Gate {
    fn new(state: &HostState) -> Gate {
        let killed = state.killed.clone();
        Gate {
            killed: Box::pin(async move { killed.cancelled_owned().await }),
            resumed: None,
        }
    }

    /// Ready(Ok) when the stream may be used now.
    fn pass(&mut self, state: &HostState, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Looked at first: the wait below is polled only while it has not completed.
        if state.killed() || self.killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        loop {
            if self.resumed.is_none() {
                let Some(t) = state.stalled() else {
                    return Poll::Ready(Ok(()));
                };
                self.resumed = Some(Box::pin(async move { t.cancelled_owned().await }));
            }
            match self.resumed.as_mut().map(|w| w.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => self.resumed = None,
                _ => return Poll::Pending,
            }
        }
    }
}

/// A connection of the host: held while the host is stalled, reset once it is killed.
struct HostStream {
    inner: BoxStream,
    state: Arc<HostState>,
    read: Gate,
    write: Gate,
}

impl HostStream {
    fn boxed(inner: BoxStream, state: Arc<HostState>) -> BoxStream {
        Box::new(HostStream {
            inner,
            read: Gate::new(&state),
            write: Gate::new(&state),
            state,
        })
    }

    fn read_gate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.read.pass(&self.state, cx)
    }

    fn write_gate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.pass(&self.state, cx)
    }
}

impl AsyncRead for HostStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.read_gate(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_read(cx, buf),
            other => other,
        }
    }
}

impl AsyncWrite for HostStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.write_gate(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_write(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.write_gate(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.write_gate(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
