"""What `make bench-envoy` measures: one Envoy bootstrap per setup, each a
filter's common path, the native Envoy way of doing the same job, a Lua
filter doing it, and the bare Envoy each is compared with.

A setup is a dict: name, the baseline it is compared with, the job it does,
the Envoy bootstrap (JSON), and the request wrk sends. Every route that the
job does not select answers 404, so a filter that stops doing its job makes
the run invalid (any non-2xx does) instead of quietly cheaper.
"""

import json

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
WASM = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
CODEC = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"

# Room for the 1 MiB bodies: the listener's and clusters' buffers, and the
# sanitizer's own limit, are all above them.
BUFFER_LIMIT = 8 * 1024 * 1024
HASH_KEY_ENV = "MIRROR_SANITIZER_HASH_KEY"

MOBILE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
SERVICE_HOST = "my-service:8080"

# The filters' configurations: each filter's common case, as its README shows it.
ROUTER_CONFIG = {
    "routes": [
        {"name": "mobile", "match": [{"headers": {"user-agent": {"regex": ".*Mobile.*"}}}], "route": [{"value": "my-service-mobile"}]},
        {"name": "desktop", "match": [{"headers": {"user-agent": {"regex": ".*Desktop.*"}}}], "route": [{"value": "my-service-desktop"}]},
        {"name": "api", "match": [{"uri": {"prefix": "/api"}}], "route": [{"value": "api-service"}]},
    ],
    "default": "frontend",
}
ROUTE_HEADER = "x-route-destination"

# wrk sends no client certificate, so the policy allows by operation only;
# the principal rule of the README's example would deny every request here.
AUTHZ_CONFIG = {
    "policies": [
        {"name": "api-reads", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}]}]},
        {"name": "no-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/api/admin", "/api/admin/*"]}}]}]},
    ]
}

RETRY_CONFIG = {
    "rules": [
        {"name": "my-service", "match": [{"authority": {"prefix": "my-service"}}],
         "retry": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,refused-stream"}, "timeout": "10s"},
    ]
}

SANITIZER_CONFIG = {
    "shadow": {"match": "hostSuffix"},
    "rules": [
        {"name": "user-id", "fields": ["user_id", "userId"], "pathSegments": ["/users/{id}"], "cookies": ["uid"], "mode": "hash"},
        {"name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4},
    ],
    "hashKey": {"env": HASH_KEY_ENV},
    "maxBodyBytes": BUFFER_LIMIT // 2,
    "onUnsanitizable": "dropBody",
}

# The probe fixture runs the host calls its configuration scripts.
PROBE_EMPTY = {}
PROBE_ONE_READ = {"onRequestHeaders": [{"getHeader": {"map": "request", "name": "user-agent", "to": {"map": "request", "name": "x-seen"}}}]}


def socket(port, host="127.0.0.1"):
    return {"socket_address": {"address": host, "port_value": port}}


def cluster(name, port):
    return {
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(port)}}]}]},
    }


def wasm(module, root_id, config, failure_policy="FAIL_CLOSED", vm_id=""):
    vm_config = {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module)}}}
    if vm_id:
        # Plugins whose vm_config is the same share one VM per worker.
        vm_config["vm_id"] = vm_id
    vm_config["environment_variables"] = {"host_env_keys": [HASH_KEY_ENV]}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": WASM, "config": {
            "name": root_id, "root_id": root_id,
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(config)},
            "failure_policy": failure_policy,
            "vm_config": vm_config,
        }},
    }


def lua(code):
    return {"name": "envoy.filters.http.lua", "typed_config": {"@type": LUA, "default_source_code": {"inline_string": code}}}


def direct(status=200, body="ok"):
    return {"direct_response": {"status": status, "body": {"inline_string": body}}}


def catch_all_404():
    return {"match": {"prefix": "/"}, **direct(404, "not routed")}


def header_is(name, value):
    return [{"name": name, "string_match": {"exact": value}}]


def to_upstream(mirror=False, retry=False):
    route = {"cluster": "upstream", "timeout": "15s"}
    if mirror:
        route["request_mirror_policies"] = [{"cluster": "shadow"}]
    if retry:
        route["retry_policy"] = {"retry_on": "5xx,connect-failure,refused-stream", "num_retries": 3, "per_try_timeout": "2s"}
        route["timeout"] = "10s"
    return {"route": route}


