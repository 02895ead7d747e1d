//! One verbose session: identify, send the requests given (one a second), and print every
//! frame received, until the relay closes the connection.

use std::sync::Arc;
use std::time::Duration;

use netseam::Network;
use wire::{Kind, LinkMsg, Product};

use crate::app::{AppIdentity, ResumeMemory, SimApp};
use crate::describe::describe;
use wire::str8_body;

/// A request given on the command line: `SWITCH:CODE:FIELD,FIELD…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub switch: Option<u8>,
    pub code: u8,
    pub fields: Vec<String>,
}

impl std::str::FromStr for RequestSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<RequestSpec, String> {
        let mut parts = spec.splitn(3, ':');
        let (Some(sw), Some(code), fields) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{spec:?}: use SWITCH:CODE:FIELD,FIELD"));
        };
        let switch = sw
            .parse()
            .map_err(|_| format!("{spec:?}: the switch {sw:?} is not a number"))?;
        let [code] = code.as_bytes() else {
            return Err(format!("{spec:?}: the code {code:?} must be one character"));
        };
        Ok(RequestSpec {
            switch: Some(switch),
            code: *code,
            fields: fields.map_or_else(Vec::new, |f| f.split(',').map(str::to_owned).collect()),
        })
    }
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Frames received, heartbeats included.
    pub frames: u64,
    /// The relay's `X`, when it sent one: reason and text.
    pub close: Option<(u8, String)>,
}

/// Runs one session on `net`, printing each line through `print`, until the relay closes it.
pub async fn run(
    net: Arc<dyn Network>,
    who: &AppIdentity,
    requests: &[RequestSpec],
    mut print: impl FnMut(String),
) -> anyhow::Result<Ended> {
    let app = SimApp::admitted_on(net.as_ref(), who).await?;
    let product = Product::from_byte(who.product)
        .map_or(format!("product {}", who.product), |p| p.to_string());
    let from = who
        .source
        .map_or("the default address".to_string(), |ip| ip.to_string());
    print(format!(
        "identified as {product} (protocol {}) from {from}",
        who.protocol
    ));
    let (mut rd, wr) = app.into_split();
    let requests = requests.to_vec();
    let sender = tokio::spawn(async move {
        for (i, r) in requests.iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let fields: Vec<&str> = r.fields.iter().map(String::as_str).collect();
            let invoke = (i % 0xFFFF) as u16 + 1;
            if wr
                .request(r.switch, r.code, invoke, &str8_body(&fields))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut ended = Ended {
        frames: 0,
        close: None,
    };
    let p3 = who.protocol == 3;
    while let Some(frame) = rd.next_frame().await? {
        ended.frames += 1;
        if let Ok(LinkMsg::Close { reason, text }) = LinkMsg::decode(&frame) {
            ended.close = Some((reason, text.to_string()));
        }
        print(describe(&frame, p3));
    }
    print("closed by the relay".into());
    sender.abort();
    Ok(ended)
}

/// Runs a resumable session on `net` for as long as it is left to: whenever the connection
/// ends (the relay closed it, or it failed), it comes back a second later with its token and
/// the last event number it saw on each switch, and prints what the relay said of it (resumed,
/// or a new session) and every frame, replayed ones included.
pub async fn run_resumable(
    net: Arc<dyn Network>,
    who: &AppIdentity,
    mut print: impl FnMut(String),
) -> anyhow::Result<()> {
    let mut memory = ResumeMemory::default();
    let p3 = who.protocol == 3;
    loop {
        let connected = async {
            let mut app = SimApp::connect_on(net.as_ref(), who.relay, who.source).await?;
            let devices: Vec<(u8, &str)> =
                who.devices.iter().map(|(s, d)| (*s, d.as_str())).collect();
            let id = app
                .identify_with(
                    who.protocol,
                    who.product,
                    &who.name,
                    &devices,
                    Some(memory.ask()),
                )
                .await?;
            anyhow::Ok((app, id))
        };
        let (app, id) = match connected.await {
            Ok(c) => c,
            Err(e) => {
                print(format!("cannot connect and identify: {e}; again in 1 s"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if id.result != 0 {
            print(format!(
                "identify refused with result {}; again in 1 s",
                id.result
            ));
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match &id.resume {
            Some(grant) => {
                memory.admitted(grant);
                let token = grant.token;
                print(format!(
                    "{} (token …{:02x}{:02x}), numbering at {:?}",
                    if grant.resumed {
                        "resumed"
                    } else {
                        "admitted as a new resumable session"
                    },
                    token[14],
                    token[15],
                    grant.last
                ));
            }
            None => print("admitted; the relay does not keep sessions (resume is off)".into()),
        }
        let (mut rd, _wr) = app.into_split();
        let mut numbered = None;
        loop {
            match rd.next_frame().await {
                Ok(Some(frame)) => {
                    if let Ok(LinkMsg::Sequence { switch, seq }) = LinkMsg::decode(&frame) {
                        numbered = Some((switch, seq));
                        continue;
                    }
                    if frame.kind() == Kind::Event {
                        if let Some((switch, seq)) = numbered.take() {
                            memory.saw(switch, seq);
                            print(format!("#{seq} {}", describe(&frame, p3)));
                            continue;
                        }
                    }
                    print(describe(&frame, p3));
                }
                Ok(None) => {
                    print("closed by the relay; back in 1 s".into());
                    break;
                }
                Err(e) => {
                    print(format!("connection failed: {e}; back in 1 s"));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
