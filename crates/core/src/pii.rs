//! Finding personal data in text: e-mail addresses, phone numbers, payment card numbers (Luhn
//! checked), IBANs (mod-97 checked), US social security numbers and IP addresses; and finding
//! blocked keywords.
//!
//! Patterns are deliberately conservative: a number is only a card when its check digit is right,
//! an IBAN only when its checksum is, an IP address only when it parses. Masking replaces each
//! finding with a placeholder naming its kind (`[EMAIL_ADDRESS]`), never a partial value.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An e-mail address.
    Email,
    /// A phone number (10 to 15 digits, optional `+` country code, common separators).
    Phone,
    /// A payment card number passing the Luhn check.
    CreditCard,
    /// An IBAN passing the ISO 7064 mod-97 check.
    Iban,
    /// A US social security number.
    UsSsn,
    /// An IPv4 or IPv6 address.
    IpAddress,
}

impl Kind {
    /// The placeholder that replaces a masked finding.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL_ADDRESS]",
            Kind::Phone => "[PHONE_NUMBER]",
            Kind::CreditCard => "[CREDIT_CARD]",
            Kind::Iban => "[IBAN_CODE]",
            Kind::UsSsn => "[US_SSN]",
            Kind::IpAddress => "[IP_ADDRESS]",
        }
    }

    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Email => "an e-mail address",
            Kind::Phone => "a phone number",
            Kind::CreditCard => "a payment card number",
            Kind::Iban => "an IBAN",
            Kind::UsSsn => "a US social security number",
            Kind::IpAddress => "an IP address",
        }
    }
}

/// One finding: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Byte range in the text.
    pub range: Range<usize>,
    /// Kind of data.
    pub kind: Kind,
}

type Check = fn(&str) -> bool;

/// Decimal digits the patterns recognise: ASCII, full-width, Arabic-Indic (both forms) and
/// Devanagari. A number typed in any of them is the same number.
const D: &str = r"[0-9\x{FF10}-\x{FF19}\x{0660}-\x{0669}\x{06F0}-\x{06F9}\x{0966}-\x{096F}]";
/// Separators inside a card number: spaces (including no-break, figure, thin and ideographic
/// spaces), hyphens and dashes.
const SEP: &str = r"[ \-\x{00A0}\x{2007}\x{2009}\x{202F}\x{3000}\x{2010}-\x{2015}\x{FF0D}]";

// Ordered by priority when findings overlap at the same start: the more specific kinds first.
static PATTERNS: LazyLock<Vec<(Kind, Regex, Check)>> = LazyLock::new(|| {
    let re = |p: &str| {
        let p = p.replace("DIGIT", D).replace("SEP", SEP);
        Regex::new(&p).unwrap_or_else(|e| unreachable!("built-in pattern {p}: {e}"))
    };
    vec![
        (
            Kind::Email,
            re(
                r"[A-Za-z0-9._%+\-]{1,64}[@\x{FF20}][A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
            ),
            (|_| true) as Check,
        ),
        (Kind::UsSsn, re(r"\bDIGIT{3}-DIGIT{2}-DIGIT{4}\b"), ssn_ok),
        (Kind::CreditCard, re(r"\bDIGIT(?:SEP?DIGIT){12,18}\b"), luhn_ok),
        // Dotted card numbers only in their printed groups (4-4-4-4, 4-6-5), so decimals never are.
        (Kind::CreditCard, re(r"\bDIGIT{4}(?:\.DIGIT{4}){3}\b|\bDIGIT{4}\.DIGIT{6}\.DIGIT{5}\b"), luhn_ok),
        (Kind::Iban, re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_ok),
        (Kind::IpAddress, re(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), |s| s.parse::<Ipv4Addr>().is_ok()),
        (Kind::IpAddress, re(r"(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\b|::)"), |s| {
            s.matches(':').count() >= 2 && s.parse::<Ipv6Addr>().is_ok()
        }),
        (
            Kind::Phone,
            re(r"(?:\+DIGIT{1,3}[ .\-]?)?(?:\(DIGIT{1,4}\)[ .\-]?)?DIGIT{2,4}(?:[ .\-]?DIGIT{2,4}){1,4}\b"),
            phone_ok,
        ),
    ]
});

