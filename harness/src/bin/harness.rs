//! `harness`: run a compiled proxy-wasm filter module without an Envoy.
//!
//!   harness run   --wasm F [--config C] SCENARIO.yaml [--json | --envoy-like]
//!   harness bench --wasm F [--config C] [--scenario S] [--requests N] [--json] [--profile]

use harness::scenario::Scenario;
use harness::{bench, report, Module, PluginConfig, Request, UpstreamResponse};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  harness run   [--wasm FILE] [--config FILE] SCENARIO.yaml [--json | --envoy-like]
  harness bench --wasm FILE [--config FILE] [--scenario FILE] [--requests N] [--json] [--profile]

run    plays a scenario (plugin, requests, expectations) and reports each request;
       exits 1 if an expectation fails. --wasm overrides the scenario's module,
       --config its pluginConfig (a file, passed as it is). --envoy-like prints
       the module's log lines as Envoy's log does.
bench  sends requests (the scenario's, or a plain GET) and reports per request
       the wasm instructions executed, host calls, linear memory, and throughput.
       --profile adds where the time goes, by function (sampled; names need a
       module built with its name section, as `make profile` builds them).";

#[derive(Default)]
struct Args {
    command: String,
    wasm: Option<PathBuf>,
    config: Option<PathBuf>,
    scenario: Option<PathBuf>,
    requests: u64,
    json: bool,
    profile: bool,
    envoy_like: bool,
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args { requests: 20_000, command: raw.next().ok_or("no command")?, ..Args::default() };
    while let Some(arg) = raw.next() {
        let mut value = |flag: &str| raw.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--wasm" => args.wasm = Some(value("--wasm")?.into()),
            "--config" => args.config = Some(value("--config")?.into()),
            "--scenario" => args.scenario = Some(value("--scenario")?.into()),
            "--requests" => args.requests = value("--requests")?.parse().map_err(|_| "--requests takes a number")?,
            "--json" => args.json = true,
            "--profile" => args.profile = true,
            "--envoy-like" => args.envoy_like = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            file if args.scenario.is_none() => args.scenario = Some(file.into()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    Ok(args)
}

/// Prints to stdout; a closed pipe (`| head`) ends the output quietly.
fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn read_config(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, String> {
    match path {
        Some(p) => std::fs::read(p).map(Some).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(None),
    }
}

/// The module: `--wasm`, else the scenario's `wasm`, relative to the scenario file.
fn module_path(args: &Args, scenario: Option<&Scenario>) -> Result<PathBuf, String> {
    if let Some(w) = &args.wasm {
        return Ok(w.clone());
    }
    let from_scenario = scenario.and_then(|s| s.wasm.clone()).ok_or("no module: pass --wasm FILE")?;
    let base = args.scenario.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
    Ok(base.join(from_scenario))
}

fn run(args: &Args) -> Result<bool, String> {
    let path = args.scenario.as_ref().ok_or("run needs a scenario file")?;
    let scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    let module = Module::load(module_path(args, Some(&scenario))?).map_err(|e| e.to_string())?;
    let report = report::play(&module, &scenario, read_config(&args.config)?).map_err(|e| e.to_string())?;
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?));
    } else if args.envoy_like {
        emit(&report.envoy_text());
    } else {
        emit(&report.text());
    }
    Ok(report.failed == 0)
}

fn bench(args: &Args) -> Result<bool, String> {
    if args.profile {
        harness::profile::enable();
    }
    let scenario = match &args.scenario {
        Some(p) => Some(Scenario::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let module = Module::load(module_path(args, scenario.as_ref())?).map_err(|e| e.to_string())?;
    let mut config = scenario.as_ref().map(Scenario::plugin_config).unwrap_or_else(|| PluginConfig::new("bench"));
    if let Some(bytes) = read_config(&args.config)? {
        config.configuration = bytes;
    }
    let requests: Vec<(Request, UpstreamResponse)> = match &scenario {
        Some(s) => s
            .requests
            .iter()
            .map(|step| (step.to_request(), step.to_upstream()))
            .collect(),
        None => vec![(
            Request::get("/api/orders?id=7").header("user-agent", "bench/1.0").header("accept", "*/*"),
            UpstreamResponse::ok().header("content-type", "application/json").body("{}"),
        )],
    };
    let ticker = args.profile.then(|| harness::profile::Ticker::start(harness::module::engine(), std::time::Duration::from_micros(20)));
    let report = bench::run(&module, config, &requests, args.requests).map_err(|e| e.to_string())?;
    drop(ticker);
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?));
    } else {
        emit(&report.to_string());
    }
    if args.profile {
        // With --json the report stays parseable: the profile goes to stderr.
        let profile = harness::profile::report(30);
        if args.json {
            eprint!("{profile}");
        } else {
            emit(&profile);
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("harness: {e}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command.as_str() {
        "run" => run(&args),
        "bench" => bench(&args),
        other => Err(format!("unknown command {other}\n\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::from(2)
        }
    }
}
