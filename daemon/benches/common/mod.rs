//! What the in-process benchmarks share: an engine on a fresh journal,
//! talking to the gateway at a URL as terminal `P42130200001`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use settlement_client::auth::Signer;
use settlement_client::gateway::{Gateway, GatewaySettings};
use ybpos_config::Terminal;
use ybpos_daemon::engine::{Engine, EngineSettings};
use ybpos_daemon::events::EventBus;
use ybpos_daemon::journal::Journal;
use ybpos_daemon::sessions::Sessions;

/// A recovered engine with its journal in `dir`, reversing after `grace`.
pub async fn engine(url: &str, dir: &Path, grace: Duration, events: EventBus) -> Arc<Engine> {
    let terminal = Terminal {
        fixmedins_code: "P42130200001".into(),
        fixmedins_name: "bench".into(),
        mdtrtarea_admvs: "421381".into(),
        opter: "b".into(),
        opter_name: "b".into(),
        opter_type: "1".into(),
        msgid_node: None,
        terminals: 1,
    };
    let gw = Gateway::new(GatewaySettings::plain(url, terminal), Signer::None).unwrap();
    let e = Engine::new(
        EngineSettings {
            reversal_grace: grace,
            max_unclear_answers: 10,
        },
        Journal::open(&dir.join("journal.db")).unwrap(),
        Arc::new(gw),
        Arc::new(Sessions::default()),
        events,
    );
    e.recover().await.unwrap();
    e
}
