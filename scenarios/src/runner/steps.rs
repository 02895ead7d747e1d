//! One function per step of a scenario, and the step's dispatch.

use std::sync::atomic::Ordering;

use relay::config::Config;
use wire::{LinkMsg, Product, Str8};

use super::*;
use crate::schema::{FaultEntry, LicenceSpec, OperatorAction, Step, SwitchEdit};

impl Scene {
    /// Plays one step.
    pub(super) async fn step(&mut self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::Connect(name) => self.connect(name).await,
            Step::ConnectMonitor(name) => self.connect_monitor(name).await,
            Step::DisconnectMonitor(name) => self.disconnect_monitor(name).await,
            Step::ConnectRaw { app, hex } => self.connect_raw(app, hex).await,
            Step::Disconnect(name) => self.disconnect(name).await,
            Step::Hang(name) => self.hang(name).await,
            Step::Resume(name) if self.monitors.contains_key(name) => {
                self.resume_monitor(name).await
            }
            Step::Resume(name) => self.resume(name).await,
            Step::Request {
                app,
                switch,
                code,
                invoke,
                fields,
            } => self.request(app, switch, code, invoke, fields).await,
            Step::Device {
                app,
                add,
                switch,
                device,
            } => self.device(app, add, switch, device).await,
            Step::Send { app, hex } => self.send(app, hex).await,
            Step::Phone {
                switch,
                code,
                device,
                to,
            } => self.phone(switch, code, device, to).await,
            Step::Incoming {
                switch,
                trunk,
                device,
            } => self.incoming(switch, trunk, device).await,
            Step::Licence(spec) => self.licence(spec).await,
            Step::LicenceFile(spec) => self.licence_file(spec).await,
            Step::SkipDays(days) => self.skip_days(days).await,
            Step::ReportUcd(no) => self.report_ucd(no).await,
            Step::Reconfigure(changes) => self.reconfigure(changes).await,
            Step::Edit(changes) => self.edit(changes).await,
            Step::EditSwitch { switch, change } => self.edit_switch(switch, change).await,
            Step::Burst {
                switch,
                device,
                count,
            } => self.burst(switch, device, count).await,
            Step::Fault { switch, fault } => self.fault(switch, fault).await,
            Step::Operator(action) => self.operator(action).await,
            Step::ConnectAll => self.connect_all().await,
            Step::DisconnectAll => self.disconnect_all().await,
            Step::CloseSession(name) => self.close_session(name).await,
            Step::Advance(text) => self.advance(text).await,
            Step::Checkpoint(name) => self.checkpoint(name).await,
        }
    }

    /// Connect and identify.
    async fn connect(&mut self, name: &str) -> Result<(), StepError> {
        let names = named(&self.apps, name);
        if names.is_empty() {
            return Err(StepError::UnknownApp(name.to_owned()));
        }
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(SETTLE).await;
            }
            self.open_app(n, None).await?;
        }
        Ok(())
    }

    /// Close a monitor's (or collector's) connection.
    async fn disconnect_monitor(&mut self, name: &str) -> Result<(), StepError> {
        let at = self.now();
        let m = self
            .monitors
            .get_mut(name)
            .ok_or_else(|| StepError::UnknownMonitor(name.to_owned()))?;
        if let Some(r) = m.recorder.take() {
            r.abort();
        }
        m.idle = None;
        push(&m.log, at, "disconnected".into());
        if let Some(c) = m.conn.take() {
            self.obs.with_monitor(c, |c| {
                c.end.get_or_insert(End::Left);
            });
        }
        Ok(())
    }

    /// Connect and send these bytes (hex) instead of an identify.
    async fn connect_raw(&mut self, app: &str, hex: &str) -> Result<(), StepError> {
        self.open_app(app, Some(parse_hex(hex)?)).await
    }

    /// Close the application's connection.
    async fn disconnect(&mut self, name: &str) -> Result<(), StepError> {
        let at = self.now();
        let app = self.app(name)?;
        if let Some(r) = app.recorder.take() {
            r.abort();
        }
        app.writer = None;
        app.idle_reader = None;
        push(&app.log, at, "disconnected".into());
        if let Some(c) = app.conn {
            self.obs.with(c, |c| {
                c.end.get_or_insert(End::Left);
            });
        }
        Ok(())
    }

    /// The application stops reading and answering but leaves its connection open, as when its
    /// host or the network between fails (a half-open connection).
    async fn hang(&mut self, name: &str) -> Result<(), StepError> {
        let at = self.now();
        let app = self.app(name)?;
        let Some(hang) = app.hang.take() else {
            push(&app.log, at, "hang: not reading".into());
            return Ok(());
        };
        let _ = hang.send(());
        app.writer = None;
        if let Some(r) = app.recorder.take() {
            app.hung.push(r);
        }
        if let Some(c) = app.conn {
            // It no longer reads: the relay may close it as silent, or a resumed
            // connection may replace it.
            self.obs.with(c, |c| {
                c.reads = false;
                c.stalled = true;
            });
        }
        Ok(())
    }

    /// `resume` of a monitor or collector declared with `reads: false`.
    async fn resume_monitor(&mut self, name: &str) -> Result<(), StepError> {
        let start = self.start;
        let m = self.monitors.get_mut(name).expect("checked");
        let app = m
            .idle
            .take()
            .ok_or_else(|| StepError::NotWaiting(name.to_owned()))?;
        let seen = self.monitor_seen(name);
        let m = self.monitors.get_mut(name).expect("checked");
        m.recorder = Some(if m.native {
            record_native_export(app, m.log.clone(), start)
        } else {
            record_monitor(app, m.log.clone(), start, seen)
        });
        Ok(())
    }

    /// Start reading (an application declared with `reads: false`).
    async fn resume(&mut self, name: &str) -> Result<(), StepError> {
        let start = self.start;
        let obs = self.obs.clone();
        let app = self.app(name)?;
        let reader = app
            .idle_reader
            .take()
            .ok_or_else(|| StepError::NotWaiting(name.to_owned()))?;
        let conn = app.conn.map(|c| (obs, c));
        if let Some((obs, c)) = &conn {
            obs.with(*c, |c| c.reads = true);
        }
        app.start_recording(reader, start, conn);
        Ok(())
    }

    /// A request: `fields` are str8 fields of the body.
    async fn request(
        &mut self,
        app: &str,
        switch: &Option<u8>,
        code: &str,
        invoke: &u16,
        fields: &[String],
    ) -> Result<(), StepError> {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let w = self.writer(app).await?;
        let code = code_byte(code)?;
        if let Some(c) = self.app(app)?.conn {
            self.obs.with(c, |c| {
                c.requests.push(observe::Request {
                    switch: if c.protocol == 3 {
                        Some(switch.unwrap_or(0))
                    } else {
                        None
                    },
                    invoke: *invoke,
                    code,
                })
            });
        }
        let sent = w.request(*switch, code, *invoke, &str8_body(&fields)).await;
        self.sent(app, sent)
    }

    /// Watch or stop watching a device.
    async fn device(
        &mut self,
        app: &str,
        add: &bool,
        switch: &u8,
        device: &str,
    ) -> Result<(), StepError> {
        let frame = LinkMsg::Device {
            add: *add,
            switch: *switch,
            device: Str8::lossy(device),
        }
        .encode()
        .map_err(|e| e.to_string())?;
        let w = self.writer(app).await?;
        if let Some(c) = self.app(app)?.conn {
            self.obs.with(c, |c| {
                let resolved = match (*switch, c.protocol) {
                    (0, _) | (_, 2) => c.default_switch,
                    (n, _) => n,
                };
                c.touched.insert((resolved, device.to_owned()));
                c.touched.insert((*switch, device.to_owned()));
            });
        }
        let sent = w.send_raw(&frame).await;
        self.sent(app, sent)
    }

    /// Raw bytes (hex) from an application.
    async fn send(&mut self, app: &str, hex: &str) -> Result<(), StepError> {
        let bytes = parse_hex(hex)?;
        let w = self.writer(app).await?;
        if let Some(c) = self.app(app)?.conn {
            self.obs.with(c, |c| c.raw = true);
        }
        let sent = w.send_raw(&bytes).await;
        self.sent(app, sent)
    }

    /// A phone user acts on a switch: `code` K (dial `to`), N (answer), D (hang up), H, G, T, F.
    async fn phone(
        &mut self,
        switch: &u8,
        code: &str,
        device: &str,
        to: &Option<String>,
    ) -> Result<(), StepError> {
        let result = self
            .switch(*switch)?
            .phone(code_byte(code)?, device, to.as_deref());
        let to = to.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
        self.act(
            *switch,
            format!("phone {code} {device}{to}: result {result}"),
        );
        Ok(())
    }

    /// An outside call arrives on a trunk.
    async fn incoming(&mut self, switch: &u8, trunk: &str, device: &str) -> Result<(), StepError> {
        let result = self.switch(*switch)?.incoming_call(trunk, device);
        self.act(
            *switch,
            format!("incoming call on {trunk} for {device}: result {result}"),
        );
        Ok(())
    }

    /// Register a licence through the relay (signed by the scenarios' test issuer).
    async fn licence(&mut self, spec: &LicenceSpec) -> Result<(), StepError> {
        let at = secs(self.now());
        let text = licence_text(spec)?;
        let line = match self.relay.register_licence(&text) {
            Ok(p) => format!("{at} licence {} registered", p.serial),
            Err(e) => format!("{at} licence {} refused: {e}", spec.serial),
        };
        self.licences.push(line);
        Ok(())
    }

    /// Write a licence key to the state directory, as `relay license register` does; the running
    /// relay picks it up within a second or two.
    async fn licence_file(&mut self, spec: &LicenceSpec) -> Result<(), StepError> {
        let at = secs(self.now());
        let text = licence_text(spec)?;
        relay::licensing::store::write(&self.relay.config().state_dir, &text)
            .map_err(|e| e.to_string())?;
        let forged = if spec.forge { " (forged)" } else { "" };
        self.licences.push(format!(
            "{at} licence {}{forged} written to the state directory",
            spec.serial
        ));
        Ok(())
    }

    /// Move wall time forward by whole days (timers do not run through them).
    async fn skip_days(&mut self, days: &u64) -> Result<(), StepError> {
        self.clock.skip_ms(days * 86_400_000);
        Ok(())
    }

    /// A switch sends its UCD group statistics records.
    async fn report_ucd(&mut self, no: &u8) -> Result<(), StepError> {
        let n = self.switch(*no)?.report_ucd();
        self.act(*no, format!("UCD report: {n} record(s)"));
        Ok(())
    }

    /// Change the relay's configuration while it runs (fields merged at the top level, as in
    /// `config`); a refused change is recorded in the transcript.
    async fn reconfigure(&mut self, changes: &serde_yaml::Value) -> Result<(), StepError> {
        let current = (*self.relay.config()).clone();
        let at = secs(self.now());
        let line = match merge(current, Some(changes)) {
            Err(e) => format!("{at} refused: {e}"),
            Ok(next) => match self.relay.reconfigure(next) {
                Ok(added) if added.is_empty() => format!("{at} applied"),
                Ok(added) => format!("{at} applied; switches added: {added:?}"),
                Err(errors) => {
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    format!("{at} refused: {}", list.join("; "))
                }
            },
        };
        self.reconfigurations.push(line);
        Ok(())
    }

    /// An operator's edit through the admin interface (fields merged at the top level, as in
    /// `config`): unlike a reload, switches that are down may be changed, disabled or deleted; a
    /// refused edit is recorded in the transcript.
    async fn edit(&mut self, changes: &serde_yaml::Value) -> Result<(), StepError> {
        let outcome = self.relay.edit_config(None, |config: &mut Config| {
            *config = merge(config.clone(), Some(changes))?;
            Ok::<(), String>(())
        });
        self.edited(outcome);
        Ok(())
    }

    /// An operator's edit of one switch through the admin interface, made to the configuration in
    /// force (as `relay ctl switch set`, `add` and `delete` make it).
    async fn edit_switch(&mut self, switch: &u8, change: &SwitchEdit) -> Result<(), StepError> {
        let no = *switch;
        let outcome = self.relay.edit_config(None, |config: &mut Config| {
            let at = config.switches.iter().position(|s| s.no == no);
            match (change, at) {
                (SwitchEdit::Add, None) => config.switches.push(SwitchConfig::new(
                    no,
                    &format!("10.0.1.{no}"),
                    5002,
                    "1234",
                )),
                (SwitchEdit::Add, Some(_)) => return Err(format!("switch {no} exists")),
                (_, None) => return Err(format!("switch {no} is not configured")),
                (SwitchEdit::Delete, Some(i)) => {
                    config.switches.remove(i);
                }
                (SwitchEdit::Enable | SwitchEdit::Disable, Some(i)) => {
                    config.switches[i].enabled = matches!(change, SwitchEdit::Enable);
                }
                (SwitchEdit::Readdress, Some(i)) => {
                    let sw = &mut config.switches[i];
                    sw.port = if sw.port == SWITCH_PORT {
                        5012
                    } else {
                        SWITCH_PORT
                    };
                }
            }
            Ok(())
        });
        self.edited(outcome);
        Ok(())
    }

    /// A switch sends `count` identical events about `device`.
    async fn burst(&mut self, switch: &u8, device: &str, count: &usize) -> Result<(), StepError> {
        // Identical events, so a transcript shows them as one line with a count.
        let one = switch_sim::switch::event_frame(b's', device, &[0, 0, 0]);
        let mut batch = BytesMut::with_capacity(one.len() * count);
        for _ in 0..*count {
            batch.extend_from_slice(&one);
        }
        self.switch(*switch)?.send_raw(batch.freeze());
        self.act(*switch, format!("burst of {count} events about {device}"));
        Ok(())
    }

    /// A switch misbehaves.
    async fn fault(&mut self, switch: &u8, fault: &FaultEntry) -> Result<(), StepError> {
        let sw = self.switch(*switch)?.clone();
        match &fault.0 {
            Fault::Drop => sw.drop_link(),
            Fault::HalfOpen => sw.half_open(),
            Fault::Garbage => sw.send_garbage(16),
            Fault::Oversize => sw.send_oversize(),
            Fault::RefuseOpens(n) => {
                sw.refuse_next_opens(*n);
                true
            }
            Fault::Silent => {
                sw.configure(|s| s.answering = Answering::Silent);
                true
            }
            Fault::NoHeartbeats => {
                sw.configure(|s| s.heartbeat_replies = false);
                true
            }
            Fault::MuteOpens => {
                sw.configure(|s| s.answer_opens = false);
                true
            }
            Fault::AnswerOpens => {
                sw.configure(|s| s.answer_opens = true);
                true
            }
            Fault::SlowAnswers(d) => {
                let d = duration(d)?;
                sw.configure(|s| s.answer_delay = d);
                true
            }
            Fault::Stall(d) => sw.stall(duration(d)?),
            Fault::Heal => {
                sw.heal();
                true
            }
        };
        self.act(*switch, format!("fault: {:?}", fault.0));
        Ok(())
    }

    /// An operator acts on a switch's link.
    async fn operator(&mut self, action: &OperatorAction) -> Result<(), StepError> {
        let (what, no, done) = match action {
            OperatorAction {
                connect: Some(n), ..
            } => ("connect", *n, self.relay.connect_switch(*n)),
            OperatorAction {
                disconnect: Some(n),
                ..
            } => ("disconnect", *n, self.relay.disconnect_switch(*n)),
            OperatorAction { abort: Some(n), .. } => {
                ("abort the attempt on", *n, self.relay.abort_attempt(*n))
            }
            _ => {
                return Err(StepError::Invalid(
                    "operator: give connect, disconnect or abort with a switch number".into(),
                ))
            }
        };
        let line = format!(
            "operator: {what} switch {no}{}",
            if done { "" } else { " (no such switch)" }
        );
        self.act(no, line);
        Ok(())
    }

    /// An operator connects every enabled switch.
    async fn connect_all(&mut self) -> Result<(), StepError> {
        self.relay.connect_all();
        for no in self.switches.keys().copied().collect::<Vec<_>>() {
            self.act(no, "operator: connect all".into());
        }
        Ok(())
    }

    /// An operator disconnects every switch (every session is closed, `X` reason 2).
    async fn disconnect_all(&mut self) -> Result<(), StepError> {
        self.relay.disconnect_all();
        for no in self.switches.keys().copied().collect::<Vec<_>>() {
            self.act(no, "operator: disconnect all".into());
        }
        Ok(())
    }

    /// An operator closes the application's session (`X` reason 7).
    async fn close_session(&mut self, name: &str) -> Result<(), StepError> {
        let at = self.now();
        let app = self.app(name)?;
        let (ip, product) = (app.spec.address, app.spec.product.clone());
        let log = app.log.clone();
        let product = Product::parse(&product);
        let session = self
            .relay
            .sessions()
            .into_iter()
            .filter(|s| s.peer.ip() == ip && Some(s.product) == product)
            .min_by_key(|s| s.id);
        let line = match session {
            Some(s) => {
                self.relay.close_session(s.id);
                format!("operator closes session {}", s.id)
            }
            None => "operator finds no session to close".into(),
        };
        push(&log, at, line);
        Ok(())
    }

    /// Let virtual time pass (e.g. 31s, 2m).
    async fn advance(&mut self, text: &str) -> Result<(), StepError> {
        tokio::time::sleep(duration(text)?).await;
        Ok(())
    }

    /// Record the relay's status under this name.
    async fn checkpoint(&mut self, name: &str) -> Result<(), StepError> {
        let status = self.relay.status();
        let stats = &self.relay.stats();
        let records = format!(
            "smdr {}, ucd {}",
            stats.smdr_records.load(Ordering::Relaxed),
            stats.ucd_records.load(Ordering::Relaxed)
        );
        let licence = {
            let relay = &self.relay;
            let standing = relay.standing();
            let usage = relay.licensing().usage();
            let limits = standing
                .entitlements()
                .map(|e| {
                    format!(
                        "Call {}/{}, OpenTSP {}/{}, Operator {}/{}",
                        usage.counted(Product::Call),
                        e.call,
                        usage.counted(Product::OpenTsp),
                        e.opentsp,
                        usage.counted(Product::Operator),
                        e.operator
                    )
                })
                .unwrap_or_else(|| "no licensed product admitted".into());
            format!("{}: {limits}", standing.name())
        };
        self.checkpoints.push(Checkpoint {
            name: name.to_owned(),
            at: secs(self.now()),
            switches: status
                .switches
                .iter()
                .map(|s| format!("{} {}", s.no, if s.up { "up" } else { "down" }))
                .collect(),
            sessions: status
                .sessions
                .iter()
                .map(|s| {
                    let sw: Vec<String> = s.switches.iter().map(u8::to_string).collect();
                    format!(
                        "{} protocol {} switches [{}] {}",
                        s.address,
                        s.protocol,
                        sw.join(","),
                        s.state
                    )
                })
                .collect(),
            records,
            licence,
        });
        Ok(())
    }
}
