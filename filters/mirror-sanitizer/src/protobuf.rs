//! Protobuf messages of a gRPC copy, sanitized in place by their schema
//! (see `descriptor`): each field is selected by its name (or its JSON
//! name) and by its path, exactly as a JSON key is: the same rules,
//! vocabulary, pointers (`/customer/email`, `/lines/0/card_number`) and
//! allowlist. A map's keys are names, as in JSON. The message is written
//! back field by field, lengths rewritten.
//!
//! What a value becomes: a selected string or bytes value gets its rule's
//! mode (removed: the field is left out, so it reads as empty); a selected
//! number, under `hash`, becomes a keyed pseudonym of the same width (the
//! same id gives the same number, still joinable), and under `mask` or
//! `remove` is left out (it reads as 0); a selected bool, enum, float,
//! message or packed list is left out. Values no rule selects: strings (and
//! bytes that are UTF-8) are scanned by the detectors (nested documents
//! too), 64-bit integers by the card detector; bytes that are not UTF-8 and
//! fields the schema does not know are left out, since nothing can read
//! them. Under the allowlist posture an unlisted string becomes the
//! placeholder and an unlisted number or bool is left out (0, false).

use crate::descriptor::{FieldDef, Kind, Schema};
use crate::detect::Profile;
use crate::mode::{Mode, Replacement, HASH_PREFIX};
use crate::names::NameKind;
use crate::protowire::{put_len, put_number, put_varint, Field, Reader, Wire};
use crate::redact::Redactor;
use crate::vocabulary::looks_secret;

/// Messages nest at most this deep (protobuf's own parsers stop at 100).
pub const MAX_DEPTH: usize = 100;

/// Sanitizes one serialized message of type `message` (an index into the
/// schema's messages). `Err` (what and where, never the data) when the
/// bytes do not decode as that type.
pub fn sanitize_message(schema: &Schema, message: usize, bytes: &[u8], r: &mut Redactor) -> Result<Vec<u8>, String> {
    let track_path = !r.policy.json_pointers.is_empty();
    let mut w = Walker { schema, r, path: Vec::new(), track_path };
    w.message(message, bytes, 0)
}

/// What the name above a value decided: the rule that selects it (and
/// whether only for secret-looking strings), and whether the allowlist
/// keeps it.
#[derive(Debug, Clone, Copy)]
struct Decision {
    rule: Option<(usize, bool)>,
    allowed: bool,
}

impl Decision {
    /// The rule, where it applies to a value that is not a string.
    fn strong(self) -> Option<usize> {
        self.rule.filter(|(_, weak)| !weak).map(|(rule, _)| rule)
    }
}

struct Walker<'s, 'r, 'p> {
    schema: &'s Schema,
    r: &'r mut Redactor<'p>,
    /// The current path (each level's spellings: name and JSON name, or a
    /// map key or element index twice), kept only when rules use pointers.
    path: Vec<(String, String)>,
    track_path: bool,
}

