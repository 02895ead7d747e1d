//! The web console in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver, against a relay with a simulated switch and an admin token. It gives the
//! token, adds a user through the user dialog, sees the validation error for a duplicate
//! address, sees a new session appear live and closes it from the console; then the switch
//! table's validation, the bypass session viewer, licence registration, and the call-record
//! page (records from the switch, a filter, a refused filter). And the gateway's example
//! softphone page placing a call. And what a page elsewhere can do in the same browser: a
//! foreign page's POST and WebSocket, and a name rebound to the relay's address, are refused;
//! the console opened with the token in its address asks for nothing.
//!
//! Chromium and chromedriver are found at /usr/bin (or `RELAY_CHROMIUM` and
//! `RELAY_CHROMEDRIVER`); `.ci/run` installs them (`apt-get install chromium chromium-driver`).
//! Without them the test fails under CI (`CI` set); elsewhere it is reported as ignored, and
//! the reason is printed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use client_sim::SimApp;
use fantoccini::{Client, ClientBuilder, Locator};
use relay::calls::CallQuery;
use relay::Config;
use testkit::{Admin, Site, SiteSpec};
use wire::LinkMsg;

const WAIT: Duration = Duration::from_secs(10);
/// The relay's admin token, which the console asks for.
const TOKEN: &str = "console-t0ken";

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(env).unwrap_or_else(|| default.into()));
    path.exists().then_some(path)
}

/// chromedriver, and a session of headless Chromium through it.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// Chromium and chromedriver, or why they cannot be used.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    match (
        tool("RELAY_CHROMIUM", "/usr/bin/chromium"),
        tool("RELAY_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) {
        (Some(chromium), Some(chromedriver)) => Ok((chromium, chromedriver)),
        _ => Err(
            "Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
                .into(),
        ),
    }
}

