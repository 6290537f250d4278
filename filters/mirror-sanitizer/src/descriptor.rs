//! A `FileDescriptorSet` (as `protoc --include_imports --descriptor_set_out`
//! writes it, and Envoy's gRPC-JSON transcoder takes it), read into what the
//! protobuf rewriter needs: each message's fields (number, name, JSON name,
//! type, repeated), map entries, and each method's input message by its
//! gRPC path `/pkg.Service/Method`. Only the parts of `descriptor.proto`
//! that say this are read; the rest is skipped.

use crate::protowire::{Reader, Wire};
use std::collections::HashMap;

/// Messages nest at most this deep in a descriptor.
const MAX_NESTING: usize = 64;

/// What a field holds, as far as redaction cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Bytes,
    /// A message: its index in [`Schema::messages`].
    Message(usize),
    /// An integer carried as a varint (`int32`, `int64`, `uint32`,
    /// `uint64`, `sint32`, `sint64`); `wide`: 64 bits.
    Varint { wide: bool, zigzag: bool },
    /// An integer in fixed bytes (`fixed32`, `sfixed32`, `fixed64`, `sfixed64`).
    Fixed { wide: bool },
    /// `bool`, `enum`, `float`, `double`: kept or zeroed, never read.
    Other(Wire),
}

