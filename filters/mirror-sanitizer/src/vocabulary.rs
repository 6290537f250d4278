//! The sensitive vocabulary: which words in a name say that its value is a
//! credential, an identifier of a person or account, or other personal
//! data. A name is classified by its words (see `words`), never by its
//! exact spelling, so `newPassword`, `account[pass]`, `X-Goog-Signature`
//! and `gcp_private_key_id` are caught while `page`, `sort`, `tokenizer`,
//! `keyboard` and `order_id` are not.

use crate::text::FnvBuild;
use std::collections::{HashMap, HashSet};

/// The classes a name can fall in, as bits.
pub const CREDENTIAL: u8 = 1;
pub const IDENTIFIER: u8 = 2;
pub const PERSONAL: u8 = 4;
/// A weak credential word (`key`, `code`, `salt`): the value is a secret
/// only when it looks like one (long, mixed, high-entropy).
pub const WEAK: u8 = 8;

/// Words that are credentials on their own (plurals are found too).
const CREDENTIAL_WORDS: &[&str] = &[
    "password", "passwd", "pwd", "pass", "passphrase", "passcode", "secret", "token", "credential", "creds", "signature", "sig",
    "otp", "totp", "hotp", "pin", "cvv", "cvc", "cvv2", "cvc2", "auth", "authorization", "session", "sessionid", "sessid", "cookie", "jwt",
    "bearer", "csrf", "xsrf", "hmac",
];

/// Word sequences that are credentials (the glued form, `apikey`, too).
const CREDENTIAL_PHRASES: &[&str] = &[
    "api key", "access key", "private key", "secret key", "signing key", "encryption key", "client key", "master key", "auth key",
    "session key", "license key", "licence key", "account key", "app key", "application key", "consumer key", "subscription key",
    "shared key", "storage key", "service key", "ssh key", "gpg key", "pgp key", "root key", "admin key", "webhook key", "aes key",
    "security code", "auth code", "authorization code", "verification code", "recovery code", "backup code", "access code",
    "otp code", "confirmation code", "reset code", "mfa code", "sms code", "login code", "one time code", "connection string",
];

/// Words that identify a person or an account on their own.
const IDENTIFIER_WORDS: &[&str] = &[
    "ssn", "nino", "nin", "passport", "iban", "itin", "aadhaar", "aadhar", "pesel", "nric", "cpf", "curp", "dni", "bsn",
    "personnummer", "steuernummer", "pan", "imei", "imsi",
];

/// Word sequences that identify a person or an account.
const IDENTIFIER_PHRASES: &[&str] = &[
    "user id", "customer id", "member id", "patient id", "employee id", "person id", "subscriber id", "account id", "national id",
    "tax id", "citizen id", "voter id", "student id", "social id", "government id", "passport id", "driver id",
    "card number", "card no", "card num", "card nr", "account number", "account no", "account num", "account nr", "acct number",
    "acct no", "tax number", "tax no", "social security", "national insurance", "social insurance", "insurance number",
    "routing number", "license number", "licence number", "driver license", "drivers license", "driving license",
    "driving licence", "drivers licence", "id number", "identity number", "identification number", "medical record",
    "employee number", "member number", "patient number", "customer number", "citizen number", "voter number", "credit card",
    "debit card", "bank account", "sort code", "tax code", "fiscal code",
];

/// Other personal data.
const PERSONAL_WORDS: &[&str] =
    &["email", "phone", "telephone", "tel", "msisdn", "address", "street", "postcode", "zipcode", "dob", "birthday", "birthdate", "birth", "birthplace"];

const PERSONAL_PHRASES: &[&str] =
    &["e mail", "mobile number", "mobile no", "mobile phone", "cell phone", "zip code", "postal code", "post code", "date of birth"];

/// Weak words: a secret only when the value looks like one.
const WEAK_WORDS: &[&str] = &["key", "code", "hash", "salt", "nonce", "seed", "sid", "cert"];

/// Words that, glued before a short sensitive word, make one name of it
/// (`adminpwd`, `cardpin`, `userpass`; not `compass` or `spin`).
const QUALIFIERS: &[&str] = &[
    "admin", "user", "db", "root", "new", "old", "card", "account", "acct", "app", "web", "api", "master", "login", "wallet", "atm", "sms",
    "bank", "client", "server", "service", "customer", "member", "my", "current", "confirm", "temp", "default", "php", "j", "asp",
];

/// Words that, glued after a sensitive word, name a part of it
/// (`privatekeyid`, `passportnumber`, `pincode`; not `tokenizer`).
const PARTS: &[&str] = &["id", "number", "no", "num", "nr", "hash", "value", "code", "data", "string", "str", "text", "list"];