def bootstrap(admin_port, port, upstream_port, routes, filters=(), upstream_filters=None):
    """`upstream_filters`: None for no upstream filter chain, a list (even
    empty) for a chain of those filters and the codec."""
    router = {"@type": ROUTER}
    if upstream_filters is not None:
        router["upstream_http_filters"] = list(upstream_filters) + [{"name": "envoy.filters.http.upstream_codec", "typed_config": {"@type": CODEC}}]
    hcm = {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": "ingress",
        "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": list(filters) + [{"name": "envoy.filters.http.router", "typed_config": router}],
    }}
    return {
        "admin": {"address": socket(admin_port)},
        "static_resources": {
            "listeners": [{"name": "ingress", "address": socket(port), "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
                           "filter_chains": [{"filters": [hcm]}]}],
            "clusters": [cluster("upstream", upstream_port), cluster("shadow", upstream_port)],
        },
    }


def upstream_bootstrap(admin_port, port):
    """The upstream every proxied setup sends to: reads the whole body (so
    1 MiB posts are taken, not reset), then answers 200."""
    buffer = {"name": "envoy.filters.http.buffer", "typed_config": {"@type": BUFFER, "max_request_bytes": BUFFER_LIMIT}}
    return bootstrap(admin_port, port, port, [{"match": {"prefix": "/"}, **direct()}], filters=[buffer])


LUA_ROUTER = """
function envoy_on_request(handle)
  local ua = handle:headers():get("user-agent") or ""
  local value = "frontend"
  if string.find(ua, "Mobile", 1, true) then value = "my-service-mobile"
  elseif string.find(ua, "Desktop", 1, true) then value = "my-service-desktop"
  elseif string.sub(handle:headers():get(":path") or "", 1, 4) == "/api" then value = "api-service" end
  handle:headers():replace("x-route-destination", value)
end
"""

LUA_AUTHZ = """
function envoy_on_request(handle)
  local h = handle:headers()
  local path = (h:get(":path") or ""):gsub("[?#].*", "")
  local method = h:get(":method")
  if path == "/api/admin" or string.sub(path, 1, 11) == "/api/admin/" then
    handle:respond({[":status"] = "403"}, "RBAC: access denied")
  elseif (method == "GET" or method == "POST") and string.sub(path, 1, 5) == "/api/" then
    return
  else
    handle:respond({[":status"] = "403"}, "RBAC: access denied")
  end
end
"""

LUA_RETRY = """
function envoy_on_request(handle)
  local h = handle:headers()
  local authority = h:get(":authority") or ""
  if string.sub(authority, 1, 10) == "my-service" and (h:get(":method") == "GET" or h:get(":method") == "HEAD") then
    h:replace("x-envoy-max-retries", "3")
    h:replace("x-envoy-retry-on", "5xx,connect-failure,refused-stream")
    h:replace("x-envoy-upstream-rq-per-try-timeout-ms", "2000")
    h:replace("x-envoy-upstream-rq-timeout-ms", "10000")
  end
end
"""


def rbac_filters():
    """Native RBAC with the same two policies: the deny filter, then the allow one."""
    path_prefix = lambda p: {"url_path": {"path": {"prefix": p}}}
    path_exact = lambda p: {"url_path": {"path": {"exact": p}}}
    method = lambda m: {"header": {"name": ":method", "string_match": {"exact": m}}}
    deny = {"action": "DENY", "policies": {"no-admin": {
        "permissions": [{"or_rules": {"rules": [path_exact("/api/admin"), path_prefix("/api/admin/")]}}],
        "principals": [{"any": True}]}}}
    allow = {"action": "ALLOW", "policies": {"api-reads": {
        "permissions": [{"and_rules": {"rules": [{"or_rules": {"rules": [method("GET"), method("POST")]}}, path_prefix("/api/")]}}],
        "principals": [{"any": True}]}}}
    return [{"name": "envoy.filters.http.rbac", "typed_config": {"@type": RBAC, "rules": rules}} for rules in (deny, allow)]


