//! TLS on the relay's ports, with certificates made on the spot: applications, monitors and
//! the admin interface over TLS; client certificates checked against the configured
//! authority; a reload that puts a new certificate in force without dropping a session.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use client_sim::SimApp;
use netseam::tls::{client_config, TlsListenNetwork, TlsNetwork};
use netseam::Network;
use relay::config::{Config, TlsPort, User};
use relay::ports::monitor::MonitorPort;
use testkit::pki::{Authority, Issued};
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::{CallMsg, Kind, LinkMsg};

fn tls_on(c: &mut Config, relay: &Issued, client_ca: Option<&Path>) {
    c.tls.ports = vec![
        TlsPort::Client,
        TlsPort::Monitor,
        TlsPort::Export,
        TlsPort::Admin,
    ];
    c.tls.cert = Some(relay.cert.clone());
    c.tls.key = Some(relay.key.clone());
    c.tls.client_ca = client_ca.map(Path::to_owned);
}

fn on_loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

/// An Operator from 127.0.0.52 over `net`, identified.
async fn operator(net: &dyn Network, site: &Site) -> std::io::Result<SimApp> {
    let mut app = SimApp::connect_on(net, on_loopback(site.client()), Some(loopback(52))).await?;
    let id = app.identify(3, OPERATOR, "tls", &[]).await?;
    assert_eq!(id.result, 0);
    Ok(app)
}

async fn next_call(app: &mut SimApp) -> CallMsg {
    loop {
        let f = within("a frame", app.next_non_heartbeat())
            .await
            .unwrap()
            .expect("open");
        if matches!(f.kind(), Kind::Event | Kind::Answer) {
            return CallMsg::decode(&f, true).unwrap();
        }
    }
}

fn handshakes(site: &Site) -> (u64, u64) {
    let tls = &site.relay.tls();
    (
        tls.handshakes.load(Ordering::Relaxed),
        tls.handshakes_failed.load(Ordering::Relaxed),
    )
}

#[tokio::test]
async fn applications_monitors_and_the_admin_interface_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "site-ca");
    let cert = ca.relay(dir.path(), "relay");
    let site = SiteSpec::switches(1)
        .configure(move |c| tls_on(c, &cert, None))
        .start()
        .await;
    let tls = TlsNetwork::new(client_config(&ca.file, None).unwrap());

    // An application over TLS is admitted, asks and is answered, and gets events.
    let mut app = operator(&tls, &site).await.unwrap();
    app.request(Some(1), b'K', 77, &wire::str8_body(&["2201", "2202"]))
        .await
        .unwrap();
    let answer = loop {
        let m = next_call(&mut app).await;
        if m.kind == Kind::Answer {
            break m;
        }
    };
    assert_eq!((answer.code, answer.invoke, answer.body[0]), (b'K', 77, 0));

    // Clear text on a TLS port gets nothing: the connection ends at the failed handshake.
    let mut plain = SimApp::connect(on_loopback(site.client()), Some(loopback(53)))
        .await
        .unwrap();
    assert!(plain.identify(3, OPERATOR, "plain", &[]).await.is_err());
    wait_until("the failed handshake counted", || handshakes(&site).1 == 1).await;

    // A client that does not trust the relay's authority refuses it.
    let other = Authority::new(dir.path(), "other-ca");
    let wrong = TlsNetwork::new(client_config(&other.file, None).unwrap());
    let Err(refused) = operator(&wrong, &site).await else {
        panic!("a client that does not trust the relay's authority was admitted");
    };
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");

    // The switch-message monitor over TLS: its password exchange, as in clear text.
    let monitor = site
        .relay
        .monitor_addr(MonitorPort::SwitchMessages)
        .expect("the monitor port is on");
    let mut mon = SimApp::connect_on(&tls, on_loopback(monitor), None)
        .await
        .expect("a TLS monitor connection");
    mon.send_link(&LinkMsg::Password {
        password: "".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        mon.next_link().await.unwrap(),
        Some(LinkMsg::PasswordResult { result: 0 })
    );

    // The admin interface over TLS.
    let admin = site.serve_admin(None).await;
    let status = https_get(&tls, admin.server.addr.port(), "/api/status").await;
    assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
    let metrics = https_get(&tls, admin.server.addr.port(), "/metrics").await;
    assert!(
        metrics.contains("cti_tls_handshakes_total{outcome=\"failed\"} 2\n"),
        "{metrics}"
    );
}

