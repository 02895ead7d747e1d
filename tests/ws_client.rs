//! A gateway client for the tests (a module of `gateway.rs` and `security.rs`): a WebSocket to
//! `/ws` on a site's admin interface, messages sent as text, and the relay's next JSON message
//! read as its contract type.

use futures_util::{SinkExt, StreamExt};
use relay::gateway::messages::FromRelay;
use tokio_tungstenite::tungstenite::Message;

use testkit::{within, Admin};

/// A gateway connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws{query}` on `admin`.
pub async fn connect(
    admin: &Admin,
    query: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("ws://{}/ws{query}", admin.addr());
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
}

/// Sends `text` as one text message.
pub async fn say(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next JSON message (pings are answered by the client library as it reads).
pub async fn next(ws: &mut Ws) -> FromRelay {
    loop {
        let msg = within("a gateway message", ws.next())
            .await
            .expect("open")
            .expect("read");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }
}
