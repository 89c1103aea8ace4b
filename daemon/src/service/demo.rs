//! The demo's virtual scanner as the service sees it (`demo.scan`): the
//! demo (`crate::demo`) implements [`DemoScanner`].

/// Puts test codes into the demo's virtual scanner (`demo.scan`).
pub trait DemoScanner: Send + Sync + std::fmt::Debug {
    /// Scans a code of `kind` for `person`, or `text`; returns what was scanned.
    fn scan(
        &self,
        person: Option<&str>,
        kind: &str,
        text: Option<&str>,
    ) -> Result<DemoScanned, DemoError>;
}

/// What the virtual scanner "scanned".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoScanned {
    /// Exactly the text asked for.
    Text(String),
    /// Line noise.
    Garbage,
    /// A generated code of a kind (`medical`, `wechat`, `alipay`, `unionpay`).
    Code {
        /// The kind asked for.
        kind: String,
        /// The code's text.
        text: String,
        /// The test person a 医保码 belongs to.
        person: Option<DemoPerson>,
    },
}

/// A test person of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPerson {
    /// Their psn_no.
    pub psn_no: String,
    /// Their name.
    pub psn_name: String,
}

/// Why the virtual scanner scanned nothing.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No such test person.
    #[error("no test person {0:?}; try 0, 1, 2 or 3")]
    NoSuchPerson(String),
    /// No such kind of code.
    #[error("{0:?}: use medical, wechat, alipay, unionpay or garbage")]
    UnknownKind(String),
    /// Writing into the pty failed.
    #[error("virtual scanner: {0}")]
    Write(#[from] std::io::Error),
}