/// A GET over TLS to the admin port (HTTP/1.1 by hand), the whole reply.
async fn https_get(tls: &TlsNetwork, port: u16, path: &str) -> String {
    let mut https = tls
        .connect("127.0.0.1", port)
        .await
        .expect("a TLS admin connection");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    https.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = within("the admin reply", https.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// A site of two switches speaking TLS on every port, whose clients must present a
/// certificate `clients` issued; the user its certificate names `reception` is served switch
/// 2 only, whatever its address.
struct Certified {
    dir: tempfile::TempDir,
    ca: Authority,
    clients: Authority,
    site: Site,
}

async fn certified() -> Certified {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "site-ca");
    let cert = ca.relay(dir.path(), "relay");
    let clients = Authority::new(dir.path(), "clients-ca");
    let clients_file = clients.file.clone();
    let site = SiteSpec::switches(2)
        .configure(move |c| {
            tls_on(c, &cert, Some(&clients_file));
            c.users.push(User {
                ip: String::new(),
                name: "Reception".into(),
                info: String::new(),
                switches: vec![2],
                default_switch: Some(2),
                filtering: false,
                certificate: Some("reception".into()),
            });
        })
        .start()
        .await;
    Certified {
        dir,
        ca,
        clients,
        site,
    }
}

#[tokio::test]
async fn client_certificates_are_checked_and_name_their_user() {
    let Certified {
        dir,
        ca,
        clients,
        site,
    } = certified().await;
    let with = |identity: Option<&Issued>| {
        TlsNetwork::new(
            client_config(
                &ca.file,
                identity.map(|i| (i.cert.as_path(), i.key.as_path())),
            )
            .unwrap(),
        )
    };

    // A certificate the clients' authority issued: admitted, as the user it names.
    let reception = clients.client(dir.path(), "reception");
    let served = |net: TlsNetwork| {
        let addr = on_loopback(site.client());
        async move {
            let mut app = SimApp::connect_on(&net, addr, Some(loopback(60)))
                .await
                .unwrap();
            let id = app.identify(3, OPERATOR, "mtls", &[]).await.unwrap();
            assert_eq!(id.result, 0);
            id.switches
        }
    };
    assert_eq!(served(with(Some(&reception))).await, vec![(2, true)]);
    // Another certificate of the same authority names no user: served as unregistered.
    let lobby = clients.client(dir.path(), "lobby");
    assert_eq!(served(with(Some(&lobby))).await, vec![(1, true), (2, true)]);

    // One from another authority, or none: refused at the handshake.
    let stranger = Authority::new(dir.path(), "stranger-ca").client(dir.path(), "mallory");
    assert!(operator(&with(Some(&stranger)), &site).await.is_err());
    assert!(operator(&with(None), &site).await.is_err());
    wait_until("both refusals counted", || handshakes(&site) == (2, 2)).await;
}

#[tokio::test]
async fn a_reload_puts_a_new_certificate_in_force_and_keeps_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Authority::new(dir.path(), "old-ca");
    let cert = old_ca.relay(dir.path(), "relay");
    let files = cert.clone();
    let site = SiteSpec::switches(1)
        .configure(move |c| tls_on(c, &files, None))
        .start()
        .await;
    let old_trust = TlsNetwork::new(client_config(&old_ca.file, None).unwrap());
    let mut app = operator(&old_trust, &site).await.unwrap();

    // The certificate is renewed by a new authority, written over the same files, reloaded.
    let new_ca = Authority::new(dir.path(), "new-ca");
    let renewed = new_ca.relay(dir.path(), "renewed");
    std::fs::copy(&renewed.cert, &cert.cert).unwrap();
    std::fs::copy(&renewed.key, &cert.key).unwrap();
    let config = (*site.relay.config()).clone();
    site.relay.reconfigure(config).expect("the reload applies");

    // New connections get the new certificate; the session made before is still served.
    let new_trust = TlsNetwork::new(client_config(&new_ca.file, None).unwrap());
    operator(&new_trust, &site).await.unwrap();
    assert!(operator(&old_trust, &site).await.is_err());
    site.switch(1).emit_event(b's', "2201", &[]);
    let m = next_call(&mut app).await;
    assert_eq!((m.kind, m.code), (Kind::Event, b's'));

    // A reload whose key does not match the certificate is refused whole, naming both files;
    // the certificate in force stays.
    std::fs::copy(&old_ca.relay(dir.path(), "other").key, &cert.key).unwrap();
    let config = (*site.relay.config()).clone();
    let errors = site.relay.reconfigure(config).expect_err("refused");
    assert_eq!(errors[0].field, "tls.key");
    assert_eq!(
        errors[0].message,
        format!(
            "the key in {} does not match the certificate in {}",
            cert.key.display(),
            cert.cert.display()
        )
    );
    operator(&new_trust, &site).await.unwrap();
}

