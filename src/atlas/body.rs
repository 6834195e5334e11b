//! A request body's members as Atlas checks them: which a caller may write, which it may
//! only read, and each member's JSON type.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Refuses members of `object` not in `writable`.
pub(super) fn check_members(
    object: &Map<String, Value>,
    writable: &[&str],
    read_only: &[&str],
) -> Result<(), ApiError> {
    for name in object.keys() {
        if read_only.contains(&name.as_str()) {
            return Err(ApiError::read_only(name));
        }
        if !writable.contains(&name.as_str()) {
            return Err(ApiError::invalid_attribute(name));
        }
    }
    Ok(())
}

/// Member `name` of `object` as a string, if present.
pub(super) fn string<'v>(
    object: &'v Map<String, Value>,
    name: &str,
) -> Result<Option<&'v str>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            Err(ApiError::validation(format!("{name} must be a string.")).with_parameters(&[name]))
        }
    }
}

/// Member `name` of `object` as a boolean, if present.
pub(super) fn boolean(object: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(
            ApiError::validation(format!("{name} must be true or false.")).with_parameters(&[name]),
        ),
    }
}
