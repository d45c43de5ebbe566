//! A walker over the spanned TOML tree. It converts values to what the model needs and records
//! every problem with its position in a [`Report`], where a serde derive would stop at the first.
//!
//! Every conversion returns `None` exactly when it has recorded an error, so that callers can
//! combine `Option`s freely, knowing that a missing value was reported.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::report::{Place, Report, Span};
use crate::units;

/// Runs every conversion, so that each reports its errors, then keeps the results if all of
/// them succeeded. (`Iterator::collect` into an `Option` would stop at the first failure.)
pub(crate) fn collect_all<T>(items: impl IntoIterator<Item = Option<T>>) -> Option<Vec<T>> {
    let items: Vec<Option<T>> = items.into_iter().collect();
    items.into_iter().collect()
}

/// One value of the document, with its position and its name in messages.
#[derive(Debug, Clone)]
pub(crate) struct Value<'a, 'i> {
    item: &'a Spanned<DeValue<'i>>,
    place: Place,
}

impl<'a, 'i> Value<'a, 'i> {
    pub(crate) fn span(&self) -> Span {
        self.item.span()
    }

    pub(crate) fn place(&self) -> &Place {
        &self.place
    }

    /// The value itself, for peeking without reporting anything.
    pub(crate) fn raw(&self) -> &'a DeValue<'i> {
        self.item.get_ref()
    }

    /// Records that this value is wrong.
    pub(crate) fn error(&self, report: &mut Report<'_>, message: impl fmt::Display) {
        report.error(&self.span(), &self.place, message);
    }

    /// Records that this value is wrong, in a message that names the key itself.
    pub(crate) fn owner_error(&self, report: &mut Report<'_>, message: impl fmt::Display) {
        report.error(&self.span(), &self.place.owner_place(), message);
    }

    fn wrong_type<T>(&self, report: &mut Report<'_>, expected: &str) -> Option<T> {
        let found = with_article(self.raw().type_str());
        self.error(report, format_args!("expected {expected}, found {found}"));
        None
    }