impl Browser {
    async fn start(chromium: PathBuf, chromedriver: PathBuf) -> Browser {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1300,1000",
                    // A name of the attacker's that resolves to the relay (DNS rebinding).
                    "--host-resolver-rules=MAP evil.example 127.0.0.1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = tokio::time::Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if started.elapsed() > Duration::from_secs(20) => {
                    panic!("chromedriver did not start a browser session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Clicks the element `css`. The console redraws its tables as the relay's state comes in,
    /// so an element found a moment ago may have been replaced: it is then looked up again.
    async fn click(&self, css: &str) {
        let started = tokio::time::Instant::now();
        loop {
            match self.visible(css).await.click().await {
                Ok(_) => return,
                Err(e) if e.is_stale_element_reference() && started.elapsed() < WAIT => continue,
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let started = tokio::time::Instant::now();
        loop {
            let field = self.visible(css).await;
            let typed = match field.clear().await {
                Ok(()) => field.send_keys(text).await,
                Err(e) => Err(e),
            };
            match typed {
                Ok(()) => return,
                Err(e) if e.is_stale_element_reference() && started.elapsed() < WAIT => continue,
                Err(e) => panic!("typing into {css}: {e}"),
            }
        }
    }

    /// The element `css` once it exists (waiting up to 10 s).
    async fn visible(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within 10 s: {e}"))
    }

    /// The text of the element `css`, looked up again if it was redrawn meanwhile.
    async fn text(&self, css: &str) -> String {
        let started = tokio::time::Instant::now();
        loop {
            match self.visible(css).await.text().await {
                Ok(text) => return text,
                Err(e) if e.is_stale_element_reference() && started.elapsed() < WAIT => continue,
                Err(e) => panic!("reading {css}: {e}"),
            }
        }
    }

    /// Waits until the element `css` shows `expected` (up to 10 s).
    async fn text_becomes(&self, css: &str, expected: &str) {
        let started = tokio::time::Instant::now();
        loop {
            let now = self.text(css).await;
            if now == expected {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{css} shows {now:?}, not {expected:?}, after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no element matches `css`.
    async fn gone(&self, css: &str) {
        let started = tokio::time::Instant::now();
        while !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
        {
            assert!(started.elapsed() < WAIT, "{css} still there after 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// With `RELAY_CONSOLE_SCREENSHOTS=DIR`, saves what the browser shows as `DIR/name.png`.
    async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("RELAY_CONSOLE_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

/// A relay with one simulated switch (at 127.0.1.1), its configuration file, and the admin
/// interface, which requires TOKEN.
async fn site() -> (Site, Admin) {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(Some(TOKEN)).await;
    (site, admin)
}

type BrowserTest = fn(PathBuf, PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let missing = tools().err();
    let ignored = missing.is_some() && std::env::var_os("CI").is_none();
    let tests: [(&str, BrowserTest); 3] = [
        (
            "the_console_adds_a_user_refuses_a_duplicate_and_closes_a_live_session",
            |chromium, driver| {
                Box::pin(
                    the_console_adds_a_user_refuses_a_duplicate_and_closes_a_live_session(
                        chromium, driver,
                    ),
                )
            },
        ),
        (
            "a_foreign_page_and_a_rebound_name_can_do_nothing_in_the_browser",
            |chromium, driver| {
                Box::pin(
                    a_foreign_page_and_a_rebound_name_can_do_nothing_in_the_browser(
                        chromium, driver,
                    ),
                )
            },
        ),
        (
            "the_example_softphone_places_a_call_and_shows_its_events",
            |chromium, driver| {
                Box::pin(the_example_softphone_places_a_call_and_shows_its_events(
                    chromium, driver,
                ))
            },
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            if let (true, Some(why)) = (ignored, &missing) {
                println!("note: {name} is ignored here: {why}");
            }
            libtest_mimic::Trial::test(name, move || {
                let (chromium, chromedriver) = tools()?;
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(test(chromium, chromedriver));
                Ok(())
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// A page of another origin (127.0.0.2) that tries what the admin port once allowed: a
/// "simple" POST cutting every link, and a WebSocket identifying as a softphone. The relay asks
/// no token here (a loopback admin port with the token off), so only the Origin check stands in
/// the way. Then the relay read through a rebound name, and the console opened with the token
/// in its address.
async fn a_foreign_page_and_a_rebound_name_can_do_nothing_in_the_browser(
    chromium: PathBuf,
    chromedriver: PathBuf,
) {
    let browser = Browser::start(chromium, chromedriver).await;
    let site = SiteSpec::officeserv(1).start().await;
    let open = site.serve_admin(None).await;
    let relay = open.server.addr;
    let page = format!(
        r#"<!doctype html><title>elsewhere</title><pre id="out"></pre><script>
const out = (t) => {{ document.getElementById("out").textContent += t + "\n"; }};
fetch("http://{relay}/api/disconnect-all", {{ method: "POST", mode: "no-cors",
  headers: {{ "Content-Type": "text/plain" }}, body: "x" }})
  .then(() => out("post sent"), (e) => out("post failed"));
const ws = new WebSocket("ws://{relay}/ws");
ws.onopen = () => {{ out("ws open"); ws.send(JSON.stringify({{ type: "identify", product: "call" }})); }};
ws.onmessage = (m) => out("ws message " + m.data);
ws.onclose = (e) => out("ws closed " + e.code);
</script>"#
    );
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        );
        let _ = axum::serve(elsewhere, app).await;
    });
    browser
        .client
        .goto(&format!("http://{elsewhere_addr}/"))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let seen = loop {
        let seen = browser.text("#out").await;
        if seen.contains("post ") && seen.contains("ws closed") {
            break seen;
        }
        if started.elapsed() > WAIT {
            let source = browser.client.source().await.unwrap_or_default();
            panic!("the page did not finish: {seen:?}\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!seen.contains("ws open"), "{seen}");
    assert!(site.is_up(1), "a foreign page cut the link");
    assert!(site.relay.session_count() == 0);
    let refused: Vec<_> = relay::admin::audit::AuditLog::new(&site.relay.config().log_dir)
        .newest(10)
        .into_iter()
        .map(|e| (e.what, e.status))
        .collect();
    assert_eq!(refused, [("POST /api/disconnect-all".to_owned(), 403)]);
    server.abort();

    // A name the attacker controls, resolving to the relay: nothing is served under it.
    browser
        .client
        .goto(&format!("http://evil.example:{}/api/status", relay.port()))
        .await
        .unwrap();
    let shown = browser.text("body").await;
    assert!(
        shown.contains("\"field\":\"Host\""),
        "the relay answered a rebound name: {shown}"
    );

    // The console opened with the token in its address: no question, and the address bar
    // no longer shows it.
    let guarded = site.serve_admin(Some(TOKEN)).await;
    browser
        .client
        .goto(&format!("http://{}/#token={TOKEN}", guarded.server.addr))
        .await
        .unwrap();
    assert_eq!(
        browser
            .text("#switches tr[data-switch='1'] td.link-up")
            .await,
        "up"
    );
    assert_eq!(
        browser.client.current_url().await.unwrap().as_str(),
        format!("http://{}/", guarded.server.addr)
    );
    browser.stop().await;
}

/// The gateway's example page, in the browser: it connects with the token, identifies as
/// Call on 2201, places a call to 2202 on the simulated switch, shows the answer and the
/// call's events, and hangs up.
async fn the_example_softphone_places_a_call_and_shows_its_events(
    chromium: PathBuf,
    chromedriver: PathBuf,
) {
    let browser = Browser::start(chromium, chromedriver).await;
    let (site, admin) = site().await;
    browser
        .client
        .goto(&format!(
            "http://{}/examples/softphone.html?device=2201&token={TOKEN}",
            admin.server.addr
        ))
        .await
        .unwrap();
    assert_eq!(browser.client.title().await.unwrap(), "Softphone example");
    browser.click("#connect-button").await;
    browser
        .text_becomes("#state", "Identified as Call watching 2201 (SW1 up)")
        .await;
    assert_eq!(site.relay.session_count(), 1);

    browser.type_into("#number", "2202").await;
    browser.click("#call").await;
    browser
        .text_becomes("#last-answer", "Request 1 (K): result 0")
        .await;
    browser
        .text_becomes("#calls tbody tr td:nth-child(2)", "2202")
        .await;
    browser
        .text_becomes("#calls tbody tr td:nth-child(3)", "dialling")
        .await;
    let first_event = browser.text("#events li:last-child").await;
    assert!(
        first_event.ends_with(" SW1 d dialling 2201 ↔ 2202 call 1"),
        "{first_event}"
    );
    browser.screenshot("softphone").await;

    browser.click("#clear").await;
    browser
        .text_becomes("#last-answer", "Request 2 (D): result 0")
        .await;
    browser.gone("#calls tbody tr").await;
    browser.stop().await;
}

async fn the_console_adds_a_user_refuses_a_duplicate_and_closes_a_live_session(
    chromium: PathBuf,
    chromedriver: PathBuf,
) {
    let browser = Browser::start(chromium, chromedriver).await;
    let (site, admin) = site().await;
    browser
        .client
        .goto(&format!("http://{}/", admin.server.addr))
        .await
        .unwrap();
    assert_eq!(browser.client.title().await.unwrap(), "CTI relay console");

    // The API wants the token: the console asks for it once, then shows the relay.
    browser.type_into("#token-dialog[open] #token", TOKEN).await;
    browser.click("#token-form button[type=submit]").await;

    // The main window shows the switch's link as it comes up.
    assert_eq!(
        browser
            .text("#switches tr[data-switch='1'] td.link-up")
            .await,
        "up"
    );
    browser.visible("#notifications li[data-seq]").await;
    browser.screenshot("main").await;

    // Add a user through the dialog.
    browser.click("#open-users").await;
    browser.type_into("#user-ip", "127.0.0.77").await;
    browser.type_into("#user-name", "Pat").await;
    browser.click("#user-save").await;
    assert_eq!(
        browser
            .text("#user-table tr[data-ip='127.0.0.77'] td:nth-child(2)")
            .await,
        "Pat"
    );
    assert_eq!(
        browser.text("#user-result:not([hidden])").await,
        "User 127.0.0.77 saved (in force and written to the configuration file; its comments kept, the previous file kept as .bak)."
    );
    let saved = Config::load(&admin.config_path).unwrap();
    assert_eq!(
        (saved.users[0].ip.as_str(), saved.users[0].name.as_str()),
        ("127.0.0.77", "Pat")
    );

    // The same address again: the rule's message, and the field marked.
    browser.type_into("#user-ip", "127.0.0.77").await;
    browser.type_into("#user-name", "Someone else").await;
    browser.click("#user-save").await;
    assert_eq!(
        browser.text("#user-error:not([hidden])").await,
        "127.0.0.77 is already registered by users[0] (users[1].ip)"
    );
    browser.visible("#user-ip.invalid").await;
    browser.screenshot("user-dialog-duplicate").await;
    assert_eq!(Config::load(&admin.config_path).unwrap().users.len(), 1);

    // Edit it: the form is filled from the entry, and the change replaces it.
    browser
        .click("#user-table tr[data-ip='127.0.0.77'] td.actions button:first-child")
        .await;
    assert_eq!(browser.text("#user-form-title").await, "User 127.0.0.77");
    browser.type_into("#user-name", "Pat Smith").await;
    browser.click("#user-save").await;
    assert_eq!(
        browser.text("#user-result:not([hidden])").await,
        "User 127.0.0.77 saved (in force and written to the configuration file; its comments kept, the previous file kept as .bak)."
    );
    assert_eq!(
        browser
            .text("#user-table tr[data-ip='127.0.0.77'] td:nth-child(2)")
            .await,
        "Pat Smith"
    );
    let saved = Config::load(&admin.config_path).unwrap();
    assert_eq!(
        (saved.users.len(), saved.users[0].name.as_str()),
        (1, "Pat Smith")
    );
    browser.click("#user-close").await;

    // An application connects from that address: its session appears without a reload.
    let (mut app, identified) = SimApp::identify_as(
        site.relay.client_addr(),
        Some(IpAddr::from([127, 0, 0, 77])),
        2,
        1,
        &[(0, "2201")],
    )
    .await
    .unwrap();
    assert_eq!(identified.result, 0);
    let row = "#sessions tr[data-address='127.0.0.77']";
    assert_eq!(browser.text(&format!("{row} td.product")).await, "Call");
    assert_eq!(
        browser.text(&format!("{row} td.devices")).await,
        "[Call: 2201 - SW(1)]"
    );

    // Close it from the console: the application is told why, and the row goes.
    browser.screenshot("session-live").await;
    browser.click(&format!("{row} button.close-session")).await;
    assert!(browser
        .text("#confirm-text")
        .await
        .starts_with("Close session "));
    browser.screenshot("close-confirm").await;
    browser.click("#confirm-yes").await;
    let frames = tokio::time::timeout(WAIT, app.read_to_end())
        .await
        .expect("the session is closed")
        .unwrap();
    assert_eq!(
        LinkMsg::decode(frames.last().unwrap()).unwrap(),
        LinkMsg::Close {
            reason: 7,
            text: "closed by the administrator".into()
        }
    );
    browser.gone(row).await;

    // The switch table refuses an address already in use, naming the field.
    browser.click("#open-switches").await;
    assert_eq!(
        browser
            .text("#switch-table tr[data-switch='1'] td:nth-child(3)")
            .await,
        "127.0.1.1"
    );
    browser
        .type_into("#switch-form input[name=address]", "127.0.1.1")
        .await;
    browser.click("#switch-save").await;
    assert_eq!(
        browser.text("#switch-error:not([hidden])").await,
        "127.0.1.1: address already assigned to switch 1 (switches[1].address)"
    );
    browser.screenshot("switch-dialog-duplicate").await;
    browser.click("#switch-close").await;

    // The bypass session viewer: an ACD on the bypass port, against its limit.
    let (_acd, identified) = SimApp::identify_as(site.relay.bypass_addr(), None, 3, 0x41, &[])
        .await
        .unwrap();
    assert_eq!(identified.result, 0);
    browser.visible("#sessions td.product").await;
    browser.click("#open-bypass").await;
    assert_eq!(browser.text("#bypass-sessions td.product").await, "ACD");
    assert_eq!(
        browser.text("#bypass-limits tbody tr:first-child").await,
        "ACD 1 1"
    );
    browser.screenshot("bypass-dialog").await;
    browser.click("#bypass-close").await;

    // Licence registration: a malformed key is refused with the reason.
    browser.click("#open-licence").await;
    browser.type_into("#licence-key", "NOT-A-KEY").await;
    browser.click("#licence-register").await;
    assert_eq!(
        browser.text("#licence-error:not([hidden])").await,
        "a key is 18 groups of 8 characters joined by '-'; this one has 3 group(s) (key)"
    );
    browser.screenshot("licence-dialog").await;
    browser.click("#licence-close").await;

    // Call records: three SMDR records from the switch, stored, searched and filtered.
    for (call, ext, flag) in [
        ("101", "2501", "O"),
        ("102", "2502", "IC"),
        ("103", "2501", "IA"),
    ] {
        let (_, frame) = testkit::smdr_frame(call, ext, flag, 8 * 3600 + 45 * 60 + 42);
        assert!(site.switch(1).send_raw(frame));
    }
    let state_dir = site.relay.config().state_dir.clone();
    let started = tokio::time::Instant::now();
    while relay::calls::query(&state_dir, &CallQuery::default(), 100)
        .unwrap()
        .calls
        .len()
        < 3
    {
        assert!(
            started.elapsed() < WAIT,
            "the records were not stored within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The main window refreshes every second.
    browser
        .text_becomes("#monitor-spool", "3 waiting · 0 delivered")
        .await;
    browser.click("#open-calls").await;
    assert_eq!(browser.text("#calls-count").await, "3 record(s) shown.");
    let year = relay::calls::query(&state_dir, &CallQuery::default(), 100)
        .unwrap()
        .calls[0]
        .start
        .clone()
        .unwrap();
    assert_eq!(
        browser.text("#calls-table tbody tr:first-child").await,
        format!("1 1 {year} 101 2501 8503 O 00:04:38 0712345600 0498765478")
    );
    browser
        .type_into("#calls-form input[name=extension]", "2501")
        .await;
    browser.click("#calls-search").await;
    browser.gone("#calls-table tbody tr:nth-child(3)").await;
    assert_eq!(
        browser
            .text("#calls-table tbody tr:nth-child(2) td:nth-child(7)")
            .await,
        "IA"
    );
    assert_eq!(browser.text("#calls-count").await, "2 record(s) shown.");
    browser.screenshot("calls-dialog").await;
    // A filter the store cannot read is refused, naming the field.
    browser
        .type_into("#calls-form input[name=from]", "23/12")
        .await;
    browser.click("#calls-search").await;
    assert_eq!(
        browser.text("#calls-error:not([hidden])").await,
        "from: \"23/12\" is not a time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (from)"
    );

    browser.stop().await;
    site.relay.shutdown().await;
    admin.server.stop().await;
}