/// A last word that makes the name describe a value rather than hold one
/// (`token_type`, `password_length`, `session_timeout`, `auth_url`).
const DESCRIPTORS: &[&str] = &[
    "type", "kind", "method", "mode", "scheme", "length", "len", "size", "count", "expires", "expiry", "expiration", "exp", "ttl",
    "timeout", "lifetime", "url", "uri", "endpoint", "format", "version", "enabled", "required", "present", "valid", "status",
    "hint", "policy", "strength", "provider", "at", "in", "changed", "updated", "created", "reset", "algorithm", "alg", "prefix",
    "masked", "redacted", "field", "header", "param", "verified", "confirmed",
];

/// The compiled vocabulary: built-in words plus the user's, and the names
/// the user exempted.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    single: HashMap<String, u8, FnvBuild>,
    /// By last word: the words before it and the classes of the phrase.
    phrases: HashMap<String, Vec<(Vec<String>, u8)>, FnvBuild>,
    descriptors: HashSet<String, FnvBuild>,
    /// Exempted names, as their words joined by single spaces.
    exempt: HashSet<String, FnvBuild>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        let mut v = Vocabulary { single: HashMap::default(), phrases: HashMap::default(), descriptors: HashSet::default(), exempt: HashSet::default() };
        for (list, class) in [(CREDENTIAL_WORDS, CREDENTIAL), (IDENTIFIER_WORDS, IDENTIFIER), (PERSONAL_WORDS, PERSONAL), (WEAK_WORDS, WEAK)] {
            for w in list {
                v.add(w, class);
            }
        }
        for (list, class) in [(CREDENTIAL_PHRASES, CREDENTIAL), (IDENTIFIER_PHRASES, IDENTIFIER), (PERSONAL_PHRASES, PERSONAL)] {
            for p in list {
                v.add(p, class);
            }
        }
        v.descriptors = DESCRIPTORS.iter().map(|d| d.to_string()).collect();
        v
    }
}

impl Vocabulary {
    /// Adds a word or phrase (split into words like any name) to a class.
    /// Returns false when it has no words.
    pub fn add(&mut self, phrase: &str, class: u8) -> bool {
        let mut words = crate::words::words(phrase);
        let Some(last) = words.pop() else { return false };
        if words.is_empty() {
            *self.single.entry(last).or_insert(0) |= class;
        } else {
            // The glued spelling (`apikey`, `dateofbirth`) is a word too.
            let glued = format!("{}{last}", words.concat());
            *self.single.entry(glued).or_insert(0) |= class;
            self.phrases.entry(last).or_default().push((words, class));
        }
        true
    }

    /// Exempts a name (any spelling with the same words) from classification.
    pub fn exempt(&mut self, name: &str) -> bool {
        let words = crate::words::words(name);
        !words.is_empty() && self.exempt.insert(words.join(" "))
    }

    fn word_classes(&self, word: &str) -> u8 {
        if let Some(&c) = self.single.get(word) {
            return c;
        }
        if let Some(&c) = word.strip_suffix('s').and_then(|stem| self.single.get(stem)) {
            return c;
        }
        self.glued_classes(word)
    }

    /// A word made of a sensitive word and another, glued (header names
    /// lose their case: `x-adminpwd`, `homeaddress`, `privatekeyid`): a
    /// sensitive word of five letters or more at its end, a short one after
    /// a qualifier, or a sensitive word followed by a part word.
    fn glued_classes(&self, word: &str) -> u8 {
        if word.len() < 5 || !word.is_ascii() {
            return 0;
        }
        let strong = |w: &str| self.single.get(w).map_or(0, |&c| c & !WEAK);
        for k in 1..word.len() - 1 {
            let (Some(left), Some(right)) = (word.get(..k), word.get(k..)) else { continue };
            let end = strong(right);
            if end != 0 && (right.len() >= 5 && left.len() >= 2 || QUALIFIERS.contains(&left)) {
                return end;
            }
            let start = strong(left);
            if start != 0 && left.len() >= 3 && PARTS.contains(&right) {
                return start;
            }
        }
        0
    }

