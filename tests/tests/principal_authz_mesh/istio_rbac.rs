//! The same AuthorizationPolicies as Istio 1.30's istiod renders them for a
//! sidecar: Envoy's native RBAC filters (DENY, then ALLOW), and Istio's
//! default path normalization on the connection manager. Written after
//! istio/istio `pilot/pkg/security/authz` (the builder, `model` and
//! `matcher` packages) for the fields the tests' policies use: principals,
//! hosts, methods, paths, and `request.headers[…]` conditions.

use serde_json::{json, Map, Value};

/// Istio's `StringMatcherWithPrefix`: `*` is the regex `.+`, `*x` a suffix
/// (a regex when a prefix is inserted), `x*` a prefix, anything else exact.
fn string_matcher(value: &str, inserted_prefix: &str) -> Value {
    if value == "*" {
        json!({ "safe_regex": { "regex": ".+" } })
    } else if let Some(suffix) = value.strip_prefix('*') {
        if inserted_prefix.is_empty() {
            json!({ "suffix": suffix })
        } else {
            json!({ "safe_regex": { "regex": format!("{inserted_prefix}.*{suffix}") } })
        }
    } else if let Some(prefix) = value.strip_suffix('*') {
        json!({ "prefix": format!("{inserted_prefix}{prefix}") })
    } else {
        json!({ "exact": format!("{inserted_prefix}{value}") })
    }
}

/// Istio's `HeaderMatcher`: `*` is presence.
fn header_matcher(name: &str, value: &str, ignore_case: bool) -> Value {
    if value == "*" {
        return json!({ "name": name, "present_match": true });
    }
    let mut m = string_matcher(value, "");
    if ignore_case {
        m["ignore_case"] = json!(true);
    }
    json!({ "name": name, "string_match": m })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

/// Whether a field becomes permissions (`or_rules`, `not_rule`) or
/// principals (`or_ids`, `not_id`).
#[derive(Clone, Copy)]
enum Side {
    Permission,
    Principal,
}

impl Side {
    fn any_of(self, items: Vec<Value>) -> Value {
        match self {
            Self::Permission => json!({ "or_rules": { "rules": items } }),
            Self::Principal => json!({ "or_ids": { "ids": items } }),
        }
    }

    fn not(self, inner: Value) -> Value {
        match self {
            Self::Permission => json!({ "not_rule": inner }),
            Self::Principal => json!({ "not_id": inner }),
        }
    }
}

/// One field: its values ORed, its `not` values ORed and negated.
fn field(spec: &Value, name: &str, not_name: &str, one: &dyn Fn(&str) -> Value, side: Side) -> Vec<Value> {
    let mut out = Vec::new();
    let values = strings(&spec[name]);
    if !values.is_empty() {
        out.push(side.any_of(values.iter().map(|v| one(v)).collect()));
    }
    let not_values = strings(&spec[not_name]);
    if !not_values.is_empty() {
        out.push(side.not(side.any_of(not_values.iter().map(|v| one(v)).collect())));
    }
    out
}

fn permission(op: &Value) -> Value {
    let path = |v: &str| json!({ "url_path": { "path": string_matcher(v, "") } });
    let method = |v: &str| json!({ "header": header_matcher(":method", v, false) });
    let host = |v: &str| json!({ "header": header_matcher(":authority", v, true) });
    let mut rules = Vec::new();
    rules.extend(field(op, "hosts", "notHosts", &host, Side::Permission));
    rules.extend(field(op, "methods", "notMethods", &method, Side::Permission));
    rules.extend(field(op, "paths", "notPaths", &path, Side::Permission));
    json!({ "and_rules": { "rules": rules } })
}

fn principal_ids(source: &Value) -> Vec<Value> {
    let principal = |v: &str| json!({ "authenticated": { "principal_name": string_matcher(v, "spiffe://") } });
    field(source, "principals", "notPrincipals", &principal, Side::Principal)
}

/// `request.headers[name]` conditions, as principals (where Istio puts them).
fn condition_ids(when: &Value) -> Vec<Value> {
    let mut ids = Vec::new();
    for c in when.as_array().into_iter().flatten() {
        let key = c["key"].as_str().unwrap_or_default();
        let name = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')).unwrap_or_else(|| panic!("only header conditions: {key}"));
        let header = |v: &str| json!({ "header": header_matcher(name, v, false) });
        let spec = json!({ "values": c["values"], "notValues": c["notValues"] });
        ids.extend(field(&spec, "values", "notValues", &header, Side::Principal));
    }
    ids
}

fn rule(rule: &Value) -> Value {
    let to: Vec<&Value> = rule["to"].as_array().into_iter().flatten().collect();
    let permissions: Vec<Value> = if to.is_empty() { vec![json!({ "any": true })] } else { to.iter().map(|t| permission(&t["operation"])).collect() };
    let conditions = condition_ids(&rule["when"]);
    let from: Vec<&Value> = rule["from"].as_array().into_iter().flatten().collect();
    let principals: Vec<Value> = if from.is_empty() {
        let ids = if conditions.is_empty() { vec![json!({ "any": true })] } else { conditions };
        vec![json!({ "and_ids": { "ids": ids } })]
    } else {
        from.iter()
            .map(|f| {
                let mut ids = principal_ids(&f["source"]);
                ids.extend(conditions.iter().cloned());
                json!({ "and_ids": { "ids": ids } })
            })
            .collect()
    };
    json!({ "permissions": permissions, "principals": principals })
}

/// The RBAC filters for `config["policies"]` of namespace `ns`: a DENY
/// filter, then an ALLOW filter, each only if such policies exist.
pub fn filters(config: &Value, ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for action in ["DENY", "ALLOW"] {
        let mut policies = Map::new();
        for p in config["policies"].as_array().into_iter().flatten() {
            if p["action"].as_str().unwrap_or("ALLOW") != action {
                continue;
            }
            let name = p["name"].as_str().unwrap_or_default();
            for (i, r) in p["rules"].as_array().into_iter().flatten().enumerate() {
                policies.insert(format!("ns[{ns}]-policy[{name}]-rule[{i}]"), rule(r));
            }
        }
        let any = config["policies"].as_array().into_iter().flatten().any(|p| p["action"].as_str().unwrap_or("ALLOW") == action);
        if any {
            out.push(json!({
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": { "action": action, "policies": policies },
                },
            }));
        }
    }
    out
}

