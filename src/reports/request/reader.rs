//! Reading a report request's field map (a JSON body's object, or GET query parameters
//! made into the same map by [`fields_from_query`]) leniently: every field that is
//! unknown, of the wrong kind or outside its vocabulary is named, all at once, and reading
//! goes on. What the fields mean together is checked elsewhere (the parent module).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::reports::interval::clip;
use crate::reports::vocabulary::Vocabulary;

/// Most values one list field may name.
pub const MAX_LIST_VALUES: usize = 100;

/// A field of a wire request: its name as clients write it, whether it is a list (which
/// the GET form may repeat, or give comma-separated) and whether it is a whole number
/// (which the GET form gives as its digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub list: bool,
    pub number: bool,
}

/// Declares how a wire request is read from a [`Reader`], one field per line as
/// `field: how(args)`, and from that its [`Field`] list (`FIELDS`). The struct literal it
/// builds makes the compiler check that every field is read, and each field's name (as
/// clients write it) is the field's own. Fields not in the list are refused first.
macro_rules! read_fields {
    (
        $request:ident, $(#[$meta:meta])* fn read($($param:ident: $param_type:ty),*) {
            $($field:ident: $how:ident($($arg:expr),*)),* $(,)?
        }
    ) => {
        impl $request {
            /// The request's fields.
            pub const FIELDS: &[$crate::reports::request::reader::Field] = &[$(
                $crate::reports::request::reader::Field {
                    name: stringify!($field),
                    list: $crate::reports::request::reader::reads_a_list!($how),
                    number: $crate::reports::request::reader::reads_a_number!($how),
                },
            )*];

            $(#[$meta])*
            pub(crate) fn read(
                reader: &mut $crate::reports::request::reader::Reader<'_>,
                $($param: $param_type),*
            ) -> Self {
                reader.refuse_unknown(Self::FIELDS);
                Self {
                    $($field: reader.$how(stringify!($field) $(, $arg)*),)*
                }
            }
        }
    };
}
pub(crate) use read_fields;

/// Whether a [`Reader`] method reads a list.
macro_rules! reads_a_list {
    (list) => {
        true
    };
    (ids) => {
        true
    };
    (names) => {
        true
    };
    (required_names) => {
        true
    };
    ($scalar:ident) => {
        false
    };
}
pub(crate) use reads_a_list;

/// Whether a [`Reader`] method reads a whole number.
macro_rules! reads_a_number {
    (number) => {
        true
    };
    (count) => {
        true
    };
    ($other:ident) => {
        false
    };
}
pub(crate) use reads_a_number;

/// The name of field `field` of wire request `Request`, as clients write it, checked by
/// the compiler: `field_name!(Request.field)`.
macro_rules! field_name {
    ($request:ident . $field:ident) => {{
        let _ = |request: &$request| {
            let _ = &request.$field;
        };
        stringify!($field)
    }};
}
pub(crate) use field_name;

/// Turns GET query parameters into the same field map a JSON body gives: list fields
/// (as `fields` says) split on commas (and repeated keys appended; an empty value is an
/// empty item, refused like `[""]` in a body), number fields made of ASCII digits as
/// numbers, other fields as strings.
///
/// # Errors
/// A 400 naming a scalar field given twice.
pub fn fields_from_query(query: &str, fields: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.into_owned();
        if fields.iter().any(|field| field.list && field.name == key) {
            let entry = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.extend(value.split(',').map(|v| Value::String(v.to_owned())));
            }
            continue;
        }
        let number = fields.iter().any(|field| field.number && field.name == key)
            && !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit());
        let value = match value.parse::<u64>() {
            Ok(n) if number => Value::from(n),
            _ => Value::String(value.into_owned()),
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(ApiError::invalid_field(&key, "is given more than once"));
        }
    }
    Ok(map)
}

