//! A key's tags: TagResource, UntagResource, ListResourceTags, and the checks CreateKey's
//! tags pass too. AWS's rules: at most 50 tags on a key, keys of 1 to 128 characters that
//! do not start with the reserved `aws:`, values of 0 to 256, both in the characters AWS
//! tags allow; one value per key, a repeated key replacing the value.

use super::*;

/// The most tags a key can carry.
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

impl LocalKmsClient {
    /// TagResource: adds `tags` to the key, replacing the value of a key it has already.
    pub fn tag_resource(&self, key_id: &str, tags: &[Tag]) -> Result<(), KmsError> {
        check_tags(tags)?;
        self.write(|state, _| {
            let key =
                state.authorized_mut(&self.caller, key_id, MANAGE, "kms:TagResource", None)?;
            key.check_not_pending_deletion()?;
            let mut merged = key.tags.clone();
            merge_tags(&mut merged, tags);
            check_tag_count(&merged)?;
            key.tags = merged;
            Ok(())
        })
    }

    /// UntagResource: removes the tags with these keys (a key the key lacks is no error).
    pub fn untag_resource(&self, key_id: &str, tag_keys: &[String]) -> Result<(), KmsError> {
        for (i, tag_key) in tag_keys.iter().enumerate() {
            check_length("tagKeys", i, "", tag_key, 1, MAX_TAG_KEY)?;
        }
        self.write(|state, _| {
            let key =
                state.authorized_mut(&self.caller, key_id, MANAGE, "kms:UntagResource", None)?;
            key.check_not_pending_deletion()?;
            key.tags.retain(|t| !tag_keys.contains(&t.key));
            Ok(())
        })
    }

    /// ListResourceTags: the key's tags, in the order they were first set.
    pub fn list_resource_tags(&self, key_id: &str) -> Result<Vec<Tag>, KmsError> {
        self.kms.read(|state, _| {
            let key =
                state.authorized(&self.caller, key_id, MANAGE, "kms:ListResourceTags", None)?;
            Ok(key.tags.clone())
        })
    }
}

/// Sets each of `tags` on `onto`: a new key is appended, an existing one takes the value.
pub(super) fn merge_tags(onto: &mut Vec<Tag>, tags: &[Tag]) {
    for tag in tags {
        match onto.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value.clone_from(&tag.value),
            None => onto.push(tag.clone()),
        }
    }
}

/// The checks AWS makes on the tags of one request, before it looks at the key.
pub(super) fn check_tags(tags: &[Tag]) -> Result<(), KmsError> {
    for (i, tag) in tags.iter().enumerate() {
        check_length("tags", i, ".tagKey", &tag.key, 1, MAX_TAG_KEY)?;
        check_length("tags", i, ".tagValue", &tag.value, 0, MAX_TAG_VALUE)?;
        if tag
            .key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(KmsError::Tag(format!(
                "Tag key {:?} begins with aws:, a prefix reserved for AWS's own tags",
                tag.key
            )));
        }
        if let Some(c) = tag
            .key
            .chars()
            .chain(tag.value.chars())
            .find(|c| !tag_char(*c))
        {
            return Err(KmsError::Tag(format!(
                "Tag {:?}={:?} contains {c:?}: tags may hold letters, digits, spaces and _ . : / = + - @",
                tag.key, tag.value
            )));
        }
    }
    check_tag_count(tags)
}

fn check_tag_count(tags: &[Tag]) -> Result<(), KmsError> {
    if tags.len() > MAX_TAGS {
        return Err(KmsError::LimitExceeded(format!(
            "A KMS key can have at most {MAX_TAGS} tags; this one would have {}",
            tags.len()
        )));
    }
    Ok(())
}

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// A list member's length, checked as AWS's model does (`tags.1.member.tagKey`).
fn check_length(
    list: &str,
    index: usize,
    member: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), KmsError> {
    validation::length(
        &format!("{list}.{}.member{member}", index + 1),
        Shown::Value(value),
        value.chars().count(),
        min,
        max,
    )
}

/// A new key's tags: checked, a repeated key keeping its last value.
pub(super) fn initial_tags(given: &[Tag]) -> Result<Vec<Tag>, KmsError> {
    check_tags(given)?;
    let mut tags = Vec::new();
    merge_tags(&mut tags, given);
    Ok(tags)
}
