//! Typed reads of payload fields: a field of the wrong type is an error naming it by its path
//! (`attachments[0].title`); a missing field and a JSON `null` both read as absent.

use serde_json::{Map, Value};

use super::PayloadError;

pub(super) type Object = Map<String, Value>;

/// `parent.key`, or `key` at the top level.
pub(super) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(super) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn present<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn wrong_type(path: &str, key: &str, expected: &str) -> PayloadError {
    PayloadError(format!("`{}` must be {expected}", child(path, key)))
}

pub(super) fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, PayloadError> {
    value
        .as_object()
        .ok_or_else(|| PayloadError(format!("`{path}` must be an object")))
}

pub(super) fn opt_str<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, PayloadError> {
    present(object, key)
        .map(|value| {
            value
                .as_str()
                .ok_or_else(|| wrong_type(path, key, "a string"))
        })
        .transpose()
}

pub(super) fn opt_bool(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<bool>, PayloadError> {
    present(object, key)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| wrong_type(path, key, "true or false"))
        })
        .transpose()
}

pub(super) fn opt_array<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<Option<&'a [Value]>, PayloadError> {
    present(object, key)
        .map(|value| {
            value
                .as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| wrong_type(path, key, "an array"))
        })
        .transpose()
}

pub(super) fn opt_object<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<Option<&'a Object>, PayloadError> {
    present(object, key)
        .map(|value| {
            value
                .as_object()
                .ok_or_else(|| wrong_type(path, key, "an object"))
        })
        .transpose()
}

/// A number, or a string holding one (senders write Slack's `ts` both ways).
pub(super) fn opt_number(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<f64>, PayloadError> {
    present(object, key)
        .map(|value| {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            number
                .filter(|n| n.is_finite())
                .ok_or_else(|| wrong_type(path, key, "a number"))
        })
        .transpose()
}

/// The name of a JSON value's type, for error messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wrong_types_name_the_field_by_path() {
        let value = json!({"title": 3, "short": "yes", "ts": "12.5", "gone": null});
        let object = value.as_object().unwrap();
        let path = item("attachments", 0);
        assert_eq!(
            opt_str(object, "title", &path).unwrap_err().0,
            "`attachments[0].title` must be a string"
        );
        assert_eq!(
            opt_bool(object, "short", "").unwrap_err().0,
            "`short` must be true or false"
        );
        assert_eq!(opt_number(object, "ts", "").unwrap(), Some(12.5));
        assert_eq!(opt_str(object, "gone", "").unwrap(), None);
        assert_eq!(opt_array(object, "missing", "").unwrap(), None);
        assert_eq!(
            opt_object(object, "title", "x").unwrap_err().0,
            "`x.title` must be an object"
        );
    }
}
