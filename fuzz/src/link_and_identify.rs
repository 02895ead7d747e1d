//! Link-control messages (identify, open, MAC, password, close …) and call-processing
//! messages decoded from any frame: never a panic; whatever decodes encodes back to a frame
//! that decodes to the same message.

use bytes::Bytes;
use wire::{CallMsg, Frame, LinkMsg};

pub fn check(data: &[u8]) {
    let Ok(frame) = Frame::new(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Ok(msg) = LinkMsg::decode(&frame) {
        if let Ok(bytes) = msg.encode() {
            let again = Frame::new(bytes).expect("an encoded message is a frame");
            assert_eq!(LinkMsg::decode(&again).as_ref(), Ok(&msg));
        }
    }
    for p3 in [false, true] {
        if let Ok(msg) = CallMsg::decode(&frame, p3) {
            // A message decoded from one frame fits one frame again.
            let bytes = msg.encode().expect("a decoded message fits a frame");
            let again = Frame::new(bytes).expect("an encoded message is a frame");
            assert_eq!(CallMsg::decode(&again, p3).as_ref(), Ok(&msg));
        }
    }
}
