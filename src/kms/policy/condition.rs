//! A statement's `Condition` block, evaluated as IAM evaluates it for KMS: each operator
//! (`StringEquals`, `StringLike`, `Bool`, `Null`, ... with `ForAnyValue:`/`ForAllValues:`
//! and `...IfExists`) on each key must hold; values listed for one key are alternatives.
//! The keys are those a request to LocalKms can carry: the encryption context, the caller,
//! the operations of a grant being made, the alias the request used and the key's aliases. A key or operator atrest cannot evaluate is
//! refused when the policy is put, never ignored.

use serde_json::{Map, Value};

use crate::kms::{Caller, EncryptionContext, KmsError};

/// What a request brings to a policy's conditions besides its caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestFacts<'a> {
    /// The request's encryption context, for operations that take one.
    pub encryption_context: Option<&'a EncryptionContext>,
    /// The operations of the grant CreateGrant would make (AWS's names).
    pub grant_operations: Option<&'a [&'a str]>,
    /// The alias the request named the key by (`alias/NAME`), if it used one.
    pub request_alias: Option<&'a str>,
    /// The aliases of the key the request is on.
    pub resource_aliases: Option<&'a [String]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    Null,
}

impl Test {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" | "ArnEquals" => Test::StringEquals,
            "StringNotEquals" | "ArnNotEquals" => Test::StringNotEquals,
            "StringEqualsIgnoreCase" => Test::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Test::StringNotEqualsIgnoreCase,
            "StringLike" | "ArnLike" => Test::StringLike,
            "StringNotLike" | "ArnNotLike" => Test::StringNotLike,
            "Bool" => Test::Bool,
            "Null" => Test::Null,
            _ => return None,
        })
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Test::StringNotEquals | Test::StringNotEqualsIgnoreCase | Test::StringNotLike
        )
    }

    /// Whether one request value matches one condition value, before negation.
    fn matches(self, actual: &str, expected: &str) -> bool {
        match self {
            Test::StringEquals | Test::StringNotEquals => actual == expected,
            Test::StringEqualsIgnoreCase | Test::StringNotEqualsIgnoreCase => {
                actual.to_lowercase() == expected.to_lowercase()
            }
            Test::StringLike | Test::StringNotLike => glob(expected, actual),
            Test::Bool => actual.eq_ignore_ascii_case(expected),
            Test::Null => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// The condition keys LocalKms can give a value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ConditionKey {
    /// `kms:EncryptionContext:NAME` (the name compared without case, as IAM compares keys).
    EncryptionContext(String),
    EncryptionContextKeys,
    CallerAccount,
    PrincipalArn,
    /// Requests never come through another AWS service here: always absent.
    ViaService,
    GrantOperations,
    GrantIsForAwsResource,
    RequestAlias,
    ResourceAliases,
}

impl ConditionKey {
    fn parse(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if let Some(context_key) = lower.strip_prefix("kms:encryptioncontext:") {
            return Some(ConditionKey::EncryptionContext(context_key.to_string()));
        }
        Some(match lower.as_str() {
            "kms:encryptioncontextkeys" => ConditionKey::EncryptionContextKeys,
            "kms:calleraccount" => ConditionKey::CallerAccount,
            "aws:principalarn" => ConditionKey::PrincipalArn,
            "kms:viaservice" => ConditionKey::ViaService,
            "kms:grantoperations" => ConditionKey::GrantOperations,
            "kms:grantisforawsresource" => ConditionKey::GrantIsForAwsResource,
            "kms:requestalias" => ConditionKey::RequestAlias,
            "kms:resourcealiases" => ConditionKey::ResourceAliases,
            _ => return None,
        })
    }

    fn multi_valued(&self) -> bool {
        matches!(
            self,
            ConditionKey::EncryptionContextKeys
                | ConditionKey::GrantOperations
                | ConditionKey::ResourceAliases
        )
    }

    /// The request's values for the key, or `None` when the request has none.
    fn values(&self, caller: &Caller, facts: &RequestFacts<'_>) -> Option<Vec<String>> {
        match self {
            ConditionKey::EncryptionContext(name) => facts.encryption_context.and_then(|c| {
                c.iter()
                    .find(|(k, _)| k.to_lowercase() == *name)
                    .map(|(_, v)| vec![v.clone()])
            }),
            ConditionKey::EncryptionContextKeys => facts
                .encryption_context
                .filter(|c| !c.is_empty())
                .map(|c| c.keys().cloned().collect()),
            ConditionKey::CallerAccount => Some(vec![caller.account().to_string()]),
            ConditionKey::PrincipalArn => Some(vec![caller.principal().to_string()]),
            ConditionKey::ViaService => None,
            ConditionKey::GrantOperations => facts
                .grant_operations
                .map(|ops| ops.iter().map(|op| op.to_string()).collect()),
            ConditionKey::GrantIsForAwsResource => {
                facts.grant_operations.map(|_| vec!["false".to_string()])
            }
            ConditionKey::RequestAlias => facts.request_alias.map(|a| vec![a.to_string()]),
            ConditionKey::ResourceAliases => facts
                .resource_aliases
                .filter(|a| !a.is_empty())
                .map(<[String]>::to_vec),
        }
    }
}

/// One operator on one key, with the values it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    test: Test,
    set: SetQualifier,
    if_exists: bool,
    key: ConditionKey,
    values: Vec<String>,
}