    pub(crate) fn str(&self, report: &mut Report<'_>) -> Option<&'a str> {
        match self.raw() {
            DeValue::String(text) => Some(text),
            _ => self.wrong_type(report, "a string"),
        }
    }

    pub(crate) fn string(&self, report: &mut Report<'_>) -> Option<String> {
        self.str(report).map(str::to_owned)
    }

    pub(crate) fn non_empty_string(&self, report: &mut Report<'_>) -> Option<String> {
        let text = self.str(report)?;
        if text.trim().is_empty() {
            self.error(report, "must not be empty");
            return None;
        }
        Some(text.to_owned())
    }

    pub(crate) fn bool(&self, report: &mut Report<'_>) -> Option<bool> {
        match self.raw() {
            DeValue::Boolean(value) => Some(*value),
            _ => self.wrong_type(report, "true or false"),
        }
    }

    pub(crate) fn integer(&self, report: &mut Report<'_>) -> Option<i64> {
        let DeValue::Integer(integer) = self.raw() else {
            return self.wrong_type(report, "an integer");
        };
        let parsed = i64::from_str_radix(integer.as_str(), integer.radix()).ok();
        if parsed.is_none() {
            self.error(report, "integer does not fit in 64 bits");
        }
        parsed
    }

    /// An integer within `range`, which must be `lo..=hi` or `lo..`.
    pub(crate) fn integer_in<T>(
        &self,
        report: &mut Report<'_>,
        range: impl RangeBounds<T>,
    ) -> Option<T>
    where
        T: TryFrom<i64> + PartialOrd + fmt::Display,
    {
        let number = self.integer(report)?;
        if let Ok(value) = T::try_from(number)
            && range.contains(&value)
        {
            return Some(value);
        }
        let expected = match (range.start_bound(), range.end_bound()) {
            (Bound::Included(lo), Bound::Included(hi)) => format!("between {lo} and {hi}"),
            (Bound::Included(lo), _) => format!("at least {lo}"),
            _ => "in range".to_owned(),
        };
        self.error(report, format_args!("must be {expected}, got {number}"));
        None
    }

    /// A float, or an integer taken as one.
    pub(crate) fn float(&self, report: &mut Report<'_>) -> Option<f64> {
        match self.raw() {
            DeValue::Float(float) => {
                let parsed = float.as_str().parse().ok();
                if parsed.is_none() {
                    self.error(report, format_args!("invalid float {}", float.as_str()));
                }
                parsed
            }
            DeValue::Integer(_) => self.integer(report).map(|n| n as f64),
            _ => self.wrong_type(report, "a number"),
        }
    }

    /// The items of an array, each with its own place.
    pub(crate) fn array(&self, report: &mut Report<'_>) -> Option<Vec<Value<'a, 'i>>> {
        let DeValue::Array(items) = self.raw() else {
            return self.wrong_type(report, "an array");
        };
        let items = items.iter().enumerate().map(|(index, item)| Value {
            item,
            place: self.place.index(index),
        });
        Some(items.collect())
    }

    /// The items of an array that must not be empty.
    pub(crate) fn non_empty_array(&self, report: &mut Report<'_>) -> Option<Vec<Value<'a, 'i>>> {
        let items = self.array(report)?;
        if items.is_empty() {
            self.error(report, "must not be empty");
            return None;
        }
        Some(items)
    }

    pub(crate) fn table(&self, report: &mut Report<'_>) -> Option<Table<'a, 'i>> {
        let DeValue::Table(entries) = self.raw() else {
            return self.wrong_type(report, "a table");
        };
        Some(Table {
            entries,
            span: self.span(),
            place: self.place.clone(),
            known: Vec::new(),
        })
    }

    /// A string read by `parse`; its error is reported as `invalid WHAT "TEXT": ERROR`.
    pub(crate) fn parsed<T, E: fmt::Display>(
        &self,
        report: &mut Report<'_>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.str(report)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(error) => {
                let shown = abridged(text);
                self.error(report, format_args!("invalid {what} {shown:?}: {error}"));
                None
            }
        }
    }

    /// A duration string such as `"50ms"`.
    pub(crate) fn duration(&self, report: &mut Report<'_>) -> Option<Duration> {
        if let DeValue::Integer(_) | DeValue::Float(_) = self.raw() {
            self.error(
                report,
                "a duration needs a unit: write it as a string such as \"100ms\"",
            );
            return None;
        }
        self.parsed(report, "duration", units::parse_duration)
    }

    /// A duration string that is more than zero.
    pub(crate) fn positive_duration(&self, report: &mut Report<'_>) -> Option<Duration> {
        let duration = self.duration(report)?;
        if duration.is_zero() {
            self.error(report, "must be more than zero");
            return None;
        }
        Some(duration)
    }

    /// A size in bytes: a string with a unit such as `"64MiB"`, or an integer.
    pub(crate) fn size(&self, report: &mut Report<'_>) -> Option<u64> {
        match self.raw() {
            DeValue::Integer(_) => {
                let bytes = self.integer(report)?;
                let bytes = u64::try_from(bytes).ok();
                if bytes.is_none() {
                    self.error(report, "a size cannot be negative");
                }
                bytes
            }
            DeValue::String(_) => self.parsed(report, "size", units::parse_size),
            _ => self.wrong_type(report, "a size such as \"64MiB\""),
        }
    }

    /// One of a fixed set of strings.
    pub(crate) fn choice<T: Copy>(
        &self,
        report: &mut Report<'_>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.str(report)?;
        let found = choices.iter().find(|(name, _)| *name == text);
        if found.is_none() {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            self.error(
                report,
                format_args!("unknown value {text:?} (expected {})", names.join(" or ")),
            );
        }
        found.map(|&(_, value)| value)
    }

    /// A table of strings. With `scalars`, numbers and booleans are accepted too, as strings.
    pub(crate) fn string_table(
        &self,
        report: &mut Report<'_>,
        scalars: bool,
    ) -> Option<Vec<(String, String)>> {
        let table = self.table(report)?;
        let expected = if scalars {
            "a string, number or boolean"
        } else {
            "a string"
        };
        let entries = table.entries().map(|(key, value)| {
            let text = match value.raw() {
                DeValue::String(text) => text.to_string(),
                DeValue::Integer(_) if scalars => value.integer(report)?.to_string(),
                DeValue::Float(float) if scalars => float.as_str().to_owned(),
                DeValue::Boolean(flag) if scalars => flag.to_string(),
                // `fetch.min.bytes = 1` is a table `fetch` holding a table `min`...
                DeValue::Table(_) => {
                    let name = dotted_name(key, value.raw());
                    value.error(
                        report,
                        format_args!(
                            "expected {expected}, found a table \
                             (quote names that contain dots: \"{name}\" = ...)"
                        ),
                    );
                    return None;
                }
                _ => return value.wrong_type(report, expected),
            };
            Some((key.to_owned(), text))
        });
        collect_all(entries)
    }

    /// A table, as a JSON object.
    pub(crate) fn json_object(&self, report: &mut Report<'_>) -> Option<serde_json::Value> {
        match self.raw() {
            DeValue::Table(_) => self.json(report),
            _ => self.wrong_type(report, "a table"),
        }
    }

    /// Any value, as JSON. Datetimes become strings.
    pub(crate) fn json(&self, report: &mut Report<'_>) -> Option<serde_json::Value> {
        use serde_json::Value as Json;
        Some(match self.raw() {
            DeValue::String(text) => Json::String(text.to_string()),
            DeValue::Integer(_) => Json::from(self.integer(report)?),
            DeValue::Float(_) => {
                let number = serde_json::Number::from_f64(self.float(report)?);
                if number.is_none() {
                    self.error(report, "JSON has no infinity or NaN");
                }
                Json::Number(number?)
            }
            DeValue::Boolean(value) => Json::Bool(*value),
            DeValue::Datetime(datetime) => Json::String(datetime.to_string()),
            DeValue::Array(_) => {
                let items = self
                    .array(report)?
                    .into_iter()
                    .map(|item| item.json(report));
                Json::Array(collect_all(items)?)
            }
            DeValue::Table(_) => {
                let table = self.table(report)?;
                let entries = table
                    .entries()
                    .map(|(key, value)| Some((key.to_owned(), value.json(report)?)));
                Json::Object(collect_all(entries)?.into_iter().collect())
            }
        })
    }
}

