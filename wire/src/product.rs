//! Application products, the port each belongs on, identify results and close reasons.

use std::fmt;

use crate::byte_enum::byte_enum;

/// The two application ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// The licensed client port (default 6000).
    Licensed,
    /// The bypass port (client port + 500).
    Bypass,
}

byte_enum! {
    /// Every product an application can identify as, with its byte in `I`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Product {
        Call = 1,
        CallPlus = 2,
        Operator = 3,
        OpenTsp = 4,
        EasySet = 5,
        DataView = 6,
        News = 7,
        Acd = 0x41,
        Messenger = 0x42,
        BypassDataView = 0x43,
        CallPro = 0x44,
        CallSim = 0x45,
        OtherServer = 0x4F,
    }
}

impl Product {
    /// Parses the command-line name of a product (`call`, `callplus`, `operator`, `opentsp`,
    /// `easyset`, `dataview`, `news`, `acd`, `messenger`, `bypass-dataview`, `callpro`,
    /// `callsim`, `other`), case-insensitively.
    pub fn parse(name: &str) -> Option<Product> {
        Some(match name.to_ascii_lowercase().as_str() {
            "call" => Product::Call,
            "callplus" => Product::CallPlus,
            "operator" => Product::Operator,
            "opentsp" => Product::OpenTsp,
            "easyset" => Product::EasySet,
            "dataview" => Product::DataView,
            "news" => Product::News,
            "acd" => Product::Acd,
            "messenger" => Product::Messenger,
            "bypass-dataview" => Product::BypassDataView,
            "callpro" => Product::CallPro,
            "callsim" => Product::CallSim,
            "other" => Product::OtherServer,
            _ => return None,
        })
    }

    pub const fn port(self) -> Port {
        if self.byte() < 0x40 {
            Port::Licensed
        } else {
            Port::Bypass
        }
    }

    /// Call and CallPlus sessions honour the user's filtering mode.
    pub const fn filterable(self) -> bool {
        matches!(self, Product::Call | Product::CallPlus)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Product::Call => "Call",
            Product::CallPlus => "CallPlus",
            Product::Operator => "Operator",
            Product::OpenTsp => "OpenTSP",
            Product::EasySet => "EasySet",
            Product::DataView => "DataView",
            Product::News => "News",
            Product::Acd => "ACD",
            Product::Messenger => "Messenger",
            Product::BypassDataView => "DataView (bypass)",
            Product::CallPro => "CallPro",
            Product::CallSim => "CallSim",
            Product::OtherServer => "Other server",
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

byte_enum! {
    /// Identify results (`i`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum IdentifyResult {
        Accepted = 0,
        NotLicensed = 1,
        CountUsedUp = 2,
        TrialExpired = 3,
        AccessLimit = 4,
        AddressNotPermitted = 5,
        NoUsableSwitch = 6,
        WrongPort = 7,
        Malformed = 8,
        SingleUseActive = 9,
        NotConnected = 10,
    }
}

impl IdentifyResult {
    pub const fn describe(self) -> &'static str {
        match self {
            IdentifyResult::Accepted => "accepted",
            IdentifyResult::NotLicensed => "product not licensed",
            IdentifyResult::CountUsedUp => "licence count for the product used up",
            IdentifyResult::TrialExpired => "trial period expired",
            IdentifyResult::AccessLimit => "simultaneous access limit reached",
            IdentifyResult::AddressNotPermitted => "not permitted from this address",
            IdentifyResult::NoUsableSwitch => "none of the session's switches is up",
            IdentifyResult::WrongPort => "product does not belong on this port",
            IdentifyResult::Malformed => "malformed identify",
            IdentifyResult::SingleUseActive => "single-use product already active on that switch",
            IdentifyResult::NotConnected => "the relay is not connected to any switch yet",
        }
    }
}

byte_enum! {
    /// Reasons carried by `X`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum CloseReason {
        SwitchLost = 1,
        Shutdown = 2,
        TooSlow = 3,
        ProtocolError = 4,
        LicenceChanged = 5,
        IdleTimeout = 6,
        Administrator = 7,
    }
}
