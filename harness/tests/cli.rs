//! The `harness` command line: `run` plays scenarios (text and JSON reports, exit 1 on a failed expectation, exit 2 on a malformed scenario), `bench` reports a deterministic per-request cost, and bad options exit 2 with the usage.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn stamp_wasm() -> PathBuf {
    let path = workspace().join("target/wasm32-wasip1/release/stamp_fixture.wasm");
    assert!(path.exists(), "{} is missing: run `make build`", path.display());
    path
}

/// Runs the harness binary in `dir` with `args`.
fn harness(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness")).args(args).current_dir(dir).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes a scenario to a scratch file and returns its path.
fn scenario(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harness-cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_of_the_example_scenario_passes_both_requests() {
    let out = harness(&workspace(), &["run", "examples/scenarios/stamp.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("2 passed, 0 failed"), "{}", stdout(&out));
}

#[test]
fn run_json_report_parses_with_two_passed() {
    // From the harness folder this time: the module path in the scenario is
    // relative to the scenario file, not to the working directory.
    let out = harness(Path::new(env!("CARGO_MANIFEST_DIR")), &["run", "../examples/scenarios/stamp.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], 2, "{report:#}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["abi_version"], "0.2.1");
    assert_eq!(report["steps"].as_array().unwrap().len(), 2);
}

#[test]
fn run_with_a_failed_expectation_exits_1_and_says_so() {
    let text = format!(
        "wasm: {}\nplugin:\n  config: {{ requestHeaders: {{ x-stamp: hello }} }}\nrequests:\n  - request: {{ path: / }}\n    expect:\n      upstream: {{ headers: {{ x-stamp: goodbye }} }}\n",
        stamp_wasm().display()
    );
    let path = scenario("failing.yaml", &text);
    let out = harness(&workspace(), &["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("expectation failed"), "{text}");
    assert!(text.contains("x-stamp"), "names the header: {text}");
    assert!(text.contains("0 passed, 1 failed"), "{text}");
}

#[test]
fn an_http2_request_in_a_scenario_gets_no_framing_headers() {
    // Over HTTP/1.1 the client's content-length frames the same body.
    let text = |http2: bool| {
        format!(
            "wasm: {}\nplugin:\n  config: {{ requestHeaders: {{ x-stamp: hello }} }}\nrequests:\n  - request: {{ method: POST, path: /, chunks: [a, b], http2: {http2} }}\n    expect:\n      upstream: {{ headers: {{ content-length: null, transfer-encoding: null }}, body: ab }}\n",
            stamp_wasm().display()
        )
    };
    let out = harness(&workspace(), &["run", scenario("http2.yaml", &text(true)).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let out = harness(&workspace(), &["run", scenario("http1.yaml", &text(false)).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "over HTTP/1.1 it has a length: {}", stdout(&out));
    assert!(stdout(&out).contains("content-length"), "{}", stdout(&out));
}

#[test]
fn run_of_a_malformed_scenario_exits_2_naming_file_line_and_field() {
    let text = format!("wasm: {}\nrequests:\n  - request:\n      path: /\n    expect:\n      statuss: 200\n", stamp_wasm().display());
    let path = scenario("malformed.yaml", &text);
    let out = harness(&workspace(), &["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:6:", path.display())), "file and line of `statuss`: {err}");
    assert!(err.contains("requests[0].expect.statuss"), "field path: {err}");
}

#[test]
fn bench_reports_instructions_per_request() {
    let wasm = stamp_wasm();
    let out = harness(&workspace(), &["bench", "--wasm", wasm.to_str().unwrap(), "--requests", "2000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("instructions/request"), "{text}");
    assert!(text.contains("requests               2000"), "{text}");
}

#[test]
fn bench_profile_counts_instructions_per_callback_and_keeps_json_parseable() {
    let wasm = stamp_wasm();
    let out = harness(&workspace(), &["bench", "--wasm", wasm.to_str().unwrap(), "--requests", "2000", "--profile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("instructions per call, by callback"), "{text}");
    assert!(text.contains("calls  proxy_on_request_headers"), "{text}");
    assert!(text.contains("profile: "), "{text}");
    let out = harness(&workspace(), &["bench", "--wasm", wasm.to_str().unwrap(), "--requests", "2000", "--profile", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["instructions_per_request"].as_f64().unwrap() > 0.0, "{report:#}");
    assert!(stderr(&out).contains("calls  proxy_on_request_headers"), "{}", stderr(&out));
}

#[test]
fn bench_json_instructions_per_request_are_positive_and_identical_across_runs() {
    let wasm = stamp_wasm();
    let bench = || {
        let out = harness(&workspace(), &["bench", "--wasm", wasm.to_str().unwrap(), "--requests", "2000", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["not_completed"], 0, "{report:#}");
        report["instructions_per_request"].as_f64().unwrap()
    };
    let first = bench();
    assert!(first > 0.0, "{first}");
    assert_eq!(bench(), first);
}

#[test]
fn an_unknown_option_exits_2_with_the_usage() {
    let out = harness(&workspace(), &["run", "--frobnicate", "examples/scenarios/stamp.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown option --frobnicate"), "{err}");
    assert!(err.contains("usage:"), "{err}");
}

#[test]
fn run_envoy_like_prints_start_up_ticks_and_stream_lines_in_envoys_words() {
    let probe = workspace().join("target/wasm32-wasip1/release/probe_fixture.wasm");
    let text = format!(
        r#"wasm: {}
plugin:
  rootId: probe
  config:
    onConfigure: [{{ log: {{ level: warn, message: configured }} }}, {{ tickPeriod: {{ ms: 1000 }} }}]
    onTick: [{{ log: {{ level: info, message: ticked }} }}]
    onRequestHeaders:
      - {{ httpCall: {{ cluster: authz, timeoutMs: 200, headers: [[":method", GET], [":path", /], [":authority", authz]] }} }}
      - {{ returnAction: pause }}
    onHttpCallResponse: [{{ getHeader: {{ map: httpCallResponse, name: ":status", to: {{ map: request, name: x-status }} }} }}]
  clusters: {{ authz: {{ status: 200 }} }}
requests:
  - advanceMs: 2500
    request: {{ path: / }}
    calls: {{ authz: [{{ status: 200, delayMs: 500 }}] }}
    expect:
      upstream: {{ headers: {{ x-status: "504", x-envoy-expected-rq-timeout-ms: ["15000"], x-absent: null }} }}
  - request: {{ path: / }}
    expect:
      upstream: {{ headers: {{ x-status: "200" }} }}
"#,
        probe.display()
    );
    let path = scenario("envoy-like.yaml", &text);
    let out = harness(&workspace(), &["run", "--envoy-like", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    // Three VMs start (the main thread's check, its VM, one worker's).
    assert_eq!(text.matches("start: [warning][wasm] wasm log probe: configured").count(), 3, "{text}");
    // Two ticks in 2.5 s for each of the two VMs that live.
    assert_eq!(text.matches("before it: [info][wasm] wasm log probe: ticked").count(), 4, "{text}");
}