impl Clause {
    fn holds(&self, caller: &Caller, facts: &RequestFacts<'_>) -> bool {
        let actual = self.key.values(caller, facts);
        if self.test == Test::Null {
            let absent = actual.is_none_or(|v| v.is_empty());
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let Some(actual) = actual.filter(|v| !v.is_empty()) else {
            // IAM: a missing key satisfies ...IfExists, ForAllValues and the negated
            // operators, and nothing else.
            return self.if_exists || self.set == SetQualifier::ForAllValues || self.test.negated();
        };
        let matches_any = |value: &str| {
            self.values
                .iter()
                .any(|expected| self.test.matches(value, expected))
        };
        let positive = |value: &str| matches_any(value) != self.test.negated();
        match self.set {
            SetQualifier::ForAllValues => actual.iter().all(|v| positive(v)),
            SetQualifier::ForAnyValue => actual.iter().any(|v| positive(v)),
            SetQualifier::Single if self.test.negated() => actual.iter().all(|v| positive(v)),
            SetQualifier::Single => actual.iter().any(|v| positive(v)),
        }
    }
}

/// A statement's whole `Condition` block: every clause must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Conditions(Vec<Clause>);

impl Conditions {
    pub(super) fn parse(block: &Value) -> Result<Self, KmsError> {
        let bad = |why: String| KmsError::MalformedPolicyDocument(why);
        let operators = block
            .as_object()
            .ok_or_else(|| bad("Condition must be an object of operators".into()))?;
        let mut clauses = Vec::new();
        for (operator, keys) in operators {
            let (set, rest) = match operator.split_once(':') {
                Some(("ForAnyValue", rest)) => (SetQualifier::ForAnyValue, rest),
                Some(("ForAllValues", rest)) => (SetQualifier::ForAllValues, rest),
                Some(_) => return Err(bad(format!("{operator} is not a condition operator"))),
                None => (SetQualifier::Single, operator.as_str()),
            };
            let (name, if_exists) = match rest.strip_suffix("IfExists") {
                Some(name) if name != "Null" => (name, true),
                _ => (rest, false),
            };
            let test = Test::parse(name).ok_or_else(|| {
                bad(format!(
                    "condition operator {operator} is not emulated by LocalKms (String*, Arn*, Bool, Null, with ForAnyValue:/ForAllValues: and IfExists are)"
                ))
            })?;
            let keys: &Map<String, Value> = keys
                .as_object()
                .ok_or_else(|| bad(format!("{operator} must map condition keys to values")))?;
            for (key_name, values) in keys {
                let key = ConditionKey::parse(key_name).ok_or_else(|| {
                    bad(format!(
                        "condition key {key_name} is not emulated by LocalKms (kms:EncryptionContext:*, kms:EncryptionContextKeys, kms:CallerAccount, aws:PrincipalArn, kms:ViaService, kms:GrantOperations, kms:GrantIsForAWSResource, kms:RequestAlias, kms:ResourceAliases are)"
                    ))
                })?;
                let values = condition_values(values).ok_or_else(|| {
                    bad(format!(
                        "{operator} {key_name} needs a string or a list of strings"
                    ))
                })?;
                if values.iter().any(|v| v.contains("${")) {
                    return Err(bad(format!(
                        "policy variables (in {operator} {key_name}) are not emulated by LocalKms"
                    )));
                }
                if set == SetQualifier::Single && key.multi_valued() && test != Test::Null {
                    return Err(bad(format!(
                        "{key_name} has several values: use ForAnyValue:{operator} or ForAllValues:{operator}"
                    )));
                }
                clauses.push(Clause {
                    test,
                    set,
                    if_exists,
                    key,
                    values,
                });
            }
        }
        Ok(Conditions(clauses))
    }