/// Istio's default `pathNormalization` (BASE): `normalize_path`, slashes
/// neither merged nor unescaped.
pub fn connection_manager_settings() -> [(&'static str, Value); 3] {
    [("normalize_path", json!(true)), ("merge_slashes", json!(false)), ("path_with_escaped_slashes_action", json!("KEEP_UNCHANGED"))]
}

#[test]
fn the_translation_has_istios_shape() {
    let config = json!({ "policies": [{ "name": "p", "action": "ALLOW", "rules": [{
        "from": [{ "source": { "principals": ["cluster.local/ns/billing/*"] } }],
        "to": [{ "operation": { "methods": ["GET"], "paths": ["/api/*"] } }],
        "when": [{ "key": "request.headers[x-env]", "notValues": ["dev"] }] }] }] });
    let f = filters(&config, "payments");
    assert_eq!(f.len(), 1);
    let policy = &f[0]["typed_config"]["rules"]["policies"]["ns[payments]-policy[p]-rule[0]"];
    assert_eq!(
        policy["permissions"][0],
        json!({ "and_rules": { "rules": [
            { "or_rules": { "rules": [{ "header": { "name": ":method", "string_match": { "exact": "GET" } } }] } },
            { "or_rules": { "rules": [{ "url_path": { "path": { "prefix": "/api/" } } }] } }] } })
    );
    assert_eq!(
        policy["principals"][0],
        json!({ "and_ids": { "ids": [
            { "or_ids": { "ids": [{ "authenticated": { "principal_name": { "prefix": "spiffe://cluster.local/ns/billing/" } } }] } },
            { "not_id": { "or_ids": { "ids": [{ "header": { "name": "x-env", "string_match": { "exact": "dev" } } }] } } }] } })
    );
}