#[tokio::test]
async fn a_cti_link_over_tls_is_dialled_and_its_certificate_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "switch-ca");
    let host: std::net::IpAddr = "127.0.1.1".parse().unwrap();
    let cert = ca.server(dir.path(), "switch", host);
    let terminator =
        TlsListenNetwork::new(netseam::tls::server_config(&cert.cert, &cert.key).unwrap());
    let switch = switch_sim::SimSwitch::start_on(
        &terminator,
        SocketAddr::new(host, 0),
        switch_sim::Settings::officeserv(1),
    )
    .await
    .unwrap();
    let port = switch.addr().port();
    let ca_file = ca.file.clone();
    let site = SiteSpec::switches(0)
        .configure(move |c| {
            c.switches = vec![relay::config::SwitchConfig {
                tls_ca: Some(ca_file),
                ..relay::config::SwitchConfig::new(1, "127.0.1.1", port, "1234")
            }];
        })
        .wait_up(&[])
        .start()
        .await;
    site.wait_switch_up(1).await;
    assert_eq!(switch.opened(), 1);

    // An authority that did not issue the switch's certificate: the attempt fails, saying why.
    let second = switch_sim::SimSwitch::start_on(
        &terminator,
        "127.0.1.2:0".parse().unwrap(),
        switch_sim::Settings::officeserv(2),
    )
    .await
    .unwrap();
    let other = Authority::new(dir.path(), "other-ca");
    let mut config = (*site.relay.config()).clone();
    config.switches.push(relay::config::SwitchConfig {
        tls_ca: Some(other.file.clone()),
        ..relay::config::SwitchConfig::new(2, "127.0.1.2", second.addr().port(), "1234")
    });
    site.relay.reconfigure(config).unwrap();
    site.wait_notice("Switch 2 link attempt failed: cannot connect: TLS: invalid peer certificate: UnknownIssuer")
        .await;
}

#[tokio::test]
async fn the_gateway_over_tls_takes_a_client_certificate_for_the_token_and_the_user() {
    use futures_util::{SinkExt, StreamExt};
    use relay::gateway::messages::{FromRelay, SwitchState};
    use tokio_tungstenite::tungstenite::Message;
    let Certified {
        dir,
        ca,
        clients,
        site,
    } = certified().await;
    // The admin interface wants a token, which the client certificate stands for.
    let admin = site.serve_admin(Some("s3cret")).await;
    let reception = clients.client(dir.path(), "reception");
    let tls = TlsNetwork::new(
        client_config(
            &ca.file,
            Some((reception.cert.as_path(), reception.key.as_path())),
        )
        .unwrap(),
    );
    let port = admin.server.addr.port();
    let stream = tls.connect("127.0.0.1", port).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://127.0.0.1:{port}/ws"), stream)
        .await
        .expect("the upgrade is accepted without a token");
    ws.send(Message::Text(
        r#"{"type":"identify","product":"operator"}"#.into(),
    ))
    .await
    .unwrap();
    let reply = loop {
        if let Some(Ok(Message::Text(text))) = within("identified", ws.next()).await {
            break serde_json::from_str::<FromRelay>(&text).unwrap();
        }
    };
    // Served as the user its certificate names: switch 2 only.
    assert_eq!(
        reply,
        FromRelay::Identified {
            result: 0,
            reason: "accepted".into(),
            switches: vec![SwitchState {
                switch: 2,
                up: true
            }],
        }
    );
}

/// Over TLS the export port's delivery guarantee holds as over TCP, all or nothing: what was
/// written counts as acknowledged once every byte of the socket is, never before.
#[tokio::test]
async fn the_acknowledgement_probe_sees_through_tls() {
    use netseam::AckProbe;
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "site-ca");
    let cert = ca.relay(dir.path(), "relay");
    let server = TlsListenNetwork::new(netseam::tls::server_config(&cert.cert, &cert.key).unwrap());
    let mut listener = server
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TlsNetwork::new(client_config(&ca.file, None).unwrap());
    let (dialled, accepted) = tokio::join!(client.connect("127.0.0.1", port), listener.accept());
    let (mut to_client, mut to_server) = (accepted.unwrap().0, dialled.unwrap());

    let server_probe = AckProbe::of(&*to_client).expect("a probe of a server-side TLS stream");
    assert!(
        AckProbe::of(&*to_server).is_some(),
        "and of a client-side one"
    );

    to_client.write_all(b"0123456789").await.unwrap();
    to_client.flush().await.unwrap();
    let mut got = [0u8; 10];
    to_server.read_exact(&mut got).await.unwrap();
    wait_until("every byte acknowledged", || {
        server_probe.unacknowledged(10) == Some(0)
    })
    .await;

    // A reader that stops: once the socket holds unacknowledged bytes, none of what was
    // written counts, whatever part of it the socket did send.
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 10u64;
    while tokio::time::timeout(
        std::time::Duration::from_millis(200),
        to_client.write_all(&chunk),
    )
    .await
    .is_ok()
    {
        written += chunk.len() as u64;
        assert!(written < 1 << 30, "the peer's window never filled");
    }
    assert_eq!(server_probe.unacknowledged(written), Some(written));
}
