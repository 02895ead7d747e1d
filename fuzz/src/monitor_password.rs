//! The monitor and export ports' password exchange on any bytes: the relay answers `p` or
//! closes, never panics, and only the exact password is accepted. Each input runs on its own
//! in-memory relay with a paused clock (a wrong password costs a virtual second).

use std::sync::Arc;

use netseam::{MemNetwork, Network};
use relay::ports::monitor::MonitorPort;
use relay::{Config, Daemon, Listeners, RelayParts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::{frame::FrameReader, LinkMsg};

const PASSWORD: &str = "s3cret";

pub fn check(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let state = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config {
        state_dir: state.path().to_owned(),
        ..Config::default()
    };
    config.monitor.password = Some(PASSWORD.into());
    runtime.block_on(async {
        let net = Arc::new(MemNetwork::new());
        let listeners = Listeners::loopback(net.as_ref()).await.expect("listeners");
        let daemon = Daemon::start(
            RelayParts {
                net: net.clone(),
                ..RelayParts::new(config)
            },
            listeners,
        )
        .expect("the relay starts");
        let relay = daemon.relay();
        let addr = relay
            .monitor_addr(MonitorPort::SwitchMessages)
            .expect("the monitor port");
        let mut conn = net
            .connect(&addr.ip().to_string(), addr.port())
            .await
            .expect("connects");
        let _ = conn.write_all(data).await;
        let mut reader = FrameReader::new();
        let answer = loop {
            if let Ok(Some(f)) = reader.next_frame() {
                break LinkMsg::decode(&f).ok();
            }
            match conn.read_buf(reader.buffer_mut()).await {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
        };
        if let Some(LinkMsg::PasswordResult { result: 0 }) = answer {
            let mut exact = FrameReader::new();
            exact.extend(data);
            let first = exact.next_frame().ok().flatten().expect("a frame was sent");
            assert_eq!(
                LinkMsg::decode(&first),
                Ok(LinkMsg::Password {
                    password: PASSWORD.into()
                }),
                "accepted without the exact password"
            );
        }
        daemon.shutdown().await;
    });
}