    /// The classes of a name given by its words (`CREDENTIAL | …`, 0 for
    /// none).
    pub fn classify(&self, words: &[String]) -> u8 {
        let Some(last) = words.last() else { return 0 };
        if words.len() > 1 && self.descriptors.contains(last.as_str()) {
            return 0;
        }
        if !self.exempt.is_empty() && self.exempt.contains(&words.join(" ")) {
            return 0;
        }
        let mut classes = 0;
        for (i, w) in words.iter().enumerate() {
            classes |= self.word_classes(w);
            let list = self.phrases.get(w.as_str()).or_else(|| w.strip_suffix('s').and_then(|s| self.phrases.get(s)));
            for (before, class) in list.into_iter().flatten() {
                let from = i.checked_sub(before.len());
                if from.and_then(|f| words.get(f..i)).is_some_and(|ws| ws == before.as_slice()) {
                    classes |= class;
                }
            }
        }
        // A weak word beside a strong one adds nothing.
        if classes & !WEAK != 0 {
            classes &= !WEAK;
        }
        classes
    }
}

/// Whether a value under a weak name is a secret: long, without spaces, of
/// several character classes and high in entropy (`SplxlOBeZQQYbYS6WxSbIA`
/// yes; `color`, `en-US`, `2024-01-01` no).
pub fn looks_secret(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() < 16 || bytes.iter().any(|b| b.is_ascii_whitespace()) {
        return false;
    }
    let classes = [bytes.iter().any(u8::is_ascii_lowercase), bytes.iter().any(u8::is_ascii_uppercase), bytes.iter().any(u8::is_ascii_digit)];
    if classes.iter().filter(|&&c| c).count() < 2 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = bytes.len() as f64;
    let entropy: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum();
    entropy >= 3.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::words;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn class(name: &str) -> u8 {
        Vocabulary::default().classify(&words(name))
    }

    #[test]
    fn compound_names_are_classified_by_their_words() {
        for name in [
            "account[pass]", "account%5Bpass%5D", "gcp_private_key_id", "X-Goog-Signature", "cardPin", "newPassword", "db.password",
            "newpassword", "X-Amz-Signature", "sig", "client_secret", "accessToken", "APIKey", "x-api-key", "refresh_tokens", "authorization",
            "connectionString", "security_code", "otp", "x-adminpwd", "cardpin", "pincode", "privatekeyid", "jsessionid", "phpsessid",
            "userpass", "accesstoken", "clientsecret",
        ] {
            assert_eq!(class(name), CREDENTIAL, "{name}");
        }
        for name in ["x-customer-id", "ssn", "customer.ssn", "passportNumber", "passportnumber", "taxId", "iban", "card_number", "accountNo", "userId", "drivers_license_number", "sortCode"] {
            assert_eq!(class(name) & IDENTIFIER, IDENTIFIER, "{name}");
        }
        for name in ["email", "e-mail", "contactEmail", "phone_number", "homeAddress", "homeaddress", "dob", "dateOfBirth", "date_of_birth", "birthDate", "zip_code"] {
            assert_eq!(class(name), PERSONAL, "{name}");
        }
        for name in ["key", "code", "salt", "nonce", "api_code"] {
            assert_eq!(class(name), WEAK, "{name}");
        }
    }

    #[test]
    fn ordinary_names_survive() {
        for name in [
            "page", "sort", "view", "tokenizer", "keyboard", "id", "order_id", "orderId", "product-id", "x-request-id", "sku", "qty",
            "token_type", "expires_in", "password_policy", "session_timeout", "auth_url", "name", "passenger", "compass", "bypass",
            "secretary", "description", "currency", "spin", "encompass", "pinball", "iphone", "tokens_used_count", "page_token_type", "sort_order", "country_code_type", "trace_id", "grant_type",
        ] {
            assert_eq!(class(name), 0, "{name}");
        }
    }

    #[test]
    fn users_add_words_and_exempt_names() {
        let mut v = Vocabulary::default();
        assert!(v.add("badge number", IDENTIFIER) && v.add("voucher", CREDENTIAL) && !v.add("--", CREDENTIAL));
        assert!(v.exempt("x-session-hint-id") && v.exempt("public_key"));
        assert_eq!(v.classify(&words("employeeBadgeNumber")), IDENTIFIER);
        assert_eq!(v.classify(&words("badgenumber")), IDENTIFIER);
        assert_eq!(v.classify(&words("giftVouchers")), CREDENTIAL);
        assert_eq!(Vocabulary::default().classify(&words("giftVoucher")), 0);
        assert_eq!(v.classify(&words("X-Session-Hint-Id")), 0);
        assert_eq!(v.classify(&words("publicKey")), 0);
    }

    #[test]
    fn weak_names_take_only_secret_looking_values() {
        assert!(looks_secret("SplxlOBeZQQYbYS6WxSbIA"));
        assert!(looks_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(looks_secret("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
        for plain in ["color", "en-US", "2024-01-01", "aaaaaaaaaaaaaaaaaaaa1", "the quick brown fox jumps", "ORDER-1234"] {
            assert!(!looks_secret(plain), "{plain}");
        }
    }
}
