//! `relay ctl` against a running relay's admin interface: tables, JSON, errors, changes
//! written back, notifications followed and call records.

use std::sync::Arc;
use std::time::Duration;

use client_sim::SimApp;
use relay::Config;
use relay_cli::ctl::{
    CallsArgs, Ctl, CtlCommand, LeaseCommand, OptionalSwitch, SwitchCommand, SwitchFields,
    SwitchList, UserCommand, UserFields,
};
use testkit::SiteSpec;

/// What a writer on another thread has written so far.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ctl_prints_tables_json_and_errors() {
    let s = SiteSpec::officeserv(1).start().await;
    let admin = s.serve_admin(Some("t0ken")).await;
    let (addr, config_path) = (admin.addr(), admin.config_path.clone());
    let (_app, id) = SimApp::identify_as(s.relay.client_addr(), None, 2, 1, &[(0, "2201")])
        .await
        .unwrap();
    assert_eq!(id.result, 0);

    let ctl = |json: bool, token: Option<&str>, command: CtlCommand| {
        let addr = addr.clone();
        let token = token.map(str::to_owned);
        tokio::task::spawn_blocking(move || Ctl::new(&addr, token, json).run(&command))
    };
    let status = ctl(false, Some("t0ken"), CtlCommand::Status)
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.starts_with("Switches: 1 configured, 1 enabled, 1 connected\n"),
        "{status}"
    );
    assert!(status.contains("[Call: 2201 - SW(1)]"), "{status}");
    assert!(status.contains("Licence: trial, day 1 of 30; Call 1/20, OpenTSP 0/1, Operator 0/2; licensed sessions 1/23; bypass none\n"), "{status}");
    let json = ctl(true, Some("t0ken"), CtlCommand::Sessions)
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["product"], "Call");
    let err = ctl(false, None, CtlCommand::Status)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a valid admin token is required: send Authorization: Bearer <admin.token>"
    );
    // Switch and user management, under the configuration rules.
    let run = |command: CtlCommand| ctl(false, Some("t0ken"), command);
    let done = async |command: CtlCommand| run(command).await.unwrap().unwrap();
    let refusal = async |command: CtlCommand| run(command).await.unwrap().unwrap_err().to_string();
    assert_eq!(
        refusal(CtlCommand::Lease {
            command: LeaseCommand::Release,
        })
        .await,
        "this relay shares no site with another (bus.shared is off): it holds no lease"
    );
    let alex = || UserFields {
        name: Some("Alex".into()),
        switches: Some(SwitchList(vec![1])),
        default_switch: Some(OptionalSwitch(Some(1))),
        filtering: Some(true),
        ..Default::default()
    };
    let added = done(CtlCommand::User {
        command: UserCommand::Add {
            ip: "10.1.1.5".into(),
            fields: alex(),
        },
    })
    .await;
    assert_eq!(added, "In force, and saved to the configuration file.\n");
    assert_eq!(
        refusal(CtlCommand::User {
            command: UserCommand::Add {
                ip: "10.1.1.5".into(),
                fields: alex(),
            },
        })
        .await,
        "10.1.1.5 is already registered by users[0] (users[1].ip)"
    );
    assert_eq!(
        refusal(CtlCommand::User {
            command: UserCommand::Set {
                ip: "10.1.1.5".into(),
                fields: UserFields {
                    default_switch: Some(OptionalSwitch(Some(2))),
                    ..Default::default()
                },
            },
        })
        .await,
        "switch 2 is not configured (users[0].default_switch)"
    );
    done(CtlCommand::User {
        command: UserCommand::Set {
            ip: "10.1.1.5".into(),
            fields: UserFields {
                info: Some("front desk".into()),
                switches: Some(SwitchList(vec![])),
                default_switch: Some(OptionalSwitch(None)),
                ..Default::default()
            },
        },
    })
    .await;
    let users = done(CtlCommand::User {
        command: UserCommand::List,
    })
    .await;
    assert_eq!(
        users,
        "address   name  switches  default  filtering  info\n\
         10.1.1.5  Alex  -         -        yes        front desk\n\
         Unregistered addresses: allowed\n"
    );
    assert_eq!(
        Config::load(&config_path).unwrap().users[0].info,
        "front desk",
        "written back"
    );
    assert_eq!(
        refusal(CtlCommand::User {
            command: UserCommand::Set {
                ip: "10.9.9.9".into(),
                fields: UserFields::default(),
            },
        })
        .await,
        "no user 10.9.9.9 is configured"
    );
    done(CtlCommand::User {
        command: UserCommand::Delete {
            ip: "10.1.1.5".into(),
        },
    })
    .await;
    assert!(Config::load(&config_path).unwrap().users.is_empty());

    let switch_ip = s.switch(1).addr().ip().to_string();
    assert_eq!(
        refusal(CtlCommand::Switch {
            command: SwitchCommand::Add {
                no: 2,
                fields: SwitchFields {
                    address: Some(switch_ip.clone()),
                    enabled: Some(false),
                    ..Default::default()
                },
            },
        })
        .await,
        format!("{switch_ip}: address already assigned to switch 1 (switches[1].address)")
    );
    assert_eq!(
        refusal(CtlCommand::Switch {
            command: SwitchCommand::Set {
                no: 1,
                fields: SwitchFields {
                    name: Some("Main".into()),
                    ..Default::default()
                },
            },
        })
        .await,
        "switch 1 is connected: disconnect it before changing or deleting it (switches[0])"
    );
    let switches = done(CtlCommand::Switch {
        command: SwitchCommand::List,
    })
    .await;
    let address = s.switch(1).addr().to_string();
    assert_eq!(
        switches,
        format!(
            "no  {:<w$}  name      type        enabled\n\
             1   {address}  Switch 1  officeserv  yes\n\
             Default switch: 1\n",
            "address",
            w = address.len()
        )
    );
    let closed = done(CtlCommand::Close {
        id: v[0]["id"].as_u64().unwrap(),
    })
    .await;
    assert_eq!(closed, "Done.\n");

    // Following: the kept notifications, then each new one as it comes.
    let printed = SharedBuffer::default();
    let follower = {
        let (addr, mut out) = (addr.clone(), printed.clone());
        tokio::task::spawn_blocking(move || {
            Ctl::new(&addr, Some("t0ken".into()), false).follow(&mut out, Some(1))
        })
    };
    while s.relay.notices().followers() == 0 || printed.text().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        printed.text().contains("info  CTI relay 0.1.0 started\n"),
        "{}",
        printed.text()
    );
    done(CtlCommand::Switch {
        command: SwitchCommand::Disconnect { no: 1 },
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the new notification within 10 s")
        .unwrap()
        .unwrap();
    assert!(
        printed
            .text()
            .ends_with(" info  SW1 Switch 1 disconnected (disconnected by the operator)\n"),
        "{}",
        printed.text()
    );
    admin.server.stop().await;
    s.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ctl_calls_prints_the_stored_records_as_a_table() {
    let s = SiteSpec::officeserv(1).start().await;
    for (i, (call, ext, flag)) in [("1", "2501", "O"), ("2", "2502", "IC"), ("3", "2501", "IA")]
        .into_iter()
        .enumerate()
    {
        let (_, frame) = testkit::smdr_frame(call, ext, flag, 8 * 3600 + i as u64);
        assert!(s.switch(1).send_raw(frame));
    }
    let admin = s.serve_admin(None).await;
    let addr = admin.addr();
    let ctl = move |args: CallsArgs| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            Ctl::new(&addr, None, false).run(&CtlCommand::Calls(args))
        })
    };
    let mut all = String::new();
    for _ in 0..1000 {
        all = ctl(CallsArgs::default()).await.unwrap().unwrap();
        if all.ends_with("3 record(s).\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(all.ends_with("3 record(s).\n"), "{all}");
    let year = all.lines().nth(1).unwrap()[8..12].to_owned();
    // The same filters as the API.
    let table = ctl(CallsArgs {
        extension: Some("2501".into()),
        ..CallsArgs::default()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        table,
        format!(
            "ID  SW  START                CALL  EXT   TRUNK  FLAG  DURATION  DIGITS      CALLER      RAW\n\
             1   1   {year}-12-23 08:00:00  1     2501  8503   O     00:04:38  0712345600  0498765478\n\
             3   1   {year}-12-23 08:00:02  3     2501  8503   IA    00:04:38  0712345600  0498765478\n\
             2 record(s).\n"
        )
    );
    admin.server.stop().await;
    s.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ctl_speaks_https_to_an_admin_interface_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = testkit::pki::Authority::new(dir.path(), "site-ca");
    let cert = ca.relay(dir.path(), "relay");
    let s = SiteSpec::officeserv(1)
        .configure(move |c| {
            c.tls.ports = vec![relay::config::TlsPort::Admin];
            c.tls.cert = Some(cert.cert);
            c.tls.key = Some(cert.key);
        })
        .start()
        .await;
    let admin = s.serve_admin(None).await;
    let addr = format!("127.0.0.1:{}", admin.server.addr.port());
    let ca_file = ca.file.clone();
    let (status, plain) = tokio::task::spawn_blocking(move || {
        let status = Ctl::new(&addr, None, false)
            .with_tls(&ca_file)
            .and_then(|ctl| ctl.run(&CtlCommand::Status));
        let plain = Ctl::new(&addr, None, false).run(&CtlCommand::Status);
        (status, plain)
    })
    .await
    .unwrap();
    let status = status.unwrap();
    assert!(status.starts_with("Switches: 1 configured"), "{status}");
    // Clear text to the TLS port is not answered.
    assert!(plain.is_err());
}
