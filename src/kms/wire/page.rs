//! Pagination as AWS KMS does it on its List operations: `Limit` checked against the
//! operation's range (a default when absent), `Truncated`, and an opaque `NextMarker` that
//! only the same operation accepts back; any other marker is `InvalidMarkerException`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::WireError;

/// A List operation's page size rules: the largest `Limit` and the default.
#[derive(Clone, Copy)]
pub(super) struct PageRules {
    pub operation: &'static str,
    pub max: u32,
    pub default: u32,
}

impl PageRules {
    /// An operation's rules: `Limit` up to `max`, `default` when absent.
    pub const fn new(operation: &'static str, max: u32, default: u32) -> Self {
        PageRules {
            operation,
            max,
            default,
        }
    }
}

/// One page of a listing.
pub(super) struct Page<T> {
    pub items: Vec<T>,
    pub truncated: bool,
    pub next_marker: Option<String>,
}

/// The page of `items` that `limit` and `marker` ask for.
pub(super) fn page<T>(
    items: Vec<T>,
    rules: PageRules,
    limit: Option<u32>,
    marker: Option<&str>,
) -> Result<Page<T>, WireError> {
    let limit = limit.unwrap_or(rules.default);
    crate::kms::validation::range("limit", limit.into(), 1, rules.max.into())?;
    let start = match marker {
        None => 0,
        Some(marker) => decode_marker(rules.operation, marker).ok_or_else(|| {
            WireError::new(
                400,
                "InvalidMarkerException",
                "The request was rejected because the marker that specifies where pagination should next begin is not valid.",
            )
        })?,
    };
    let end = start.saturating_add(limit as usize).min(items.len());
    let truncated = end < items.len();
    let items = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok(Page {
        items,
        truncated,
        next_marker: truncated.then(|| encode_marker(rules.operation, end)),
    })
}

fn encode_marker(operation: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("atrest:{operation}:{offset}"))
}

fn decode_marker(operation: &str, marker: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(marker).ok()?).ok()?;
    let offset = text
        .strip_prefix("atrest:")?
        .strip_prefix(operation)?
        .strip_prefix(':')?;
    offset.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: PageRules = PageRules {
        operation: "ListKeys",
        max: 1000,
        default: 100,
    };

    #[test]
    fn pages_follow_their_markers_to_the_end() {
        let mut marker: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = page((0..7).collect(), RULES, Some(3), marker.as_deref()).unwrap();
            seen.extend(page.items);
            assert_eq!(page.truncated, page.next_marker.is_some());
            match page.next_marker {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert_eq!(
            page((0..150).collect::<Vec<_>>(), RULES, None, None)
                .unwrap()
                .items
                .len(),
            100
        );
    }

    #[test]
    fn limits_and_markers_are_checked() {
        for limit in [0, 1001] {
            let err = page(vec![1], RULES, Some(limit), None).err().unwrap();
            assert!(
                err.message.contains(&format!("Value '{limit}' at 'limit'")),
                "{}",
                err.message
            );
        }
        let other = PageRules {
            operation: "ListAliases",
            ..RULES
        };
        let marker = page((0..5).collect::<Vec<_>>(), other, Some(1), None)
            .unwrap()
            .next_marker
            .unwrap();
        for bad in ["garbage", "", marker.as_str()] {
            let err = page(vec![1], RULES, None, Some(bad)).err().unwrap();
            assert_eq!(err.name, "InvalidMarkerException", "{bad}");
        }
    }
}