/// A table being read: the caller takes the keys it knows with [`Table::get`] and
/// [`Table::required`], then [`Table::finish`] reports the others as unknown.
#[derive(Debug)]
pub(crate) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    span: Span,
    place: Place,
    /// The keys taken so far: the ones allowed.
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The root table of a document.
    pub(crate) fn root(document: &'a Spanned<DeTable<'i>>) -> Self {
        Self {
            entries: document.get_ref(),
            span: document.span(),
            place: Place::default(),
            known: Vec::new(),
        }
    }

    /// Names the table's values after `owner` (such as `stage "geo"`) rather than their key path.
    pub(crate) fn owned_by(self, owner: impl Into<String>) -> Self {
        Self {
            place: Place::owner(owner),
            ..self
        }
    }

    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// The value under `key`, if any.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<Value<'a, 'i>> {
        self.known.push(key);
        let item = self.entries.get(key)?;
        Some(Value {
            item,
            place: self.place.key(key),
        })
    }

    /// The value under `key` read by `read`, or `default` when absent.
    pub(crate) fn with_default<T>(
        &mut self,
        key: &'static str,
        default: T,
        read: impl FnOnce(&Value<'a, 'i>) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            Some(value) => read(&value),
            None => Some(default),
        }
    }

    /// The value under `key` read by `read`: `Some(None)` when absent, `None` when wrong.
    pub(crate) fn optional<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&Value<'a, 'i>) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.get(key) {
            Some(value) => read(&value).map(Some),
            None => Some(None),
        }
    }

    /// The value under `key`, reporting its absence at the table.
    pub(crate) fn required(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<Value<'a, 'i>> {
        let value = self.get(key);
        if value.is_none() {
            self.missing(report, format_args!("{} `{key}`", self.key_noun()));
        }
        value
    }

    /// Whether the table has `key`, without taking it.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Reports that the table lacks `what`.
    pub(crate) fn missing(&self, report: &mut Report<'_>, what: impl fmt::Display) {
        self.error(report, format_args!("missing required {what}"));
    }

    /// Records that the table as a whole is wrong.
    pub(crate) fn error(&self, report: &mut Report<'_>, message: impl fmt::Display) {
        report.error(&self.span, &self.place, message);
    }

    /// Every entry, for tables whose keys are free, such as `config`. Not for use with `finish`.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a str, Value<'a, 'i>)> {
        self.entries.iter().map(|(key, item)| {
            let value = Value {
                item,
                place: self.place.key(key.get_ref()),
            };
            (key.get_ref().as_ref(), value)
        })
    }

    /// How messages call the table's keys: the root table has no place to name it by.
    fn key_noun(&self) -> &'static str {
        if self.place.is_empty() {
            "top-level key"
        } else {
            "key"
        }
    }

    /// Reports every key that was not taken.
    pub(crate) fn finish(self, report: &mut Report<'_>) {
        for key in self.entries.keys() {
            if !self.known.contains(&key.get_ref().as_ref()) {
                let message = format!(
                    "unknown {} `{}` (allowed: {})",
                    self.key_noun(),
                    key.get_ref(),
                    self.known.join(", ")
                );
                report.error(&key.span(), &self.place, message);
            }
        }
    }
}

/// `text`, cut short if it is too long to quote in a message.
fn abridged(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// `"integer"` -> `"an integer"`.
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// The first dotted key under `key` that leads to a value other than a table: what
/// `fetch.min.bytes = 1` was meant to be.
fn dotted_name(key: &str, mut value: &DeValue<'_>) -> String {
    let mut name = key.to_owned();
    while let DeValue::Table(table) = value
        && let Some((key, item)) = table.iter().next()
    {
        name.push('.');
        name.push_str(key.get_ref());
        value = item.get_ref();
    }
    name
}