fn min_rule(a: Option<(usize, bool)>, b: Option<(usize, bool)>) -> Option<(usize, bool)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl Walker<'_, '_, '_> {
    fn message(&mut self, index: usize, bytes: &[u8], depth: usize) -> Result<Vec<u8>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("protobuf nested deeper than {MAX_DEPTH}"));
        }
        let schema = self.schema;
        let def = schema.messages.get(index).ok_or("a message type the schema does not have")?;
        let mut out = Vec::with_capacity(bytes.len());
        // Elements seen so far per repeated field, for pointers like `/lines/0`.
        let mut elements: Vec<(u32, usize)> = Vec::new();
        let mut reader = Reader::new(bytes);
        while let Some(f) = reader.field().map_err(|e| format!("{}: {e}", def.name))? {
            let Some(field) = def.field(f.number) else { continue };
            let mut decision = self.decide(field);
            // A repeated field's element has its index in the path (a
            // map's entries do not: their keys are the path, as in JSON).
            let element = self.track_path && field.repeated && f.wire == field.kind.wire() && !self.is_map(field);
            self.path_push(field);
            if element {
                let n = match elements.iter_mut().find(|(k, _)| *k == f.number) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        elements.push((f.number, 0));
                        0
                    }
                };
                let at = n.to_string();
                decision.rule = min_rule(decision.rule, self.pointer_rule(&at, &at));
                self.path.push((at.clone(), at));
            }
            let result = self.value(field, f, decision, depth, &mut out).map_err(|e| format!("{}.{}: {e}", def.name, field.name));
            if element {
                self.path.pop();
            }
            self.path_pop();
            result?;
        }
        Ok(out)
    }

    fn is_map(&self, field: &FieldDef) -> bool {
        matches!(field.kind, Kind::Message(m) if self.schema.messages.get(m).is_some_and(|d| d.map_entry))
    }

    fn path_push(&mut self, field: &FieldDef) {
        if self.track_path {
            self.path.push((field.name.clone(), field.json_name.clone()));
        }
    }

    fn path_pop(&mut self) {
        if self.track_path {
            self.path.pop();
        }
    }

    /// The decision on a field by its name, its JSON name and its path
    /// (the path already holds the field's parents).
    fn decide(&mut self, field: &FieldDef) -> Decision {
        let by_name = self.r.name(NameKind::Json, &field.name);
        let mut rule = by_name.selection.map(|s| (s.rule, s.weak));
        let mut allowed = by_name.allowed;
        if field.json_name != field.name {
            let by_json = self.r.name(NameKind::Json, &field.json_name);
            rule = min_rule(rule, by_json.selection.map(|s| (s.rule, s.weak)));
            allowed |= by_json.allowed;
        }
        if self.track_path {
            rule = min_rule(rule, self.pointer_rule(&field.name, &field.json_name));
        }
        Decision { rule, allowed }
    }

    /// The first rule whose pointer ends here, at `a` or its other spelling `b`.
    fn pointer_rule(&self, a: &str, b: &str) -> Option<(usize, bool)> {
        let depth = self.path.len() + 1;
        self.r
            .policy
            .json_pointers
            .iter()
            .filter(|(p, _)| {
                p.len() == depth && p.last().is_some_and(|t| t == a || t == b) && p.iter().zip(&self.path).all(|(t, (x, y))| t == x || t == y)
            })
            .map(|(_, rule)| (*rule, false))
            .min()
    }

    fn value(&mut self, field: &FieldDef, f: Field<'_>, d: Decision, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let wire = field.kind.wire();
        if f.wire != wire {
            return if f.wire == Wire::Len && field.repeated {
                self.packed(field, f.bytes, d, out)
            } else {
                Err(format!("wire type {:?} where the schema says {:?}", f.wire, wire))
            };
        }
        match field.kind {
            Kind::String => {
                let text = std::str::from_utf8(f.bytes).map_err(|_| "a string that is not UTF-8".to_string())?;
                self.text(field.number, text, d, out);
            }
            Kind::Bytes => match std::str::from_utf8(f.bytes) {
                Ok(text) => self.text(field.number, text, d, out),
                // Unreadable bytes leave only when a rule rewrites them whole.
                Err(_) => match d.rule {
                    Some((rule, _)) => {
                        if let Replacement::Text(t) = self.r.select(rule, &String::from_utf8_lossy(f.bytes)) {
                            put_len(out, field.number, t.as_bytes());
                        }
                    }
                    None if !d.allowed => put_len(out, field.number, self.r.unlisted().as_bytes()),
                    None => {}
                },
            },
            Kind::Message(m) => {
                if let Some(rule) = d.strong() {
                    let _ = self.r.select(rule, "");
                    return Ok(());
                }
                let new = if self.is_map(field) { self.map_entry(m, f.bytes, depth + 1)? } else { self.message(m, f.bytes, depth + 1)? };
                put_len(out, field.number, &new);
            }
            Kind::Varint { wide, zigzag } => {
                if let Some(v) = self.number(f.value, wide, zigzag, d) {
                    put_number(out, field.number, wire, v);
                }
            }
            Kind::Fixed { wide } => {
                if let Some(v) = self.number(f.value, wide, false, d) {
                    put_number(out, field.number, wire, v);
                }
            }
            Kind::Other(_) => {
                if let Some(rule) = d.strong() {
                    let _ = self.r.select(rule, "");
                } else if !d.allowed {
                    let _ = self.r.unlisted();
                } else {
                    put_number(out, field.number, wire, f.value);
                }
            }
        }
        Ok(())
    }

    /// A string (or UTF-8 bytes) value, written unless removed.
    fn text(&mut self, number: u32, text: &str, d: Decision, out: &mut Vec<u8>) {
        if let Some((rule, weak)) = d.rule {
            if !weak || looks_secret(text) {
                if let Replacement::Text(t) = self.r.select(rule, text) {
                    put_len(out, number, t.as_bytes());
                }
                return;
            }
        }
        if !d.allowed {
            put_len(out, number, self.r.unlisted().as_bytes());
            return;
        }
        match self.r.detect(text) {
            Some(new) => put_len(out, number, new.as_bytes()),
            None => put_len(out, number, text.as_bytes()),
        }
    }

    /// An integer's payload after redaction; `None`: left out (reads as 0).
    fn number(&mut self, raw: u64, wide: bool, zigzag: bool, d: Decision) -> Option<u64> {
        let value = if zigzag { ((raw >> 1) as i64 ^ -((raw & 1) as i64)).to_string() } else if wide { (raw as i64).to_string() } else { (raw as u32 as i32).to_string() };
        if let Some(rule) = d.strong() {
            let hash = self.r.policy.rules.get(rule).is_some_and(|r| r.mode == Mode::Hash);
            return match self.r.select(rule, &value) {
                Replacement::Text(t) if hash => Some(pseudonymous_number(&t, wide, zigzag)),
                _ => None,
            };
        }
        if !d.allowed {
            let _ = self.r.unlisted();
            return None;
        }
        // Card numbers travel as 64-bit integers too.
        if wide && !self.r.policy.detectors.is_empty() && self.r.detect_profiled(&value, &Profile::of(value.as_bytes())).is_some() {
            return None;
        }
        Some(raw)
    }

    /// A packed list of numbers (`repeated int64 ids = 1 [packed]`).
    fn packed(&mut self, field: &FieldDef, bytes: &[u8], d: Decision, out: &mut Vec<u8>) -> Result<(), String> {
        let values = unpack(field.kind, bytes)?;
        if let Some(rule) = d.strong() {
            let _ = self.r.select(rule, "");
            return Ok(());
        }
        if !d.allowed {
            let _ = self.r.unlisted();
            return Ok(());
        }
        let mut kept = Vec::with_capacity(bytes.len());
        for v in values {
            let v = match field.kind {
                Kind::Varint { wide, zigzag } => self.number(v, wide, zigzag, d),
                Kind::Fixed { wide } => self.number(v, wide, false, d),
                _ => Some(v),
            };
            if let Some(v) = v {
                match field.kind.wire() {
                    Wire::Fixed64 => kept.extend_from_slice(&v.to_le_bytes()),
                    Wire::Fixed32 => kept.extend_from_slice(&(v as u32).to_le_bytes()),
                    _ => put_varint(&mut kept, v),
                }
            }
        }
        put_len(out, field.number, &kept);
        Ok(())
    }

    /// One map entry: its key is the name that selects its value, as a
    /// JSON member's is; a key that holds something a detector finds is
    /// redacted itself.
    fn map_entry(&mut self, entry: usize, bytes: &[u8], depth: usize) -> Result<Vec<u8>, String> {
        let schema = self.schema;
        let def = schema.messages.get(entry).ok_or("a map entry type the schema does not have")?;
        let (mut key, mut value) = (None, None);
        let mut reader = Reader::new(bytes);
        while let Some(f) = reader.field()? {
            match f.number {
                1 => key = Some(f),
                2 => value = Some(f),
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(bytes.len());
        let (key_def, value_def) = (def.field(1), def.field(2));
        let mut name = String::new();
        if let (Some(k), Some(kd)) = (key, key_def) {
            if k.wire != kd.kind.wire() {
                return Err("a map key of the wrong wire type".into());
            }
            match kd.kind {
                Kind::String => {
                    name = std::str::from_utf8(k.bytes).map_err(|_| "a map key that is not UTF-8".to_string())?.to_string();
                    let (_, new_key) = self.r.name_and_text(NameKind::Json, &name);
                    put_len(&mut out, 1, new_key.as_deref().unwrap_or(&name).as_bytes());
                }
                _ => {
                    name = k.value.to_string();
                    put_number(&mut out, 1, k.wire, k.value);
                }
            }
        }
        if let (Some(v), Some(vd)) = (value, value_def) {
            let verdict = self.r.name(NameKind::Json, &name);
            let mut rule = verdict.selection.map(|s| (s.rule, s.weak));
            if self.track_path {
                rule = min_rule(rule, self.pointer_rule(&name, &name));
                self.path.push((name.clone(), name.clone()));
            }
            let result = self.value(vd, v, Decision { rule, allowed: verdict.allowed }, depth, &mut out);
            if self.track_path {
                self.path.pop();
            }
            result?;
        }
        Ok(out)
    }
}

/// The values of a packed list, checked to the last byte.
fn unpack(kind: Kind, bytes: &[u8]) -> Result<Vec<u64>, String> {
    let size = match kind.wire() {
        Wire::Fixed64 => 8,
        Wire::Fixed32 => 4,
        Wire::Varint => 0,
        Wire::Len => return Err("a packed list of a type that cannot be packed".into()),
    };
    if size > 0 {
        if bytes.len() % size != 0 {
            return Err("a packed list cut inside a value".into());
        }
        return Ok(bytes
            .chunks(size)
            .map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            .collect());
    }
    let mut r = Reader::new(bytes);
    let mut values = Vec::new();
    while !r.at_end() {
        values.push(r.varint()?);
    }
    Ok(values)
}

/// A number from a pseudonym's hex digits, of the field's width and never
/// negative: 60 bits for a 64-bit field, 28 bits for a 32-bit one.
fn pseudonymous_number(pseudonym: &str, wide: bool, zigzag: bool) -> u64 {
    let digits = pseudonym.strip_prefix(HASH_PREFIX).unwrap_or(pseudonym);
    let take = if wide { 15 } else { 7 };
    let n = digits.chars().take(take).fold(0u64, |acc, c| (acc << 4) | u64::from(c.to_digit(16).unwrap_or(0)));
    if zigzag {
        n << 1
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::descriptor::build::shop;
    use crate::protowire::{put_len, put_number};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy(json: &str) -> Policy {
        Policy::parse(Some(json.as_bytes()), &|_| None).unwrap()
    }

    fn schema() -> Schema {
        Schema::decode(&shop()).unwrap()
    }

    fn order_type(s: &Schema) -> usize {
        s.input_of("/shop.Orders/Place").unwrap()
    }

    /// A decoded field: number → values (strings as text, numbers as decimal).
    fn decode(s: &Schema, message: usize, bytes: &[u8]) -> Vec<(String, String)> {
        let def = &s.messages[message];
        let mut out = Vec::new();
        let mut r = Reader::new(bytes);
        while let Some(f) = r.field().unwrap() {
            let field = def.field(f.number).unwrap();
            match field.kind {
                Kind::Message(m) => {
                    for (k, v) in decode(s, m, f.bytes) {
                        out.push((format!("{}.{k}", field.name), v));
                    }
                }
                Kind::String | Kind::Bytes => out.push((field.name.clone(), String::from_utf8_lossy(f.bytes).into_owned())),
                _ if f.wire == Wire::Len => out.push((field.name.clone(), format!("packed {:?}", f.bytes))),
                _ => out.push((field.name.clone(), f.value.to_string())),
            }
        }
        out
    }

    fn get<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn customer(email: &str, password: &str, name: &str, id: u64) -> Vec<u8> {
        let mut c = Vec::new();
        put_len(&mut c, 1, email.as_bytes());
        put_len(&mut c, 2, password.as_bytes());
        put_len(&mut c, 3, name.as_bytes());
        put_number(&mut c, 4, Wire::Varint, id);
        c
    }

    fn entry(key: &str, value: &str) -> Vec<u8> {
        let mut e = Vec::new();
        put_len(&mut e, 1, key.as_bytes());
        put_len(&mut e, 2, value.as_bytes());
        e
    }

    fn line(sku: &str, qty: u64, card: &str) -> Vec<u8> {
        let mut l = Vec::new();
        put_len(&mut l, 1, sku.as_bytes());
        put_number(&mut l, 2, Wire::Varint, qty);
        put_len(&mut l, 3, card.as_bytes());
        l
    }

    fn order() -> Vec<u8> {
        let mut o = Vec::new();
        put_len(&mut o, 1, b"ord-77");
        put_len(&mut o, 2, &customer("jane@example.com", "hunter2", "Jane", 4242));
        put_len(&mut o, 3, &line("A-1", 2, "4111 1111 1111 1111"));
        put_len(&mut o, 3, &line("B-2", 1, "none"));
        put_len(&mut o, 4, &entry("session_token", "tok-secret-value"));
        put_len(&mut o, 4, &entry("colour", "blue"));
        put_len(&mut o, 5, b"call +1 (555) 123-4567 please");
        put_number(&mut o, 6, Wire::Varint, 123_456_789);
        put_number(&mut o, 7, Wire::Varint, 1999);
        put_len(&mut o, 8, b"gift");
        put_len(&mut o, 9, &[0xff, 0xfe, 0x00]);
        put_number(&mut o, 10, Wire::Fixed64, 4_111_111_111_111_111);
        put_number(&mut o, 11, Wire::Varint, 1);
        put_number(&mut o, 99, Wire::Varint, 5);
        o
    }

    #[test]
    fn fields_are_selected_by_name_as_json_keys_are() {
        let s = schema();
        let p = policy(r#"{"rules":[{"name":"cards","detectors":["cardNumber"],"mode":"mask","placeholder":"****","keepLast":4}]}"#);
        let mut r = crate::nested::redactor(&p);
        let out = sanitize_message(&s, order_type(&s), &order(), &mut r).unwrap();
        let f = decode(&s, order_type(&s), &out);
        assert_eq!(get(&f, "order_id"), ["ord-77"]);
        assert_eq!(get(&f, "customer.password"), Vec::<&str>::new(), "builtin-fields removes it");
        assert_eq!(get(&f, "customer.email"), ["REDACTED"], "builtin-personal masks it");
        assert_eq!(get(&f, "customer.display_name"), ["Jane"]);
        assert_eq!(get(&f, "customer.customer_id"), Vec::<&str>::new(), "an identifier number, masked: left out");
        assert_eq!(get(&f, "lines.sku"), ["A-1", "B-2"]);
        assert_eq!(get(&f, "lines.qty"), ["2", "1"]);
        assert_eq!(get(&f, "lines.card_number"), ["REDACTED", "REDACTED"], "card number is an identifier phrase");
        assert_eq!(get(&f, "attributes.key"), ["session_token", "colour"], "map keys stay");
        assert_eq!(get(&f, "attributes.value"), ["blue"], "the token's value is removed by its key");
        assert!(!get(&f, "note")[0].contains("555"), "{:?}", get(&f, "note"));
        assert_eq!(get(&f, "account_number"), Vec::<&str>::new(), "an identifier by its words");
        assert_eq!(get(&f, "total_cents"), ["1999"]);
        assert_eq!(get(&f, "tags"), ["gift"]);
        assert_eq!(get(&f, "blob"), Vec::<&str>::new(), "bytes nothing can read are left out");
        assert_eq!(get(&f, "card_pan"), Vec::<&str>::new(), "a card number in a fixed64, found by the detector");
        assert_eq!(get(&f, "paid"), ["1"]);
        assert!(!f.iter().any(|(k, _)| k.is_empty()), "the unknown field 99 is left out");
        assert!(r.total() >= 6);
    }

    #[test]
    fn hash_gives_joinable_numbers_and_strings() {
        let s = schema();
        let p = policy(r#"{"rules":[{"name":"ids","fields":["customer_id","order_id"],"mode":"hash"}],"hashKey":{"value":"0123456789abcdef"},"builtinRules":false}"#);
        let run = |bytes: &[u8]| {
            let mut r = crate::nested::redactor(&p);
            decode(&s, order_type(&s), &sanitize_message(&s, order_type(&s), bytes, &mut r).unwrap())
        };
        let a = run(&order());
        let b = run(&order());
        let id = get(&a, "customer.customer_id")[0].to_string();
        assert_ne!(id, "4242");
        assert_eq!(get(&b, "customer.customer_id"), [id.as_str()], "the same id, the same number");
        assert!(id.parse::<u64>().unwrap() < 1 << 60);
        assert!(get(&a, "order_id")[0].starts_with("hmac-"));
        assert_eq!(get(&a, "customer.password"), ["hunter2"], "no built-in rules here");
    }

    #[test]
    fn pointers_and_the_allowlist() {
        let s = schema();
        let p = policy(r#"{"rules":[{"name":"second-sku","jsonPointers":["/lines/1/sku","/customer/displayName"],"mode":"mask"}],"builtinRules":false}"#);
        let mut r = crate::nested::redactor(&p);
        let f = decode(&s, order_type(&s), &sanitize_message(&s, order_type(&s), &order(), &mut r).unwrap());
        assert_eq!(get(&f, "lines.sku"), ["A-1", "REDACTED"]);
        assert_eq!(get(&f, "customer.display_name"), ["REDACTED"], "a pointer in JSON names");
        assert_eq!(get(&f, "customer.email"), ["jane@example.com"]);
        let allow = policy(r#"{"allowlist":{"names":["order_id","lines","sku","qty","customer"]},"builtinRules":false}"#);
        let mut r = crate::nested::redactor(&allow);
        let f = decode(&s, order_type(&s), &sanitize_message(&s, order_type(&s), &order(), &mut r).unwrap());
        assert_eq!(get(&f, "order_id"), ["ord-77"]);
        assert_eq!(get(&f, "lines.sku"), ["A-1", "B-2"]);
        assert_eq!(get(&f, "lines.card_number"), ["REDACTED", "REDACTED"]);
        assert_eq!(get(&f, "customer.display_name"), ["REDACTED"]);
        assert_eq!(get(&f, "total_cents"), Vec::<&str>::new(), "an unlisted number reads as 0");
        assert_eq!(get(&f, "note"), ["REDACTED"]);
    }

    #[test]
    fn packed_numbers_and_wrong_wire_types() {
        let s = schema();
        let p = policy("{}");
        let line_type = s.messages.iter().position(|m| m.name == "shop.Order.Line").unwrap();
        // `qty` as a packed list where it is not repeated: a mismatch.
        let mut bad = Vec::new();
        put_len(&mut bad, 2, &[1, 2, 3]);
        let mut r = crate::nested::redactor(&p);
        assert!(sanitize_message(&s, line_type, &bad, &mut r).unwrap_err().contains("shop.Order.Line.qty: wire type"));
        let mut bad = Vec::new();
        put_number(&mut bad, 1, Wire::Varint, 1);
        assert!(sanitize_message(&s, line_type, &bad, &mut r).is_err(), "a number where a string is due");
        let mut bad = Vec::new();
        put_len(&mut bad, 1, &[0xc3, 0x28]);
        assert!(sanitize_message(&s, line_type, &bad, &mut r).unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn hostile_messages_are_errors_never_panics() {
        let s = schema();
        let p = policy(r#"{"rules":[{"name":"p","jsonPointers":["/lines/0/sku"],"mode":"hash"}],"hashKey":{"value":"0123456789abcdef"}}"#);
        let mut r = crate::nested::redactor(&p);
        crate::protowire::damage::each_damaged(&order(), 0x2545_f491_4f6c_dd1d, 4000, |bad| {
            let _ = sanitize_message(&s, order_type(&s), bad, &mut r);
        });
        // A message that holds itself 200 deep: refused at the depth bound.
        let nested = Schema::decode(&crate::descriptor::build::set(&[crate::descriptor::build::file(
            "p",
            &[crate::descriptor::build::message("M", &[("m", 1, 11, false, ".p.M")], &[], false)],
            "S",
            &[("Call", ".p.M")],
        )]))
        .unwrap();
        let mut deep = Vec::new();
        for _ in 0..200 {
            let mut outer = Vec::new();
            put_len(&mut outer, 1, &deep);
            deep = outer;
        }
        let e = sanitize_message(&nested, 0, &deep, &mut r).unwrap_err();
        assert!(e.contains("nested deeper than 100"), "{e}");
        let mut ok = Vec::new();
        for _ in 0..50 {
            let mut outer = Vec::new();
            put_len(&mut outer, 1, &ok);
            ok = outer;
        }
        assert_eq!(sanitize_message(&nested, 0, &ok, &mut r).unwrap(), ok);
    }
}
