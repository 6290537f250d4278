//! The published JSON Schemas of the filters' `pluginConfig` against the
//! filters themselves: every schema is valid draft 2020-12; every
//! `examples/istio/` pluginConfig validates; and, config by config, the
//! schema accepts what the compiled module accepts (run in the harness) and
//! refuses what it refuses. What a schema cannot say (sums, uniqueness by
//! name, regex syntax, duration bounds) is listed per filter, and the list is
//! checked too: each entry must really pass the schema and fail the module.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::istio_translate::wasm_plugins;
use e2e::manifests::yaml_files;
use e2e::pin::filter_of_url;
use e2e::schemas::{FilterSchema, FILTERS};
use e2e::{wasm_module, workspace_root};
use harness::{Module, Plugin, PluginConfig, SharedState};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const HASH_KEY_ENV: &str = "MIRROR_SANITIZER_HASH_KEY";

/// A filter's compiled module, compiled once per test process.
fn module(filter: &str) -> Module {
    static MODULES: OnceLock<Mutex<HashMap<String, Module>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Mutex::default).lock().unwrap();
    let load = || Module::load(wasm_module(&filter.replace('-', "_")).unwrap()).unwrap();
    modules.entry(filter.to_string()).or_insert_with(load).clone()
}

/// Whether the compiled module starts with `config` (Envoy would load it).
fn module_accepts(filter: &str, config: &Value) -> bool {
    let module = module(filter);
    let plugin = PluginConfig::new(filter).json(config).env(HASH_KEY_ENV, "schema-test-key-0123456789");
    Plugin::start(&module, plugin, SharedState::new()).is_ok()
}

