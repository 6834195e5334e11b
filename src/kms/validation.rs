//! Request validation in AWS's words: a value that breaks the service model's constraint
//! (length, range, pattern, enum, required) is a `ValidationException` whose message is
//! the form AWS uses, "1 validation error detected: Value 'V' at 'member' failed to
//! satisfy constraint: Member must ...", with the value left out for secret members as AWS
//! leaves it out. Users' tests match on these messages.

use super::KmsError;

/// The value of a member, or nothing for a secret one (a plaintext).
#[derive(Clone, Copy)]
pub(crate) enum Shown<'a> {
    /// Quoted in the message.
    Value(&'a str),
    /// Left out, as AWS leaves out secrets.
    Secret,
}

fn error(shown: Shown<'_>, member: &str, constraint: &str) -> KmsError {
    let value = match shown {
        Shown::Value(v) => format!("Value '{v}' at"),
        Shown::Secret => "Value at".to_string(),
    };
    KmsError::Validation(format!(
        "1 validation error detected: {value} '{member}' failed to satisfy constraint: Member must {constraint}"
    ))
}

/// A required member that was not sent.
pub(crate) fn missing(member: &str) -> KmsError {
    KmsError::Validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

/// A string or blob of `length` (characters, or bytes for blobs) within `min..=max`.
pub(crate) fn length(
    member: &str,
    shown: Shown<'_>,
    length: usize,
    min: usize,
    max: usize,
) -> Result<(), KmsError> {
    if length < min {
        Err(error(
            shown,
            member,
            &format!("have length greater than or equal to {min}"),
        ))
    } else if length > max {
        Err(error(
            shown,
            member,
            &format!("have length less than or equal to {max}"),
        ))
    } else {
        Ok(())
    }
}

/// A number within `min..=max`.
pub(crate) fn range(member: &str, value: u64, min: u64, max: u64) -> Result<(), KmsError> {
    let shown = value.to_string();
    if value < min {
        Err(error(
            Shown::Value(&shown),
            member,
            &format!("have value greater than or equal to {min}"),
        ))
    } else if value > max {
        Err(error(
            Shown::Value(&shown),
            member,
            &format!("have value less than or equal to {max}"),
        ))
    } else {
        Ok(())
    }
}

/// A value outside the model's enum for `member`.
pub(crate) fn not_in_enum(member: &str, value: &str, allowed: &[&str]) -> KmsError {
    error(
        Shown::Value(value),
        member,
        &format!("satisfy enum value set: [{}]", allowed.join(", ")),
    )
}

/// A value that does not match the model's `pattern` for `member`.
pub(crate) fn pattern(member: &str, value: &str, pattern: &str) -> KmsError {
    error(
        Shown::Value(value),
        member,
        &format!("satisfy regular expression pattern: {pattern}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_take_aws_form() {
        let e = length("plaintext", Shown::Secret, 0, 1, 4096).unwrap_err();
        assert_eq!(
            e.message(),
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
        let e = range("numberOfBytes", 2000, 1, 1024).unwrap_err();
        assert_eq!(
            e.message(),
            "1 validation error detected: Value '2000' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024"
        );
        assert!(missing("keyId").message().contains("Value null at 'keyId'"));
        assert!(not_in_enum("keyUsage", "X", &["A", "B"])
            .message()
            .ends_with("Member must satisfy enum value set: [A, B]"));
    }
}
