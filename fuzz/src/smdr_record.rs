//! The native SMDR record parser and the page-header split on any bytes: never a panic; a
//! record that parses writes back to a line of the same length that parses to the same record.

use wire::smdr::{self, SmdrRecord};

pub fn check(data: &[u8]) {
    let (_, record) = smdr::split_page_header(data);
    for line in [data, record] {
        if let Ok(parsed) = SmdrRecord::parse(line) {
            let again = parsed.to_line();
            assert_eq!(again.len(), line.len());
            assert_eq!(SmdrRecord::parse(&again), Ok(parsed));
        }
    }
}
