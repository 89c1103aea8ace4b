//! The local API's contract as an OpenRPC document: `docs/openrpc.json`,
//! compiled into the daemon and answered by `rpc.discover`.
//!
//! The file is the one source: `tests/openrpc.rs` validates the daemon's
//! live answers (every method, every error code, the events) against its
//! schemas, and `tests/api_golden.rs` checks that `rpc.discover` answers it
//! byte for byte.

use std::sync::OnceLock;

use serde_json::Value;

/// The document's text, as shipped.
pub const TEXT: &str = include_str!("../../../docs/openrpc.json");

/// The document, parsed once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        // A unit test proves the shipped text parses; a broken build of it
        // answers `null` rather than taking the daemon down.
        serde_json::from_str(TEXT).unwrap_or(Value::Null)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_parses_and_names_every_parsed_method() {
        let doc: Value = serde_json::from_str(TEXT).expect("docs/openrpc.json is JSON");
        assert_eq!(doc["openrpc"], "1.3.2");
        let names: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        // Every method the parser knows is documented, and nothing else.
        let empty = serde_json::Map::new();
        for n in &names {
            let r = super::super::methods::parse(n, &empty);
            assert!(
                !matches!(&r, Err(e) if e.code == -32601),
                "{n} is documented but not served"
            );
        }
        for n in [
            "system.info",
            "scanner.list",
            "events.subscribe",
            "events.unsubscribe",
            "scan.wait",
            "identity.lookup",
            "txn.submit",
            "txn.get",
            "txn.list",
            "txn.resolve",
            "report.usage",
            "rpc.discover",
            "demo.scan",
        ] {
            assert!(names.contains(&n), "{n} is served but not documented");
        }
    }
}
