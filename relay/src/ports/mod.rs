//! The ports beside the application ports: the two monitor ports and the SMDR/UCD export
//! port, each accepting connections of its own kind.

pub mod export;
pub mod monitor;