impl Kind {
    /// The wire layout of one value of this kind.
    pub fn wire(self) -> Wire {
        match self {
            Kind::String | Kind::Bytes | Kind::Message(_) => Wire::Len,
            Kind::Varint { .. } => Wire::Varint,
            Kind::Fixed { wide: true } => Wire::Fixed64,
            Kind::Fixed { wide: false } => Wire::Fixed32,
            Kind::Other(w) => w,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub number: u32,
    pub name: String,
    /// The field's name in protobuf's JSON mapping (`lowerCamelCase`).
    pub json_name: String,
    pub kind: Kind,
    pub repeated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageDef {
    /// Fully qualified, without the leading dot: `shop.Order.Line`.
    pub name: String,
    /// Sorted by number.
    pub fields: Vec<FieldDef>,
    /// A map's entry (`key` = 1, `value` = 2).
    pub map_entry: bool,
}

impl MessageDef {
    pub fn field(&self, number: u32) -> Option<&FieldDef> {
        self.fields.binary_search_by_key(&number, |f| f.number).ok().and_then(|i| self.fields.get(i))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub messages: Vec<MessageDef>,
    /// `/pkg.Service/Method` → its input message.
    pub methods: HashMap<String, usize>,
}

impl Schema {
    /// The input message of the method a gRPC `:path` names.
    pub fn input_of(&self, path: &str) -> Option<usize> {
        self.methods.get(path.split('?').next().unwrap_or_default()).copied()
    }

    /// Reads a serialized `FileDescriptorSet`. Errors say where
    /// (`file[0] "shop.proto": message shop.Order: field 3: …`).
    pub fn decode(set: &[u8]) -> Result<Self, String> {
        let mut files = Vec::new();
        let mut r = Reader::new(set);
        while let Some(f) = r.field()? {
            if f.number == 1 && f.wire == Wire::Len {
                files.push(f.bytes);
            }
        }
        if files.is_empty() {
            return Err("holds no file (a FileDescriptorSet, as protoc --descriptor_set_out writes it)".into());
        }
        let mut raw = RawSchema::default();
        for (i, file) in files.iter().enumerate() {
            raw.file(file).map_err(|e| format!("file[{i}]{}: {e}", raw.file_name.take().map(|n| format!(" {n:?}")).unwrap_or_default()))?;
        }
        raw.resolve()
    }
}

/// A field before its type name is resolved.
struct RawField {
    def: FieldDef,
    type_code: u64,
    type_name: String,
}

struct RawMessage {
    name: String,
    fields: Vec<RawField>,
    map_entry: bool,
}

#[derive(Default)]
struct RawSchema {
    messages: Vec<RawMessage>,
    /// (`/pkg.Service/Method`, input type name as written, where).
    methods: Vec<(String, String, String)>,
    /// The file being read, for error messages.
    file_name: Option<String>,
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

impl RawSchema {
    fn file(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut package = String::new();
        let mut messages = Vec::new();
        let mut services = Vec::new();
        let mut r = Reader::new(bytes);
        while let Some(f) = r.field()? {
            match (f.number, f.wire) {
                (1, Wire::Len) => self.file_name = Some(text(f.bytes, "the file name")?),
                (2, Wire::Len) => package = text(f.bytes, "the package")?,
                (4, Wire::Len) => messages.push(f.bytes),
                (6, Wire::Len) => services.push(f.bytes),
                _ => {}
            }
        }
        for m in messages {
            self.message(m, &package, 0)?;
        }
        for s in services {
            self.service(s, &package)?;
        }
        self.file_name = None;
        Ok(())
    }

    fn message(&mut self, bytes: &[u8], scope: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_NESTING {
            return Err(format!("messages nested deeper than {MAX_NESTING}"));
        }
        let mut name = String::new();
        let mut fields = Vec::new();
        let mut nested = Vec::new();
        let mut map_entry = false;
        let mut r = Reader::new(bytes);
        while let Some(f) = r.field()? {
            match (f.number, f.wire) {
                (1, Wire::Len) => name = text(f.bytes, "a message name")?,
                (2, Wire::Len) => fields.push(f.bytes),
                (3, Wire::Len) => nested.push(f.bytes),
                (7, Wire::Len) => map_entry = is_map_entry(f.bytes)?,
                _ => {}
            }
        }
        if name.is_empty() {
            return Err(format!("a message in {scope:?} has no name"));
        }
        let full = if scope.is_empty() { name } else { format!("{scope}.{name}") };
        let fields = fields.into_iter().map(raw_field).collect::<Result<Vec<_>, _>>().map_err(|e| format!("message {full}: {e}"))?;
        for n in nested {
            self.message(n, &full, depth + 1)?;
        }
        self.messages.push(RawMessage { name: full, fields, map_entry });
        Ok(())
    }

    fn service(&mut self, bytes: &[u8], package: &str) -> Result<(), String> {
        let mut name = String::new();
        let mut methods = Vec::new();
        let mut r = Reader::new(bytes);
        while let Some(f) = r.field()? {
            match (f.number, f.wire) {
                (1, Wire::Len) => name = text(f.bytes, "a service name")?,
                (2, Wire::Len) => methods.push(f.bytes),
                _ => {}
            }
        }
        let full = if package.is_empty() { name } else { format!("{package}.{name}") };
        for m in methods {
            let (mut method, mut input) = (String::new(), String::new());
            let mut r = Reader::new(m);
            while let Some(f) = r.field()? {
                match (f.number, f.wire) {
                    (1, Wire::Len) => method = text(f.bytes, "a method name")?,
                    (2, Wire::Len) => input = text(f.bytes, "a method's input type")?,
                    _ => {}
                }
            }
            let path = format!("/{full}/{method}");
            self.methods.push((path.clone(), input, format!("service {full}: method {method}")));
        }
        Ok(())
    }

    fn resolve(self) -> Result<Schema, String> {
        let index: HashMap<&str, usize> = self.messages.iter().enumerate().map(|(i, m)| (m.name.as_str(), i)).collect();
        let find = |name: &str, scope: &str| -> Option<usize> {
            if let Some(full) = name.strip_prefix('.') {
                return index.get(full).copied();
            }
            // A relative name, looked up from the innermost scope outwards.
            let mut scope = scope;
            loop {
                let candidate = if scope.is_empty() { name.to_string() } else { format!("{scope}.{name}") };
                if let Some(&i) = index.get(candidate.as_str()) {
                    return Some(i);
                }
                if scope.is_empty() {
                    return None;
                }
                scope = scope.rfind('.').map_or("", |d| scope.get(..d).unwrap_or_default());
            }
        };
        let mut messages = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            let mut fields = Vec::with_capacity(m.fields.len());
            for f in &m.fields {
                let mut def = f.def.clone();
                if f.type_code == 11 {
                    let target = find(&f.type_name, &m.name).ok_or_else(|| format!("message {}: field {}: type {} is not in the set (add --include_imports)", m.name, def.name, f.type_name))?;
                    def.kind = Kind::Message(target);
                }
                fields.push(def);
            }
            fields.sort_by_key(|f| f.number);
            if let Some(pair) = fields.windows(2).find(|w| w.first().map(|f| f.number) == w.get(1).map(|f| f.number)) {
                return Err(format!("message {}: two fields numbered {}", m.name, pair.first().map_or(0, |f| f.number)));
            }
            messages.push(MessageDef { name: m.name.clone(), fields, map_entry: m.map_entry });
        }
        let mut methods = HashMap::new();
        for (path, input, place) in &self.methods {
            let scope = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            let package = scope.rfind('.').map_or("", |d| scope.get(..d).unwrap_or_default());
            let target = find(input, package).ok_or_else(|| format!("{place}: input type {input} is not in the set (add --include_imports)"))?;
            methods.insert(path.clone(), target);
        }
        Ok(Schema { messages, methods })
    }
}

fn is_map_entry(options: &[u8]) -> Result<bool, String> {
    let mut r = Reader::new(options);
    let mut entry = false;
    while let Some(f) = r.field()? {
        if f.number == 7 && f.wire == Wire::Varint {
            entry = f.value != 0;
        }
    }
    Ok(entry)
}

fn raw_field(bytes: &[u8]) -> Result<RawField, String> {
    let (mut name, mut json_name, mut number, mut label, mut type_code, mut type_name) = (String::new(), None, 0u64, 1u64, 0u64, String::new());
    let mut r = Reader::new(bytes);
    while let Some(f) = r.field()? {
        match (f.number, f.wire) {
            (1, Wire::Len) => name = text(f.bytes, "a field name")?,
            (3, Wire::Varint) => number = f.value,
            (4, Wire::Varint) => label = f.value,
            (5, Wire::Varint) => type_code = f.value,
            (6, Wire::Len) => type_name = text(f.bytes, "a type name")?,
            (10, Wire::Len) => json_name = Some(text(f.bytes, "a JSON name")?),
            _ => {}
        }
    }
    let at = if name.is_empty() { format!("field {number}") } else { format!("field {name}") };
    let number = u32::try_from(number).ok().filter(|&n| n != 0 && n <= crate::protowire::MAX_FIELD_NUMBER).ok_or_else(|| format!("{at}: number {number} is out of range"))?;
    let kind = match type_code {
        9 => Kind::String,
        12 => Kind::Bytes,
        // Resolved once every message is known.
        11 => Kind::Message(usize::MAX),
        3 | 4 => Kind::Varint { wide: true, zigzag: false },
        5 | 13 => Kind::Varint { wide: false, zigzag: false },
        17 => Kind::Varint { wide: false, zigzag: true },
        18 => Kind::Varint { wide: true, zigzag: true },
        6 | 16 => Kind::Fixed { wide: true },
        7 | 15 => Kind::Fixed { wide: false },
        8 | 14 => Kind::Other(Wire::Varint),
        1 => Kind::Other(Wire::Fixed64),
        2 => Kind::Other(Wire::Fixed32),
        10 => return Err(format!("{at}: groups are not supported")),
        0 if type_name.is_empty() => return Err(format!("{at}: no type")),
        // A type name alone: protoc always writes the type, so refuse to guess.
        n => return Err(format!("{at}: unknown type {n}")),
    };
    let json_name = json_name.unwrap_or_else(|| lower_camel(&name));
    Ok(RawField { def: FieldDef { number, name, json_name, kind, repeated: label == 3 }, type_code, type_name })
}

/// protoc's default JSON name: underscores dropped, the letter after each
/// upper-cased.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Writing descriptors by hand, for tests (no protoc on the build machine).
#[cfg(test)]
pub mod build {
    use crate::protowire::{put_len, put_number, Wire};

    /// `(name, number, type code, repeated, type name)`.
    pub type Field<'a> = (&'a str, u32, u64, bool, &'a str);

    pub fn field((name, number, type_code, repeated, type_name): Field<'_>) -> Vec<u8> {
        let mut f = Vec::new();
        put_len(&mut f, 1, name.as_bytes());
        put_number(&mut f, 3, Wire::Varint, u64::from(number));
        put_number(&mut f, 4, Wire::Varint, if repeated { 3 } else { 1 });
        put_number(&mut f, 5, Wire::Varint, type_code);
        if !type_name.is_empty() {
            put_len(&mut f, 6, type_name.as_bytes());
        }
        f
    }

    pub fn message(name: &str, fields: &[Field<'_>], nested: &[Vec<u8>], map_entry: bool) -> Vec<u8> {
        let mut m = Vec::new();
        put_len(&mut m, 1, name.as_bytes());
        for f in fields {
            put_len(&mut m, 2, &field(*f));
        }
        for n in nested {
            put_len(&mut m, 3, n);
        }
        if map_entry {
            let mut options = Vec::new();
            put_number(&mut options, 7, Wire::Varint, 1);
            put_len(&mut m, 7, &options);
        }
        m
    }

    /// A file with `messages` and one service of `(method, input type)`.
    pub fn file(package: &str, messages: &[Vec<u8>], service: &str, methods: &[(&str, &str)]) -> Vec<u8> {
        let mut file = Vec::new();
        put_len(&mut file, 1, format!("{package}.proto").as_bytes());
        put_len(&mut file, 2, package.as_bytes());
        for m in messages {
            put_len(&mut file, 4, m);
        }
        let mut s = Vec::new();
        put_len(&mut s, 1, service.as_bytes());
        for (name, input) in methods {
            let mut m = Vec::new();
            put_len(&mut m, 1, name.as_bytes());
            put_len(&mut m, 2, input.as_bytes());
            put_len(&mut m, 3, input.as_bytes());
            put_len(&mut s, 2, &m);
        }
        put_len(&mut file, 6, &s);
        file
    }

    pub fn set(files: &[Vec<u8>]) -> Vec<u8> {
        let mut set = Vec::new();
        for f in files {
            put_len(&mut set, 1, f);
        }
        set
    }

    /// The descriptor of the tests' `shop` package: an order with a
    /// customer, lines, a map of attributes and plain numbers.
    pub fn shop() -> Vec<u8> {
        let entry = message("AttributesEntry", &[("key", 1, 9, false, ""), ("value", 2, 9, false, "")], &[], true);
        let line = message("Line", &[("sku", 1, 9, false, ""), ("qty", 2, 13, false, ""), ("card_number", 3, 9, false, "")], &[], false);
        let order = message(
            "Order",
            &[
                ("order_id", 1, 9, false, ""),
                ("customer", 2, 11, false, ".shop.Customer"),
                ("lines", 3, 11, true, "Order.Line"),
                ("attributes", 4, 11, true, ".shop.Order.AttributesEntry"),
                ("note", 5, 9, false, ""),
                ("account_number", 6, 3, false, ""),
                ("total_cents", 7, 3, false, ""),
                ("tags", 8, 9, true, ""),
                ("blob", 9, 12, false, ""),
                ("card_pan", 10, 6, false, ""),
                ("paid", 11, 8, false, ""),
            ],
            &[line, entry],
            false,
        );
        let customer = message("Customer", &[("email", 1, 9, false, ""), ("password", 2, 9, false, ""), ("display_name", 3, 9, false, ""), ("customer_id", 4, 3, false, "")], &[], false);
        set(&[file("shop", &[order, customer], "Orders", &[("Place", ".shop.Order"), ("Relative", "Order")])])
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_set_gives_messages_fields_and_methods() {
        let s = Schema::decode(&shop()).unwrap();
        let order = s.input_of("/shop.Orders/Place").unwrap();
        assert_eq!(s.input_of("/shop.Orders/Relative"), Some(order), "a relative input type resolves from the package");
        assert_eq!(s.input_of("/shop.Orders/Nope"), None);
        let m = &s.messages[order];
        assert_eq!(m.name, "shop.Order");
        let customer = m.field(2).unwrap();
        assert!(matches!(customer.kind, Kind::Message(i) if s.messages[i].name == "shop.Customer"));
        let lines = m.field(3).unwrap();
        assert!(lines.repeated);
        assert!(matches!(lines.kind, Kind::Message(i) if s.messages[i].name == "shop.Order.Line"), "relative to the message's scope");
        assert!(matches!(m.field(4).unwrap().kind, Kind::Message(i) if s.messages[i].map_entry));
        assert_eq!(m.field(6).unwrap().json_name, "accountNumber");
        assert_eq!(m.field(6).unwrap().kind, Kind::Varint { wide: true, zigzag: false });
        assert_eq!(m.field(10).unwrap().kind, Kind::Fixed { wide: true });
        assert_eq!(m.field(11).unwrap().kind, Kind::Other(Wire::Varint));
    }

    #[test]
    fn broken_sets_say_where() {
        let missing = set(&[file("shop", &[message("Order", &[("customer", 2, 11, false, ".shop.Customer")], &[], false)], "Orders", &[("Place", ".shop.Order")])]);
        let e = Schema::decode(&missing).unwrap_err();
        assert!(e.contains("message shop.Order: field customer: type .shop.Customer is not in the set"), "{e}");
        let no_input = set(&[file("shop", &[], "Orders", &[("Place", ".shop.Gone")])]);
        assert!(Schema::decode(&no_input).unwrap_err().contains("service shop.Orders: method Place: input type .shop.Gone"));
        let group = set(&[file("shop", &[message("Order", &[("g", 1, 10, false, "")], &[], false)], "S", &[])]);
        let e = Schema::decode(&group).unwrap_err();
        assert!(e.starts_with("file[0] \"shop.proto\": message shop.Order: field g: groups"), "{e}");
        let twice = set(&[file("shop", &[message("Order", &[("a", 1, 9, false, ""), ("b", 1, 9, false, "")], &[], false)], "S", &[])]);
        assert!(Schema::decode(&twice).unwrap_err().contains("two fields numbered 1"));
        assert!(Schema::decode(&[]).unwrap_err().contains("holds no file"));
        assert!(Schema::decode(b"not a descriptor").is_err());
    }

    #[test]
    fn hostile_sets_never_panic() {
        // Every truncation and many single-byte corruptions: an error or a schema, never a panic.
        crate::protowire::damage::each_damaged(&shop(), 0x9e37_79b9_7f4a_7c15, 3000, |bad| {
            let _ = Schema::decode(bad);
        });
        // Messages nested 100 deep are refused, not recursed into without end.
        let mut m = message("M", &[], &[], false);
        for _ in 0..100 {
            m = message("M", &[], &[m], false);
        }
        assert!(Schema::decode(&set(&[file("p", &[m], "S", &[])])).unwrap_err().contains("nested deeper"));
    }
}