/// One filter's corpus: configs it accepts, configs it refuses, and the
/// refused ones the schema cannot catch (with why).
struct Corpus {
    filter: &'static str,
    accepted: Vec<Value>,
    refused: Vec<Value>,
    schema_cannot: Vec<(Value, &'static str)>,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn header_router() -> Corpus {
    let refused = [
        r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a","weight":90},{"value":"b"}]}]}"#,
        r#"{"routes":[{"match":[],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{}],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a"}],"timeout":"1s"}]}"#,
        r#"{"routes":[{"match":[{"headers":{"User-Agent":{"exact":"x"}}}],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{"queryParams":{"q":{"prefix":"x"}}}],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{"headers":{"uri":{"exact":"/"}}}],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{"port":70000}],"route":[{"value":"a"}]}]}"#,
        r#"{"routes":[{"match":[{"uri":{"exact":"/","prefix":"/"}}],"route":[{"value":"a"}]}]}"#,
        r#"{"header":":path","default":"x"}"#,
        r#"{"mode":"clusterHeader","default":"bad cluster"}"#,
        r#"{"default":"a\nb"}"#,
        r#"{}"#,
        r#"{"default":"x","sticky":{"cookie":""}}"#,
    ];
    Corpus {
        filter: "header-router",
        accepted: vec![
            parse(r#"{"routes":[{"match":[{"sourcePrincipal":"spiffe://cluster.local/ns/a/sa/b"}],"route":[{"value":"x"}]},{"match":[{"port":8080}],"route":[{"value":"y"}]}]}"#),
            parse(r#"{"mode":"clusterHeader","header":"x-cluster","default":"backend","sticky":{"header":"x-user"}}"#),
        ],
        refused: refused.iter().map(|t| parse(t)).collect(),
        schema_cannot: vec![
            (parse(r#"{"routes":[{"match":[{"headers":{"ua":{"regex":"(x"}}}],"route":[{"value":"a"}]}]}"#), "regex syntax"),
            (parse(r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a","weight":90},{"value":"b","weight":20}]}]}"#), "weights must sum to 100"),
        ],
    }
}

fn retry_hints() -> Corpus {
    let rule = |extra: &str| format!(r#"{{"rules":[{{"timeout":"1s"}}]{extra}}}"#);
    let refused = vec![
        parse(r#"{"rules":[{"retry":{"attempts":3,"perTryTimeout":"2"}}]}"#),
        parse(r#"{"rules":[{"timeout":"ten seconds"}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":3,"retryOn":"5xx,sometimes"}}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":11}}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":-1}}]}"#),
        parse(r#"{"rules":[{"retry":{"perTryTimeout":"1s"}}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":1,"jitter":"1s"}}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":1,"backoff":"soon"}}]}"#),
        parse(r#"{"rules":[{"timeout":"1s","mirror":{}}]}"#),
        parse(&rule(r#","budget":{"retryRatio":1.5}"#)),
        parse(&rule(r#","budget":{"ttl":"10s"}"#)),
        parse(r#"{"rules":[{"name":"a"}]}"#),
        parse(r#"{"rules":[{"name":"a b","timeout":"1s"}]}"#),
        parse(r#"{"rules":[{"match":[{}],"timeout":"1s"}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":1,"retriableStatusCodes":[700]}}]}"#),
        parse(r#"{"rules":[{"retry":{"attempts":1,"retriableHeaders":["X-Retry"]}}]}"#),
        parse(&rule(r#","idempotentMethods":["post"]"#)),
        parse(r#"{"rules":[{"timeout":"1s","idempotentMethods":["GET","get"]}]}"#),
        parse(&rule(r#","idempotencyKeyHeader":"""#)),
        parse(r#"{"rules":[]}"#),
        parse(&rule(r#","maxRetryBodyBytes":-1"#)),
    ];
    Corpus {
        filter: "retry-hints",
        accepted: vec![
            parse(r#"{"rules":[{"name":"grpc","match":[{"headers":{"content-type":{"prefix":"application/grpc"}}}],"retries":{"attempts":2,"retryOn":"unavailable,503"},"idempotentMethods":["POST"]}]}"#),
            parse(r#"{"rules":[{"retry":{"attempts":0}}],"retryAfter":"1.5s","budget":{"window":"1m30s"}}"#),
        ],
        refused,
        schema_cannot: vec![
            (parse(r#"{"rules":[{"retry":{"attempts":3,"perTryTimeout":"0s"}}]}"#), "a duration's lower bound (1ms)"),
            (parse(&rule(r#","budget":{"window":"100ms"}"#)), "a duration's range (1s to 10m)"),
            (parse(&rule(r#","retryAfter":"0s""#)), "a duration's lower bound (1s)"),
            (parse(r#"{"rules":[{"name":"a","timeout":"1s"},{"name":"a","timeout":"2s"}]}"#), "rule names unique"),
            (parse(r#"{"rules":[{"match":[{"uri":{"regex":"("}}],"timeout":"1s"}]}"#), "regex syntax"),
        ],
    }
}

fn principal_authz() -> Corpus {
    let policy = |rules: Value| json!({ "policies": [{ "name": "p", "action": "ALLOW", "rules": rules }] });
    Corpus {
        filter: "principal-authz",
        accepted: vec![
            json!({}),
            policy(json!([
                { "from": [{ "source": { "ipBlocks": ["10.0.0.0/8"] } }], "to": [{ "operation": { "ports": ["8080"], "hosts": ["[::1]", "a.example"] } }] },
                { "when": [{ "key": "connection.sni", "values": ["a"] }, { "key": "destination.ip", "values": ["10.0.0.1"] }] },
            ])),
            json!({ "jwt": { "payloadInMetadata": ["https://issuer.example"] }, "policies": [{ "name": "p", "rules": [
                { "when": [{ "key": "request.auth.claims[realm][roles]", "values": ["admin"] }] }] }] }),
        ],
        refused: vec![
            policy(json!([{ "from": [{ "source": { "principals": [""] } }] }])),
            policy(json!([{ "from": [{ "source": { "principals": ["spiffe://cluster.local/ns/a/sa/b"] } }] }])),
            policy(json!([{ "from": [{ "source": { "principal": ["a"] } }] }])),
            policy(json!([{ "from": [{ "source": {} }] }])),
            policy(json!([{ "when": [{ "key": "request.auth.claims", "values": ["a"] }] }])),
            policy(json!([{ "when": [{ "key": "request.auth.claims[a]x", "values": ["a"] }] }])),
            policy(json!([{ "when": [{ "key": "request.auth.claims[]", "values": ["a"] }] }])),
            json!({ "jwt": { "payloadInMetadata": [""] } }),
            policy(json!([{ "to": [{ "operation": { "methods": ["get"] } }] }])),
            policy(json!([{ "to": [{ "operation": { "ports": ["http"] } }] }])),
            policy(json!([{ "to": [{ "operation": { "hosts": ["a.example:8080"] } }] }])),
            policy(json!([{ "to": [{ "operation": {} }] }])),
            policy(json!([{ "when": [{ "key": "request.regex.headers[x]", "values": ["a"] }] }])),
            policy(json!([{ "when": [{ "key": "request.auth.type", "values": ["a"] }] }])),
            policy(json!([{ "when": [{ "key": "request.headers[]", "values": ["a"] }] }])),
            policy(json!([{ "when": [{ "key": "source.ip" }] }])),
            policy(json!([{ "when": [{ "key": "destination.port", "values": ["0"] }] }])),
            json!({ "policies": [{ "name": "p", "action": "CUSTOM" }] }),
            json!({ "policies": [{ "name": "" }] }),
            json!({ "policies": [{ "name": "a", "selector": {} }] }),
            json!({ "denyStatus": 42 }),
            json!({ "xfcc": { "trustedProxies": [] } }),
            json!({ "dryrun": true }),
        ],
        schema_cannot: vec![
            (policy(json!([{ "to": [{ "operation": { "paths": ["/ok", "/foo/{*}.txt"] } }] }])), "path template rules"),
            (policy(json!([{ "to": [{ "operation": { "notPaths": ["/a/*/b"] } }] }])), "path wildcard rules"),
            (policy(json!([{ "to": [{ "operation": { "paths": ["/foo/{**}/bar"] } }] }])), "path template rules"),
            (policy(json!([{ "from": [{ "source": { "ipBlocks": ["10.0.0.0/33"] } }] }])), "CIDR prefix bounds"),
            (policy(json!([{ "from": [{ "source": { "requestPrincipals": ["*"] } }] }])), "JWT conditions need `jwt` (a rule deep in the policies)"),
            (json!({ "policies": [{ "name": "a" }, { "name": "a" }] }), "policy names unique"),
        ],
    }
}

fn mirror_sanitizer() -> Corpus {
    let refused = [
        r#"{"rules":[{"fields":["u"],"mode":"hash"}]}"#,
        r#"{"hashKey":{"value":"short-key"}}"#,
        r#"{"hashKey":{"value":"0123456789abcdef","env":"X"}}"#,
        r#"{"rules":[{"name":"x"}]}"#,
        r#"{"rules":[{"headers":["Authorization"]}]}"#,
        r#"{"rules":[{"headers":["host"]}]}"#,
        r#"{"rules":[{"pathSegments":["/users/{id}"],"mode":"remove"}]}"#,
        r#"{"rules":[{"pathSegments":["users/{id}"]}]}"#,
        r#"{"rules":[{"pathSegments":["/users/id"]}]}"#,
        r#"{"rules":[{"jsonPointers":["a/b"]}]}"#,
        r#"{"rules":[{"jsonPointers":["/a~2"]}]}"#,
        r#"{"rules":[{"detectors":["passport"]}]}"#,
        r#"{"rules":[{"classes":["secret"]}]}"#,
        r#"{"vocabulary":{"credential":["--"]}}"#,
        r#"{"allowlist":{"names":["id"],"colour":"red"}}"#,
        r#"{"rules":[{"fields":["a"],"mode":"remove","keepLast":4}]}"#,
        r#"{"rules":[{"name":"a b","fields":["a"]}]}"#,
        r#"{"rules":[{"fields":["a"],"placeholder":"x\ny"}]}"#,
        r#"{"rules":[{"headers":["cookie"],"mode":"hash"}],"hashKey":{"value":"0123456789abcdef"}}"#,
        r#"{"shadow":{"match":"header"}}"#,
        r#"{"shadow":{"match":"hostSuffix","suffix":"-shadow:80"}}"#,
        r#"{"shadow":{"match":"all","suffix":"x"}}"#,
        r#"{"shadow":{"match":"sometimes"}}"#,
        r#"{"maxBodyBytes":0}"#,
        r#"{"onUnsanitizable":"pass"}"#,
        r#"{"builtinRules":false}"#,
        r#"{"rules":[{"fields":["a"],"colour":"red"}]}"#,
        r#"{"protoDescriptorBin":"%%%"}"#,
        r#"{"protoDescriptorBin":""}"#,
        r#"{"protoDescriptorBin":7}"#,
    ];
    Corpus {
        filter: "mirror-sanitizer",
        accepted: vec![
            json!({}),
            json!({ "shadow": { "match": "header", "header": "x-shadow", "removeHeader": false }, "rules": [{ "headers": ["cookie"], "mode": "remove" }] }),
            json!({ "hashKey": { "env": HASH_KEY_ENV }, "rules": [{ "cookies": ["uid"], "mode": "hash" }], "onUnsanitizable": "reject" }),
            // package p; message M {} service S { rpc C(M) returns (M); }
            json!({ "protoDescriptorBin": "CicKB3AucHJvdG8SAXAiAwoBTTIUCgFTEg8KAUMSBC5wLk0aBC5wLk0=" }),
        ],
        refused: refused.iter().map(|t| parse(t)).collect(),
        schema_cannot: vec![
            (parse(r#"{"rules":[{"headerPatterns":["x-("]}]}"#), "regex syntax"),
            (parse(r#"{"rules":[{"patterns":["a*"]}]}"#), "a regex that matches the empty string"),
            (parse(r#"{"rules":[{"name":"a","fields":["a"]},{"name":"a","fields":["b"]}]}"#), "rule names unique"),
            (json!({ "hashKey": { "env": "NOT_SET_ANYWHERE" } }), "the key's variable must be set in the proxy's environment"),
            (json!({ "protoDescriptorBin": "CgkKB3AucHJvdG8=" }), "a descriptor set that declares a service, its types resolvable"),
        ],
    }
}

fn check(corpus: Corpus) {
    let schema = FilterSchema::load(corpus.filter).unwrap();
    let mut wrong = Vec::new();
    for config in &corpus.accepted {
        if !module_accepts(corpus.filter, config) {
            wrong.push(format!("the module refuses a config listed as accepted: {config}"));
        }
        let v = schema.violations(config);
        if !v.is_empty() {
            wrong.push(format!("the schema refuses {config}: {v:?}"));
        }
    }
    for config in &corpus.refused {
        if module_accepts(corpus.filter, config) {
            wrong.push(format!("the module accepts a config listed as refused: {config}"));
        }
        if schema.accepts(config) {
            wrong.push(format!("the schema accepts {config}, which the filter refuses"));
        }
    }
    for (config, why) in &corpus.schema_cannot {
        if module_accepts(corpus.filter, config) {
            wrong.push(format!("listed as a difference ({why}) but the module accepts {config}"));
        }
        if !schema.accepts(config) {
            wrong.push(format!("listed as a difference ({why}) but the schema refuses {config}: remove it from the list"));
        }
    }
    assert!(wrong.is_empty(), "{}:\n{}", corpus.filter, wrong.join("\n"));
}

#[test]
fn every_schema_is_valid_draft_2020_12() {
    for filter in FILTERS {
        let schema = FilterSchema::load(filter).unwrap();
        assert_eq!(schema.document["$id"], format!("urn:mesh-wasm-filters:schema:{filter}"));
    }
}

#[test]
fn every_example_plugin_config_validates_against_its_schema() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for file in yaml_files(&workspace_root().join("examples/istio")) {
        for plugin in wasm_plugins(&std::fs::read_to_string(&file).unwrap()).unwrap() {
            let filter = filter_of_url(&plugin.url).unwrap();
            let schema = FilterSchema::load(filter).unwrap();
            let config = plugin.plugin_config.clone().unwrap_or(json!({}));
            for v in schema.violations(&config) {
                problems.push(format!("{}: {} pluginConfig{v}", file.display(), plugin.name));
            }
            assert!(module_accepts(filter, &config), "{}: the module refuses the example", file.display());
            checked += 1;
        }
    }
    assert_eq!(checked, FILTERS.len(), "one WasmPlugin per filter in examples/istio");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_schema_error_points_at_the_field() {
    let schema = FilterSchema::load("retry-hints").unwrap();
    let v = schema.violations(&json!({ "rules": [{ "retry": { "attempts": 11 } }] }));
    assert!(v.iter().any(|e| e.starts_with("/rules/0/retry/attempts: ")), "{v:?}");
}

#[test]
fn header_router_schema_matches_the_filter() {
    check(header_router());
}

#[test]
fn retry_hints_schema_matches_the_filter() {
    check(retry_hints());
}

#[test]
fn principal_authz_schema_matches_the_filter() {
    check(principal_authz());
}

#[test]
fn mirror_sanitizer_schema_matches_the_filter() {
    check(mirror_sanitizer());
}