def native_router_route(then):
    return {"match": {"prefix": "/", "headers": [{"name": "user-agent", "string_match": {"safe_regex": {"regex": ".*Mobile.*"}}}]}, **then}


def body_of(size):
    """A JSON document of about `size` bytes: records with a user id, an
    e-mail address, a card number and free text, as an order export has."""
    records, total, i = [], 2, 0
    while total < size:
        record = json.dumps({"userId": f"u-{1000 + i}", "email": f"user{i}@example.com", "card": "4111 1111 1111 1111",
                             "note": "delivered to the back door, ring twice", "items": [i, i + 1, i + 2]})
        records.append(record)
        total += len(record) + 1
        i += 1
    return ("[" + ",".join(records) + "]").encode()


def setups(modules):
    """Every setup, given the built modules by crate name. Returns a list of
    dicts; `ports` fills in listener, admin and upstream ports later."""
    m = modules
    routed = lambda: [{"match": {"prefix": "/", "headers": header_is(ROUTE_HEADER, "my-service-mobile")}, **direct()}, catch_all_404()]
    ok = lambda: [{"match": {"prefix": "/"}, **direct()}]
    proxied = lambda **kw: [{"match": {"prefix": "/"}, **to_upstream(**kw)}]
    get = lambda path="/", headers=None: {"method": "GET", "path": path, "headers": headers or {}}
    post = lambda size: {"method": "POST", "path": "/users/u-1001/orders", "headers": {"content-type": "application/json", "host": SERVICE_HOST}, "body": body_of(size)}
    mobile = {"user-agent": MOBILE_UA}
    service = {"host": SERVICE_HOST}
    probe = lambda config: wasm(m["probe_fixture"], "probe", config)
    sanitizer = lambda: wasm(m["mirror_sanitizer"], "mirror-sanitizer", SANITIZER_CONFIG, "FAIL_RELOAD")
    four = lambda module_of, vm_id="": [
        wasm(module_of("header_router"), "header-router", ROUTER_CONFIG, "FAIL_OPEN", vm_id),
        wasm(module_of("principal_authz"), "principal-authz", AUTHZ_CONFIG, "FAIL_CLOSED", vm_id),
        wasm(module_of("retry_hints"), "retry-hints", RETRY_CONFIG, "FAIL_OPEN", vm_id),
    ]
    chain_routes = lambda: [{"match": {"prefix": "/", "headers": header_is(ROUTE_HEADER, "my-service-mobile")}, **to_upstream(mirror=True)}, catch_all_404()]
    chain_request = get("/api/orders?id=7", {**mobile, **service})
    s = [
        # Direct responses: nothing proxied, the filter's own cost stands out.
        dict(name="bare", base=None, job="bare Envoy, direct response", routes=ok(), request=get()),
        dict(name="wasm-empty", base="bare", job="Wasm probe filter, no host call", routes=ok(), filters=[probe(PROBE_EMPTY)], request=get(headers=mobile)),
        dict(name="wasm-one-read", base="bare", job="Wasm probe filter, one header read and one write", routes=ok(), filters=[probe(PROBE_ONE_READ)], request=get(headers=mobile)),
        dict(name="header-router", base="bare", job="header-router: user-agent match sets the routing header", routes=routed(),
             filters=[wasm(m["header_router"], "header-router", ROUTER_CONFIG, "FAIL_OPEN")], request=get(headers=mobile)),
        dict(name="native-route", base="bare", job="native: route header match", routes=[native_router_route(direct()), catch_all_404()], request=get(headers=mobile)),
        dict(name="lua-router", base="bare", job="Lua: sets the routing header", routes=routed(), filters=[lua(LUA_ROUTER)], request=get(headers=mobile)),
        dict(name="principal-authz", base="bare", job="principal-authz: clean path, allowed", routes=ok(),
             filters=[wasm(m["principal_authz"], "principal-authz", AUTHZ_CONFIG)], request=get("/api/orders?id=7")),
        dict(name="native-rbac", base="bare", job="native: RBAC, same policies", routes=ok(), filters=rbac_filters(), request=get("/api/orders?id=7")),
        dict(name="lua-authz", base="bare", job="Lua: same policies", routes=ok(), filters=[lua(LUA_AUTHZ)], request=get("/api/orders?id=7")),
        # Proxied to the upstream Envoy.
        dict(name="bare-proxied", base=None, job="bare Envoy, proxied", routes=proxied(), request=get(headers=service)),
        dict(name="retry-hints", base="bare-proxied", job="retry-hints: a GET matched by a rule", routes=proxied(),
             filters=[wasm(m["retry_hints"], "retry-hints", RETRY_CONFIG, "FAIL_OPEN")], request=get(headers=service)),
        dict(name="native-retry", base="bare-proxied", job="native: route retry policy", routes=proxied(retry=True), request=get(headers=service)),
        dict(name="lua-retry", base="bare-proxied", job="Lua: sets the retry headers", routes=proxied(), filters=[lua(LUA_RETRY)], request=get(headers=service)),
        # The upstream filter position (the sanitizer's), primaries only.
        dict(name="upstream-chain", base=None, job="bare Envoy, proxied through an upstream filter chain (codec only)", routes=proxied(),
             upstream_filters=[], request=get(headers=service)),
        dict(name="upstream-one-read", base="upstream-chain", job="Wasm probe as upstream filter, one header read and one write", routes=proxied(),
             upstream_filters=[probe(PROBE_ONE_READ)], request=get(headers=service)),
        dict(name="sanitizer-primary", base="upstream-chain", job="mirror-sanitizer: a primary request (upstream filter)", routes=proxied(),
             upstream_filters=[sanitizer()], request=get(headers=service)),
        # Mirrored: every request also sends a shadow copy.
        dict(name="mirror-4k", base=None, job="bare Envoy, 4 KiB JSON POST, mirrored", routes=proxied(mirror=True), request=post(4096)),
        dict(name="sanitizer-4k", base="mirror-4k", job="mirror-sanitizer: 4 KiB JSON POST and its shadow", routes=proxied(mirror=True),
             upstream_filters=[sanitizer()], request=post(4096)),
        dict(name="mirror-get", base=None, job="bare Envoy, GET proxied and mirrored", routes=proxied(mirror=True), request=chain_request),
        dict(name="all-four", base="mirror-get", job="all four chained, four modules", routes=chain_routes(),
             filters=four(lambda c: m[c]), upstream_filters=[sanitizer()], request=chain_request),
        dict(name="native-chain", base="mirror-get", job="native chain: route match, RBAC, retry policy, mirror", request=chain_request,
             routes=[native_router_route(to_upstream(mirror=True, retry=True)), catch_all_404()], filters=rbac_filters()),
    ]
    if "mesh_filters" in m:
        one = lambda c: m["mesh_filters"]
        s.append(dict(name="all-four-one-module", base="mirror-get", job="all four chained, one module, one VM", routes=chain_routes(),
                      filters=four(one, "mesh-filters"),
                      upstream_filters=[wasm(m["mesh_filters"], "mirror-sanitizer", SANITIZER_CONFIG, "FAIL_RELOAD", "mesh-filters")],
                      request=chain_request))
    return s


def throughput_setups():
    """The sanitizer's body throughput: 1 MiB JSON POSTs, mirrored, with and
    without the sanitizer on the shadow copy."""
    return ("mirror-1m", "sanitizer-1m", 1024 * 1024)


def throughput(modules):
    base, with_sanitizer, size = throughput_setups()
    post = {"method": "POST", "path": "/users/u-1001/orders", "headers": {"content-type": "application/json", "host": SERVICE_HOST}, "body": body_of(size)}
    routes = [{"match": {"prefix": "/"}, **to_upstream(mirror=True)}]
    return [
        dict(name=base, base=None, job="bare Envoy, 1 MiB JSON POST, mirrored", routes=routes, request=post),
        dict(name=with_sanitizer, base=base, job="mirror-sanitizer: 1 MiB JSON POST and its shadow", routes=routes,
             upstream_filters=[wasm(modules["mirror_sanitizer"], "mirror-sanitizer", SANITIZER_CONFIG, "FAIL_RELOAD")], request=post, body_size=size),
    ]
