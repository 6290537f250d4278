#!/usr/bin/env python3
"""Writes the mirror-sanitizer corpus: requests that carry secrets and
personal data in every place a request has (request line, headers, cookies,
query, path, JSON, form, multipart, nested documents), raw and encoded, each
listing the exact secrets that must not reach the shadow copy and the
ordinary strings that must survive it. Values are public test values (test
card numbers, the AWS documentation's example keys, RFC examples) or made
up in published formats. Run from the repository root:

    python3 tests/corpus/mirror-sanitizer/generate.py

The output files are committed; the end-to-end test reads them as they are.
"""
import base64
import gzip
import json
import os
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

# (class, names a real API might use, value). Values are distinctive so a
# search for them finds nothing else.
NAMED = [
    ("password", ["password", "newPassword", "db.password", "account[pass]", "user_pass", "Passwd", "confirm-password", "adminPwd"], "Tr0ub4dor&3"),
    ("api-key", ["apiKey", "x-api-key", "api_key", "X-Goog-Api-Key", "stripeApiKey", "APIKey"], "k3y-9f8e7d6c5b4a3210fedc"),
    ("token", ["access_token", "refreshToken", "id-token", "authToken", "x-auth-token", "csrfToken", "sessionToken"], "2YotnFZFEjr1zCsicMWpAA"),
    ("secret", ["client_secret", "clientSecret", "webhookSecret", "app.secret", "SECRET"], "s3cr3t-Zq8Wm4Xr"),
    ("private-key-id", ["gcp_private_key_id", "privateKeyId"], "d41d8cd98f00b204e98009"),
    ("signature", ["X-Goog-Signature", "X-Amz-Signature", "sig", "signature"], "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
    ("session", ["sessionId", "session_id", "x-session-id", "JSESSIONID"], "sess-0f9e8d7c6b5a"),
    ("pin", ["pin", "cardPin", "pinCode", "atm_pin"], 739184),
    ("cvv", ["cvv", "card_cvc", "securityCode", "cvv2"], "7373"),
    ("otp", ["otp", "mfaCode", "verification_code", "totp"], "492038"),
    ("passphrase", ["passphrase", "walletPassphrase"], "correct-horse-battery-staple"),
    ("connection-string", ["connectionString", "db_connection_string"], "Server=db1;Uid=app;Pwd=Zx9-Conn-Pw"),
    ("ssn", ["ssn", "SSN", "socialSecurityNumber", "customer_ssn"], "219-09-9999"),
    ("passport", ["passportNumber", "passport_no", "passport"], "912803456"),
    ("tax-id", ["taxId", "tax_id", "taxNumber"], "987-65-4320"),
    ("account-number", ["accountNumber", "account_no", "bankAccount"], "000123456789"),
    ("account-number-int", ["accountNumber", "acct_number"], 4400123456789),
    ("card-number", ["cardNumber", "card_number", "creditCard", "pan"], "4111111111111111"),
    ("iban", ["iban", "IBAN", "payee_iban"], "DE89370400440532013000"),
    ("customer-id", ["x-customer-id", "customerId", "customer_id"], "cus_9s6XKzkNRiz8i3"),
    ("user-id", ["user_id", "userId", "memberId"], "u-83920"),
    ("routing-number", ["routingNumber", "routing_number"], "110000000"),
    ("driver-license", ["driversLicense", "driver_license_number"], "D1234567"),
    ("email", ["email", "contactEmail", "e-mail", "billing.email"], "jane.doe@example.com"),
    ("phone", ["phone", "phoneNumber", "mobile_number", "tel"], "+44 20 7946 0958"),
    ("dob", ["dob", "dateOfBirth", "birth_date", "birthday"], "1985-04-12"),
    ("address", ["address", "homeAddress", "street", "billing_address"], "221B Baker Street"),
]

# Secrets found by their format, wherever they sit, under ordinary names.
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjCorpusKeyBody\n-----END PRIVATE KEY-----"
PRESIGNED = ("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
SAS = "https://acct.blob.core.windows.net/c/b.txt?sv=2019-02-02&sr=b&sp=r&se=2030-01-01&sig=Kq5bXh0Zr3Wd8vN2mP7tY4uJ1cF6gL9sA0eR3iO8wQ%3D"
FORMATS = [
    ("card-visa", "4111 1111 1111 1111", ["4111 1111 1111 1111"]),
    ("card-mastercard", "5555555555554444", ["5555555555554444"]),
    ("card-amex", "3782-822463-10005", ["3782-822463-10005"]),
    ("card-discover", "6011111111111117", ["6011111111111117"]),
    ("email", "bob.smith@example.org", ["bob.smith@example.org"]),
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"]),
    ("bearer", "Bearer mF_9.B5f-4.1JqM", ["mF_9.B5f-4.1JqM"]),
    ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
    ("aws-secret-key", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
    ("aws-secret-key-bare", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
    ("iban-grouped", "GB82 WEST 1234 5698 7654 32", ["GB82 WEST 1234 5698 7654 32"]),
    ("iban-fr", "FR1420041010050500013M02606", ["FR1420041010050500013M02606"]),
    ("phone-e164", "+12025550143", ["+12025550143"]),
    ("phone-nanp", "(202) 555-0143", ["(202) 555-0143"]),
    ("ssn", "078-05-1120", ["078-05-1120"]),
    ("pem", PEM, ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjCorpusKeyBody"]),
    ("github", "ghp_16C7e42F292c6912E7710c838347Ae178B4a", ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"]),
    ("github-pat", "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW", ["github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW"]),
    ("gitlab", "glpat-9xQm2LkPz7RtWv3YbN1c", ["glpat-9xQm2LkPz7RtWv3YbN1c"]),
    ("slack", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy", ["xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"]),
    ("stripe", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", ["sk_test_4eC39HqLyjWDarjtT1zdp7dc"]),
    ("google", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", ["AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"]),
    ("npm", "npm_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78", ["npm_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78"]),
    ("presigned-url", PRESIGNED, ["aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", "AKIAIOSFODNN7EXAMPLE"]),
    ("sas-url", SAS, ["Kq5bXh0Zr3Wd8vN2mP7tY4uJ1cF6gL9sA0eR3iO8wQ"]),
]

# Ordinary fields that must survive (names and values).
ORDINARY = [
    ("page", "page-7"), ("sort", "price_asc"), ("view", "grid-compact"), ("tokenizer", "wordpiece-v2"),
    ("keyboard", "dvorak-intl"), ("order_id", "ORD-55512"), ("orderId", "ORD-55513"), ("sku", "SKU-HAT-RED-L"),
    ("currency", "EUR"), ("token_type", "Bearer"), ("product-id", "PRD-0042"), ("status", "shipped-late"),
]

cases = {}


def add(place, name, method, path, headers, body, secrets, survive, b64body=False):
    case = {"name": name, "method": method, "path": path, "headers": headers, "secrets": secrets, "survive": survive}
    if b64body:
        case["bodyBase64"] = base64.b64encode(body).decode()
    elif body is not None:
        case["body"] = body
    cases.setdefault(place, []).append(case)


def q(text):
    return urllib.parse.quote(str(text), safe="")


def ordinary(i):
    return ORDINARY[i % len(ORDINARY)]


def is_token(name):
    return all(c.isalnum() or c in "-_.!#$%&'*+^`|~" for c in name)


JSON = [["content-type", "application/json"]]
FORM = [["content-type", "application/x-www-form-urlencoded"]]

# Named values in every place a name appears.
for cls, names, value in NAMED:
    text = str(value)
    for i, name in enumerate(names):
        on, ov = ordinary(i)
        o2n, o2v = ordinary(i + 5)
        add("query", f"{cls}/{name}/raw", "GET", f"/search?{on}={ov}&{q(name) if '[' not in name else name}={q(text)}", [], None, [text], [ov])
        add("query", f"{cls}/{name}/encoded-name-semicolons", "GET", f"/search?{on}={ov};{q(name)}={q(text)};{o2n}={o2v}", [], None, [text], [ov, o2v])
        add("json", f"{cls}/{name}/nested", "POST", "/api/orders", JSON,
            json.dumps({on: ov, "customer": {"profile": {name: value}, o2n: o2v}, "items": [{"sku": "SKU-1"}]}), [text], [ov, o2v])
        add("form", f"{cls}/{name}", "POST", "/submit", FORM, f"{q(on)}={q(ov)}&{q(name)}={q(text)}", [text], [ov])
        if i == 0:
            add("json", f"{cls}/{name}/escaped-key", "POST", "/api/orders", JSON,
                '{"' + "".join(f"\\u{ord(c):04x}" if c.isalpha() and j % 2 == 0 else c for j, c in enumerate(name)) + '":' + json.dumps(value) + f',"{on}":"{ov}"}}', [text], [ov])
            add("json", f"{cls}/{name}/in-array", "POST", "/api/batch", JSON, json.dumps([{name: value, on: ov}, {name: value}]), [text], [ov])
            add("multipart", f"{cls}/{name}", "POST", "/upload", [["content-type", "multipart/form-data; boundary=cOrPuS"]],
                f"--cOrPuS\r\nContent-Disposition: form-data; name=\"{on}\"\r\n\r\n{ov}\r\n--cOrPuS\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{text}\r\n--cOrPuS--\r\n", [text], [ov])
        if i == 1:
            add("json", f"{cls}/{name}/stringified", "POST", "/events", JSON, json.dumps({"event": "signup", "payload": json.dumps({name: value, on: ov})}), [text], [ov, "signup"])
            add("nested", f"{cls}/{name}/base64-json-header", "GET", "/profile", [["x-user-context", base64.b64encode(json.dumps({name: value, on: ov}).encode()).decode()]], None, [text], [ov])
            add("nested", f"{cls}/{name}/base64url-json-query", "GET", f"/cb?state={base64.urlsafe_b64encode(json.dumps({name: value, on: ov}).encode()).decode().rstrip('=')}&{o2n}={o2v}", [], None, [text], [ov, o2v])
            add("nested", f"{cls}/{name}/form-in-json", "POST", "/webhook", JSON, json.dumps({"raw": f"{q(on)}={q(ov)}&{q(name)}={q(text)}"}), [text], [ov])
            add("nested", f"{cls}/{name}/json-in-form", "POST", "/submit", FORM, f"data={q(json.dumps({name: value, on: ov}))}&{o2n}={o2v}", [text], [ov, o2v])
            add("multipart", f"{cls}/{name}/json-part", "POST", "/upload", [["content-type", "multipart/form-data; boundary=cOrPuS"]],
                f"--cOrPuS\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{json.dumps({name: value, on: ov})}\r\n--cOrPuS--\r\n", [text], [ov])
        if i == 2:
            add("nested", f"{cls}/{name}/json-in-json-in-json", "POST", "/events", JSON, json.dumps({"outer": json.dumps({"inner": json.dumps({name: value}), on: ov})}), [text], [ov])
            add("nested", f"{cls}/{name}/base64-form-in-json", "POST", "/events", JSON, json.dumps({"blob": base64.b64encode(f"{q(on)}={q(ov)}&{q(name)}={q(text)}".encode()).decode()}), [text], [ov])
        if is_token(name) and name.lower() not in ("cookie",):
            add("headers", f"{cls}/{name}", "GET", f"/a?{on}={ov}", [[name.lower(), text]], None, [text], [ov])
        if i == 0:
            add("cookies", f"{cls}/{name}", "GET", f"/a?{on}={ov}", [["cookie", f"theme=dark; {name if is_token(name) else 'c'}={text}"]], None, [text], [ov])

# Formats found wherever they sit, under ordinary names and in every place.
for cls, value, secrets in FORMATS:
    on, ov = ordinary(len(cls))
    add("json", f"{cls}/free-text", "POST", "/api/notes", JSON, json.dumps({"note": f"see {value} now", on: ov}), secrets, [ov])
    add("json", f"{cls}/value", "POST", "/api/notes", JSON, json.dumps({"data": {"entries": [value]}, on: ov}), secrets, [ov])
    add("json", f"{cls}/unicode-escaped", "POST", "/api/notes", JSON, json.dumps({"message": value, on: ov}, ensure_ascii=True).replace("e", "\\u0065", 1) if False else '{"message":"' + "".join(f"\\u{ord(c):04x}" if c in "@-_./ " else c for c in value).replace("\n", "\\n") + f'","{on}":"{ov}"}}', secrets, [ov])
    add("form", f"{cls}/free-text", "POST", "/submit", FORM, f"comment={q('pay with ' + value)}&{q(on)}={q(ov)}", secrets, [ov])
    add("query", f"{cls}/value", "GET", f"/search?q={q(value)}&{on}={ov}", [], None, secrets, [ov])
    add("headers", f"{cls}/header", "GET", f"/a?{on}={ov}", [["x-note", value.replace("\n", " ")]] if "\n" not in value else [["x-note", q(value)]], None, secrets if "\n" not in value else secrets, [ov])
    add("multipart", f"{cls}/text-part", "POST", "/upload", [["content-type", "multipart/form-data; boundary=cOrPuS"]],
        f"--cOrPuS\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nsee {value}\r\n--cOrPuS\r\nContent-Disposition: form-data; name=\"{on}\"\r\n\r\n{ov}\r\n--cOrPuS--\r\n", secrets, [ov])
    if "\n" not in value and " " not in value and "/" not in value and "(" not in value:
        add("path", f"{cls}/segment", "GET", f"/lookup/{q(value)}/details?{on}={ov}", [], None, secrets, [ov, "details"])
    add("nested", f"{cls}/base64-json", "POST", "/events", JSON, json.dumps({"blob": base64.b64encode(json.dumps({"note": value, on: ov}).encode()).decode()}), secrets, [ov])

# The request line and the places nothing lists by name.
add("request-line", "user-id-template", "GET", "/users/u-83920/orders?page=page-7", [], None, ["u-83920"], ["page-7", "orders"])
add("request-line", "email-segment", "GET", "/people/jane.doe%40example.com/profile", [], None, ["jane.doe@example.com"], ["profile"])
add("request-line", "card-segment", "GET", "/cards/4111111111111111/limits?view=grid-compact", [], None, ["4111111111111111"], ["limits", "grid-compact"])
add("request-line", "presigned-redirect", "GET", "/go?next=" + q(PRESIGNED), [], None, ["aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"], ["20130524T000000Z"])
add("request-line", "oauth-callback", "GET", "/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz-state-42", [], None, ["SplxlOBeZQQYbYS6WxSbIA"], ["xyz-state-42"])
add("request-line", "oauth-token-response-in-fragmentless-query", "GET", "/cb?access_token=2YotnFZFEjr1zCsicMWpAA&token_type=example&expires_in=3600", [], None, ["2YotnFZFEjr1zCsicMWpAA"], ["example", "3600"])
add("request-line", "php-brackets", "GET", "/login?account%5Bpass%5D=Tr0ub4dor%263&account%5Bname%5D=jdoe-account", [], None, ["Tr0ub4dor&3"], ["jdoe-account"])
add("request-line", "rails-nested", "GET", "/u?user[address][street]=221B+Baker+Street&user[plan]=plan-gold", [], None, ["221B Baker Street"], ["plan-gold"])
add("headers", "basic-auth", "GET", "/a?view=grid-compact", [["authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]], None, ["QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "open sesame"], ["grid-compact"])
add("headers", "proxy-auth", "GET", "/a?view=grid-compact", [["proxy-authorization", "Bearer 2YotnFZFEjr1zCsicMWpAA"]], None, ["2YotnFZFEjr1zCsicMWpAA"], ["grid-compact"])
add("headers", "amz-security-token", "GET", "/a", [["x-amz-security-token", "FQoGZXIvYXdzEPT//////////wEaDCorpusSessionToken"]], None, ["FQoGZXIvYXdzEPT//////////wEaDCorpusSessionToken"], [])
add("headers", "weak-name-high-entropy", "GET", "/a?view=grid-compact", [["x-signing-key", "wJalrXUtnFEMIK7MDENGbPxRfiCYzz"]], None, ["wJalrXUtnFEMIK7MDENGbPxRfiCYzz"], ["grid-compact"])
add("json", "weak-key-high-entropy", "POST", "/a", JSON, json.dumps({"key": "Zm9vYmFyLXNlY3JldC1rZXktOTk5", "lookup": {"key": "color"}}), ["Zm9vYmFyLXNlY3JldC1rZXktOTk5"], ["color"])
add("json", "typed-values", "POST", "/a", JSON, json.dumps({"pin": 739184, "cvv": 7373, "mfaEnabled": True, "credentials": {"user": "svc-reporting-7", "password": "Tr0ub4dor&3"}, "order_id": "ORD-55512"}), ["739184", "7373", "svc-reporting-7", "Tr0ub4dor&3"], ["ORD-55512"])
add("json", "secret-array", "POST", "/a", JSON, json.dumps({"apiKeys": ["k3y-9f8e7d6c5b4a3210fedc", "k3y-0a1b2c3d4e5f60718293"], "sku": "SKU-HAT-RED-L"}), ["k3y-9f8e7d6c5b4a3210fedc", "k3y-0a1b2c3d4e5f60718293"], ["SKU-HAT-RED-L"])
add("json", "gcp-service-account", "POST", "/a", JSON, json.dumps({"type": "service_account", "project_id": "corpus-project-7", "private_key_id": "d41d8cd98f00b204e98009", "private_key": PEM, "client_email": "svc@corpus-project-7.iam.gserviceaccount.com"}),
    ["d41d8cd98f00b204e98009", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjCorpusKeyBody", "svc@corpus-project-7.iam.gserviceaccount.com"], ["service_account", "corpus-project-7"])

# gzip: the body cannot be read, so the copy leaves without it.
for cls, value, secrets in FORMATS[:6]:
    add("gzip", f"{cls}/gzip-json", "POST", "/api/notes", JSON + [["content-encoding", "gzip"]], gzip.compress(json.dumps({"note": value}).encode(), mtime=0), secrets, [], b64body=True)

total = 0
for place, items in sorted(cases.items()):
    seen = set()
    for c in items:
        assert c["name"] not in seen, c["name"]
        seen.add(c["name"])
    with open(os.path.join(HERE, f"{place}.json"), "w") as f:
        json.dump(items, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total += len(items)
    print(f"{place:14} {len(items):4} requests")
print(f"{'total':14} {total:4} requests")
