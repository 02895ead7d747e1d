//! The ports beside the application ports: the two monitor ports and the SMDR/UCD export
//! port, each accepting connections of its own kind; and [`licence_watch`], which watches the
//! state directory for a licence registered by `relay license register`.

pub mod export;
pub mod licence_watch;
pub mod monitor;