/// The value of a decimal digit in one of the scripts of [`D`].
fn digit_value(c: char) -> Option<u32> {
    let zero = match c {
        '0'..='9' => '0',
        '\u{FF10}'..='\u{FF19}' => '\u{FF10}',
        '\u{0660}'..='\u{0669}' => '\u{0660}',
        '\u{06F0}'..='\u{06F9}' => '\u{06F0}',
        '\u{0966}'..='\u{096F}' => '\u{0966}',
        _ => return None,
    };
    Some(c as u32 - zero as u32)
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(digit_value).collect()
}

fn luhn_ok(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| match (i % 2, x * 2) {
            (1, y) if y > 9 => y - 9,
            (1, y) => y,
            _ => x,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn ssn_ok(s: &str) -> bool {
    let ascii: String = s.chars().map(|c| digit_value(c).and_then(|d| char::from_digit(d, 10)).unwrap_or(c)).collect();
    let parts: Vec<&str> = ascii.split('-').collect();
    let [area, group, serial] = parts.as_slice() else { return false };
    *area != "000" && *area != "666" && !area.starts_with('9') && *group != "00" && *serial != "0000"
}

fn phone_ok(s: &str) -> bool {
    let n = digits(s).len();
    let separated = s.contains(['+', '(', ' ', '-', '.']);
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| (1..=3).contains(&p.len())) {
        // Dotted quads are addresses or version numbers, not phones.
        return false;
    }
    // A bare run of digits is more often an id or an amount than a phone number.
    (10..=15).contains(&n) && (separated || n == 10)
}

/// Every finding in `text`, ordered by position, without overlaps (the earlier and then longer
/// finding wins).
pub fn find(text: &str) -> Vec<Finding> {
    let mut all: Vec<(usize, Finding)> = Vec::new();
    for (priority, (kind, re, check)) in PATTERNS.iter().enumerate() {
        for m in re.find_iter(text) {
            if check(m.as_str()) {
                all.push((priority, Finding { range: m.range(), kind: *kind }));
            }
        }
    }
    all.sort_by(|(pa, a), (pb, b)| {
        a.range.start.cmp(&b.range.start).then(b.range.len().cmp(&a.range.len())).then(pa.cmp(pb))
    });
    let mut out: Vec<Finding> = Vec::new();
    for (_, f) in all {
        if out.last().is_none_or(|last| f.range.start >= last.range.end) {
            out.push(f);
        }
    }
    out
}

/// `text` with the findings that lie wholly before `upto` replaced by their placeholders, up to
/// `upto`.
pub fn mask_prefix(text: &str, findings: &[Finding], upto: usize) -> String {
    let mut out = String::with_capacity(upto);
    let mut at = 0;
    for f in findings.iter().filter(|f| f.range.end <= upto) {
        out.push_str(&text[at..f.range.start]);
        out.push_str(f.kind.placeholder());
        at = f.range.end;
    }
    out.push_str(&text[at..upto]);
    out
}

/// `text` with every finding masked.
pub fn mask(text: &str) -> String {
    mask_prefix(text, &find(text), text.len())
}

/// Case-insensitive whole-word matcher for a list of blocked keywords.
#[derive(Debug, Clone)]
pub struct Keywords {
    re: Option<Regex>,
    longest: usize,
}

impl Keywords {
    /// A matcher for `words` (empty entries are ignored).
    pub fn new(words: &[String]) -> Self {
        let alternatives: Vec<String> = words
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty())
            .map(|w| {
                // Word boundaries only where the keyword itself starts or ends with a word character.
                let edge =
                    |c: Option<char>| if c.is_some_and(|c| c.is_alphanumeric() || c == '_') { r"\b" } else { "" };
                format!("{}{}{}", edge(w.chars().next()), regex::escape(w), edge(w.chars().last()))
            })
            .collect();
        let longest = words.iter().map(|w| w.trim().len()).max().unwrap_or(0);
        let re = (!alternatives.is_empty())
            .then(|| Regex::new(&format!("(?i)(?:{})", alternatives.join("|"))).ok())
            .flatten();
        Keywords { re, longest }
    }

    /// The first keyword found in `text`, as written in the text.
    pub fn find<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.re.as_ref()?.find(text).map(|m| m.as_str())
    }

    /// Length in bytes of the longest keyword.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Whether there are no keywords.
    pub fn is_empty(&self) -> bool {
        self.re.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        find(text).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn finds_each_kind() {
        assert_eq!(kinds("write to jane.doe+x@mail.example.co.uk today"), [Kind::Email]);
        assert_eq!(kinds("card 4111 1111 1111 1111 ok"), [Kind::CreditCard]);
        assert_eq!(kinds("card 4111-1111-1111-1111"), [Kind::CreditCard]);
        assert_eq!(kinds("card 5500005555555559"), [Kind::CreditCard]);
        assert_eq!(kinds("iban DE89 3704 0044 0532 0130 00 please"), [Kind::Iban]);
        assert_eq!(kinds("iban GB82WEST12345698765432"), [Kind::Iban]);
        assert_eq!(kinds("ssn 123-45-6789"), [Kind::UsSsn]);
        assert_eq!(kinds("host 192.168.10.254 up"), [Kind::IpAddress]);
        assert_eq!(kinds("host 2001:db8::8a2e:370:7334 up"), [Kind::IpAddress]);
        assert_eq!(kinds("call +1 (415) 555-2671 now"), [Kind::Phone]);
        assert_eq!(kinds("call 415-555-2671"), [Kind::Phone]);
        assert_eq!(kinds("call +44 20 7946 0958"), [Kind::Phone]);
    }

    #[test]
    fn finds_numbers_however_they_are_typed() {
        assert_eq!(kinds("card 4111\u{00A0}1111\u{00A0}1111\u{00A0}1111 ok"), [Kind::CreditCard], "no-break spaces");
        assert_eq!(kinds("card 4111\u{202F}1111\u{2009}1111 1111"), [Kind::CreditCard], "thin spaces");
        assert_eq!(kinds("card 4111.1111.1111.1111"), [Kind::CreditCard], "dots");
        assert_eq!(kinds("card ４１１１ ４１１１ ４１１１ ４１１１"), [], "full-width digits with a bad Luhn digit");
        assert_eq!(kinds("card ４１１１ １１１１ １１１１ １１１１"), [Kind::CreditCard], "full-width digits");
        assert_eq!(kinds("card ٤١١١١١١١١١١١١١١١"), [Kind::CreditCard], "Arabic-Indic digits");
        assert_eq!(kinds("ssn １２３-４５-６７８９"), [Kind::UsSsn]);
        assert_eq!(kinds("pi is 3.1415926535897932 and e 2.718281828459045"), [], "decimals are not cards");
        assert_eq!(kinds("write to jane＠example.com"), [Kind::Email], "full-width at sign");
    }

    #[test]
    fn checksums_and_shapes_reject_lookalikes() {
        assert!(kinds("card 4111 1111 1111 1112").iter().all(|k| *k != Kind::CreditCard), "bad Luhn digit");
        assert!(kinds("iban DE89 3704 0044 0532 0130 01").iter().all(|k| *k != Kind::Iban), "bad mod-97");
        assert_eq!(kinds("version 300.1.2.3 and 999.999.999.999"), [], "not IPv4");
        assert_eq!(kinds("ssn 000-12-3456 or 666-12-3456"), [], "never-issued SSN areas");
        assert_eq!(kinds("in 2024 we sold 1500 units for 12.50 each at 10:30"), [], "plain numbers and times");
        assert_eq!(kinds("order 123456"), []);
    }

    #[test]
    fn masks_with_placeholders() {
        assert_eq!(
            mask("mail a@b.io, card 4111111111111111, ip 10.0.0.1."),
            "mail [EMAIL_ADDRESS], card [CREDIT_CARD], ip [IP_ADDRESS]."
        );
        let text = "x a@b.io y";
        let f = find(text);
        assert_eq!(mask_prefix(text, &f, 4), "x a@", "a finding past the cut stays as text up to the cut");
        assert_eq!(mask_prefix(text, &f, text.len()), "x [EMAIL_ADDRESS] y");
    }

    #[test]
    fn keywords_are_whole_words_and_case_insensitive() {
        let k = Keywords::new(&["Project Falcon".into(), "c++".into(), " ".into()]);
        assert_eq!(k.find("about project falcon?"), Some("project falcon"));
        assert_eq!(k.find("we like C++ a lot"), Some("C++"));
        assert_eq!(k.find("project falconry"), None);
        assert!(Keywords::new(&[]).is_empty());
    }
}
