//! Connections the steps open: applications (identified or raw bytes) and monitors.

use super::*;

impl Scene {
    pub(super) async fn connect_monitor(&mut self, name: &str) -> Result<(), StepError> {
        let start = self.start;
        let net = self.net.clone();
        let port = {
            let m = self
                .monitors
                .get(name)
                .ok_or_else(|| StepError::UnknownMonitor(name.to_owned()))?;
            let which = match m.spec.port.as_str() {
                "sw" => relay::ports::monitor::MonitorPort::SwitchMessages,
                "su" => relay::ports::monitor::MonitorPort::SmdrUcd,
                "export" => relay::ports::monitor::MonitorPort::Export,
                other => {
                    return Err(StepError::Invalid(format!(
                        "monitor port {other:?}: use sw, su or export"
                    )))
                }
            };
            self.relay
                .monitor_addr(which)
                .ok_or_else(|| format!("the {} port is off", m.spec.port))?
        };
        let native = self.relay.config().export.format == ExportFormat::Native;
        let m = self.monitors.get_mut(name).expect("checked");
        let mut app = SimApp::connect_on(&net, port, Some(IpAddr::from([10, 0, 0, 200])))
            .await
            .map_err(|e| e.to_string())?;
        m.native = m.spec.port == "export" && native;
        if m.native {
            // A collector of the switch's own stream sends its password as one line.
            if let Some(p) = &m.spec.password {
                app.send_raw(format!("{p}\r\n").as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        } else if let Some(p) = &m.spec.password {
            let hello = LinkMsg::Password {
                password: Str8::lossy(p),
            }
            .encode()
            .map_err(|e| e.to_string())?;
            app.send_raw(&hello).await.map_err(|e| e.to_string())?;
        }
        if self.checked {
            let index = self.obs.add_monitor(MonitorConn {
                name: name.to_owned(),
                ..MonitorConn::default()
            });
            m.conn = Some(index);
        }
        let seen = self.monitor_seen(name);
        let m = self.monitors.get_mut(name).expect("checked");
        if m.spec.reads && m.native {
            m.recorder = Some(record_native_export(app, m.log.clone(), start));
        } else if m.spec.reads {
            m.recorder = Some(record_monitor(app, m.log.clone(), start, seen));
        } else {
            m.idle = Some(app);
        }
        Ok(())
    }

    pub(super) async fn open_app(
        &mut self,
        name: &str,
        raw: Option<Vec<u8>>,
    ) -> Result<(), StepError> {
        let at = self.now();
        let start = self.start;
        let client_port = self.relay.client_addr().port();
        let net = self.net.clone();
        let (spec, log) = {
            let app = self.app(name)?;
            (app.spec.clone(), app.log.clone())
        };
        let product = Product::parse(&spec.product)
            .map(|p| p.byte())
            .or_else(|| spec.product.parse::<u8>().ok())
            .ok_or_else(|| format!("unknown product {:?}", spec.product))?;
        let bypass = match spec.port.as_deref() {
            Some("bypass") => true,
            Some("licensed") => false,
            Some(other) => {
                return Err(StepError::Invalid(format!(
                    "port {other:?}: use licensed or bypass"
                )))
            }
            None => Product::from_byte(product).is_some_and(|p| p.port() == Port::Bypass),
        };
        let port = if bypass {
            client_port + 500
        } else {
            client_port
        };
        let relay_addr = SocketAddr::new(IpAddr::from(RELAY_IP), port);
        let devices: Vec<(u8, String)> = spec
            .devices
            .iter()
            .map(|d| {
                let (sw, dev) = d
                    .split_once(':')
                    .ok_or_else(|| format!("device {d:?}: use SWITCH:DEVICE"))?;
                Ok((
                    sw.parse()
                        .map_err(|_| format!("device {d:?}: bad switch"))?,
                    dev.to_owned(),
                ))
            })
            .collect::<Result<_, String>>()?;
        let config = self.relay.config();
        let mut conn = invariants::expect_conn(&config, &spec, product, bypass, &devices);
        conn.raw = raw.is_some();
        let sim = match SimApp::connect_on(&net, relay_addr, Some(spec.address)).await {
            Ok(sim) => sim,
            Err(e) => {
                push(&log, at, format!("connect failed: {e}"));
                return Ok(());
            }
        };
        let mut sim = sim;
        if let Some(bytes) = raw {
            sim.send_raw(&bytes).await.map_err(|e| e.to_string())?;
            push(&log, at, format!("sent {} raw byte(s)", bytes.len()));
        } else {
            let devs: Vec<(u8, &str)> = devices.iter().map(|(s, d)| (*s, d.as_str())).collect();
            let memory = self.app(name)?.resume.clone();
            let ask = spec
                .resumable
                .then(|| memory.lock().unwrap_or_else(|e| e.into_inner()).ask());
            match sim
                .identify_with(spec.protocol, product, name, &devs, ask)
                .await
            {
                Ok(id) => {
                    if let Some(grant) = &id.resume {
                        memory
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .admitted(grant);
                    }
                    push(
                        &log,
                        start.elapsed(),
                        render::link(&LinkMsg::IdentifyResult {
                            result: id.result,
                            switches: id.switches.clone(),
                            resume: id.resume.clone(),
                        }),
                    );
                    let prev = self.app(name)?.admitted_conn;
                    if let (Some(prev), true) =
                        (prev, id.resume.as_ref().is_some_and(|g| g.resumed))
                    {
                        // The relay restored the earlier session: its switches and devices.
                        self.obs.with(prev, |p| {
                            conn.expected_served = p.expected_served.clone();
                            conn.default_switch = p.default_switch;
                            conn.filtering = p.filtering;
                            conn.watched = p.watched.clone();
                            conn.touched = p.touched.clone();
                        });
                        conn.resumed_from = Some(prev);
                    }
                    conn.identify = Some((id.result, id.switches));
                }
                Err(e) => push(&log, start.elapsed(), format!("no identify result: {e}")),
            }
        }
        if self.checked {
            // Every event a switch sends from now on is due to this connection.
            for (no, sw) in &self.switches {
                conn.admitted_at_seq
                    .insert(*no, sw.with_sent(|log| log.next_seq));
            }
            // A resumed session is not a new admission: it keeps the licence use it had.
            if conn.admitted() && !bypass && conn.resumed_from.is_none() {
                let relay = &self.relay;
                let limit = relay
                    .standing()
                    .entitlements()
                    .map_or(0, |e| e.access_limit());
                conn.licensed_after_admit =
                    Some((relay.licensing().usage().licensed_total(), limit));
            }
        }
        let admitted = conn.admitted();
        let index = self.obs.add(conn);
        let obs = self.obs.clone();
        let app = self.app(name)?;
        app.conn = Some(index);
        if admitted {
            app.admitted_conn = Some(index);
        }
        let (reader, writer) = sim.into_split();
        app.writer = Some(writer);
        if app.spec.reads {
            app.start_recording(reader, start, Some((obs, index)));
        } else {
            app.idle_reader = Some(reader);
        }
        Ok(())
    }
}
