//! Every scenario shipped under `examples/scenarios/` plays green, so the
//! examples users copy stay true.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use harness::report::play;
use harness::scenario::Scenario;
use harness::Module;
use std::path::PathBuf;

#[test]
fn every_example_scenario_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/scenarios");
    let mut played = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let scenario = Scenario::load(&path).unwrap();
        let wasm = path.parent().unwrap().join(scenario.wasm.clone().expect("example scenarios name their module"));
        let module = Module::load(&wasm).unwrap_or_else(|e| panic!("{e} (run `make build` first)"));
        let report = play(&module, &scenario, None).unwrap();
        assert_eq!(report.failed, 0, "{}:\n{}", path.display(), report.text());
        played += 1;
    }
    assert!(played > 0, "no scenarios in {}", dir.display());
}