/// Reads fields of a field map, collecting what is wrong with them.
#[derive(Debug)]
pub struct Reader<'a> {
    map: &'a Map<String, Value>,
    /// Fields already answered for (read, or refused by name).
    known: Vec<&'static str>,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    /// A reader of `map`.
    #[must_use]
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            known: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Records that field `name` is wrong, and why.
    pub fn error(&mut self, name: &str, reason: impl Into<String>) {
        self.errors.push(FieldError {
            name: name.to_owned(),
            reason: reason.into(),
        });
    }

    /// Whether the map names `name` (even as `null`).
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Refuses field `name`, if given, for `reason` (a field this request knows of but
    /// does not take).
    pub fn set_aside(&mut self, name: &'static str, reason: &str) {
        self.known.push(name);
        if self.has(name) {
            self.error(name, reason);
        }
    }

    /// Names every field of the map that is neither in `fields` nor set aside.
    pub fn refuse_unknown(&mut self, fields: &[Field]) {
        self.known.extend(fields.iter().map(|field| field.name));
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|key| !self.known.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.error(&clip(&key), "is not a field of this request");
        }
    }

    /// A string field (`null` is no string: a field is given or left out).
    pub fn text(&mut self, name: &str) -> Option<String> {
        match self.map.get(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    /// A whole number from 0 to `max` (a JSON number, `5.0` too; the GET form's digits are made
    /// numbers by [`fields_from_query`]).
    pub fn number(&mut self, name: &str, max: u64) -> Option<u64> {
        // JSON Schema's `integer` is any number without a fraction (`5.0` too).
        let parsed = match self.map.get(name)? {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (0.0..=max as f64).contains(f))
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match parsed {
            Some(n) if n <= max => Some(n),
            _ => {
                self.error(name, format!("must be a whole number between 0 and {max}"));
                None
            }
        }
    }

    /// A whole number from 0 to `max`, as a `u32`.
    pub fn count(&mut self, name: &str, max: u32) -> Option<u32> {
        self.number(name, u64::from(max))
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A list of distinct non-empty strings (a JSON array; the GET form's values are
    /// made arrays by [`fields_from_query`]), as given; absent: empty.
    fn strings(&mut self, name: &str) -> Vec<String> {
        let Some(value) = self.map.get(name) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.error(name, "must be a list of strings");
            return Vec::new();
        };
        if items.len() > MAX_LIST_VALUES {
            self.error(name, format!("may name at most {MAX_LIST_VALUES} values"));
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if !s.is_empty() => {
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                _ => self.error(&format!("{name}[{i}]"), "must be a non-empty string"),
            }
        }
        out
    }

    /// A list field (see [`Self::strings`]); `None` when absent.
    pub fn list(&mut self, name: &str) -> Option<Vec<String>> {
        self.has(name).then(|| self.strings(name))
    }

    /// A list of UUIDs in their hyphenated form (JSON Schema's `uuid`), lower-cased.
    pub fn ids(&mut self, name: &str) -> Option<Vec<String>> {
        let values = self.list(name)?;
        for (i, value) in values.iter().enumerate() {
            if value.len() != 36 || Uuid::try_parse(value).is_err() {
                self.error(
                    &format!("{name}[{i}]"),
                    format!("must be a UUID, not {:?}", clip(value)),
                );
            }
        }
        Some(values.into_iter().map(|v| v.to_ascii_lowercase()).collect())
    }

    /// A list of names of vocabulary `V`; a name outside it is refused (and left out).
    pub fn names<V: Vocabulary>(&mut self, name: &str) -> Option<Vec<V>> {
        let texts = self.list(name)?;
        Some(self.parse_each(name, &texts))
    }

    /// A list of at least one name of vocabulary `V`, each a `noun`.
    pub fn required_names<V: Vocabulary>(&mut self, name: &str, noun: &str) -> Vec<V> {
        let texts = self.strings(name);
        if texts.is_empty() {
            if self.has(name) {
                self.error(name, format!("must name at least one {noun}"));
            } else {
                self.error(name, format!("is required: name at least one {noun}"));
            }
        }
        self.parse_each(name, &texts)
    }

    fn parse_each<V: Vocabulary>(&mut self, name: &str, texts: &[String]) -> Vec<V> {
        let mut values = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match V::parse(text) {
                Some(value) => values.push(value),
                None => self.error(
                    &format!("{name}[{i}]"),
                    format!(
                        "must be one of {}, not {:?}",
                        V::ALL
                            .iter()
                            .map(|v| v.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                        clip(text)
                    ),
                ),
            }
        }
        values
    }

    /// One name of vocabulary `V`.
    pub fn one<V: Vocabulary>(&mut self, name: &str) -> Option<V> {
        let text = self.text(name)?;
        let value = V::parse(&text);
        if value.is_none() {
            let names: Vec<String> = V::ALL.iter().map(|v| format!("`{}`", v.name())).collect();
            let choice = match names.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, others)) => format!("{} or {last}", others.join(", ")),
                None => String::new(),
            };
            self.error(name, format!("must be {choice}, not {:?}", clip(&text)));
        }
        value
    }

    /// `value` if nothing was found wrong, else a 400 listing every field error.
    ///
    /// # Errors
    /// The field errors, or none with no value.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(ApiError::invalid(self.errors)),
        }
    }
}
