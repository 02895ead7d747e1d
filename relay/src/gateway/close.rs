//! How a gateway connection ends: the WebSocket close code and reason for each way a session
//! can end, so that a page knows whether to come back and what to tell its user.
//!
//! | code | when |
//! |---|---|
//! | 1000 | the application closed, or its session ended with nothing to add |
//! | 1001 | the relay is stopping (`X` 2), or the session's switches went down (`X` 1): come back later |
//! | 1008 | the relay's rules: identify refused, too slow, a protocol error, a licence change, silence, an administrator (`X` 3–7) |
//! | 1009 | a message larger than `admin.max_message_kib` |
//! | 1011 | the relay failed to serve the session |

use std::time::Duration;

use super::socket::{self, Socket};
use tracing::debug;
use wire::CloseReason;

/// The close frame a connection ends with (`None`: the peer is gone, nothing to send).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing(Option<(u16, String)>);

/// The close codes the gateway sends (RFC 6455 §7.4.1).
mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const SIZE: u16 = 1009;
    pub const ERROR: u16 = 1011;
}

/// The most a close frame's reason may hold (RFC 6455 §5.5: 125 bytes less the code).
const REASON_MAX: usize = 123;

impl Closing {
    fn with(code: u16, reason: &str) -> Closing {
        let mut end = reason.len().min(REASON_MAX);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Closing(Some((code, reason[..end].to_owned())))
    }

    /// The application closed, or nothing more is to be said.
    pub fn normal() -> Closing {
        Closing::with(close_code::NORMAL, "")
    }

    /// The connection cannot be written to any more.
    pub fn gone() -> Closing {
        Closing(None)
    }

    /// The session was closed with `X reason text`.
    pub fn for_reason(reason: u8, text: &str) -> Closing {
        let code = match CloseReason::from_byte(reason) {
            Some(CloseReason::Shutdown | CloseReason::SwitchLost) => close_code::AWAY,
            Some(_) => close_code::POLICY,
            None => close_code::ERROR,
        };
        Closing::with(code, text)
    }

    /// Identify was refused (`i` with a result other than 0).
    pub fn refused(reason: &str) -> Closing {
        Closing::with(close_code::POLICY, &format!("identify refused: {reason}"))
    }

    /// The relay could not go on serving the session.
    pub fn internal(why: &str) -> Closing {
        Closing::with(close_code::ERROR, why)
    }

    /// After reading failed: a message over the size limit is told so (1009); any other
    /// failure means the connection is gone.
    pub fn after_read_error(e: socket::Error) -> Closing {
        use tungstenite::error::{CapacityError, Error};
        match e {
            Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => Closing::with(
                close_code::SIZE,
                &format!(
                    "a message of {size} bytes or more; at most {max_size} (admin.max_message_kib)"
                ),
            ),
            Error::Capacity(e) => Closing::with(close_code::SIZE, &e.to_string()),
            e => {
                debug!(error = %e, "gateway: reading failed");
                Closing::gone()
            }
        }
    }

    /// The code and reason, when a close frame is to be sent.
    pub fn frame(&self) -> Option<(u16, &str)> {
        self.0
            .as_ref()
            .map(|(code, reason)| (*code, reason.as_str()))
    }

    /// Sends the close frame and ends the writing side, waiting at most `grace` for a slow
    /// peer's socket to take it.
    pub async fn send(self, ws: &mut Socket, grace: Duration) {
        let Some((code, reason)) = self.0 else {
            return;
        };
        let close = async {
            ws.send_one(socket::close_frame(code, &reason)).await?;
            ws.shutdown().await
        };
        let _ = tokio::time::timeout(grace, close).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_reason_has_its_code() {
        let code = |reason: CloseReason| Closing::for_reason(reason.byte(), "x").frame().unwrap().0;
        assert_eq!(code(CloseReason::Shutdown), 1001);
        assert_eq!(code(CloseReason::SwitchLost), 1001);
        assert_eq!(code(CloseReason::TooSlow), 1008);
        assert_eq!(code(CloseReason::ProtocolError), 1008);
        assert_eq!(code(CloseReason::LicenceChanged), 1008);
        assert_eq!(code(CloseReason::IdleTimeout), 1008);
        assert_eq!(code(CloseReason::Administrator), 1008);
        assert_eq!(Closing::for_reason(99, "x").frame(), Some((1011, "x")));
        assert_eq!(Closing::normal().frame(), Some((1000, "")));
        assert_eq!(Closing::gone().frame(), None);
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_within_123_bytes() {
        let closing = Closing::refused(&"é".repeat(100));
        let (_, reason) = closing.frame().unwrap();
        assert!(reason.len() <= 123, "{}", reason.len());
        assert!(reason.starts_with("identify refused: éé"));
        assert_eq!(reason.len(), 122);
    }
}