    /// Whether a clause reads the request's or the key's aliases (which cost a lookup to
    /// gather, so they are gathered only for such policies).
    pub(super) fn read_aliases(&self) -> bool {
        self.0.iter().any(|c| {
            matches!(
                c.key,
                ConditionKey::RequestAlias | ConditionKey::ResourceAliases
            )
        })
    }

    pub(super) fn hold(&self, caller: &Caller, facts: &RequestFacts<'_>) -> bool {
        self.0.iter().all(|clause| clause.holds(caller, facts))
    }
}

/// A string, bool or list of them (IAM accepts `true` for `"true"`).
fn condition_values(v: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

/// IAM's `*` (any run) and `?` (any one character) match.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller() -> Caller {
        Caller::new("arn:aws:iam::111122223333:role/app", "us-east-1").unwrap()
    }

    fn holds(block: Value, context: Option<&EncryptionContext>) -> bool {
        let aliases = vec!["alias/orders".to_string(), "alias/legacy".to_string()];
        let facts = RequestFacts {
            encryption_context: context,
            request_alias: Some("alias/orders"),
            resource_aliases: Some(&aliases),
            ..RequestFacts::default()
        };
        Conditions::parse(&block).unwrap().hold(&caller(), &facts)
    }

    fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob(
            "arn:aws:iam::*:role/app-?",
            "arn:aws:iam::1:role/app-x"
        ));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acbd"));
        assert!(glob("a*b*", "acbd"));
    }

    #[test]
    fn operators_follow_iams_rules_for_missing_keys_and_sets() {
        let orders = context(&[("app", "orders"), ("tenant", "7")]);
        let equals = json!({"StringEquals": {"kms:EncryptionContext:App": "orders"}});
        assert!(holds(equals.clone(), Some(&orders)));
        assert!(!holds(equals, None));
        let if_exists = json!({"StringEqualsIfExists": {"kms:EncryptionContext:app": "x"}});
        assert!(holds(if_exists.clone(), None));
        assert!(!holds(if_exists, Some(&orders)));
        assert!(holds(
            json!({"StringNotEquals": {"kms:EncryptionContext:app": ["billing", "hr"]}}),
            Some(&orders)
        ));
        let all =
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "tenant"]}});
        assert!(holds(all.clone(), Some(&orders)));
        assert!(holds(all, None), "ForAllValues holds on no values");
        let any = json!({"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "ten*"}});
        assert!(holds(any.clone(), Some(&orders)));
        assert!(!holds(any, None));
        assert!(holds(
            json!({"Null": {"kms:EncryptionContextKeys": "true"}}),
            None
        ));
        assert!(!holds(
            json!({"Null": {"kms:EncryptionContextKeys": "true"}}),
            Some(&orders)
        ));
        assert!(holds(
            json!({"StringEquals": {"kms:CallerAccount": "111122223333"},
                   "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}}),
            None
        ));
        assert!(!holds(
            json!({"Bool": {"kms:GrantIsForAWSResource": true}}),
            None
        ));
        assert!(holds(
            json!({"StringEquals": {"kms:RequestAlias": "alias/orders"}}),
            None
        ));
        assert!(holds(
            json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/leg*"}}),
            None
        ));
        assert!(!holds(
            json!({"ForAllValues:StringEquals": {"kms:ResourceAliases": "alias/orders"}}),
            None
        ));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        for block in [
            json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}),
            json!({"StringEquals": {"aws:SourceIp": "10.0.0.1"}}),
            json!({"StringEquals": {"kms:EncryptionContextKeys": "app"}}),
            json!({"StringEquals": {"aws:PrincipalArn": "${aws:username}"}}),
            json!({"Maybe:StringEquals": {"kms:CallerAccount": "1"}}),
            json!({"StringEquals": {"kms:CallerAccount": 7}}),
        ] {
            assert!(
                matches!(
                    Conditions::parse(&block),
                    Err(KmsError::MalformedPolicyDocument(_))
                ),
                "{block}"
            );
        }
    }
}
